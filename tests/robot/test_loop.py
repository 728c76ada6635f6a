"""robot.loop: absolute-deadline scheduling, overruns, skips and jitter, exact on the sim clock (MuJoCo world time,
2 ms physics steps); the same code on the wall clock."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from hardware.camera import Frame, StaleFrameError
from robot.clock import WallClock
from robot.loop import CameraTap, ControlLoop, Tick, percentiles, run_loop
from sim.twin.physics import SimClock, World
from tests.conftest import require

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


class _ShutterDevice:
    """A ``cv2.VideoCapture`` stand-in under the real OpenCV driver: ``read()`` blocks, as a device's read does when
    the camera stalls, until the test opens the shutter for one frame (or closes the device)."""

    def __init__(self, cv2):
        self.props = {cv2.CAP_PROP_FRAME_WIDTH: 4.0, cv2.CAP_PROP_FRAME_HEIGHT: 2.0, cv2.CAP_PROP_FPS: 30.0}
        self.shutter = threading.Semaphore(0)
        self.in_read = threading.Event()  # the capture thread is inside read(), waiting on the device
        self.closed = threading.Event()
        self.shots = 0

    def isOpened(self) -> bool:
        return True

    def set(self, prop, value) -> bool:
        return True

    def get(self, prop) -> float:
        return self.props.get(prop, 0.0)

    def read(self):
        self.in_read.set()
        try:
            while not self.shutter.acquire(timeout=0.01):
                if self.closed.is_set():
                    return False, None
            self.shots += 1
            return True, np.full((2, 4, 3), self.shots, np.uint8)
        finally:
            self.in_read.clear()

    def release(self) -> None: ...


def _wait_until(condition, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"no {what} in {timeout_s:.0f} s"
        time.sleep(0.001)


def test_the_loop_keeps_its_deadlines_while_a_camera_is_blocked(clock: SimClock):
    """README's "the loop never waits on a camera", with the real OpenCV driver (its capture thread) on a device
    whose read blocks for 30 of 50 ticks. On the sim clock every tick still starts on its deadline; meanwhile the tap
    hands over the last frame, counted stale once older than max_age_s; when the device delivers again, so does the
    tap."""
    cv2 = require("cv2", "camera")
    from hardware.opencv_camera import OpenCVCamera, OpenCVCameraConfig

    device = _ShutterDevice(cv2)
    cam = OpenCVCamera(
        OpenCVCameraConfig(0, fourcc=None), name="front", clock=clock.now, capture_factory=lambda src, api: device
    )
    device.shutter.release()  # the first frame, which connect() waits for
    cam.connect()
    tap = CameraTap({"front": cam}, max_age_s=0.11)
    blocked = range(10, 40)
    delivered = [1]  # frames the device has given
    seen: list[tuple[Tick, Frame, int]] = []

    def step(tick) -> None:
        if tick.index in blocked:
            _wait_until(device.in_read.is_set, "capture thread waiting in read()")
            assert device.in_read.is_set()  # the camera is stuck in its driver for this whole tick
        else:  # one frame per tick, handed over before the tap reads (the test waits for the capture thread)
            device.shutter.release()
            delivered[0] += 1
            _wait_until(lambda: cam.stats()["frames"] == delivered[0], "frame from the capture thread")
        seen.append((tick, tap.read()["front"], sum(tap.stale.values())))

    result: dict = {}

    def loop() -> None:
        try:
            result["stats"] = run_loop(step, clock, 50, duration_s=1.0)
        except BaseException as exc:
            result["error"] = exc

    worker = threading.Thread(target=loop, daemon=True)
    worker.start()
    worker.join(120)
    waited = worker.is_alive()
    device.closed.set()  # frees the capture thread (and a loop that waited on it)
    worker.join(10)
    cam.disconnect()
    assert not waited, "the control loop waited on the blocked camera"
    assert "error" not in result, result.get("error")
    stats = result["stats"]
    assert stats.ticks == 50 and stats.overruns == 0 and stats.skipped == 0
    assert max(stats.lateness) < EXACT
    for i, (tick, _frame, _stale) in enumerate(seen):
        assert tick.index == i and tick.start == pytest.approx(stats.t0 + i * 0.02, abs=EXACT)
    last_good = seen[9][1]
    for tick, frame, stale in seen:
        if tick.index in blocked:
            assert frame is last_good  # the newest frame there is, never a wait for the next one
            age = tick.start - last_good.t_capture
            assert stale == max(0, tick.index - 14) and (age > 0.11) == (tick.index >= 15)
        else:
            assert frame.t_capture == tick.start and frame.rgb[0, 0, 0] == frame.index + 1  # this tick's frame
            assert stale == (0 if tick.index < 10 else 25)
    assert tap.stale == {"front": 25} and device.shots == 1 + 20
