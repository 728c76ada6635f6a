"""The rigs the commands build from their flags (the composition root's wiring of robot/ and sim/).

    rig = rig_from_args(args)        # --robot.port=sim: the simulation the parser was given; else ports + cameras

A real arm's rig is its ports, the cameras of ``--robot.cameras`` (not yet connected) and the wall clock. For
``--robot.port=sim`` the command's ``sim_rig(args)`` builds it: ``build_sim_rig_from_args`` (record, teleoperate,
replay) or ``build_sim_follower_rig_from_args`` (run), which turn the parsed flags into the keyword arguments of
``sim.rigs``. sim/ is imported only when a simulated rig is built.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING

from robot.arm_config import ArmConfig
from robot.clock import WallClock
from robot.errors import RobotError
from robot.rig import Rig

if TYPE_CHECKING:
    from sim.rigs.follower import SimFollowerRig
    from sim.rigs.teleop import SimTeleopRig

CAMERA_EXAMPLE = '"{front: {type: opencv, index_or_path: 0, width: 640, height: 480, fps: 30}}"'


def rig_from_args(args: argparse.Namespace) -> Rig:
    """The rig of a command's parsed flags (module doc)."""
    if args.robot_port == "sim":
        if args.sim_rig is None:
            raise RobotError("--robot.port=sim needs the simulation (run through the `onboard` command)")
        return args.sim_rig(args)
    cameras = parse_cameras(getattr(args, "robot_cameras", None))
    return Rig(
        robot_port=args.robot_port, teleop_port=getattr(args, "teleop_port", None), cameras=cameras, clock=WallClock()
    )


def parse_cameras(spec: str | None) -> dict:
    """``--robot.cameras`` (LeRobot's flow-style mapping, or JSON) -> {name: OpenCVCamera} (not connected)."""
    if not spec:
        return {}
    try:
        import yaml

        data = yaml.safe_load(spec)
    except ImportError:
        import json

        data = json.loads(spec)
    except Exception as exc:
        raise RobotError(f"--robot.cameras is not a mapping I can read ({exc}); example: {CAMERA_EXAMPLE}") from exc
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise RobotError(f"--robot.cameras must map camera names to settings, e.g. {CAMERA_EXAMPLE}")
    from hardware.opencv_camera import OpenCVCamera, OpenCVCameraConfig

    cameras = {}
    for name, cfg in data.items():
        cfg = dict(cfg)
        kind = cfg.pop("type", "opencv")
        if kind != "opencv":
            raise RobotError(f"camera {name!r}: type {kind!r} is not supported yet (opencv is)")
        try:
            cameras[str(name)] = OpenCVCamera(OpenCVCameraConfig(**cfg), name=str(name))
        except (TypeError, ValueError) as exc:
            raise RobotError(f"camera {name!r}: {exc}") from exc
    return cameras


def arm_calibration_path(args: argparse.Namespace, prefix: str) -> Path | None:
    """The calibration file that ``--<prefix>.type/.id/.calibration_dir`` name (``prefix``: robot or teleop); None
    when the flags do not name an arm."""
    type_, id_ = getattr(args, f"{prefix}_type", None), getattr(args, f"{prefix}_id", None)
    if not type_ or not id_:
        return None
    return ArmConfig(
        type=type_, port="sim", id=id_, calibration_dir=getattr(args, f"{prefix}_calibration_dir", None)
    ).calibration_path


def build_sim_rig_from_args(args: argparse.Namespace) -> SimTeleopRig:
    """``--robot.port=sim`` for record/teleoperate/replay (flags of ``onboard.cli.record``): the simulated follower
    with its cameras, the expert-driven simulated leader and the sim clock."""
    from sim.rigs.teleop import build_sim_rig
    from sim.twin.disturbance import DISTURBANCE_FLOOR

    size = getattr(args, "sim_image_size", None) or 96
    fps = getattr(args, "dataset_fps", None) or getattr(args, "fps", None) or 30
    task = getattr(args, "sim_task", None)
    floor = getattr(args, "sim_disturbance_floor", None)
    if not math.isfinite(float(fps)):
        raise ValueError(f"bad fps {fps!r}")
    return build_sim_rig(
        robot_calibration=arm_calibration_path(args, "robot"),
        teleop_calibration=arm_calibration_path(args, "teleop"),
        seed=int(getattr(args, "sim_seed", 0) or 0),
        image_size=(int(size), int(size)),
        fps=float(fps),
        tasks=(task,) if task else None,
        disturbance_deg=float(getattr(args, "sim_disturbance", 0.0) or 0.0),
        disturbance_floor=DISTURBANCE_FLOOR if floor is None else float(floor),
    )


def build_sim_follower_rig_from_args(args: argparse.Namespace) -> SimFollowerRig:
    """``--robot.port=sim`` for `onboard run` (flags of ``onboard.cli.run``): the simulated follower (cameras at the
    policy's size), a scene from --sim.seed/--sim.task/--sim.color, its success judge and the sim clock; no leader.
    With ``--task`` and no ``--sim.task``/``--sim.color``, the task and cube to judge are guessed from the
    instruction's words (as `onboard demo` does)."""
    from sim import tasks as T
    from sim.rigs.follower import build_sim_follower_rig

    size = int(getattr(args, "sim_image_size", None) or 96)
    task, color = getattr(args, "sim_task", None), getattr(args, "sim_color", None)
    instruction = getattr(args, "task", None)
    if instruction and (task is None or color is None):
        task, color = T.judge_instruction(instruction, task, color)
    return build_sim_follower_rig(
        robot_calibration=arm_calibration_path(args, "robot"),
        seed=int(getattr(args, "sim_seed", 0) or 0),
        task=task,
        color=color,
        instruction=instruction,
        image_size=(size, size),
        fps=float(getattr(args, "fps", None) or 30.0),
    )
