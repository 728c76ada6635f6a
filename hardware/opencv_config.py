"""What an OpenCV camera is asked for, and the small OpenCV vocabulary its driver and camera discovery share.

``OpenCVCameraConfig`` is a frozen dataclass validated on construction (the driver, ``hardware.opencv_camera``, takes
it). ``import_cv2()`` imports OpenCV, an optional dependency, with a message naming the extra to install;
``backend_id`` names OpenCV's capture APIs; ``fourcc_text`` reads a FOURCC code back as text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hardware.camera import CameraError

__all__ = ["BACKENDS", "ROTATIONS", "CaptureFactory", "OpenCVCameraConfig", "backend_id", "fourcc_text", "import_cv2"]

ROTATIONS = (0, 90, 180, 270)  # degrees, clockwise
BACKENDS = ("any", "v4l2", "ffmpeg", "gstreamer", "dshow", "msmf", "avfoundation")

CaptureFactory = Callable[[int | str, int], Any]  # (index_or_path, cv2 backend id) -> a cv2.VideoCapture-like object


def import_cv2():
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise CameraError(
            "OpenCV is needed for cameras: pip install 'onboard[camera]' (opencv-python-headless<4.13; "
            "only one OpenCV distribution per environment)"
        ) from exc
    return cv2


def backend_id(cv2, backend: str | int) -> int:
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


def fourcc_text(code: float) -> str:
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
