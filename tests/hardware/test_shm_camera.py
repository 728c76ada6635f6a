"""The shared-memory camera transport (``hardware.shm_camera``): frames round-trip between processes by name with their
capture times, stale frames are refused, a missing name says how to serve it, two readers read one writer, a reader
survives its writer's restart, and a living writer's name is not taken over."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import uuid

import numpy as np
import pytest

from hardware.camera import Camera, CameraError, StaleFrameError
from hardware.shm_camera import ShmCamera, ShmFrameWriter, camera_path, served_cameras


@pytest.fixture
def name():
    n = f"test-{uuid.uuid4().hex[:8]}"
    yield n
    camera_path(n).unlink(missing_ok=True)


def image(k: int, h: int = 6, w: int = 8) -> np.ndarray:
    """Frame k: every pixel tells k, the row and the column apart."""
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[..., 0] = k % 256
    rgb[..., 1] = np.arange(h)[:, None]
    rgb[..., 2] = np.arange(w)[None, :]
    return rgb


def wait_for(cond, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def test_frames_round_trip_with_their_capture_time_and_size(name):
    with ShmFrameWriter(name, height=6, width=8, fps=30) as writer:
        cam = ShmCamera(name, name="front")
        assert isinstance(cam, Camera) and cam.name == "front"
        writer.write(image(1), 100.25)
        with cam:
            assert (cam.width, cam.height, cam.fps) == (8, 6, 30.0)
            f = cam.read_latest()
            assert np.array_equal(f.rgb, image(1)) and f.t_capture == 100.25 and f.index == 0
            for k in (2, 3, 4):  # both slots of the double buffer, then the first again
                writer.write(image(k), 100.25 + k)
                f = cam.read_latest()
                assert np.array_equal(f.rgb, image(k)) and f.t_capture == 100.25 + k and f.index == k - 1
            assert cam.read_latest() is f  # nothing new: the same frame, no copy
            assert f.rgb.flags.owndata  # a copy: the writer's next frames cannot change it
            writer.write(image(5), 105.25)
            writer.write(image(6), 106.25)
            assert np.array_equal(f.rgb, image(4)) and cam.read_latest().index == 5
        with pytest.raises(ValueError, match="expected"):
            writer.write(image(5, h=7), 1.0)


def test_a_frame_older_than_max_age_is_refused(name):
    with ShmFrameWriter(name, height=6, width=8, fps=30) as writer:
        writer.write(image(1), time.monotonic() - 0.5)  # captured half a second ago (CLOCK_MONOTONIC)
        with ShmCamera(name) as cam:
            with pytest.raises(StaleFrameError, match=r"ms old, more than max_age_s = 100\.0 ms.*is not keeping up"):
                cam.read_latest(max_age_s=0.1)
            assert cam.read_latest(max_age_s=1.0).index == 0
            writer.write(image(2), time.monotonic())
            assert cam.read_latest(max_age_s=0.1).rgb[0, 0, 0] == 2


def test_a_missing_name_says_how_to_serve_it(name):
    with pytest.raises(CameraError, match=rf"camera 'front': no shared-memory camera '{name}'.*onboard sim serve"):
        ShmCamera(name, name="front").connect()
    with pytest.raises(CameraError, match="bad shared-memory camera name"):
        ShmCamera("../etc/passwd")


def test_size_asked_must_be_what_is_served(name):
    with ShmFrameWriter(name, height=6, width=8, fps=30) as writer:
        writer.write(image(1), time.monotonic())
        with pytest.raises(CameraError, match=r"width 640 asked, but .* is served at 8x6 @ 30 fps"):
            ShmCamera(name, width=640, height=480).connect()
        with ShmCamera(name, width=8, height=6, fps=30) as cam:
            assert cam.read_latest().rgb.shape == (6, 8, 3)


def test_connect_waits_for_the_first_frame_then_gives_up(name):
    with ShmFrameWriter(name, height=6, width=8, fps=100) as writer:
        with pytest.raises(CameraError, match=r"gave no frame in 0\.2 s"):
            ShmCamera(name, connect_timeout_s=0.2).connect()
        assert name in served_cameras()
        writer.write(image(1), time.monotonic())
        with ShmCamera(name, connect_timeout_s=0.2) as cam:
            assert cam.read_latest().rgb[0, 0, 0] == 1
    assert name not in served_cameras() and not camera_path(name).exists()  # close() removes the name


WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from hardware.shm_camera import ShmFrameWriter
    name, first, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with ShmFrameWriter(name, height=48, width=64, fps=100) as w:
        print("ready", flush=True)
        for k in range(first, first + n):
            rgb = np.full((48, 64, 3), k % 256, np.uint8)
            w.write(rgb, time.monotonic())
            time.sleep(0.01)
        sys.stdin.readline()  # keep the name until told to go
    """
)


def writer_process(name: str, first: int, n: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, name, str(first), str(n)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_two_readers_in_this_process_read_a_writer_in_another_and_survive_its_restart(name):
    proc = writer_process(name, 1, 50)
    try:
        a, b = ShmCamera(name, name="a"), ShmCamera(name, name="b")
        a.connect()
        b.connect()
        seen_a, seen_b = set(), set()

        def read_both() -> bool:
            for cam, seen in ((a, seen_a), (b, seen_b)):
                f = cam.read_latest()
                assert f.rgb.shape == (48, 64, 3) and (f.rgb == f.rgb[0, 0, 0]).all()  # never a torn frame
                assert f.t_capture <= time.monotonic()  # one clock (CLOCK_MONOTONIC) in both processes
                seen.add(int(f.rgb[0, 0, 0]))
            return 50 in seen_a and 50 in seen_b

        wait_for(read_both)
        assert len(seen_a) > 5 and len(seen_b) > 5
        proc.stdin.write("\n")
        proc.stdin.flush()
        proc.wait(timeout=10)
        assert not camera_path(name).exists()
        with pytest.raises(StaleFrameError, match="has exited"):
            a.read_latest(max_age_s=0.0)
        proc = writer_process(name, 101, 50)  # the publisher restarts: a new file under the same name

        def restarted() -> bool:
            try:  # StaleFrameError until the new publisher's first frame
                return a.read_latest().rgb[0, 0, 0] >= 101 and b.read_latest().rgb[0, 0, 0] >= 101
            except StaleFrameError:
                return False

        wait_for(restarted)
        assert a.reopens == 1 and b.reopens == 1
        assert a.read_latest(max_age_s=1.0).rgb[0, 0, 0] > 100
        a.disconnect()
        b.disconnect()
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)


def test_a_living_writer_keeps_its_name_and_a_dead_ones_is_taken_over(name):
    proc = writer_process(name, 1, 1)
    try:
        with pytest.raises(CameraError, match=rf"already served by process {proc.pid}.*--cameras.prefix"):
            ShmFrameWriter(name, height=6, width=8, fps=30).open()
    finally:
        proc.kill()  # no clean-up: the file stays behind
        proc.wait(timeout=10)
    assert camera_path(name).exists() and name not in served_cameras()
    with pytest.raises(CameraError, match=rf"the process that served '{name}' \(pid {proc.pid}\) has exited"):
        ShmCamera(name).connect()
    with ShmFrameWriter(name, height=6, width=8, fps=30) as writer:
        writer.write(image(7), time.monotonic())
        with ShmCamera(name) as cam:
            assert cam.read_latest().rgb[0, 0, 0] == 7 and cam.width == 8
