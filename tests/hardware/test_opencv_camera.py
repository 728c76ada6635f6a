"""The OpenCV camera driver against real OpenCV reading a synthetic video file (frames encode their index), and
against an injected capture for the device-only paths (settings verification, unplug and re-plug)."""

from __future__ import annotations

import threading
import time
from typing import ClassVar

import numpy as np
import pytest

from hardware.camera import Camera, CameraError, StaleFrameError
from hardware.opencv_camera import OpenCVCamera, OpenCVCameraConfig
from tests.conftest import require

cv2 = require("cv2", "camera")  # skipped without OpenCV; a failure in CI (ONBOARD_REQUIRE_INTEROP=1)

W, H, N, FPS = 32, 24, 12, 50.0
TIMEOUT = 15.0  # generous: a loaded 2-core CI machine


def _level(i: int) -> int:
    return 10 + 7 * i


def _decode(rgb: np.ndarray) -> int:
    """The index written into the frame's left half (gray level 10 + 7*i)."""
    return round((float(rgb[:, : rgb.shape[1] // 2].mean()) - 10) / 7)


@pytest.fixture
def video(tmp_path):
    path = tmp_path / "cam.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (W, H))
    assert writer.isOpened()
    for i in range(N):
        bgr = np.zeros((H, W, 3), np.uint8)
        bgr[:, : W // 2] = _level(i)
        bgr[:, W // 2 :] = (255, 0, 0)  # pure blue in BGR
        writer.write(bgr)
    writer.release()
    return path


class FakeClock:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.t

    def advance(self, dt: float) -> None:
        with self._lock:
            self.t += dt


def _wait_for(cond, timeout: float = TIMEOUT, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def _camera_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("camera-")]


def test_frames_arrive_rgb_with_increasing_indices_and_clock_stamps(video):
    ticks = iter(range(1_000_000))
    lock = threading.Lock()

    def counting_clock() -> float:
        with lock:
            return float(next(ticks))

    cam = OpenCVCamera(OpenCVCameraConfig(video, width=W, height=H), name="front", clock=counting_clock)
    assert isinstance(cam, Camera)
    with cam:
        assert (cam.width, cam.height, cam.fps) == (W, H, FPS)
        seen = []
        deadline = time.monotonic() + TIMEOUT
        while len(seen) < 5 and time.monotonic() < deadline:
            f = cam.read_latest()
            if not seen or f.index != seen[-1].index:
                seen.append(f)
            time.sleep(0.002)
        assert len(seen) >= 5
    for f in seen:
        assert f.rgb.dtype == np.uint8 and f.rgb.shape == (H, W, 3)
        right = f.rgb[:, W // 2 + 2 :].reshape(-1, 3).mean(axis=0)
        assert right[2] > 200 and right[0] < 50  # blue in BGR came out as blue in RGB
        assert _decode(f.rgb) == f.index % N  # the frame's content is the frame it claims to be
    assert [f.index for f in seen] == sorted({f.index for f in seen})
    stamps = [f.t_capture for f in seen]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert all(float(s).is_integer() for s in stamps)  # stamped on the injected clock
    assert not _camera_threads()


def test_file_loops_and_stops_at_end(video):
    with OpenCVCamera(OpenCVCameraConfig(video, fps=200.0)) as cam:
        _wait_for(lambda: cam.read_latest().index >= N + 2, what="the file to loop")
        f = cam.read_latest()
        assert _decode(f.rgb) == f.index % N  # the second pass starts again at the file's first frame
        assert cam.stats()["reconnects"] == 0  # looping is not a re-connect
    clock = FakeClock()
    with OpenCVCamera(OpenCVCameraConfig(video, fps=200.0, loop=False), clock=clock) as cam:
        _wait_for(lambda: cam.stats()["ended"], what="the end of the file")
        last = cam.read_latest()
        assert last.index == N - 1 and _decode(last.rgb) == N - 1
        clock.advance(1.0)
        with pytest.raises(StaleFrameError, match="ended"):
            cam.read_latest(max_age_s=0.5)


def test_stale_frame_refused_on_the_injected_clock(video):
    clock = FakeClock()
    with OpenCVCamera(OpenCVCameraConfig(video, loop=False, fps=200.0), clock=clock) as cam:
        _wait_for(lambda: cam.stats()["ended"], what="the end of the file")
        frame = cam.read_latest(max_age_s=0.1)  # age 0 on the frozen clock
        clock.advance(0.25)
        assert cam.read_latest(max_age_s=0.3) is frame
        with pytest.raises(StaleFrameError, match="250 ms old"):
            cam.read_latest(max_age_s=0.2)
        assert cam.read_latest() is frame  # no limit: any age


def test_rotation(video):
    with OpenCVCamera(OpenCVCameraConfig(video, width=W, height=H, rotation=90)) as cam:
        assert (cam.width, cam.height) == (H, W)
        f = cam.read_latest()
        assert f.rgb.shape == (W, H, 3)
        bottom = f.rgb[W // 2 + 2 :].reshape(-1, 3).mean(axis=0)  # the right half turned clockwise is the bottom
        assert bottom[2] > 200


def test_missing_path_and_device_raise_helpful_errors(tmp_path):
    cam = OpenCVCamera(OpenCVCameraConfig(tmp_path / "nope.avi"), name="wrist")
    with pytest.raises(CameraError, match=r"'wrist'.*does not exist"):
        cam.connect()
    assert not _camera_threads()

    class Closed:
        def isOpened(self):
            return False

        def release(self):
            pass

    cam = OpenCVCamera(OpenCVCameraConfig(7), name="front", capture_factory=lambda src, api: Closed())
    with pytest.raises(CameraError) as e:
        cam.connect()
    msg = str(e.value)
    for hint in ("index 7", "onboard find cameras", "video", "other program"):
        assert hint in msg
    with pytest.raises(CameraError, match="not connected"):
        cam.read_latest()


def test_size_mismatch_raises_listing_what_it_gave(video):
    cam = OpenCVCamera(OpenCVCameraConfig(video, width=64, height=48))
    with pytest.raises(CameraError, match=r"does not give size 64x48: it gave 32x24"):
        cam.connect()
    assert not _camera_threads()


class FakeDevice:
    """A cv2.VideoCapture-like device: negotiates modes from a list, counts frames, can be unplugged."""

    modes: ClassVar[set[tuple[int, int]]] = {(640, 480), (1280, 720)}

    def __init__(self, world: dict) -> None:
        self.world = world
        self.props = {cv2.CAP_PROP_FRAME_WIDTH: 640, cv2.CAP_PROP_FRAME_HEIGHT: 480, cv2.CAP_PROP_FPS: 30.0}
        self.props[cv2.CAP_PROP_FOURCC] = cv2.VideoWriter_fourcc(*"YUYV")
        self.opened = world["plugged"]
        world["opens"] += 1

    def isOpened(self):
        return self.opened

    def set(self, prop, value):
        if prop == cv2.CAP_PROP_FRAME_WIDTH:
            if (int(value), 720 if value == 1280 else 480) in self.modes:
                self.props[prop] = value
                self.props[cv2.CAP_PROP_FRAME_HEIGHT] = 720 if value == 1280 else 480
            return True
        if prop in (cv2.CAP_PROP_FRAME_HEIGHT,):
            return True
        if prop == cv2.CAP_PROP_FPS and value <= 30:
            self.props[prop] = value
        if prop == cv2.CAP_PROP_FOURCC:
            self.props[prop] = value
        return True

    def get(self, prop):
        return float(self.props.get(prop, 0.0))

    def read(self):
        time.sleep(0.002)
        if not (self.opened and self.world["plugged"]):
            return False, None
        w, h = int(self.props[cv2.CAP_PROP_FRAME_WIDTH]), int(self.props[cv2.CAP_PROP_FRAME_HEIGHT])
        return True, np.full((h, w, 3), 50, np.uint8)

    def release(self):
        self.opened = False
        self.world["releases"] += 1


def _device_camera(world, **cfg):
    return OpenCVCamera(
        OpenCVCameraConfig(0, reconnect_backoff_s=(0.01, 0.05), **cfg),
        capture_factory=lambda src, api: FakeDevice(world),
    )


def test_device_settings_are_applied_and_verified():
    world = {"plugged": True, "opens": 0, "releases": 0}
    with _device_camera(world, width=1280, height=720, fps=30) as cam:
        assert (cam.width, cam.height, cam.fps) == (1280, 720, 30.0)
        assert cam.read_latest().rgb.shape == (720, 1280, 3)
    assert world["opens"] == world["releases"] == 1
    cam = _device_camera(world, width=800, height=600, fps=60)
    with pytest.raises(CameraError) as e:
        cam.connect()
    assert "size 800x600, 60 fps: it gave 640x480 at 30 fps, fourcc MJPG" in str(e.value)
    assert world["opens"] == world["releases"] == 2


def test_unplugged_device_goes_stale_then_reconnects():
    world = {"plugged": True, "opens": 0, "releases": 0}
    with _device_camera(world) as cam:
        _wait_for(lambda: cam.read_latest().index >= 3, what="frames")
        world["plugged"] = False
        _wait_for(lambda: cam.stats()["consecutive_failures"] >= 3 and world["opens"] >= 3, what="re-open attempts")
        last = cam.read_latest()
        time.sleep(0.05)
        with pytest.raises(StaleFrameError, match="unplugged"):
            cam.read_latest(max_age_s=0.04)
        assert cam.read_latest().index == last.index  # nothing new while unplugged
        world["plugged"] = True
        _wait_for(lambda: cam.read_latest().index > last.index, what="frames after re-plugging")
        assert cam.read_latest(max_age_s=5.0).index > last.index
        assert cam.stats()["reconnects"] >= 1 and cam.stats()["consecutive_failures"] == 0
    assert not _camera_threads()
    assert world["releases"] == world["opens"]  # every capture opened was released


def test_file_that_disappears_and_reappears_reconnects(video, tmp_path):
    away = tmp_path / "away.avi"
    cam = OpenCVCamera(OpenCVCameraConfig(video, fps=200.0, reconnect_backoff_s=(0.01, 0.05)))
    with cam:
        video.rename(away)  # "unplugged": the next loop cannot re-open it
        _wait_for(lambda: cam.stats()["last_error"] is not None, what="a failed re-open")
        stuck = cam.read_latest().index
        time.sleep(0.1)
        assert cam.read_latest().index == stuck
        away.rename(video)
        _wait_for(lambda: cam.read_latest().index > stuck, what="frames after the file came back")
        assert cam.stats()["reconnects"] >= 1
    assert not _camera_threads()


def test_disconnect_joins_thread_and_is_idempotent(video):
    cam = OpenCVCamera(OpenCVCameraConfig(video))
    cam.connect()
    assert len(_camera_threads()) == 1 and cam.is_connected
    with pytest.raises(CameraError, match="already connected"):
        cam.connect()
    cam.disconnect()
    cam.disconnect()
    assert not _camera_threads() and not cam.is_connected
    cam.connect()  # connect again after disconnect
    assert cam.read_latest().rgb.shape == (H, W, 3)
    cam.disconnect()
    assert not _camera_threads()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"index_or_path": -1}, "index"),
        ({"index_or_path": ""}, "empty"),
        ({"index_or_path": 0, "width": 640}, "both width and height"),
        ({"index_or_path": 0, "fps": 0}, "fps"),
        ({"index_or_path": 0, "fourcc": "MJPEG"}, "fourcc"),
        ({"index_or_path": 0, "rotation": 45}, "rotation"),
        ({"index_or_path": 0, "backend": "directshow"}, "backend"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        OpenCVCameraConfig(**kwargs)


def test_config_normalises():
    assert OpenCVCameraConfig("2").index_or_path == 2
    assert OpenCVCameraConfig(0, rotation=-90).rotation == 270
    assert not OpenCVCameraConfig("/dev/video0").is_file and OpenCVCameraConfig("/dev/video0").is_device
    assert not OpenCVCameraConfig("rtsp://cam/stream").is_device
    assert not OpenCVCameraConfig("rtsp://cam/stream").is_file
    assert OpenCVCameraConfig("clip.mp4").is_file


def test_constructor_touches_no_device():
    opened = []
    OpenCVCamera(OpenCVCameraConfig(0), capture_factory=lambda src, api: opened.append(src))
    assert opened == []


def test_size_taken_from_frames_when_the_backend_cannot_tell():
    world = {"plugged": True, "opens": 0, "releases": 0}

    def factory(src, api):
        d = FakeDevice(world)
        d.get = lambda prop: 0.0  # e.g. a stream that reports nothing before its first frame
        return d

    cam = OpenCVCamera(OpenCVCameraConfig(0, fourcc=None), capture_factory=factory)
    with cam:
        assert cam.read_latest().rgb.shape == (480, 640, 3) and (cam.width, cam.height) == (640, 480)
