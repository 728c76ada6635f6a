"""robot.loop: absolute-deadline scheduling, overruns, skips and jitter, exact on the sim clock (MuJoCo world time,
2 ms physics steps); the same code on the wall clock."""

from __future__ import annotations

import numpy as np
import pytest

from hardware.camera import Frame, StaleFrameError
from robot.clock import WallClock
from robot.loop import CameraTap, ControlLoop, percentiles, run_loop
from sim.twin.physics import SimClock, World

EXACT = 1e-9


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=0)


@pytest.fixture
def clock(world: World) -> SimClock:
    return SimClock(world)


def test_ticks_start_exactly_on_their_deadlines(clock: SimClock):
    starts = []
    stats = run_loop(lambda tick: starts.append((tick.index, tick.deadline, tick.start)), clock, 50, duration_s=1.0)
    t0 = stats.t0
    assert stats.ticks == 50 and stats.overruns == 0 and stats.skipped == 0
    for i, (index, deadline, start) in enumerate(starts):
        assert index == i
        assert deadline == pytest.approx(t0 + i * 0.02, abs=EXACT)
        assert start == pytest.approx(deadline, abs=EXACT)
    s = stats.summary()
    assert s["lateness_s"]["max"] < EXACT and s["lateness_s"]["p99"] < EXACT and s["lateness_s"]["n"] == 50
    assert stats.elapsed_s == pytest.approx(0.98, abs=EXACT)  # the last tick starts at t0 + 0.98


def test_a_50ms_stall_is_an_overrun_and_the_loop_returns_to_its_schedule(clock: SimClock):
    starts: dict[int, float] = {}

    def step(tick):
        starts[tick.index] = tick.start
        if tick.index == 10:
            clock.sleep(0.05)  # the policy hangs for 50 ms, once

    stats = run_loop(step, clock, 50, duration_s=1.0)
    t0 = stats.t0
    # tick 10 starts at 0.20 and ends at 0.25: deadlines 0.22 and 0.24 are gone; the next tick runs at 0.26
    assert stats.overruns == 1 and stats.skipped == 2
    assert stats.ticks == 50 - 2
    assert sorted(starts) == [i for i in range(50) if i not in (11, 12)]
    for i, start in starts.items():  # no drift and no catch-up burst: every start is on its deadline
        assert start == pytest.approx(t0 + i * 0.02, abs=EXACT)
    assert max(stats.lateness) < EXACT
    assert max(stats.tick_time) == pytest.approx(0.05, abs=EXACT)


def test_a_stall_in_the_last_tick_skips_no_deadline_past_the_end(clock: SimClock):
    def step(tick):
        if tick.index == 48:
            clock.sleep(0.1)  # ends at 1.06 s: deadline 0.98 is the only one left inside the 1 s run

    stats = run_loop(step, clock, 50, duration_s=1.0)
    assert stats.overruns == 1 and stats.skipped == 1
    assert stats.ticks + stats.skipped == 50  # every deadline of the run is either a tick or a skip, none beyond


def test_a_tick_that_ends_on_the_next_deadline_is_not_an_overrun(clock: SimClock):
    stats = run_loop(lambda tick: clock.sleep(0.02), clock, 50, ticks=10)
    assert stats.ticks == 10 and stats.overruns == 0 and stats.skipped == 0
    assert max(stats.lateness) < EXACT


def test_stages_are_timed_on_the_clock(clock: SimClock):
    order = []

    def stage(name: str, seconds: float):
        def fn(tick):
            order.append(name)
            clock.sleep(seconds)

        return fn

    loop = ControlLoop(clock, 25)
    stats = loop.run(
        {"bus_read": stage("bus_read", 0.002), "policy": stage("policy", 0.010), "bus_write": stage("bus_write", 0)},
        ticks=20,
    )
    assert order[:3] == ["bus_read", "policy", "bus_write"] and stats.ticks == 20
    stages = stats.summary()["stages_s"]
    assert stages["bus_read"]["p50"] == pytest.approx(0.002, abs=EXACT)
    assert stages["policy"]["max"] == pytest.approx(0.010, abs=EXACT)
    assert stages["bus_write"]["max"] < EXACT
    assert stats.summary()["tick_s"]["p99"] == pytest.approx(0.012, abs=EXACT)


def test_stop_on_tick_and_validation(clock: SimClock):
    loop = ControlLoop(clock, 100)
    seen = []

    def on_tick(tick, stats):
        seen.append(stats.ticks)
        if tick.count == 4:
            loop.stop()

    stats = loop.run(lambda tick: None, on_tick=on_tick)
    assert stats.ticks == 5 and seen == [1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match="rate_hz"):
        ControlLoop(clock, 0)
    with pytest.raises(ValueError, match="duration_s"):
        loop.run(lambda tick: None, duration_s=-1)


def test_an_exception_in_a_step_ends_the_loop_with_its_stats(clock: SimClock):
    loop = ControlLoop(clock, 50)

    def step(tick):
        if tick.count == 3:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        loop.run(step, ticks=10)
    assert loop.stats.ticks == 3 and loop.stats.elapsed_s == pytest.approx(0.06, abs=EXACT)


def test_same_code_on_the_wall_clock():
    # behaviour only, never speed: the loop runs its ticks in order on deadlines that do not drift
    stats = run_loop(lambda tick: None, WallClock(), 500, ticks=10)
    assert stats.ticks + stats.skipped >= 10 and stats.ticks == 10
    assert np.all(np.asarray(stats.lateness) >= -1e-6)


def test_percentiles_of_nothing_are_nan():
    p = percentiles([])
    assert p["n"] == 0 and np.isnan(p["p50"])


class _Cam:
    """A camera with a fixed latest frame that may be stale (the Camera protocol)."""

    name, height, width, fps = "front", 2, 2, 30.0

    def __init__(self):
        self.frame = Frame(np.zeros((2, 2, 3), np.uint8), 0.0, 0)
        self.stale = False

    def connect(self) -> None: ...

    def disconnect(self) -> None: ...

    def read_latest(self, max_age_s=None) -> Frame:
        if self.stale:
            raise StaleFrameError("old")
        return self.frame


def test_camera_tap_never_waits_and_counts_stale_frames():
    cam = _Cam()
    tap = CameraTap({"front": cam}, max_age_s=0.1)
    assert tap.read()["front"] is cam.frame
    cam.stale = True
    assert tap.read()["front"] is cam.frame  # the last good frame
    assert tap.stale == {"front": 1}
