"""The fixed-rate control loop: absolute deadlines on one clock, per-stage times, overruns, jitter.

    loop = ControlLoop(clock, rate_hz=30)
    def step(tick):
        with tick.stage("bus_read"):
            readings = safe.check()
        with tick.stage("cameras"):
            frames = latest_frames(cameras)          # read_latest only: a camera never blocks the servo loop
        with tick.stage("policy"):
            action = runtime.action_at(tick.deadline)
        with tick.stage("bus_write"):
            safe.send_action(action)
    stats = loop.run(step, duration_s=10.0)
    stats.summary()   # ticks, overruns, skipped deadlines, lateness p50/p99/max, per-stage p50/p99/max

Tick ``i`` is due at ``t0 + i * dt`` (``t0``: the clock's time when ``run`` starts; the first tick runs at once).
The loop waits with ``clock.sleep_until(deadline)``: sleep-then-spin on the ``WallClock``, physics stepping on the sim
clock, so the same code runs on both and timing is exact (and testable) on the sim clock. A tick that ends after the
next tick's deadline is an overrun; the loop then skips every deadline already past and resumes on the schedule (no
burst of late ticks to catch up, no drift: tick starts stay on ``t0 + i * dt``). Stage and lateness times are measured
on the same clock.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from hardware.camera import Camera, CameraError, Frame
from policies.runtime import percentiles  # one definition of the loop's and the runtime's statistics
from robot.clock import Clock

MAX_SAMPLES = 100_000  # per series: the newest samples are kept (about an hour at 30 Hz)


class StageTimer:
    """Durations of named stages on a clock: ``with timer.stage("policy"): ...``; ``timer.samples[name]``."""

    def __init__(self, clock: Clock, max_samples: int = MAX_SAMPLES):
        self.clock = clock
        self.samples: dict[str, deque[float]] = {}
        self._max = max_samples

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = self.clock.now()
        try:
            yield
        finally:
            self.record(name, self.clock.now() - start)

    def record(self, name: str, seconds: float) -> None:
        series = self.samples.get(name)
        if series is None:
            series = self.samples[name] = deque(maxlen=self._max)
        series.append(seconds)

    def summary(self) -> dict[str, dict[str, float]]:
        return {name: percentiles(s) for name, s in self.samples.items()}


@dataclass
class Tick:
    """What a step function gets: its index in the schedule, its deadline (when it was due), when it started, the
    loop's period, and ``stage(name)`` to time a part of it."""

    index: int  # schedule index: deadline = t0 + index * dt (skipped deadlines leave gaps)
    count: int  # ticks run before this one
    deadline: float
    start: float
    dt: float
    timer: StageTimer

    def stage(self, name: str):
        return self.timer.stage(name)


@dataclass
class LoopStats:
    rate_hz: float
    t0: float = math.nan
    ticks: int = 0  # ticks run
    overruns: int = 0  # ticks that ended after the next tick's deadline
    skipped: int = 0  # deadlines passed over after overruns (no tick ran for them)
    lateness: deque = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES))  # tick start - its deadline, s
    tick_time: deque = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES))  # tick end - tick start, s
    stages: StageTimer | None = None
    elapsed_s: float = 0.0

    @property
    def dt(self) -> float:
        return 1.0 / self.rate_hz

    @property
    def achieved_hz(self) -> float:
        return self.ticks / self.elapsed_s if self.elapsed_s > 0 else math.nan

    def summary(self) -> dict:
        """Plain numbers (seconds), for logs, JSON and ``onboard bench``."""
        return {
            "rate_hz": self.rate_hz,
            "ticks": self.ticks,
            "overruns": self.overruns,
            "skipped": self.skipped,
            "elapsed_s": self.elapsed_s,
            "achieved_hz": self.achieved_hz,
            "lateness_s": percentiles(self.lateness),
            "tick_s": percentiles(self.tick_time),
            "stages_s": self.stages.summary() if self.stages is not None else {},
        }


class ControlLoop:
    """Run a step function at ``rate_hz`` on ``clock`` (see the module doc). ``stop()`` ends ``run`` after the tick
    in progress. ``tolerance_s``: how late a tick may end and still not count as an overrun (clock resolution)."""

    def __init__(self, clock: Clock, rate_hz: float, *, tolerance_s: float = 1e-6):
        if isinstance(rate_hz, bool) or not isinstance(rate_hz, int | float) or not 0 < rate_hz < math.inf:
            raise ValueError(f"rate_hz must be a positive number of ticks per second, got {rate_hz!r}")
        if tolerance_s < 0:
            raise ValueError(f"tolerance_s must be >= 0, got {tolerance_s!r}")
        self.clock = clock
        self.rate_hz = float(rate_hz)
        self.dt = 1.0 / self.rate_hz
        self.tolerance_s = float(tolerance_s)
        self.stats = LoopStats(self.rate_hz)
        self._stop = False

    def stop(self) -> None:
        self._stop = True

    def run(
        self,
        step: Callable[[Tick], object] | Mapping[str, Callable[[Tick], object]],
        *,
        duration_s: float | None = None,
        ticks: int | None = None,
        on_tick: Callable[[Tick, LoopStats], object] | None = None,
    ) -> LoopStats:
        """Run until ``duration_s`` has passed (ticks due at ``t0 + i * dt < t0 + duration_s``), ``ticks`` ticks
        have run, or ``stop()``; at least one of the two limits, or a step that calls ``stop()``.

        ``step``: a callable ``step(tick)``, or a mapping ``{stage name: callable(tick)}`` run in order, each timed as
        a stage. ``on_tick(tick, stats)``: called after each tick (telemetry, live display), outside its timing."""
        if duration_s is not None and not duration_s >= 0:
            raise ValueError(f"duration_s must be >= 0, got {duration_s!r}")
        if ticks is not None and ticks < 0:
            raise ValueError(f"ticks must be >= 0, got {ticks!r}")
        if isinstance(step, Mapping):
            stages = dict(step)

            def step_fn(tick: Tick) -> None:
                for name, fn in stages.items():
                    with tick.stage(name):
                        fn(tick)
        else:
            step_fn = step
        clock, dt, tol = self.clock, self.dt, self.tolerance_s
        timer = StageTimer(clock)
        stats = self.stats = LoopStats(self.rate_hz, stages=timer)
        self._stop = False
        t0 = stats.t0 = clock.now()
        end_t = math.inf if duration_s is None else t0 + duration_s
        i = 0
        try:
            while not self._stop and (ticks is None or stats.ticks < ticks):
                deadline = t0 + i * dt
                if deadline >= end_t - tol:
                    break
                clock.sleep_until(deadline)
                start = clock.now()
                tick = Tick(i, stats.ticks, deadline, start, dt, timer)
                step_fn(tick)
                done = clock.now()
                stats.ticks += 1
                stats.lateness.append(start - deadline)
                stats.tick_time.append(done - start)
                i += 1
                if done > t0 + i * dt + tol:  # ran past the next deadline: skip the ones already gone
                    stats.overruns += 1
                    nxt = max(i, math.ceil((done - t0 - tol) / dt))
                    # count only deadlines inside the run: an overrun of the last tick skips none past the end
                    scheduled = math.ceil((end_t - tol - t0) / dt - 1e-9) if math.isfinite(end_t) else nxt
                    stats.skipped += max(0, min(nxt, scheduled) - i)
                    i = nxt
                if on_tick is not None:
                    on_tick(tick, stats)
        finally:
            stats.elapsed_s = clock.now() - t0
        return stats


def run_loop(
    step: Callable[[Tick], object] | Mapping[str, Callable[[Tick], object]],
    clock: Clock,
    rate_hz: float,
    *,
    duration_s: float | None = None,
    ticks: int | None = None,
    on_tick: Callable[[Tick, LoopStats], object] | None = None,
) -> LoopStats:
    """``ControlLoop(clock, rate_hz).run(step, ...)``."""
    return ControlLoop(clock, rate_hz).run(step, duration_s=duration_s, ticks=ticks, on_tick=on_tick)


@dataclass
class CameraTap:
    """Latest frames of some cameras without ever waiting for one (``read_latest`` only). A camera whose newest frame
    is older than ``max_age_s`` (or that fails) gives its last good frame, or None, and counts in ``stale``."""

    cameras: Mapping[str, Camera]
    max_age_s: float | None = None
    stale: dict[str, int] = field(default_factory=dict)
    last: dict[str, Frame] = field(default_factory=dict)

    def read(self) -> dict[str, Frame | None]:
        out: dict[str, Frame | None] = {}
        for name, cam in self.cameras.items():
            try:
                frame = cam.read_latest(self.max_age_s)
            except CameraError:
                self.stale[name] = self.stale.get(name, 0) + 1
                out[name] = self.last.get(name)
                continue
            self.last[name] = frame
            out[name] = frame
        return out
