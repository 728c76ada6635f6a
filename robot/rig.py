"""The rig: the devices a session (teleop, recording, replay, a policy run) uses, as the composition root built them,
and ``connected_arms``, which connects them for the length of a ``with`` block.

    rig = Rig(robot_port="/dev/ttyACM0", teleop_port="/dev/ttyACM1", cameras={"front": OpenCVCamera(...)})
    with connected_arms(rig, robot=ArmConfig(...), teleop=ArmConfig(...)) as (safe, leader):
        ...                                  # safe: the follower inside SafeArm; leader: an Arm, or None
    rig.close()

A real robot's rig is its ports, cameras and the wall clock. A simulated rig (``sim.rigs``) extends ``Rig`` with
typed fields of its own and brings the sim clock, ``EpisodeHooks`` that lay out a scene per episode, and an
``on_close`` that stops the simulation.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from hardware.camera import Camera
from robot.arm import Arm
from robot.arm_config import ArmConfig
from robot.clock import Clock, WallClock
from robot.safety import SafeArm
from robot.safety_config import SafetyConfig

log = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------------------- hooks
class EpisodeHooks(Protocol):
    """A world around the recording (the simulation); a real robot has none."""

    def begin_episode(self, index: int) -> str | None:
        """Episode ``index`` (the dataset's episode index) starts now; return its task string, or None."""

    def end_episode(self) -> None:
        """The episode ended (saved, discarded or stopped)."""

    def begin_reset(self, next_index: int) -> None:
        """A reset phase starts (the scene is laid out again for episode ``next_index``)."""


@dataclass
class Rig:
    """The devices a session uses, as the composition root built them: the follower's and the leader's ports, cameras
    (not yet connected), the clock, and optional episode hooks. ``close()`` releases what the builder made (a
    simulation)."""

    robot_port: str
    teleop_port: str | None = None
    cameras: dict[str, Camera] = field(default_factory=dict)
    clock: Clock = field(default_factory=WallClock)
    hooks: EpisodeHooks | None = None
    encoder_queue_size: int | None = None  # frames a video encoder may fall behind (sim: a whole episode)
    on_close: Callable[[], None] | None = None

    def close(self) -> None:
        if self.on_close is not None:
            on_close, self.on_close = self.on_close, None
            on_close()


@contextlib.contextmanager
def connected_arms(
    rig: Rig,
    *,
    robot: ArmConfig,
    teleop: ArmConfig | None,
    safety: SafetyConfig | None = None,
) -> Iterator[tuple[SafeArm, Arm | None]]:
    """Connect the follower (inside ``SafeArm``: torque off on the way out) and the leader, and the cameras."""
    follower = Arm(robot)
    leader = Arm(teleop) if teleop is not None else None
    connected: list[Camera] = []
    try:
        follower.connect()
        if leader is not None:
            leader.connect()
        for cam in rig.cameras.values():
            cam.connect()
            connected.append(cam)
        with SafeArm(follower, rig.clock, safety) as safe:
            yield safe, leader
    finally:
        for cam in connected:
            with contextlib.suppress(Exception):
                cam.disconnect()
        for arm in (leader, follower):
            if arm is not None:
                try:
                    arm.disconnect()
                except Exception as exc:  # keep the original error, if any
                    log.error("disconnecting %r: %s", arm, exc)
