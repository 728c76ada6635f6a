"""The rigs the commands build from their options (the composition root's wiring of robot/ and sim/).

    rig = rig_from_args(args)        # --robot.port=sim: the command's simulated rig; else ports + cameras

The options of a rig: ``FollowerRig`` (``--robot.*`` from ``robot.arm_config.ArmConfig``, ``--robot.cameras``, the
simulation's ``--sim.*`` and ``--display_data``; `onboard replay`) and ``TeleopRig`` (with the leader's
``--teleop.*``; `onboard record` and `onboard teleoperate`); `onboard run` takes ``SimRunOptions``.

A real arm's rig is its ports, the cameras of ``--robot.cameras`` (not yet connected) and the wall clock. For
``--robot.port=sim`` the command's ``sim_rig(args)`` builds it: ``build_sim_rig_from_args`` (record, teleoperate,
replay) or ``build_sim_follower_rig_from_args`` (run), which turn the options into the keyword arguments of
``sim.rigs``. sim/ is imported only when a simulated rig is built.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from onboard.cli.options import config_from
from robot.arm_config import ArmConfig
from robot.clock import WallClock
from robot.errors import RobotError
from robot.rig import Rig

if TYPE_CHECKING:
    from sim.rigs.follower import SimFollowerRig
    from sim.rigs.teleop import SimTeleopRig

CAMERA_EXAMPLE = '"{front: {type: opencv, index_or_path: 0, width: 640, height: 480, fps: 30}}"'
SIM_IMAGE_SIZE = 96  # px, square: the simulated cameras when neither an option nor the policy says otherwise
SIM_FPS = 30.0  # the simulated rig's rate when the command has none (replay: the dataset's fps paces the replay)
FOLLOWER = {"type": "so101_follower"}  # --robot.type's default
LEADER = {"type": "so101_leader"}  # --teleop.type's default


@dataclass(frozen=True)
class SimTeleopOptions:
    """``--sim.*`` of record, teleoperate and replay: the simulated follower, its expert-driven leader, the scenes."""

    seed: int = field(default=0, metadata={"help": "sim: scene/task seed"})
    image_size: int = field(default=SIM_IMAGE_SIZE, metadata={"help": "sim: camera px"})
    task: str | None = field(default=None, metadata={"help": "sim: touch, pick or place (default: any)"})
    disturbance: float = field(
        default=0.0,
        metadata={
            "metavar": "DEG",
            "help": "sim: push the follower's arm joints off the leader's goals during episodes (random, this "
            "standard deviation in degrees; ~1 gives demonstrations that show recovery, DART-style)",
        },
    )
    disturbance_floor: float | None = field(
        default=None,
        metadata={
            "metavar": "M",
            "help": "sim: the pushes fade out as the tool point comes down to this height above the table (metres; "
            "full strength 3 cm higher; default 0.03: none while the jaws are at a cube)",
        },
    )


@dataclass(frozen=True)
class SimRunOptions:
    """``--sim.*`` of `onboard run`: the scene and the success judge around the simulated follower."""

    seed: int = field(default=0, metadata={"help": "sim: scene layout seed"})
    task: Literal["touch", "pick", "place"] | None = field(default=None, metadata={"help": "sim: judge"})
    color: Literal["red", "green", "blue"] | None = field(default=None, metadata={"help": "sim: cube"})
    image_size: int | None = field(default=None, metadata={"help": "sim: camera px (default: the policy's)"})


@dataclass(frozen=True, kw_only=True)
class FollowerRig:
    """A follower (real, or --robot.port=sim), its cameras, the simulation's options and the live view."""

    robot: ArmConfig = field(metadata={"defaults": FOLLOWER})
    robot_cameras: str | None = field(
        default=None,
        metadata={
            "flag": "--robot.cameras",
            "metavar": "SPEC",
            "help": f"real arm cameras, LeRobot's syntax: {CAMERA_EXAMPLE} (JSON works too); `onboard find cameras` "
            "lists them; `{front: {type: sim, name: front}}` reads a camera `onboard sim serve` publishes",
        },
    )
    sim: SimTeleopOptions = field(default_factory=SimTeleopOptions)
    display_data: bool = field(
        default=False,
        metadata={"help": "live view: joint plots and cameras on a local web page (its address is printed)"},
    )


@dataclass(frozen=True, kw_only=True)
class TeleopRig(FollowerRig):
    """A follower and its leader (--teleop.*)."""

    teleop: ArmConfig = field(metadata={"defaults": LEADER})


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
    """``--robot.cameras`` (LeRobot's flow-style mapping, or JSON) -> {name: camera} (not connected): ``type: opencv``
    (the default) or ``type: sim`` (``_camera``)."""
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
    cameras = {}
    for name, cfg in data.items():
        cfg = dict(cfg)
        kind = cfg.pop("type", "opencv")
        if kind not in CAMERA_TYPES:
            raise RobotError(f"camera {name!r}: type {kind!r} is not supported yet ({' and '.join(CAMERA_TYPES)} are)")
        try:
            cameras[str(name)] = _camera(kind, str(name), cfg)
        except (TypeError, ValueError) as exc:
            raise RobotError(f"camera {name!r}: {exc}") from exc
    return cameras


CAMERA_TYPES = ("opencv", "sim")


def _camera(kind: str, name: str, cfg: dict):
    """One camera of --robot.cameras: ``opencv`` (a device or video file) or ``sim`` (a camera `onboard sim serve`
    publishes: ``name`` is the published name, default the key; optional ``width``/``height``/``fps`` are checked
    against what is served)."""
    if kind == "sim":
        from hardware.shm_camera import ShmCamera

        return ShmCamera(str(cfg.pop("name", name)), name=name, **cfg)
    from hardware.opencv_camera import OpenCVCamera, OpenCVCameraConfig

    return OpenCVCamera(OpenCVCameraConfig(**cfg), name=name)


def arm_calibration_path(args: argparse.Namespace, prefix: str) -> Path | None:
    """The calibration file that ``--<prefix>.type/.id/.calibration_dir`` name (``prefix``: robot or teleop); None
    when the flags do not name an arm."""
    type_, id_ = getattr(args, f"{prefix}_type", None), getattr(args, f"{prefix}_id", None)
    if not type_ or not id_:
        return None
    return ArmConfig(
        type=type_, port="sim", id=id_, calibration_dir=getattr(args, f"{prefix}_calibration_dir", None)
    ).calibration_path


def sim_rig_kwargs(
    sim: SimTeleopOptions, fps: float, robot_calibration: Path | None, teleop_calibration: Path | None
) -> dict:
    """The keyword arguments of ``sim.rigs.teleop.build_sim_rig`` for ``--sim.*`` at ``fps`` (plain values: `onboard
    generate` hands them to workers in other processes)."""
    from sim.twin.disturbance import DISTURBANCE_FLOOR

    if not math.isfinite(float(fps)):
        raise ValueError(f"bad fps {fps!r}")
    return {
        "robot_calibration": robot_calibration,
        "teleop_calibration": teleop_calibration,
        "seed": int(sim.seed),
        "image_size": (int(sim.image_size), int(sim.image_size)),
        "fps": float(fps),
        "tasks": (sim.task,) if sim.task else None,
        "disturbance_deg": float(sim.disturbance),
        "disturbance_floor": DISTURBANCE_FLOOR if sim.disturbance_floor is None else float(sim.disturbance_floor),
    }


def build_sim_rig_from_args(args: argparse.Namespace) -> SimTeleopRig:
    """``--robot.port=sim`` for record/teleoperate/replay (``SimTeleopOptions``; the rate of --dataset.fps or
    --fps): the simulated follower with its cameras, the expert-driven simulated leader and the sim clock."""
    from sim.rigs.teleop import build_sim_rig

    sim = config_from(args, SimTeleopOptions, "sim.")
    fps = getattr(args, "dataset_fps", None) or getattr(args, "fps", None) or SIM_FPS
    robot, teleop = arm_calibration_path(args, "robot"), arm_calibration_path(args, "teleop")
    return build_sim_rig(**sim_rig_kwargs(sim, fps, robot, teleop))


def build_sim_follower_rig_from_args(args: argparse.Namespace) -> SimFollowerRig:
    """``--robot.port=sim`` for `onboard run` (``SimRunOptions``, --fps, --task): the simulated follower (cameras at
    the policy's size), a scene from --sim.seed/--sim.task/--sim.color, its success judge and the sim clock; no
    leader. With ``--task`` and no ``--sim.task``/``--sim.color``, the task and cube to judge are guessed from the
    instruction's words (as `onboard demo` does)."""
    from sim import tasks as T
    from sim.rigs.follower import build_sim_follower_rig

    sim = config_from(args, SimRunOptions, "sim.")
    size = int(sim.image_size or SIM_IMAGE_SIZE)
    task, color = sim.task, sim.color
    instruction = getattr(args, "task", None)
    if instruction and (task is None or color is None):
        task, color = T.judge_instruction(instruction, task, color)
    return build_sim_follower_rig(
        robot_calibration=arm_calibration_path(args, "robot"),
        seed=int(sim.seed),
        task=task,
        color=color,
        instruction=instruction,
        image_size=(size, size),
        fps=float(getattr(args, "fps", None) or SIM_FPS),
    )
