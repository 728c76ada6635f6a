"""What `onboard bench run` measures inside the unchanged `onboard run` loop, and how, without changing what runs.

``robot.run.run_policy`` is called as `onboard run` calls it. For the length of a ``with metered(bus):`` block:

- ``robot.run``'s ``ControlLoop`` is a subclass that keeps the loop it makes (its ``LoopStats``: ticks, overruns,
  lateness, per-stage wall times), and ``robot.loop``'s ``StageTimer`` one that also takes each stage's thread CPU
  time and the bus time spent inside it;
- ``FeetechBus.transact`` is wrapped to sum its wall and thread CPU time (``BusMeter``): a stage's bus time is the
  difference over the stage, so ``read`` splits into the SYNC_READ and the safety checks around it, and ``write`` into
  the SYNC_WRITE and the clamping.

The policy is wrapped (``MeteredPolicy``): the wall and thread CPU time of each ``infer`` call, on the runtime's
inference thread (with one intra-op thread onnxruntime computes on that thread, so that is all of it).
Everything is restored on the way out.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import robot.loop
import robot.run
from hardware.feetech.bus import FeetechBus
from robot.clock import Clock
from robot.loop import ControlLoop, StageTimer


@dataclass
class BusMeter:
    """Sums of the driver's transaction times (all threads; in a run only the control thread uses the bus)."""

    wall_s: float = 0.0
    cpu_s: float = 0.0
    calls: int = 0

    def snapshot(self) -> tuple[float, float]:
        return self.wall_s, self.cpu_s


class MeteredStageTimer(StageTimer):
    """``StageTimer`` that also keeps each stage's thread CPU time and the bus's wall and CPU time inside it."""

    bus: BusMeter = BusMeter()  # set by ``metered``

    def __init__(self, clock: Clock, max_samples: int = robot.loop.MAX_SAMPLES):
        super().__init__(clock, max_samples)
        self.cpu: dict[str, list[float]] = {}
        self.bus_wall: dict[str, list[float]] = {}
        self.bus_cpu: dict[str, list[float]] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        bus = self.bus
        start, cpu0, (bw0, bc0) = self.clock.now(), time.thread_time(), bus.snapshot()
        try:
            yield
        finally:
            self.record(name, self.clock.now() - start)
            self.cpu.setdefault(name, []).append(time.thread_time() - cpu0)
            self.bus_wall.setdefault(name, []).append(bus.wall_s - bw0)
            self.bus_cpu.setdefault(name, []).append(bus.cpu_s - bc0)


@dataclass
class Capture:
    loops: list[ControlLoop] = field(default_factory=list)

    @property
    def loop(self) -> ControlLoop | None:
        return self.loops[-1] if self.loops else None


@contextmanager
def metered(bus: BusMeter) -> Iterator[Capture]:
    """Install the meters (module doc) for the length of the block; yields where the run's loop will be."""
    capture = Capture()

    class KeptLoop(ControlLoop):
        def __init__(self, *args: Any, **kwargs: Any):
            super().__init__(*args, **kwargs)
            capture.loops.append(self)

    original = FeetechBus.transact

    def transact(self, *args: Any, **kwargs: Any):
        w0, c0 = time.perf_counter(), time.thread_time()
        try:
            return original(self, *args, **kwargs)
        finally:
            bus.wall_s += time.perf_counter() - w0
            bus.cpu_s += time.thread_time() - c0
            bus.calls += 1

    MeteredStageTimer.bus = bus
    with contextlib.ExitStack() as stack:
        for owner, name, value in (
            (robot.run, "ControlLoop", KeptLoop),
            (robot.loop, "StageTimer", MeteredStageTimer),
            (FeetechBus, "transact", transact),
        ):
            saved = getattr(owner, name)
            setattr(owner, name, value)
            stack.callback(setattr, owner, name, saved)
        yield capture


class MeteredPolicy:
    """A policy (the Policy seam) whose ``infer`` calls are timed: wall and thread CPU seconds per call."""

    def __init__(self, policy: Any):
        self.policy = policy
        self.wall_s: list[float] = []
        self.cpu_s: list[float] = []

    def reset(self, task: str) -> None:
        self.policy.reset(task)

    def infer(self, observation: dict) -> Any:
        w0, c0 = time.perf_counter(), time.thread_time()
        try:
            return self.policy.infer(observation)
        finally:
            self.wall_s.append(time.perf_counter() - w0)
            self.cpu_s.append(time.thread_time() - c0)

    def __getattr__(self, name: str) -> Any:  # cameras, image_size, config, ...: the wrapped policy's
        return getattr(self.policy, name)
