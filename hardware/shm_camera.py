"""Cameras across a process boundary: frames in shared memory that any local process opens by name (DESIGN.md, seams 2
and 5). `onboard sim serve` publishes the twin's cameras this way (``sim.transport.camera_server``); `onboard run`,
`record` and `teleoperate` read them with ``--robot.cameras="{front: {type: sim, name: front}}"``.

    writer = ShmFrameWriter("front", height=96, width=96, fps=30).open()   # the publishing process
    writer.write(rgb, time.monotonic())
    cam = ShmCamera("front"); cam.connect()                               # any other process
    frame = cam.read_latest(max_age_s=0.1)                                # Frame(rgb, t_capture, index)

The medium is a file in ``/dev/shm`` (tmpfs: memory, never disk; the system's temp folder where there is no
/dev/shm), ``onboard-camera-<name>``, mapped by the writer and by every reader. Its layout (little-endian):

    0    header: magic b"ONBCAM01", version, width, height, writer pid, fps, frames written (the newest frame's number)
    64   slot 0's record: sequence, frame number, capture time;  96: slot 1's
    128  slot 0's pixels (height x width x 3 RGB bytes), then slot 1's

Frame n goes to slot n % 2 (a double buffer), each slot under a seqlock: the writer makes the slot's sequence odd,
writes the pixels, the frame number and the capture time, makes the sequence even again, then publishes n in the
header. A reader takes the header's n, copies slot n % 2, and keeps the copy only if that slot's sequence was the same
even number before and after and holds frame n; otherwise (the writer lapped it, which needs a whole frame period) it
tries again. Neither side ever waits for the other; a reader that finds no new frame returns the one it has without
copying. ``connect()`` waits for the first frame by sleeping a quarter frame period at a time, never by spinning.

Capture time: ``time.monotonic()`` of the publishing process, i.e. Linux's CLOCK_MONOTONIC, which every process on the
machine shares; it is also what ``robot.clock.WallClock.now()`` returns, so a frame's age is ``now - t_capture`` in the
reader with no clock translation.

Names and restarts: a name is one publisher's at a time. ``open()`` refuses a name whose file belongs to a living
process (serve a second twin under another prefix) and takes over a file left by a process that died. A publisher
creates the file under a temporary name and renames it into place, so a reader never sees half a header; when a
reader's frames grow old it checks whether the name now points to a new file (the publisher restarted) and maps that.

Why shared memory and not a local socket (measured on the 2-core dev machine, 640x480 RGB frames, 900 KiB): through
a Unix socket one frame took 0.146 ms to send and receive between two processes, and a socket needs a sender per
reader, each frame copied through the kernel once per reader; through the mapped file a frame took 0.046 ms to write
and 0.031 ms to read (96x96: 0.002 / 0.003 ms), the writer's cost is the same however many read, and a reader that
finds no new frame pays 0.5 us. The price is that a reader cannot block until the next frame: the control loop never
wants that (``read_latest`` only).

Memory order: the sequence protocol relies on the writer's stores becoming visible in program order (x86-64's TSO;
on ARM a torn read is possible in principle and would show as one frame mixing two images, never as a crash).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import re
import struct
import tempfile
import time
from pathlib import Path

import numpy as np

from hardware.camera import CameraError, Frame, StaleFrameError

MAGIC = b"ONBCAM01"
VERSION = 1
_HEADER = struct.Struct("<8sIIIIdQ")  # magic, version, width, height, pid, fps, frames written
_SLOT = struct.Struct("<QQd")  # sequence, frame number, capture time
_SLOT_AT = (64, 96)
_PIXELS_AT = 128
_LATEST_AT = 8 + 4 * 4 + 8  # the header's frames-written field
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")
PREFIX = "onboard-camera-"
SERVE_HINT = "start `onboard sim serve` (its cameras are on unless --no-cameras) and use the names it prints"


def camera_dir() -> Path:
    """Where the frames live: /dev/shm (memory) where it exists, else the system's temp folder."""
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())


def camera_path(name: str) -> Path:
    """The file of the shared-memory camera ``name`` (letters, digits, ``_``, ``.``, ``-``)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise CameraError(f"bad shared-memory camera name {name!r}: use letters, digits, '_', '.' and '-'")
    return camera_dir() / f"{PREFIX}{name}"


def served_cameras() -> list[str]:
    """Names of the shared-memory cameras whose publisher is alive."""
    names = []
    for path in sorted(camera_dir().glob(f"{PREFIX}*")):
        info = _read_header(path)
        if info is not None and _alive(info[3]):
            names.append(path.name[len(PREFIX) :])
    return names


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_header(path: Path) -> tuple[int, int, float, int] | None:
    """(width, height, fps, pid) of the camera file at ``path``, or None when it is not one."""
    try:
        with open(path, "rb") as f:
            raw = f.read(_HEADER.size)
    except OSError:
        return None
    if len(raw) < _HEADER.size:
        return None
    magic, version, width, height, pid, fps, _ = _HEADER.unpack(raw)
    if magic != MAGIC or version != VERSION:
        return None
    return width, height, fps, pid


def _size(height: int, width: int) -> int:
    return _PIXELS_AT + 2 * height * width * 3


class ShmFrameWriter:
    """The publishing side of one shared-memory camera (module doc): ``open()``, ``write(rgb, t_capture)`` per frame,
    ``close()`` (removes the name)."""

    def __init__(self, name: str, *, height: int, width: int, fps: float):
        if height <= 0 or width <= 0 or not fps > 0:
            raise ValueError(f"camera {name!r}: height, width and fps must be positive, got {height}x{width}@{fps}")
        self.name = name
        self.path = camera_path(name)
        self.height, self.width, self.fps = int(height), int(width), float(fps)
        self.frames = 0
        self._mm: mmap.mmap | None = None
        self._pixels: list[np.ndarray] = []
        self._ino: int | None = None

    def open(self) -> ShmFrameWriter:
        """Create the camera's file; ``CameraError`` when a living process already serves this name."""
        if self._mm is not None:
            return self
        info = _read_header(self.path)
        if info is not None and _alive(info[3]):
            raise CameraError(
                f"camera {self.name!r} is already served by process {info[3]} ({self.path}): serve this one under "
                "another name (`onboard sim serve --cameras.prefix=NAME`) or stop that process"
            )
        size = _size(self.height, self.width)
        fd, tmp = tempfile.mkstemp(prefix=f".{PREFIX}{self.name}.", dir=self.path.parent)
        try:
            os.ftruncate(fd, size)
            mm = mmap.mmap(fd, size)
            _HEADER.pack_into(mm, 0, MAGIC, VERSION, self.width, self.height, os.getpid(), self.fps, 0)
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path)
            self._ino = os.fstat(fd).st_ino
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        finally:
            os.close(fd)
        self._mm = mm
        n = self.height * self.width * 3
        self._pixels = [
            np.frombuffer(mm, np.uint8, n, _PIXELS_AT + k * n).reshape(self.height, self.width, 3) for k in (0, 1)
        ]
        self.frames = 0
        return self

    def write(self, rgb: np.ndarray, t_capture: float) -> int:
        """Publish ``rgb`` (uint8, height x width x 3) captured at ``t_capture`` (``time.monotonic()``); returns its
        frame number (1, 2, ...)."""
        mm = self._mm
        if mm is None:
            raise CameraError(f"camera {self.name!r}: open() the writer first")
        if rgb.shape != (self.height, self.width, 3):
            raise ValueError(f"camera {self.name!r}: frame {rgb.shape}, expected {(self.height, self.width, 3)}")
        n = self.frames + 1
        slot, at = n % 2, _SLOT_AT[n % 2]
        seq = _SLOT.unpack_from(mm, at)[0]
        struct.pack_into("<Q", mm, at, seq + 1)  # odd: being written
        self._pixels[slot][...] = rgb
        _SLOT.pack_into(mm, at, seq + 1, n, float(t_capture))
        struct.pack_into("<Q", mm, at, seq + 2)  # even: complete
        struct.pack_into("<Q", mm, _LATEST_AT, n)
        self.frames = n
        return n

    def close(self) -> None:
        """Unmap and remove the name (if it is still this writer's file)."""
        mm, self._mm = self._mm, None
        self._pixels = []
        if mm is None:
            return
        with contextlib.suppress(OSError):
            if os.stat(self.path).st_ino == self._ino:
                os.unlink(self.path)
        with contextlib.suppress(BufferError):
            mm.close()

    def __enter__(self) -> ShmFrameWriter:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


class ShmCamera:
    """robot's ``Camera`` on a shared-memory camera another process publishes (module doc).

    ``stream``: the published name (what `onboard sim serve` prints); ``name``: the camera's key in observations
    (default: ``stream``). ``width``/``height``/``fps``, when given, must match what is published (checked by
    ``connect()``, which otherwise takes them from the publisher). ``connect_timeout_s``: how long ``connect()`` waits
    for a first frame.
    """

    def __init__(
        self,
        stream: str,
        *,
        name: str | None = None,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        connect_timeout_s: float = 5.0,
    ):
        self.path = camera_path(stream)
        self.stream = stream
        self.name = name or stream
        self._want = (width, height, fps)
        self.width, self.height, self.fps = int(width or 0), int(height or 0), float(fps or 0.0)
        self.connect_timeout_s = float(connect_timeout_s)
        self.pid = 0
        self.reopens = 0  # times the publisher was found restarted and re-mapped
        self._mm: mmap.mmap | None = None
        self._ino: int | None = None
        self._n0 = 0
        self._latest: Frame | None = None
        self._seen = 0

    def __repr__(self) -> str:
        state = "connected" if self._mm is not None else "disconnected"
        return f"ShmCamera({self.name!r}, stream={self.stream!r}, {self.width}x{self.height}@{self.fps:g}, {state})"

    @property
    def is_connected(self) -> bool:
        return self._mm is not None

    def _missing(self) -> CameraError:
        served = served_cameras()
        listing = f"served now: {', '.join(served)}" if served else "none is served now"
        return CameraError(f"camera {self.name!r}: no shared-memory camera {self.stream!r} ({listing}); {SERVE_HINT}")

    def _map(self) -> None:
        """Map the camera's file and check it (raises CameraError)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            raise self._missing() from None
        try:
            st = os.fstat(fd)
            if st.st_size < _PIXELS_AT:
                raise CameraError(f"camera {self.name!r}: {self.path} is not a shared-memory camera")
            mm = mmap.mmap(fd, st.st_size, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
        magic, version, width, height, pid, fps, n = _HEADER.unpack_from(mm, 0)
        if magic != MAGIC or version != VERSION or st.st_size < _size(height, width):
            mm.close()
            raise CameraError(f"camera {self.name!r}: {self.path} is not a shared-memory camera of this version")
        if not _alive(pid):
            mm.close()
            raise CameraError(
                f"camera {self.name!r}: the process that served {self.stream!r} (pid {pid}) has exited; {SERVE_HINT}"
            )
        for want, have, what in zip(self._want, (width, height, fps), ("width", "height", "fps")):
            if want is not None and float(want) != float(have):
                mm.close()
                raise CameraError(
                    f"camera {self.name!r}: {what} {want} asked, but {self.stream!r} is served at {width}x{height} "
                    f"@ {fps:g} fps (`onboard sim serve --cameras.width/--cameras.height/--cameras.fps`)"
                )
        self._mm, self._ino, self.pid = mm, st.st_ino, pid
        self.width, self.height, self.fps = width, height, fps
        self._n0, self._seen, self._latest = n, 0, None

    def connect(self) -> None:
        """Map the camera and wait (sleeping) for a frame; ``CameraError`` if none is served by that name."""
        if self._mm is not None:
            return
        self._map()
        deadline = time.monotonic() + self.connect_timeout_s
        while self._frames_written() == 0:
            if time.monotonic() > deadline:
                self.disconnect()
                raise CameraError(
                    f"camera {self.name!r}: {self.stream!r} is served (pid {self.pid}) but gave no frame in "
                    f"{self.connect_timeout_s:g} s"
                )
            time.sleep(0.25 / self.fps)

    def _frames_written(self) -> int:
        assert self._mm is not None
        return struct.unpack_from("<Q", self._mm, _LATEST_AT)[0]

    def _copy(self) -> Frame | None:
        """The newest frame (a copy), or None when the writer lapped every try."""
        mm = self._mm
        assert mm is not None
        n_pix = self.height * self.width * 3
        for _ in range(8):
            n = self._frames_written()
            if n == 0:
                return None
            if n == self._seen and self._latest is not None:
                return self._latest
            at = _SLOT_AT[n % 2]
            seq0, index, t = _SLOT.unpack_from(mm, at)
            if seq0 % 2 or index != n:
                continue
            rgb = np.frombuffer(mm, np.uint8, n_pix, _PIXELS_AT + (n % 2) * n_pix).reshape(self.height, self.width, 3)
            rgb = rgb.copy()
            if _SLOT.unpack_from(mm, at)[0] != seq0:
                continue
            self._seen = n
            self._latest = Frame(rgb=rgb, t_capture=t, index=n - self._n0)
            return self._latest
        return self._latest

    def _restarted(self) -> bool:
        """Whether the name now points to another file (the publisher restarted); re-maps it if so."""
        try:
            ino = os.stat(self.path).st_ino
        except FileNotFoundError:
            return False
        if ino == self._ino:
            return False
        old = self._mm
        try:
            self._map()
        except CameraError:
            return False
        if old is not None:
            with contextlib.suppress(BufferError):
                old.close()
        self.reopens += 1
        return True

    def read_latest(self, max_age_s: float | None = None) -> Frame:
        """The newest frame; ``StaleFrameError`` when there is none or it is older than ``max_age_s``."""
        if self._mm is None:
            raise CameraError(f"camera {self.name!r} is not connected: call connect() first")
        frame = self._copy()
        now = time.monotonic()
        if frame is None or now - frame.t_capture > 2.0 / self.fps + 0.1:
            if self._restarted():
                frame = self._copy()
        if frame is None:
            raise StaleFrameError(f"camera {self.name!r}: no frame from {self.stream!r} yet")
        age = now - frame.t_capture
        if max_age_s is not None and age > max_age_s:
            why = "is not keeping up" if _alive(self.pid) else "has exited"
            raise StaleFrameError(
                f"camera {self.name!r}: the latest frame of {self.stream!r} is {age * 1e3:.1f} ms old, more than "
                f"max_age_s = {max_age_s * 1e3:.1f} ms: its publisher (pid {self.pid}) {why}"
            )
        return frame

    def disconnect(self) -> None:
        mm, self._mm = self._mm, None
        self._latest = None
        if mm is not None:
            with contextlib.suppress(BufferError):
                mm.close()

    def __enter__(self) -> ShmCamera:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.disconnect()
