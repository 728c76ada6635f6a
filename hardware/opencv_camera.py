"""An OpenCV camera (DESIGN.md, seam 2): a capture thread keeps the newest frame with its capture time; the control
loop takes it with ``read_latest(max_age_s)``, which never waits on the device.

- ``connect()`` opens ``cv2.VideoCapture`` (which never raises on a missing device: ``isOpened()`` is checked), applies
  and verifies size / fps / FOURCC, starts the capture thread and waits for the first frame.
- The thread converts BGR to RGB, rotates, stamps each frame on the given clock and counts frames. When reads fail (a
  camera unplugged) it re-opens the same index or path with backoff until ``disconnect()``; meanwhile
  ``read_latest(max_age_s)`` refuses the old frame with ``StaleFrameError``.
- A video file (a path) is read like a live camera: paced at the file's fps (or the configured one), looping at the end
  or stopping there (``loop``). This is what the tests use.

OpenCV is an optional dependency, imported on ``connect()``.
"""

from __future__ import annotations

import glob
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hardware.camera import CameraError, Frame, StaleFrameError

__all__ = ["OpenCVCamera", "OpenCVCameraConfig", "find_cameras"]

ROTATIONS = (0, 90, 180, 270)  # degrees, clockwise
BACKENDS = ("any", "v4l2", "ffmpeg", "gstreamer", "dshow", "msmf", "avfoundation")
_FAILURES_BEFORE_REOPEN = 3  # consecutive failed reads of a device before it is re-opened
_FPS_TOLERANCE = 1.0

CaptureFactory = Callable[[int | str, int], Any]  # (index_or_path, cv2 backend id) -> a cv2.VideoCapture-like object


def _cv2():
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise CameraError(
            "OpenCV is needed for cameras: pip install 'onboard[camera]' (opencv-python-headless<4.13; "
            "only one OpenCV distribution per environment)"
        ) from exc
    return cv2


def _backend_id(cv2, backend: str | int) -> int:
    if isinstance(backend, int):
        return backend
    return {
        "any": cv2.CAP_ANY,
        "v4l2": cv2.CAP_V4L2,
        "ffmpeg": cv2.CAP_FFMPEG,
        "gstreamer": cv2.CAP_GSTREAMER,
        "dshow": cv2.CAP_DSHOW,
        "msmf": cv2.CAP_MSMF,
        "avfoundation": cv2.CAP_AVFOUNDATION,
    }[backend]


def _fourcc_str(code: float) -> str:
    n = int(code)
    if n <= 0:
        return "?"
    text = "".join(chr((n >> (8 * i)) & 0xFF) for i in range(4))
    return text if text.isprintable() else f"0x{n:08x}"


@dataclass(frozen=True)
class OpenCVCameraConfig:
    """One OpenCV camera. ``index_or_path``: a device index (0), a device path (/dev/video0, /dev/v4l/by-id/...),
    a video file (read like a live camera) or a stream URL. ``width``/``height``/``fps``: what to ask the device for
    and verify (None: whatever it gives); for a file, ``fps`` sets the pace. ``fourcc``: pixel format asked of a device
    (MJPG lets USB 2.0 carry more cameras; None leaves the device's own), ignored for files. ``rotation``: degrees
    clockwise, applied after capture (so ``width``/``height`` are the sensor's). ``warmup_s``: how long ``connect()``
    keeps the camera running before returning (auto exposure settles). ``connect_timeout_s``: how long it waits for the
    first frame. ``backend``: OpenCV's capture API by name or ``cv2.CAP_*`` id. ``loop``: at the end of a file, start
    again (True) or stop, leaving the last frame to go stale (False)."""

    index_or_path: int | str | Path
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    fourcc: str | None = "MJPG"
    rotation: int = 0
    warmup_s: float = 0.0
    connect_timeout_s: float = 10.0
    backend: str | int = "any"
    loop: bool = True
    reconnect_backoff_s: tuple[float, float] = (0.1, 2.0)  # first and longest wait between re-open attempts

    def __post_init__(self) -> None:
        src = self.index_or_path
        if isinstance(src, bool) or not isinstance(src, int | str | Path):
            raise ValueError(f"index_or_path must be a device index, a device or file path, or a URL; got {src!r}")
        if isinstance(src, str) and src.strip().isdigit():
            object.__setattr__(self, "index_or_path", int(src.strip()))
        elif isinstance(src, Path):
            object.__setattr__(self, "index_or_path", str(src))
        if isinstance(self.index_or_path, int) and self.index_or_path < 0:
            raise ValueError(f"camera index must be >= 0, got {self.index_or_path} (see `onboard find cameras`)")
        if isinstance(self.index_or_path, str) and not self.index_or_path:
            raise ValueError("index_or_path is empty: give a device index, a device path or a video file")
        for name in ("width", "height"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v <= 0):
                raise ValueError(f"{name} must be a positive integer or None, got {v!r}")
        if (self.width is None) != (self.height is None):
            raise ValueError("give both width and height, or neither (the device's default size)")
        if self.fps is not None and not self.fps > 0:
            raise ValueError(f"fps must be positive or None, got {self.fps!r}")
        if self.fourcc is not None and (len(self.fourcc) != 4 or not self.fourcc.isascii()):
            raise ValueError(f"fourcc must be 4 ASCII characters such as 'MJPG' or 'YUYV', got {self.fourcc!r}")
        rot = self.rotation % 360 if isinstance(self.rotation, int) and not isinstance(self.rotation, bool) else None
        if rot not in ROTATIONS:
            raise ValueError(f"rotation must be one of {ROTATIONS} (or -90), got {self.rotation!r}")
        object.__setattr__(self, "rotation", rot)
        if self.warmup_s < 0 or self.connect_timeout_s <= 0:
            raise ValueError("warmup_s must be >= 0 and connect_timeout_s > 0")
        if isinstance(self.backend, str) and self.backend.lower() not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS} or a cv2.CAP_* id, got {self.backend!r}")
        if isinstance(self.backend, str):
            object.__setattr__(self, "backend", self.backend.lower())
        lo, hi = self.reconnect_backoff_s
        if not 0 < lo <= hi:
            raise ValueError(f"reconnect_backoff_s must be (first, longest) with 0 < first <= longest, got {(lo, hi)}")

    @property
    def is_device(self) -> bool:
        """A local camera (an index or a /dev path): size/fps/fourcc are asked of it and verified."""
        src = self.index_or_path
        return isinstance(src, int) or src.startswith("/dev/")

    @property
    def is_file(self) -> bool:
        """A video file (paced, loops) rather than a device or a stream."""
        src = self.index_or_path
        return isinstance(src, str) and not src.startswith("/dev/") and "://" not in src


class OpenCVCamera:
    """See the module docstring. ``clock`` stamps frames and measures their age (the runtime's ``Clock.now``);
    ``capture_factory`` replaces ``cv2.VideoCapture`` (tests)."""

    def __init__(
        self,
        config: OpenCVCameraConfig,
        *,
        name: str = "camera",
        clock: Callable[[], float] = time.monotonic,
        capture_factory: CaptureFactory | None = None,
    ) -> None:
        self.config = config
        self.name = name
        self._clock = clock
        self._factory = capture_factory
        w, h = config.width or 0, config.height or 0
        self.width, self.height = (h, w) if config.rotation in (90, 270) else (w, h)
        self.fps: float = float(config.fps or 0.0)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._first = threading.Event()
        self._thread: threading.Thread | None = None
        self._cap: Any = None
        self._latest: Frame | None = None
        self._count = 0
        self._consecutive_failures = 0
        self._reconnects = 0
        self._ended = False
        self._last_error: str | None = None
        self._thread_exc: BaseException | None = None
        self._sensor_size: tuple[int, int] | None = None  # (width, height) before rotation

    # -- lifecycle -------------------------------------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def connect(self) -> None:
        if self._thread is not None:
            raise CameraError(f"camera {self.name!r} is already connected")
        cv2 = _cv2()
        cv2.setNumThreads(1)
        cap = self._open()
        if cap is None:
            raise CameraError(self._open_failure_message())
        try:
            self._apply_and_verify(cap, strict=True)
        except BaseException:
            cap.release()
            raise
        self._cap = cap
        self._stop.clear()
        self._first.clear()
        self._count = 0
        self._latest = None
        self._ended = False
        self._thread_exc = None
        self._last_error = None
        self._consecutive_failures = self._reconnects = 0
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.name}", daemon=True)
        self._thread.start()
        try:
            if not self._first.wait(self.config.connect_timeout_s):
                raise CameraError(
                    f"camera {self.name!r} ({self._source_text()}) opened but gave no frame in "
                    f"{self.config.connect_timeout_s:g} s"
                    + (f" (last error: {self._last_error})" if self._last_error else "")
                    + ". Check that no other program is using it, try another fourcc (MJPG/YUYV) or a lower "
                    "size/fps, and on a USB hub the bandwidth for several cameras."
                )
            if self._thread_exc is not None:
                raise CameraError(f"camera {self.name!r}: capture thread failed: {self._thread_exc!r}")
            if self.config.warmup_s > 0:
                self._stop.wait(self.config.warmup_s)
        except BaseException:
            self.disconnect()
            raise

    def disconnect(self, timeout_s: float = 5.0) -> None:
        """Stop and join the capture thread and release the device. Safe to call twice."""
        thread, self._thread = self._thread, None
        self._stop.set()
        try:
            if thread is not None:
                thread.join(timeout_s)
                if thread.is_alive():
                    raise CameraError(
                        f"camera {self.name!r}: capture thread did not stop within {timeout_s:g} s "
                        "(a read is blocked in the driver)"
                    )
        finally:
            # The thread releases what it holds on exit; release here whatever is left (never opened thread).
            if thread is None or not thread.is_alive():
                cap, self._cap = self._cap, None
                if cap is not None:
                    cap.release()

    def __enter__(self) -> OpenCVCamera:
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.disconnect()

    # -- reading ---------------------------------------------------------------------------------------------------

    def read_latest(self, max_age_s: float | None = None) -> Frame:
        """The newest frame, without waiting on the device. Raises ``StaleFrameError`` when there is none yet or it is
        older than ``max_age_s`` seconds on the camera's clock (a camera unplugged or stalled, or a file ended)."""
        if self._thread is None:
            raise CameraError(f"camera {self.name!r} is not connected: call connect() first")
        if self._thread_exc is not None:
            raise CameraError(f"camera {self.name!r}: capture thread failed: {self._thread_exc!r}")
        with self._lock:
            frame = self._latest
        if frame is None:
            raise StaleFrameError(f"camera {self.name!r} has no frame yet")
        if max_age_s is not None:
            age = self._clock() - frame.t_capture
            if age > max_age_s:
                raise StaleFrameError(
                    f"camera {self.name!r}: newest frame (#{frame.index}) is {age * 1000:.0f} ms old, limit "
                    f"{max_age_s * 1000:.0f} ms; {self._state_text()}"
                )
        return frame

    def stats(self) -> dict[str, Any]:
        """Health counters for telemetry: frames captured, consecutive failed reads, re-opens, last error."""
        return {
            "frames": self._count,
            "consecutive_failures": self._consecutive_failures,
            "reconnects": self._reconnects,
            "ended": self._ended,
            "last_error": self._last_error,
        }

    # -- internals -------------------------------------------------------------------------------------------------

    def _source_text(self) -> str:
        src = self.config.index_or_path
        return f"index {src}" if isinstance(src, int) else str(src)

    def _state_text(self) -> str:
        if self._ended:
            return "the video file ended (loop=False)"
        if self._consecutive_failures:
            text = f"{self._consecutive_failures} reads failed in a row, re-opening (unplugged?)"
            return text + (f"; last error: {self._last_error}" if self._last_error else "")
        return "the capture thread is running but slow"

    def _open_failure_message(self) -> str:
        src = self.config.index_or_path
        if self.config.is_file:
            if not os.path.exists(src):
                return f"camera {self.name!r}: video file {src} does not exist"
            return f"camera {self.name!r}: OpenCV cannot read the video file {src} (is it a video its FFmpeg decodes?)"
        return (
            f"camera {self.name!r}: cannot open {self._source_text()}. Check the index or path "
            "(`onboard find cameras` lists the cameras and their /dev/v4l/by-id names), that it is plugged in, that "
            "you may read it (on Linux: be in the 'video' group, `sudo usermod -aG video $USER`, then log in again), "
            "and that no other program (another onboard, a browser, a video call) is holding it."
        )

    def _open(self) -> Any:
        """A new opened capture, or None."""
        src = self.config.index_or_path
        if self.config.is_file and not os.path.exists(src):
            return None  # FFmpeg's error on stderr tells the user less than our message
        if self._factory is not None:
            cap = self._factory(src, 0)
        else:
            cv2 = _cv2()
            cap = cv2.VideoCapture(src, _backend_id(cv2, self.config.backend))
        if not cap.isOpened():
            cap.release()
            return None
        return cap

    def _apply_and_verify(self, cap: Any, *, strict: bool) -> None:
        """Ask a device for size/fps/fourcc and check what it gave; check a file's size. Raises CameraError (strict)
        or records the mismatch as the last error and returns normally (re-open in the thread)."""
        cv2 = _cv2()
        cfg = self.config
        if cfg.is_device:
            if cfg.fourcc is not None:
                cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*cfg.fourcc))
            if cfg.width is not None:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, cfg.width)
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, cfg.height)
            if cfg.fps is not None:
                cap.set(cv2.CAP_PROP_FPS, cfg.fps)
        got_w = round(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        got_h = round(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        got_fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        got_fourcc = _fourcc_str(cap.get(cv2.CAP_PROP_FOURCC))
        problems = []
        if cfg.width is not None and (got_w, got_h) != (cfg.width, cfg.height):
            problems.append(f"size {cfg.width}x{cfg.height}")
        if cfg.is_device:
            if cfg.fps is not None and got_fps > 0 and abs(got_fps - cfg.fps) > _FPS_TOLERANCE:
                problems.append(f"{cfg.fps:g} fps")
            if cfg.fourcc is not None and got_fourcc not in ("?", cfg.fourcc):
                problems.append(f"fourcc {cfg.fourcc}")
        if problems:
            msg = (
                f"camera {self.name!r} ({self._source_text()}) does not give {', '.join(problems)}: it gave "
                f"{got_w}x{got_h} at {got_fps:g} fps, fourcc {got_fourcc}. "
                + (
                    "Set width/height to the file's size (or leave them unset)."
                    if cfg.is_file
                    else "Ask for a mode it supports (`onboard find cameras`; `v4l2-ctl --list-formats-ext` lists "
                    "them all), or leave width/height/fps/fourcc unset to take its default."
                )
            )
            if strict:
                raise CameraError(msg)
            self._last_error = msg
            raise _Mismatch(msg)
        if got_w <= 0 or got_h <= 0:  # a backend that cannot tell before the first frame: take the frames' size
            got_w, got_h = 0, 0
        self._sensor_size = (got_w, got_h)
        w, h = (got_h, got_w) if cfg.rotation in (90, 270) else (got_w, got_h)
        self.width, self.height = w, h
        if cfg.is_file:
            self.fps = float(cfg.fps or got_fps or 30.0)
        else:
            self.fps = float(got_fps or cfg.fps or 0.0)

    def _convert(self, bgr: np.ndarray) -> np.ndarray:
        cv2 = _cv2()
        if bgr.ndim == 2:
            rgb = cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
        else:
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        rot = self.config.rotation
        if rot == 90:
            rgb = cv2.rotate(rgb, cv2.ROTATE_90_CLOCKWISE)
        elif rot == 180:
            rgb = cv2.rotate(rgb, cv2.ROTATE_180)
        elif rot == 270:
            rgb = cv2.rotate(rgb, cv2.ROTATE_90_COUNTERCLOCKWISE)
        return rgb

    def _run(self) -> None:
        cfg = self.config
        backoff = cfg.reconnect_backoff_s[0]
        pace_t0 = time.monotonic()  # real-time pacing of files; frames are stamped on self._clock
        paced = 0
        try:
            while not self._stop.is_set():
                cap = self._cap
                if cap is None:  # re-open with backoff until it works or we are told to stop
                    if self._stop.wait(backoff):
                        break
                    backoff = min(2 * backoff, cfg.reconnect_backoff_s[1])
                    cap = self._reopen()
                    if cap is None:
                        continue
                    backoff = cfg.reconnect_backoff_s[0]
                    pace_t0, paced = time.monotonic(), 0
                if cfg.is_file:  # behave like a live camera: one frame per period
                    delay = pace_t0 + paced / self.fps - time.monotonic()
                    if delay < -1.0 / self.fps:  # fell behind (a loaded machine): do not burst to catch up
                        pace_t0, paced, delay = time.monotonic(), 0, 0.0
                    if delay > 0 and self._stop.wait(delay):
                        break
                    paced += 1
                ok, bgr = cap.read()
                t = self._clock()
                if ok and bgr is not None:
                    rgb = self._convert(bgr)
                    if self._sensor_size == (0, 0):
                        self.height, self.width = rgb.shape[:2]
                        self._sensor_size = (bgr.shape[1], bgr.shape[0])
                    if rgb.shape[:2] != (self.height, self.width):
                        ok = False
                        self._last_error = (
                            f"frame of {rgb.shape[1]}x{rgb.shape[0]}, expected {self.width}x{self.height}"
                        )
                if ok:
                    with self._lock:
                        self._latest = Frame(rgb=rgb, t_capture=t, index=self._count)
                        self._count += 1
                    self._consecutive_failures = 0
                    self._first.set()
                    continue
                self._consecutive_failures += 1
                if cfg.is_file:  # the end of the file (or it vanished): start over, or stop here
                    self._release()
                    if not cfg.loop:
                        self._ended = True
                        self._stop.wait()
                        break
                    # Straight back to the start; a file that gave no frame since then waits with backoff instead.
                    if self._consecutive_failures == 1 and self._reopen(restart=True) is not None:
                        pace_t0, paced = time.monotonic(), 0
                    continue
                if self._last_error is None:
                    self._last_error = "read failed"
                if self._consecutive_failures >= _FAILURES_BEFORE_REOPEN:
                    self._release()
        except BaseException as exc:  # surfaced by read_latest()/connect()
            self._thread_exc = exc
            self._first.set()
        finally:
            self._release()

    def _reopen(self, restart: bool = False) -> Any:
        """Open the source again (a re-connect, or a file's loop when ``restart``); None if that failed."""
        try:
            cap = self._open()
        except Exception as exc:
            self._last_error = f"re-open failed: {exc!r}"
            return None
        if cap is None:
            self._last_error = f"re-open of {self._source_text()} failed"
            return None
        try:
            self._apply_and_verify(cap, strict=False)
        except _Mismatch:
            cap.release()
            return None
        if not restart:
            self._reconnects += 1
        self._cap = cap
        return cap

    def _release(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()


class _Mismatch(CameraError):
    pass


# -- discovery -----------------------------------------------------------------------------------------------------


def _v4l_links(dev_root: str) -> dict[str, dict[str, list[str]]]:
    """/dev/videoN -> {"by_id": [...], "by_path": [...]} from udev's stable links."""
    links: dict[str, dict[str, list[str]]] = {}
    for kind in ("by-id", "by-path"):
        for link in sorted(glob.glob(os.path.join(dev_root, "v4l", kind, "*"))):
            target = os.path.realpath(link)
            links.setdefault(target, {"by_id": [], "by_path": []})[kind.replace("-", "_")].append(link)
    return links


def find_cameras(
    max_index: int = 10,
    *,
    dev_root: str = "/dev",
    sys_root: str = "/sys/class/video4linux",
    capture_factory: CaptureFactory | None = None,
    include_unopened: bool = False,
) -> list[dict[str, Any]]:
    """Probe camera indices 0..max_index-1 (on Linux, those with a /dev/videoN) and report each one that opens with
    its default size, fps and FOURCC, its /dev/v4l/by-id and by-path links (stable names across reboots and
    re-plugging) and its name. A UVC camera often has a second /dev/video node for metadata that does not open; such
    nodes are left out unless ``include_unopened``."""
    cv2 = _cv2()
    linux = sys.platform.startswith("linux")
    if linux:
        indices = sorted(
            int(m.group(1))
            for p in glob.glob(os.path.join(dev_root, "video*"))
            if (m := re.fullmatch(r"video(\d+)", os.path.basename(p))) and int(m.group(1)) < max_index
        )
    else:
        indices = list(range(max_index))
    links = _v4l_links(dev_root)
    found = []
    for i in indices:
        path = os.path.join(dev_root, f"video{i}")
        info: dict[str, Any] = {"index": i, "path": path if linux else None}
        info.update(links.get(os.path.realpath(path), {"by_id": [], "by_path": []}))
        try:
            with open(os.path.join(sys_root, f"video{i}", "name")) as f:
                info["name"] = f.read().strip()
        except OSError:
            info["name"] = None
        cap = capture_factory(i, 0) if capture_factory is not None else cv2.VideoCapture(i)
        try:
            info["opened"] = bool(cap.isOpened())
            if info["opened"]:
                info["width"] = round(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
                info["height"] = round(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
                info["fps"] = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
                info["fourcc"] = _fourcc_str(cap.get(cv2.CAP_PROP_FOURCC))
                try:
                    info["backend"] = cap.getBackendName()
                except Exception:
                    info["backend"] = None
        finally:
            cap.release()
        if info["opened"] or include_unopened:
            found.append(info)
    return found
