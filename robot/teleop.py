"""Teleoperation: a leader arm's joints become the follower's goals, at a fixed rate, through ``SafeArm``.

    teleop = Teleoperator(leader, safe, clock, cameras={"front": cam})
    stats = teleop.run(rate_hz=30, duration_s=60)          # ControlLoop: leader_read, follower_read, cameras, write

`onboard teleoperate` takes its rate and duration from ``TeleopConfig``.

One tick (``Teleoperator.step``), in this order, each a timed stage of the ``ControlLoop``:

1. ``leader_read``: the leader's present positions (one SYNC_READ on its own bus): the action;
2. ``follower_read``: ``SafeArm.check()``: the follower's positions, load, temperature and status (one SYNC_READ),
   faults raise: the observation state, read *before* the action is sent (LeRobot's ``record_loop`` order);
3. ``cameras``: the newest frame of each camera (``CameraTap``: never waits for a camera);
4. ``write``: ``SafeArm.send_action(action)``: clamped goals in one SYNC_WRITE.

The ``TeleopSample`` of the tick keeps the action as the leader gave it (what a dataset records) and what was sent
after clamping. Nothing here knows whether the clock is the wall clock or the simulation's: the same code runs both.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from hardware.camera import Camera, Frame
from hardware.feetech.errors import FeetechError
from robot.arm import Arm
from robot.clock import Clock
from robot.errors import BusFailureError
from robot.loop import CameraTap, ControlLoop, LoopStats, Tick
from robot.safety import Readings, SafeArm, SentAction

STAGES = ("leader_read", "follower_read", "cameras", "write")


@dataclass(frozen=True)
class TeleopConfig:
    """How long and how fast `onboard teleoperate` runs (LeRobot's ``lerobot-teleoperate`` flags; the metadata is
    their help, ``onboard.cli.options``)."""

    fps: float = field(default=60.0, metadata={"help": "teleop rate (Hz)"})
    teleop_time_s: float | None = field(
        default=None, metadata={"help": "seconds to teleoperate (default: until Ctrl-C)"}
    )

    def __post_init__(self) -> None:
        if not (self.fps > 0 and math.isfinite(self.fps)):
            raise ValueError(f"--fps must be a positive number, got {self.fps!r}")
        if self.teleop_time_s is not None and not self.teleop_time_s > 0:
            raise ValueError(f"--teleop_time_s must be positive, got {self.teleop_time_s!r}")


@dataclass
class TeleopSample:
    """What one teleop tick saw and did."""

    t: float  # clock time of the follower's read (the observation's capture time)
    state: np.ndarray  # float32 (6,) follower positions, read before the action was sent
    action: np.ndarray  # float32 (6,) the leader's positions: the action as given (not clamped)
    sent: SentAction | None  # what went to the follower after the safety clamps
    frames: dict[str, Frame | None] = field(default_factory=dict)
    readings: Readings | None = None


class Teleoperator:
    """Leader -> follower at a fixed rate (module doc). ``leader``: a connected leader ``Arm``; ``follower``: a
    started ``SafeArm``; ``cameras``: connected cameras (optional); ``camera_max_age_s``: older frames count as
    stale (``CameraTap``)."""

    def __init__(
        self,
        leader: Arm,
        follower: SafeArm,
        clock: Clock,
        cameras: Mapping[str, Camera] | None = None,
        *,
        camera_max_age_s: float | None = None,
    ):
        if leader.spec.role != "leader":
            raise ValueError(f"the teleoperator reads a leader arm, got {leader.config.type}")
        self.leader = leader
        self.follower = follower
        self.clock = clock
        self.cameras = dict(cameras or {})
        self.tap = CameraTap(self.cameras, max_age_s=camera_max_age_s)
        self.last: TeleopSample | None = None
        self.loop: ControlLoop | None = None
        self._action: np.ndarray | None = None
        self._readings: Readings | None = None
        self._frames: dict[str, Frame | None] = {}

    # one stage each -----------------------------------------------------------------------------------------------
    def read_leader(self, tick: Tick | None = None) -> None:
        self._action = self.leader.read_positions().astype(np.float32)

    def read_follower(self, tick: Tick | None = None) -> None:
        self._readings = self.follower.check()

    def read_cameras(self, tick: Tick | None = None) -> None:
        self._frames = self.tap.read() if self.cameras else {}

    def write(self, tick: Tick | None = None) -> None:
        assert self._action is not None and self._readings is not None
        sent = self.follower.send_action(self._action)
        r = self._readings
        self.last = TeleopSample(r.t, r.positions.astype(np.float32), self._action, sent, self._frames, r)

    def stages(self) -> dict[str, Callable[[Tick], None]]:
        """``{stage name: fn(tick)}`` for ``ControlLoop.run``."""
        return dict(zip(STAGES, (self.read_leader, self.read_follower, self.read_cameras, self.write), strict=True))

    def step(self) -> TeleopSample:
        """One tick outside a loop (untimed)."""
        self.read_leader()
        self.read_follower()
        self.read_cameras()
        self.write()
        assert self.last is not None
        return self.last

    def run(
        self,
        rate_hz: float,
        *,
        duration_s: float | None = None,
        ticks: int | None = None,
        on_sample: Callable[[TeleopSample, Tick], object] | None = None,
        on_tick: Callable[[Tick, LoopStats], object] | None = None,
    ) -> LoopStats:
        """Teleoperate at ``rate_hz`` for ``duration_s`` (or ``ticks``, or until ``stop()``). ``on_sample(sample,
        tick)`` runs inside the tick, timed as the ``record`` stage (recording a frame is part of the tick's work);
        ``on_tick`` runs after it (telemetry). A bus error once the loop runs is a safety stop (``BusFailureError``:
        the follower's ``SafeArm`` turns torque off on the way out)."""
        stages = self.stages()
        if on_sample is not None:

            def record(tick: Tick) -> None:
                assert self.last is not None
                on_sample(self.last, tick)

            stages["record"] = record
        self.loop = ControlLoop(self.clock, rate_hz)
        try:
            return self.loop.run(stages, duration_s=duration_s, ticks=ticks, on_tick=on_tick)
        except FeetechError as exc:
            raise BusFailureError(f"teleoperation stopped: {exc}") from exc

    def stop(self) -> None:
        """End ``run`` after the tick in progress."""
        if self.loop is not None:
            self.loop.stop()


def teleoperate(
    leader: Arm,
    follower: SafeArm,
    clock: Clock,
    rate_hz: float,
    *,
    duration_s: float | None = None,
    cameras: Mapping[str, Camera] | None = None,
    on_sample: Callable[[TeleopSample, Tick], object] | None = None,
) -> LoopStats:
    """``Teleoperator(leader, follower, clock, cameras).run(rate_hz, duration_s=...)``."""
    return Teleoperator(leader, follower, clock, cameras).run(rate_hz, duration_s=duration_s, on_sample=on_sample)
