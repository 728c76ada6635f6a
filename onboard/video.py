"""Videos of simulated episodes: ``VideoEnv`` records the front and wrist views of an env side by side at a readable
size (not the policy's small input images); ``write_mp4`` writes RGB frames to an MP4 that any player opens (H.264
via PyAV, no system FFmpeg needed)."""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sim.twin.cameras import RenderedCamera

if TYPE_CHECKING:
    from sim.envs.env import SO101Env


def write_mp4(path: str | Path, frames: Iterable[np.ndarray], fps: float = 30.0, *, crf: int = 23) -> Path:
    """Encode uint8 HxWx3 RGB frames (even width/height; odd sizes are padded) to ``path``. Returns the path."""
    import av  # the `sim` extra

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".part")
    n = 0
    with av.open(str(tmp), mode="w", format="mp4") as container:
        stream = None
        for frame in frames:
            frame = np.ascontiguousarray(frame, dtype=np.uint8)
            h, w = frame.shape[:2]
            if h % 2 or w % 2:  # yuv420p needs even sizes
                frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            if stream is None:
                stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
                stream.height, stream.width = frame.shape[:2]
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": str(crf), "preset": "veryfast"}
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
            n += 1
        if stream is None:
            raise ValueError("no frames to write")
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(path)
    return path


class VideoEnv:
    """``env`` with two extra cameras (front and wrist, larger than the policy's) read after every reset and step
    while ``recording``; ``frames`` holds the side-by-side views."""

    def __init__(self, env: SO101Env, size: int):
        self.env = env
        self.front = RenderedCamera(
            env.world, "front", name="eval_front", height=size, width=size * 4 // 3, fps=env.fps
        )
        self.wrist = RenderedCamera(env.world, "wrist", name="eval_wrist", height=size, width=size, fps=env.fps)
        self.front.connect()
        self.wrist.connect()
        self.recording = False
        self.frames: list[np.ndarray] = []

    @property
    def unwrapped(self) -> SO101Env:
        return self.env

    def _grab(self) -> None:
        if self.recording:
            self.frames.append(np.concatenate([self.front.read_latest().rgb, self.wrist.read_latest().rgb], axis=1))

    def reset(self, **kwargs):
        out = self.env.reset(**kwargs)
        self._grab()
        return out

    def step(self, action):
        out = self.env.step(action)
        self._grab()
        return out

    def close(self) -> None:
        self.front.disconnect()
        self.wrist.disconnect()
