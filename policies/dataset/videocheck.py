"""Check one mp4 of a LeRobotDataset v3.0 against the episodes that live in it (``verify``'s video part).

A video file holds one episode (our writer) or several concatenated (LeRobot's), each at ``from_timestamp`` with
frame k at ``from_timestamp + k / fps`` (tolerance 1e-4 s, as LeRobot's decoder). ``check_video`` reads the packet
times once per file, checks every episode's frames are there, then decodes: a few frames per episode (``sample``,
fast), or every frame of the file in order (``full``), naming the first frame that does not decode (file, episode,
frame index).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

TOLERANCE_S = 1e-4


@dataclass(frozen=True)
class Segment:
    """One episode's frames inside a video file."""

    episode: int
    start: float  # from_timestamp (s)
    length: int  # frames


@dataclass
class VideoCheck:
    errors: list[str]
    frames_decoded: int = 0


def _where(path: Path, key: str, seg: Segment, k: int) -> str:
    return f"{path}: episode {seg.episode} {key} frame {k}"


def check_video(path: Path, key: str, segments: list[Segment], fps: int, *, sample: int = 3, full: bool = False):
    """Errors found in ``path`` (a list of one-line messages) and how many frames were decoded."""
    out = VideoCheck([])
    segments = sorted(segments, key=lambda s: s.start)
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            times = np.asarray(
                sorted(float(p.pts * p.time_base) for p in container.demux(stream) if p.pts is not None and p.size > 0)
            )
            for seg in segments:
                want = seg.start + np.arange(seg.length) / fps
                lo, hi = seg.start - TOLERANCE_S, seg.start + (seg.length - 0.5) / fps
                within = times[(times >= lo) & (times < hi)]
                if len(within) != seg.length or np.abs(within - want).max(initial=0.0) > TOLERANCE_S:
                    out.errors.append(
                        f"{path}: episode {seg.episode} {key} has {len(within)} frames at "
                        f"{seg.start:.4f}s + k/fps, expected {seg.length}"
                    )
            if out.errors:
                return out
            if full:
                _decode_all(container, stream, path, key, segments, fps, out)
            else:
                for seg in segments:
                    if not _decode_some(container, stream, path, key, seg, fps, sample, out):
                        break
    except av.error.FFmpegError as exc:
        out.errors.append(f"{path}: {key} video unreadable ({type(exc).__name__}: {exc})")
    except OSError as exc:
        out.errors.append(f"{path}: {key} video unreadable ({exc.strerror or exc})")
    return out


def _decode_some(container, stream, path, key, seg: Segment, fps, sample, out: VideoCheck) -> bool:
    picks = sorted({int(i + 0.5) for i in np.linspace(0, seg.length - 1, max(1, min(sample, seg.length)))})
    for k in picks:
        target = seg.start + k / fps
        try:
            container.seek(int(target / stream.time_base), stream=stream, backward=True, any_frame=False)
            found = False
            for frame in container.decode(stream):
                if frame.time is None:
                    continue
                if abs(frame.time - target) < TOLERANCE_S:
                    frame.to_ndarray(format="rgb24")
                    found, out.frames_decoded = True, out.frames_decoded + 1
                    break
                if frame.time > target + TOLERANCE_S:
                    break
        except av.error.FFmpegError as exc:
            out.errors.append(f"{_where(path, key, seg, k)} does not decode ({type(exc).__name__}: {exc})")
            return False
        if not found:
            out.errors.append(f"{_where(path, key, seg, k)} does not decode at t={target:.4f}s")
            return False
    return True


def _decode_all(container, stream, path, key, segments: list[Segment], fps, out: VideoCheck) -> None:
    """Decode every packet in order; the first packet or frame that fails is named by its episode and frame."""
    starts = np.asarray([s.start for s in segments])

    def locate(t: float) -> tuple[Segment, int]:
        i = max(0, int(np.searchsorted(starts, t + TOLERANCE_S, side="right")) - 1)
        seg = segments[i]
        return seg, round((t - seg.start) * fps)

    expected = {(s.episode, k) for s in segments for k in range(s.length)}
    container.seek(0, stream=stream, backward=True, any_frame=False)
    tb = stream.time_base

    def take(frames) -> None:
        for frame in frames:
            if frame.pts is None:
                continue
            frame.to_ndarray(format="rgb24")
            seg, k = locate(float(frame.pts * tb))
            expected.discard((seg.episode, k))
            out.frames_decoded += 1

    for packet in container.demux(stream):
        try:
            take(packet.decode())
        except av.error.FFmpegError as exc:
            if packet.pts is None:
                out.errors.append(f"{path}: {key} does not decode ({type(exc).__name__}: {exc})")
            else:
                seg, k = locate(float(packet.pts * tb))
                out.errors.append(f"{_where(path, key, seg, k)} does not decode ({type(exc).__name__}: {exc})")
            return
    try:
        take(stream.codec_context.decode(None))
    except av.error.EOFError:  # demux's final empty packet already drained the decoder
        pass
    except av.error.FFmpegError as exc:
        out.errors.append(f"{path}: {key} the last frames do not decode ({type(exc).__name__}: {exc})")
        return
    if expected:
        ep, k = min(expected, key=lambda e: (next(s.start for s in segments if s.episode == e[0]), e[1]))
        seg = next(s for s in segments if s.episode == ep)
        out.errors.append(
            f"{_where(path, key, seg, k)} does not decode ({len(expected)} frame(s) of the file gave no picture)"
        )
