"""Clocks: the seam between wall time and simulated time (DESIGN.md, seam 3).

The control loop, teleop, recording and evaluation only ever call ``now()`` and ``sleep_until(t)``. On hardware that
is ``WallClock`` (monotonic seconds, sleep then spin the last stretch so deadlines are met to ~0.1 ms without burning a
core); in simulation it is the sim clock of ``sim/``, which advances the MuJoCo world to ``t`` instead of waiting.
"""

from __future__ import annotations

import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    def now(self) -> float:
        """Seconds on one monotonic time base."""

    def sleep_until(self, t: float) -> None:
        """Return at (or just after) time ``t``; return at once if ``t`` has passed."""


class WallClock:
    """Monotonic wall clock with sleep-then-spin waits on absolute deadlines."""

    def __init__(self, spin_s: float = 1e-3):
        self.spin_s = spin_s

    def now(self) -> float:
        return time.monotonic()

    def sleep_until(self, t: float) -> None:
        remaining = t - time.monotonic()
        if remaining > self.spin_s:
            time.sleep(remaining - self.spin_s)
        while time.monotonic() < t:
            pass
