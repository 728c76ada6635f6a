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

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robot.calibration import MotorCalibration, save_calibration
from sim import tasks as T
from sim.rigs.base import ARM_SEED, CAMERAS, SimRig, install_calibration_file
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


@dataclass(kw_only=True)
class SimFollowerRig(SimRig):
    """The simulated follower rig: the twin (``sim``), the scene's ``spec``, its ``judge``, and
    ``calibration_written``: the calibration file this rig saved (a first run on the simulated arm), or None."""

    spec: T.TaskSpec
    judge: SuccessJudge
    calibration_written: str | Path | None = None


def _install_calibration(follower: SimulatedSO101, path: Path | None) -> bool:
    """Install the file's calibration into the servos; without a file, the factory one (saved to ``path``).
    Returns True when a file was written."""
    if install_calibration_file(follower, path):
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
) -> SimFollowerRig:
    """The simulated follower rig (module doc and ``SimFollowerRig``)."""
    follower = SimulatedSO101(seed=ARM_SEED)
    try:
        written = _install_calibration(follower, Path(robot_calibration) if robot_calibration else None)
        spec = scene_spec(seed, task, color, instruction)
        world = follower.world
        with world.lock:
            spec.lay_out(world.model, world.data)  # the arm at home, the cubes where the seed says
        h, w = image_size
        cams = {name: RenderedCamera(world, name, height=h, width=w, fps=fps) for name in cameras}
    except BaseException:
        follower.close()
        raise
    return SimFollowerRig(
        robot_port=follower.url,
        cameras=cams,
        clock=follower.clock,
        on_close=follower.close,
        sim=follower,
        spec=spec,
        judge=SuccessJudge(world, spec),
        calibration_written=robot_calibration if written else None,
    )
