"""Rendered cameras on the twin's world (``sim.twin.cameras``): frames on the sim clock, staleness, the arm seen
moving."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported (tests/conftest.py does the same)

import numpy as np
import pytest

from tests.conftest import require

require("mujoco", "sim")  # skipped without MuJoCo; a failure in CI (ONBOARD_REQUIRE_INTEROP=1)

from hardware.camera import Camera, CameraError, StaleFrameError  # noqa: E402
from sim.twin.cameras import RenderedCamera  # noqa: E402
from sim.twin.physics import SimClock, World  # noqa: E402
from sim.twin.so101 import SimulatedSO101  # noqa: E402
from tests.sim.twin.test_twin import connect, hold_and_enable  # noqa: E402


# --- (e) rendered cameras ---------------------------------------------------------------------------------------------
def test_rendered_camera_frames_follow_the_sim_clock():
    world = World()
    clock = SimClock(world)
    cam = RenderedCamera(world, "front", height=96, width=96, fps=30.0)
    assert isinstance(cam, Camera) and cam.name == "front"
    with pytest.raises(CameraError, match="not connected"):
        cam.read_latest()
    with cam:
        frames = {}
        for k in range(1, 201):  # 1 s, read every 5 ms
            clock.sleep_until(k * 0.005)
            f = cam.read_latest()
            frames[f.index] = f
            assert clock.now() - f.t_capture < 1 / 30 + 1e-9
        assert len(frames) == 31  # frames 0..30 (30 fps over 1 s, plus the one at connect)
        assert cam.frames_rendered == 31
        for index, f in frames.items():
            assert f.rgb.shape == (96, 96, 3) and f.rgb.dtype == np.uint8
            # rendered at the first read after it was due (reads every 5 ms, on the 2 ms step nearest each read)
            # (a frame counts as due from half a physics step before its due time)
            half = world.timestep / 2
            assert index / 30 - half - 1e-9 <= f.t_capture <= index / 30 + 0.005 + half + 1e-9
        assert frames[5].rgb.std() > 10  # a picture, not a blank
        # between due times the same frame comes back, and it ages
        clock.sleep_until(1.01)
        f1 = cam.read_latest(max_age_s=0.05)
        clock.sleep_until(1.06)  # next frame due at 31/30 = 1.0333: rendered on this read
        assert cam.read_latest(max_age_s=0.0).index == f1.index + 1
        clock.sleep_until(1.064)  # frame 32 is due at 1.0667: the one rendered at 1.06 is 4 ms old
        with pytest.raises(StaleFrameError, match=r"4\.0 ms old"):
            cam.read_latest(max_age_s=0.002)
        assert cam.read_latest(max_age_s=0.01).index == f1.index + 1
    assert not cam.is_connected


def test_a_30_hz_loop_gets_a_new_frame_of_a_30_fps_camera_every_tick():
    """The loop's ticks land on the 2 ms physics step nearest each deadline k/30 s, one in three of them a step early
    (k/30 is 0.0333.. then 0.0666..: the world stops at 0.034 then 0.066); each must still get frame k, so that a 30
    fps simulated recording holds 30 distinct images per second (it held ~20)."""
    from robot.loop import ControlLoop

    world = World()
    clock = SimClock(world)
    clock.sleep(0.5)  # the loop starts between due times, as a recording's episode does
    cam = RenderedCamera(world, "front", height=32, width=32, fps=30.0)
    with cam:
        seen = []
        early = []
        loop = ControlLoop(clock, 30.0)

        def tick(t) -> None:
            seen.append(cam.read_latest().index)
            early.append(clock.now() < t.deadline - 1e-9)

        loop.run(tick, ticks=90)
    assert sum(early) >= 25  # the case the bug was in: ticks a step before their deadline
    assert seen == list(range(seen[0], seen[0] + 90))  # a new frame on every one of the 90 ticks
    assert cam.frames_rendered == 90


def test_cameras_see_the_arm_move():
    with SimulatedSO101(seed=0) as arm:
        bus = connect(arm)
        hold_and_enable(arm, bus)
        front = RenderedCamera(arm.world, "front", height=64, width=80, fps=10.0)
        wrist = RenderedCamera(arm.world, "wrist", name="wrist_cam", height=48, width=64, fps=15.0)
        with front, wrist:
            before = front.read_latest().rgb
            assert wrist.read_latest().rgb.shape == (48, 64, 3) and wrist.name == "wrist_cam"
            bus.write(1, "Goal_Position", arm.reading_at("shoulder_pan", 0.8))
            arm.clock.sleep(1.0)
            after = front.read_latest(max_age_s=0.1)
            assert wrist.read_latest(max_age_s=0.1).index == 15
        assert after.rgb.shape == (64, 80, 3) and after.index == 10
        changed = np.abs(after.rgb.astype(int) - before.astype(int)).max(axis=2) > 30
        assert 0.01 < changed.mean() < 0.5  # the arm swung across part of the picture


def test_unknown_camera_is_refused():
    with pytest.raises(ValueError, match="cameras"):
        RenderedCamera(World("so101"), "top")
