"""The twin's cameras published in real time (``sim.transport.camera_server``): a reader by name gets what the world's
camera sees now (the same pixels an in-process ``RenderedCamera`` renders of that state), new frames as time goes,
the names go when the server stops, and a name in use is refused."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported

import time
import uuid

import numpy as np
import pytest

from tests.conftest import require

require("mujoco", "sim")

from hardware.camera import CameraError  # noqa: E402
from hardware.shm_camera import ShmCamera, camera_path, served_cameras  # noqa: E402
from sim.transport.camera_server import CameraServer  # noqa: E402
from sim.twin.cameras import RenderedCamera  # noqa: E402
from sim.twin.physics import World  # noqa: E402


def wait_for(cond, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def test_published_frames_are_the_worlds_cameras_now():
    world = World()
    prefix = f"t{uuid.uuid4().hex[:6]}"
    names = {f"{prefix}.front": "front", f"{prefix}.wrist": "wrist"}
    with CameraServer(world, names, height=48, width=64, fps=30.0) as server:
        assert set(names) <= set(served_cameras())
        with ShmCamera(f"{prefix}.front", name="front") as front, ShmCamera(f"{prefix}.wrist") as wrist:
            assert (front.width, front.height, front.fps) == (64, 48, 30.0)
            f0 = front.read_latest(max_age_s=5.0)
            assert f0.t_capture <= time.monotonic()  # stamped on CLOCK_MONOTONIC, as WallClock reads it
            with RenderedCamera(world, "front", height=48, width=64) as ref_front:
                assert np.array_equal(f0.rgb, ref_front.read_latest().rgb)  # the same picture of the same state
            w0 = wrist.read_latest(max_age_s=5.0).rgb
            assert not np.array_equal(w0, f0.rgb) and w0.std() > 5
            # move the arm: the next frames show it
            with world.lock:
                world.data.qpos[world.model.joint("shoulder_pan").qposadr[0]] = 0.8
            wait_for(lambda: not np.array_equal(front.read_latest().rgb, f0.rgb))
            f1 = front.read_latest()
            assert f1.index > f0.index and f1.t_capture > f0.t_capture
            with RenderedCamera(world, "front", height=48, width=64) as ref_front:
                assert np.array_equal(f1.rgb, ref_front.read_latest().rgb)
        assert server.frames >= 2
    assert not any(camera_path(n).exists() for n in names)  # stop() removes the names


def test_a_name_in_use_is_refused_and_the_first_server_keeps_it():
    world = World("so101")
    name = f"t{uuid.uuid4().hex[:6]}.cam"
    cams = [world.model.camera(i).name for i in range(world.model.ncam)]
    with CameraServer(world, {name: cams[0]}, height=16, width=16) as first:
        second = CameraServer(world, {name: cams[0]}, height=16, width=16)
        with pytest.raises(CameraError, match=r"already served by process \d+"):
            second.start()
        with ShmCamera(name) as cam:
            assert cam.pid == os.getpid() and cam.read_latest(max_age_s=5.0).rgb.shape == (16, 16, 3)
        assert first.frames >= 1
    with pytest.raises(ValueError, match="no camera 'top'"):
        CameraServer(world, {name: "top"})
