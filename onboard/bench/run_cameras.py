"""The camera sources of `onboard bench run`: the served twin's 640x480 frames as the loop's cameras, resized to the
policy's input, with what the loop side spends on them measured. One interface (robot's ``Camera``), two sources:

- ``raw``: ``RawCamera`` reads the served shared-memory camera (``hardware.shm_camera.ShmCamera``: one copy of the
  frame) and crops each new frame to the policy's aspect ratio (the centre 480x480 of 640x480) and resizes it
  (``cv2.resize``, INTER_AREA) to the policy's input;
- ``mjpeg`` (default): as a USB camera delivers 640x480 at 30 fps. An encoder process (``encoder_main``, on the twin's
  cores: the camera's own work) reads the served frames and JPEG-encodes each new one; the bytes come to this process
  over a socket, where a receiver thread keeps the newest per camera (what a V4L2 buffer queue does). ``MjpegCamera``
  decodes the newest when the loop asks and it is new (``cv2.imdecode``), converts BGR to RGB and resizes.

Either way the decode and resize run inside ``read_latest``, i.e. in the loop's ``cameras`` stage, and each camera
keeps its own ``wall_s``/``cpu_s`` per decoded frame (``connect`` decodes the first frame once, unmeasured, so that
OpenCV's first-call allocations do not land in the loop's first tick). A stale or missing frame raises
``StaleFrameError`` as the real cameras do (the loop's ``CameraTap`` then hands over the last good frame).
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

import numpy as np

from hardware.camera import CameraError, Frame, StaleFrameError
from hardware.shm_camera import ShmCamera

_HEADER = struct.Struct("<BQdI")  # camera index, frame number, capture time (CLOCK_MONOTONIC), JPEG bytes
SOURCES = ("mjpeg", "raw")


def _cv2():
    try:
        import cv2
    except ImportError as exc:  # pragma: no cover - opencv comes with the base install
        raise CameraError("onboard bench run needs OpenCV (opencv-python-headless)") from exc
    return cv2


class _Decoded:
    """A camera's decode/resize meter and its newest decoded frame."""

    def __init__(self, name: str, size: tuple[int, int], fps: float):
        self.name, self.size, self.fps = name, size, fps
        self.height, self.width = size
        self.wall_s: list[float] = []
        self.cpu_s: list[float] = []
        self.frame: Frame | None = None

    def _warm_up(self) -> None:
        """Decode and resize the first frame once, unmeasured: OpenCV's first call allocates (~50 ms), which a camera
        does before the loop starts, not in its first tick."""
        self.read_latest()
        self.wall_s.clear()
        self.cpu_s.clear()

    def _check_age(self, frame: Frame, max_age_s: float | None) -> Frame:
        age = time.monotonic() - frame.t_capture
        if max_age_s is not None and age > max_age_s:
            raise StaleFrameError(f"camera {self.name!r}: newest frame {age * 1e3:.1f} ms old")
        return frame

    def _resized(self, rgb: np.ndarray) -> np.ndarray:
        """The centre of ``rgb`` at the policy's aspect ratio, resized to its input. The twin renders every size with
        the same vertical field of view, so the centre 480x480 of a 640x480 frame is the square frame the policy was
        trained on; squeezing the whole 4:3 frame into a square would show it a scene it has never seen."""
        h, w = self.size
        rh, rw = rgb.shape[:2]
        if rh * w != rw * h:  # crop to the policy's aspect ratio first
            if rw * h > rh * w:
                cw = rh * w // h
                rgb = rgb[:, (rw - cw) // 2 : (rw - cw) // 2 + cw]
            else:
                ch = rw * h // w
                rgb = rgb[(rh - ch) // 2 : (rh - ch) // 2 + ch]
        if rgb.shape[:2] == (h, w):
            return rgb
        return _cv2().resize(rgb, (w, h), interpolation=_cv2().INTER_AREA)


class RawCamera(_Decoded):
    """The served camera ``stream`` as the policy sees it: each new frame resized to ``size`` (H, W)."""

    def __init__(self, stream: str, name: str, size: tuple[int, int], fps: float):
        super().__init__(name, size, fps)
        self.shm = ShmCamera(stream, name=name, connect_timeout_s=20.0)

    def connect(self) -> None:
        self.shm.connect()
        self._warm_up()

    def read_latest(self, max_age_s: float | None = None) -> Frame:
        w0, c0 = time.perf_counter(), time.thread_time()
        raw = self.shm.read_latest()
        if self.frame is None or raw.index != self.frame.index:
            self.frame = Frame(rgb=self._resized(raw.rgb), t_capture=raw.t_capture, index=raw.index)
            self.wall_s.append(time.perf_counter() - w0)
            self.cpu_s.append(time.thread_time() - c0)
        return self._check_age(self.frame, max_age_s)

    def disconnect(self) -> None:
        self.shm.disconnect()


class MjpegStream:
    """The encoder process and the receiver thread behind the ``MjpegCamera`` s (module doc)."""

    def __init__(self, streams: Sequence[str], *, quality: int, fps: float, cpus: Sequence[int] | None):
        self.streams, self.quality, self.fps, self.cpus = list(streams), int(quality), float(fps), cpus
        self.latest: list[tuple[int, float, bytes] | None] = [None] * len(self.streams)
        self.received = [0] * len(self.streams)
        self.bytes_received = 0
        self._proc: subprocess.Popen | None = None
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.error: str | None = None

    def start(self) -> MjpegStream:
        ours, theirs = socket.socketpair()
        code = "import sys; from onboard.bench.run_cameras import encoder_main; encoder_main(sys.argv[1:])"
        cpus = ",".join(map(str, self.cpus)) if self.cpus else ""
        argv = [sys.executable, "-c", code, str(theirs.fileno()), str(self.quality), str(self.fps), cpus, *self.streams]
        self._proc = subprocess.Popen(  # its own session: a Ctrl-C is the bench's to handle, which closes the socket
            argv, pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, start_new_session=True
        )
        theirs.close()
        self._sock = ours
        self._thread = threading.Thread(target=self._receive, name="mjpeg-receiver", daemon=True)
        self._thread.start()
        return self

    def _receive(self) -> None:
        sock = self._sock
        assert sock is not None
        try:
            while True:
                header = _recv_exactly(sock, _HEADER.size)
                if header is None:
                    return
                k, index, t, n = _HEADER.unpack(header)
                data = _recv_exactly(sock, n)
                if data is None:
                    return
                self.latest[k] = (index, t, data)  # one assignment: the handover
                self.received[k] += 1
                self.bytes_received += n
        except OSError as exc:
            self.error = str(exc)

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    def stop(self) -> None:
        if self._sock is not None:
            self._sock.close()  # the encoder's next send fails and it exits
            self._sock = None
        if self._proc is not None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None


class MjpegCamera(_Decoded):
    """Camera ``k`` of an ``MjpegStream``: the newest JPEG decoded, RGB, resized to ``size`` (H, W)."""

    def __init__(self, stream: MjpegStream, k: int, name: str, size: tuple[int, int], timeout_s: float = 20.0):
        super().__init__(name, size, stream.fps)
        self.stream, self.k, self.timeout_s = stream, k, timeout_s

    def connect(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        while self.stream.latest[self.k] is None:
            if time.monotonic() > deadline:
                rc = self.stream.returncode
                raise CameraError(
                    f"camera {self.name!r}: no JPEG frame in {self.timeout_s:g} s (the encoder process "
                    + ("is running" if rc is None else f"exited with {rc}")
                    + (f"; {self.stream.error}" if self.stream.error else "")
                    + ")"
                )
            time.sleep(0.01)
        self._warm_up()

    def read_latest(self, max_age_s: float | None = None) -> Frame:
        latest = self.stream.latest[self.k]
        if latest is None:
            raise StaleFrameError(f"camera {self.name!r}: no frame yet")
        index, t, data = latest
        if self.frame is None or index != self.frame.index:
            w0, c0 = time.perf_counter(), time.thread_time()
            cv2 = _cv2()
            bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if bgr is None:
                raise CameraError(f"camera {self.name!r}: frame {index} does not decode")
            rgb = self._resized(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            self.frame = Frame(rgb=rgb, t_capture=t, index=index)
            self.wall_s.append(time.perf_counter() - w0)
            self.cpu_s.append(time.thread_time() - c0)
        return self._check_age(self.frame, max_age_s)

    def disconnect(self) -> None:
        pass


def _recv_exactly(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def encoder_main(argv: Sequence[str]) -> None:
    """The encoder process: ``FD QUALITY FPS CPUS STREAM...``. Pins itself to CPUS (comma-separated; empty: as it
    is), reads each served stream's newest frame every quarter period and sends each new one JPEG-encoded (header
    ``_HEADER`` + bytes) until the socket closes."""
    fd, quality, fps, cpus, *streams = argv
    if cpus:
        os.sched_setaffinity(0, {int(c) for c in cpus.split(",")})
    cv2 = _cv2()
    sock = socket.socket(fileno=int(fd))
    cams = [ShmCamera(s, connect_timeout_s=20.0) for s in streams]
    for cam in cams:
        cam.connect()
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    seen = [-1] * len(cams)
    pause = 0.25 / float(fps)
    try:
        while True:
            for k, cam in enumerate(cams):
                frame = cam.read_latest()
                if frame.index == seen[k]:
                    continue
                seen[k] = frame.index
                ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR), params)
                if ok:
                    sock.sendall(_HEADER.pack(k, frame.index, frame.t_capture, jpeg.size) + jpeg.tobytes())
            time.sleep(pause)
    except (OSError, CameraError):  # the bench closed the socket, or the twin stopped serving
        pass
    finally:
        sock.close()
