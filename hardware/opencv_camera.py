"""An OpenCV camera (DESIGN.md, seam 2): a capture thread keeps the newest frame with its capture time; the control
loop takes it with ``read_latest(max_age_s)``, which never waits on the device.

- ``connect()`` opens ``cv2.VideoCapture`` (which never raises on a missing device: ``isOpened()`` is checked), applies
  and verifies size / fps / FOURCC, starts the capture thread and waits for the first frame.
- The thread converts BGR to RGB, rotates, stamps each frame on the given clock and counts frames. When reads fail (a
  camera unplugged) it re-opens the same index or path with backoff until ``disconnect()``; meanwhile
  ``read_latest(max_age_s)`` refuses the old frame with ``StaleFrameError``.
- A video file (a path) is read like a live camera: paced at the file's fps (or the configured one), looping at the end
  or stopping there (``loop``). This is what the tests use.

The camera's config (``OpenCVCameraConfig``) is in ``hardware.opencv_config``. OpenCV is an optional dependency,
imported on ``connect()``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from hardware.camera import CameraError, Frame, StaleFrameError
from hardware.opencv_config import CaptureFactory, OpenCVCameraConfig, backend_id, fourcc_text, import_cv2

__all__ = ["OpenCVCamera", "OpenCVCameraConfig"]

_FAILURES_BEFORE_REOPEN = 3  # consecutive failed reads of a device before it is re-opened
_FPS_TOLERANCE = 1.0


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
        cv2 = import_cv2()
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
            cv2 = import_cv2()
            cap = cv2.VideoCapture(src, backend_id(cv2, self.config.backend))
        if not cap.isOpened():
            cap.release()
            return None
        return cap

    def _apply_and_verify(self, cap: Any, *, strict: bool) -> None:
        """Ask a device for size/fps/fourcc and check what it gave; check a file's size. Raises CameraError (strict)
        or records the mismatch as the last error and returns normally (re-open in the thread)."""
        cv2 = import_cv2()
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
        got_fourcc = fourcc_text(cap.get(cv2.CAP_PROP_FOURCC))
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
        cv2 = import_cv2()
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
