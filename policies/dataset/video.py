"""Per-camera background video encoding with PyAV, off the caller's control loop.

Frame k of an episode gets pts k in time base 1/fps, so it sits exactly at k/fps in the mp4, where LeRobot's
decoder looks for it (``from_timestamp + frame_index / fps``, tolerance 1e-4 s). Defaults follow LeRobot's
encoder: libsvtav1, yuv420p, GOP 2, crf 30, preset 12.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from policies.dataset.stats import ImageStatsAccumulator, Stats

logger = logging.getLogger(__name__)

DEFAULT_VCODEC = "libsvtav1"


class EncoderBehindError(RuntimeError):
    """The video encoder could not keep up with the frame rate and its queue is full."""


def codec_options(vcodec: str, *, g: int, crf: int, preset: int | None) -> dict[str, str]:
    options = {"g": str(g), "crf": str(crf)}
    if vcodec == "libsvtav1":
        options["preset"] = str(12 if preset is None else preset)
    elif vcodec in ("libx264", "h264"):
        options["bf"] = "0"  # no B-frames: packets come out in presentation order
        if preset is not None:
            options["preset"] = str(preset)
    return options


class EpisodeVideoEncoder:
    """Encodes one camera's frames of one episode into ``path`` (a temporary name) in a daemon thread.

    ``put`` never blocks: when ``queue_size`` frames are already waiting it raises ``EncoderBehindError``.
    ``finish`` flushes, closes and fsyncs the file and returns the episode's image stats; ``cancel`` drops it.
    """

    def __init__(
        self,
        path: Path,
        *,
        key: str,
        fps: int,
        vcodec: str = DEFAULT_VCODEC,
        g: int = 2,
        crf: int = 30,
        preset: int | None = None,
        queue_size: int = 60,
    ):
        self.path = Path(path)
        self.key = key
        self.fps = fps
        self.vcodec = vcodec
        self.options = codec_options(vcodec, g=g, crf=crf, preset=preset)
        self.queue_size = queue_size
        self._queue: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=queue_size)
        self._cancel = threading.Event()
        self._error: BaseException | None = None
        self._stats = ImageStatsAccumulator()
        self.frames_encoded = 0
        self.encode_seconds = 0.0
        self._thread = threading.Thread(target=self._run, name=f"encoder-{key}", daemon=True)
        self._thread.start()

    def put(self, image: np.ndarray) -> None:
        if self._error is not None:
            raise RuntimeError(f"video encoder for {self.key!r} failed: {self._error!r}") from self._error
        try:
            self._queue.put_nowait(np.array(image, dtype=np.uint8, copy=True, order="C"))
        except queue.Full:
            raise EncoderBehindError(
                f"video encoder for {self.key!r} fell behind: {self.queue_size} frames are waiting "
                f"({self.vcodec}). Lower the frame rate or resolution, use a faster codec or preset, "
                "or give the recorder more CPU."
            ) from None

    def finish(self) -> Stats:
        """Wait until every queued frame is encoded and the file is closed and fsynced."""
        self._send_sentinel()
        self._thread.join()
        if self._error is not None:
            raise RuntimeError(f"video encoder for {self.key!r} failed: {self._error!r}") from self._error
        return self._stats.stats()

    def cancel(self) -> None:
        self._cancel.set()
        while True:  # make room for the sentinel without waiting for the encoder
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._send_sentinel()
        self._thread.join()
        self.path.unlink(missing_ok=True)

    def _send_sentinel(self) -> None:
        while self._thread.is_alive():  # a thread that died on an error no longer drains the queue
            try:
                self._queue.put(None, timeout=0.1)
                return
            except queue.Full:
                continue

    def _run(self) -> None:
        container = None
        stream = None
        # SVT-AV1 prints its whole configuration to stderr for every episode unless told otherwise (1 = errors only)
        os.environ.setdefault("SVT_LOG", "1")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            container = av.open(str(self.path), mode="w", format="mp4")
            while True:
                img = self._queue.get()
                if img is None or self._cancel.is_set():
                    break
                t0 = time.perf_counter()
                if stream is None:
                    stream = container.add_stream(self.vcodec, rate=self.fps, options=self.options)
                    stream.width, stream.height = img.shape[1], img.shape[0]
                    stream.pix_fmt = "yuv420p"
                    stream.time_base = Fraction(1, self.fps)
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                frame.pts = self.frames_encoded
                frame.time_base = Fraction(1, self.fps)
                for packet in stream.encode(frame):
                    container.mux(packet)
                self._stats.update(img)
                self.frames_encoded += 1
                self.encode_seconds += time.perf_counter() - t0
            if stream is not None and not self._cancel.is_set():
                t0 = time.perf_counter()
                for packet in stream.encode(None):
                    container.mux(packet)
                self.encode_seconds += time.perf_counter() - t0
            container.close()
            container = None
            if not self._cancel.is_set():
                with open(self.path, "rb") as f:
                    os.fsync(f.fileno())
        except BaseException as exc:  # reported to the caller by put()/finish()
            self._error = exc
            logger.error("video encoder for %r failed: %r", self.key, exc)
            if container is not None:
                try:
                    container.close()
                except Exception:
                    pass


def probe_video_info(path: Path) -> dict:
    """The ``info`` block LeRobot stores for a video feature in info.json."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return {
            "video.height": stream.height,
            "video.width": stream.width,
            "video.codec": stream.codec_context.codec.canonical_name,
            "video.pix_fmt": stream.pix_fmt,
            "video.is_depth_map": False,
            "video.fps": int(stream.base_rate),
            "video.channels": 3,
            "has_audio": len(container.streams.audio) > 0,
        }
