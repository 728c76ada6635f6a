"""The simulated rig for `onboard run --robot.port=sim`: the follower twin with its rendered cameras on the sim clock,
a scene laid out for one task, and the judge that says whether the policy solved it. No leader.

    rig = build_sim_follower_rig(robot_calibration=path, seed=0, task="pick", color="red", image_size=(96, 96))
    summary = run_policy(rig, policy, RunConfig(task=rig.spec.instruction), robot=..., judge=rig.judge)
    rig.close()

The arm comes out of the box like the one `onboard calibrate --robot.port=sim` calibrates (horn offsets of seed 0). A
calibration file that exists is written into the servos' EEPROM; where none exists yet (a first run on the simulated
arm) the twin's factory calibration is installed and saved there, so `onboard run --robot.port=sim` works without a
calibration step. The scene (task, colour, layout) is drawn from ``seed``; ``task``/``color`` fix them, and
``instruction`` replaces the drawn phrasing (what the policy is told; the judge goes by task and colour).
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

import mujoco
import numpy as np

from robot.calibration import MotorCalibration, load_calibration, save_calibration
from robot.record import Rig
from sim import tasks as T
from sim.rigs.teleop import ARM_SEED, CAMERAS, _calibration_path
from sim.twin.cameras import RenderedCamera
from sim.twin.physics import World
from sim.twin.so101 import SimulatedSO101


class SuccessJudge:
    """``robot.run.Judge`` of a simulated scene: the task counts as solved once its success predicate has held for
    the task's hold time (as ``SO101Env`` judges an episode); success is kept once reached."""

    def __init__(self, world: World, spec: T.TaskSpec):
        self.world, self.spec = world, spec
        self._t0: float | None = None
        self._held_since: float | None = None
        self.time_to_success: float | None = None

    def update(self, t: float) -> bool:
        if self._t0 is None:
            self._t0 = t
        if self.time_to_success is not None:
            return True
        with self.world.lock:
            ok = self.spec.success(self.world.model, self.world.data)
        if not ok:
            self._held_since = None
            return False
        if self._held_since is None:
            self._held_since = t
        if t - self._held_since >= self.spec.success_hold_s - 1e-9:
            self.time_to_success = t - self._t0
            return True
        return False

    def result(self) -> dict[str, Any]:
        s = self.spec
        return {
            "task": s.task,
            "color": s.color,
            "instruction": s.instruction,
            "seed": s.seed,
            "success": self.time_to_success is not None,
            "time_to_success_s": self.time_to_success,
        }


def scene_spec(
    seed: int = 0, task: str | None = None, color: str | None = None, instruction: str | None = None
) -> T.TaskSpec:
    """The episode of ``seed`` (task and colour drawn unless given; ``instruction`` replaces the phrasing)."""
    rng = np.random.default_rng([int(seed), 0])
    spec = T.sample_task(rng, tasks=(task,) if task else None, colors=(color,) if color else T.COLORS)
    if instruction:
        spec = dataclasses.replace(spec, instruction=instruction)
    return spec


def _install_calibration(follower: SimulatedSO101, path: Path | None) -> bool:
    """Install the file's calibration into the servos; without a file, the factory one (saved to ``path``).
    Returns True when a file was written."""
    if path is not None and Path(path).is_file():
        cal = load_calibration(path)
        follower.install_calibration(
            {
                n: {"homing_offset": m.homing_offset, "range_min": m.range_min, "range_max": m.range_max}
                for n, m in cal.items()
            }
        )
        return False
    factory = follower.factory_calibration()
    follower.install_calibration(factory)
    if path is None:
        return False
    save_calibration(
        path,
        {
            n: MotorCalibration(c["id"], c["drive_mode"], c["homing_offset"], c["range_min"], c["range_max"])
            for n, c in factory.items()
        },
    )
    return True


def build_sim_follower_rig(
    *,
    robot_calibration: str | Path | None = None,
    seed: int = 0,
    task: str | None = None,
    color: str | None = None,
    instruction: str | None = None,
    image_size: tuple[int, int] = (96, 96),
    fps: float = 30.0,
    cameras: tuple[str, ...] = CAMERAS,
) -> Rig:
    """The simulated follower rig (module doc). ``rig.sim``: the twin; ``rig.spec``: the scene's ``TaskSpec``;
    ``rig.judge``: its ``SuccessJudge``; ``rig.calibration_written``: the path saved, or None."""
    follower = SimulatedSO101(seed=ARM_SEED)
    try:
        written = _install_calibration(follower, Path(robot_calibration) if robot_calibration else None)
        spec = scene_spec(seed, task, color, instruction)
        world = follower.world
        with world.lock:
            t = world.data.time
            spec.reset(world.model, world.data)  # the arm at home, the cubes where the seed says
            world.data.time = t
            mujoco.mj_forward(world.model, world.data)
        h, w = image_size
        cams = {name: RenderedCamera(world, name, height=h, width=w, fps=fps) for name in cameras}
    except BaseException:
        follower.close()
        raise
    rig = Rig(robot_port=follower.url, cameras=cams, clock=follower.clock, on_close=follower.close)
    rig.sim = follower  # type: ignore[attr-defined]
    rig.spec = spec  # type: ignore[attr-defined]
    rig.judge = SuccessJudge(world, spec)  # type: ignore[attr-defined]
    rig.calibration_written = robot_calibration if written else None  # type: ignore[attr-defined]
    return rig


def build_sim_follower_rig_from_args(args: argparse.Namespace) -> Rig:
    """What the composition root calls for `onboard run --robot.port=sim` (flags of ``onboard.cli.run``). With
    ``--task`` and no ``--sim.task``/``--sim.color``, the task and cube to judge are guessed from the instruction's
    words (as `onboard demo` does)."""
    size = int(getattr(args, "sim_image_size", None) or 96)
    task, color = getattr(args, "sim_task", None), getattr(args, "sim_color", None)
    instruction = getattr(args, "task", None)
    if instruction and (task is None or color is None):
        task, color = T.judge_instruction(instruction, task, color)
    return build_sim_follower_rig(
        robot_calibration=_calibration_path(args, "robot"),
        seed=int(getattr(args, "sim_seed", 0) or 0),
        task=task,
        color=color,
        instruction=instruction,
        image_size=(size, size),
        fps=float(getattr(args, "fps", None) or 30.0),
    )
