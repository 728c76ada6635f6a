"""The simulated teleop rig for `onboard record|teleoperate|replay --robot.port=sim`: the follower twin with its
rendered cameras, an expert-driven simulated leader on its own bus, the sim clock, and episode hooks that lay out a
fresh scene (task, colour, layout seed) at each reset and start the expert on it.

    rig = build_sim_rig(robot_calibration=path_f, teleop_calibration=path_l, seed=0)
    record(rig, config, robot=ArmConfig("so101_follower", rig.robot_port, ...), teleop=ArmConfig(..., rig.teleop_port))
    rig.close()

Both simulated arms come out of the box like the arm calibrated by `onboard calibrate --robot.port=sim` (horn
offsets of seed 0); a calibration file given here is written into their servos' EEPROM first, as the servos of a
calibrated real arm keep it across power cycles. Episode ``i`` of a dataset gets the scene and task drawn from
``(seed, i)``, so a replay of episode ``i`` (``begin_reset(i)``) lays out the scene it was recorded in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim import tasks as T
from sim.rigs.base import ARM_SEED, CAMERAS, SimRig, SimRigError, install_calibration_file
from sim.twin.cameras import RenderedCamera
from sim.twin.disturbance import DISTURBANCE_FADE, DISTURBANCE_FLOOR, JointDisturbance
from sim.twin.leader import ExpertLeader
from sim.twin.so101 import SimulatedSO101


class SimEpisodes:
    """``EpisodeHooks`` of the simulation: lays out the scene for an episode and runs the expert at the leader."""

    def __init__(
        self,
        follower: SimulatedSO101,
        leader: ExpertLeader,
        *,
        seed: int = 0,
        tasks: tuple[str, ...] | None = None,
        colors: tuple[str, ...] = T.COLORS,
        disturbance_deg: float = 0.0,
        disturbance_floor: float = DISTURBANCE_FLOOR,
    ):
        if not (math.isfinite(disturbance_deg) and disturbance_deg >= 0):
            raise SimRigError(f"disturbance_deg must be >= 0 (degrees), got {disturbance_deg}")
        if not (math.isfinite(disturbance_floor) and disturbance_floor >= 0):
            raise SimRigError(f"disturbance_floor must be a height >= 0 (metres), got {disturbance_floor}")
        unknown = [t for t in tasks or () if t not in T.TASKS]
        if unknown:
            raise SimRigError(f"unknown task {', '.join(map(repr, unknown))}: the simulation has {', '.join(T.TASKS)}")
        unknown = [c for c in colors if c not in T.COLORS]
        if unknown:
            raise SimRigError(f"unknown colour {', '.join(map(repr, unknown))}: the cubes are {', '.join(T.COLORS)}")
        self.follower, self.leader = follower, leader
        self.seed, self.tasks, self.colors = int(seed), tasks, colors
        self.disturbance_deg = float(disturbance_deg)
        # the pushes fade from full strength DISTURBANCE_FADE above the floor to none at it (JointDisturbance.fade_z)
        self.disturbance_fade = (float(disturbance_floor), float(disturbance_floor) + DISTURBANCE_FADE)
        self._disturbance: JointDisturbance | None = None
        self.spec: T.TaskSpec | None = None
        self._prepared: int | None = None
        self.specs: dict[int, T.TaskSpec] = {}

    def spec_for(self, index: int) -> T.TaskSpec:
        rng = np.random.default_rng([self.seed, int(index)])
        return T.sample_task(rng, tasks=self.tasks, colors=self.colors)

    def layout(self, index: int) -> T.TaskSpec:
        """The person resets the scene for episode ``index``: arm at home, cubes where the episode's seed says
        (no simulated time passes), the leader back at home."""
        spec = self.spec_for(index)
        world = self.follower.world
        with world.lock:
            spec.lay_out(world.model, world.data)
        self.leader.stop()
        self.leader.home()
        self.spec, self._prepared = spec, index
        self.specs[index] = spec
        return spec

    def begin_episode(self, index: int) -> str | None:
        spec = self.spec if self._prepared == index and self.spec is not None else self.layout(index)
        self._prepared = None  # a re-recorded episode gets its scene laid out again
        self._stop_disturbance()
        if self.disturbance_deg > 0:  # pushes on the follower while the episode runs (sim.twin.disturbance)
            self._disturbance = JointDisturbance(
                self.follower, std_deg=self.disturbance_deg, seed=[self.seed, index], fade_z=self.disturbance_fade
            )
        self.leader.start(spec)
        return spec.instruction

    def end_episode(self) -> None:
        self.leader.stop()
        self._stop_disturbance()

    def _stop_disturbance(self) -> None:
        if self._disturbance is not None:
            self._disturbance.close()
            self._disturbance = None

    def begin_reset(self, next_index: int) -> None:
        self.layout(next_index)


@dataclass(kw_only=True)
class SimTeleopRig(SimRig):
    """The simulated teleop rig: the follower twin (``sim``), the expert-driven simulated ``leader`` and the
    ``SimEpisodes`` hooks that lay out each episode's scene."""

    leader: ExpertLeader
    hooks: SimEpisodes


def build_sim_rig(
    *,
    robot_calibration: str | Path | None = None,
    teleop_calibration: str | Path | None = None,
    seed: int = 0,
    image_size: tuple[int, int] = (96, 96),
    fps: float = 30.0,
    cameras: tuple[str, ...] = CAMERAS,
    tasks: tuple[str, ...] | None = None,
    encoder_queue_size: int | None = 100_000,
    disturbance_deg: float = 0.0,
    disturbance_floor: float = DISTURBANCE_FLOOR,
) -> SimTeleopRig:
    """The simulated rig (module doc). Calibration files that exist are installed into the simulated servos.
    ``encoder_queue_size``: the sim runs faster than real time, so the video encoders may fall behind by a whole
    episode (the default lets them). ``disturbance_deg``: during episodes the follower's arm joints are pushed off
    the leader's goals by this much (standard deviation, degrees; ``sim.twin.disturbance``), for demonstrations with
    recovery; 0 = none. ``disturbance_floor``: the tool point's height (m) at which the pushes have faded out
    (full strength 3 cm higher; ``sim.disturbance_floor``)."""
    follower = SimulatedSO101(seed=ARM_SEED)
    leader = ExpertLeader(follower, seed=ARM_SEED, rate_hz=fps)

    def close() -> None:
        leader.close()
        follower.close()

    try:  # a calibration file that does not fit (CalibrationFileError) closes what was built
        install_calibration_file(follower, robot_calibration)
        install_calibration_file(leader.sim, teleop_calibration)
        h, w = image_size
        cams = {name: RenderedCamera(follower.world, name, height=h, width=w, fps=fps) for name in cameras}
        hooks = SimEpisodes(
            follower,
            leader,
            seed=seed,
            tasks=tasks,
            disturbance_deg=disturbance_deg,
            disturbance_floor=disturbance_floor,
        )
    except BaseException:
        close()
        raise

    return SimTeleopRig(
        robot_port=follower.url,
        teleop_port=leader.url,
        cameras=cams,
        clock=follower.clock,
        hooks=hooks,
        encoder_queue_size=encoder_queue_size,
        on_close=close,
        sim=follower,
        leader=leader,
    )
