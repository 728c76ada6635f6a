"""Videos of simulated episodes, for people: ``VideoEnv`` films an env with the scene's viewing camera (``overview``,
rendered at 640x480 only while a video is being recorded) beside the policy's own camera images (the observation's
``observation.images.*``: what the policy saw, at its size, enlarged by whole pixels); ``write_mp4`` writes RGB frames
to an MP4 that any player opens (H.264 via PyAV, no system FFmpeg needed)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sim.twin.cameras import RenderedCamera

if TYPE_CHECKING:
    from sim.envs.env import SO101Env

VIEW_CAMERA = "overview"  # scene.xml: in front of the arm and to its left; no policy sees it
VIEW_HEIGHT = 480  # the viewing camera's height (px); its width is 4/3 of it (640x480)
IMAGE_PREFIX = "observation.images."
BACKGROUND = 24  # grey level under and between the policy's views
VIDEO_THREADS = 2  # x264 encoder threads (see write_mp4)


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
                # a fixed thread count: x264's output depends on it, and by default it follows the CPUs this process may
                # use, so the same frames would give other bytes under another affinity (a pinned process, a Ray actor)
                stream.options = {"crf": str(crf), "preset": "veryfast", "threads": str(VIDEO_THREADS)}
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
            n += 1
        if stream is None:
            raise ValueError("no frames to write")
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(path)
    return path


def _fit(image: np.ndarray, height: int) -> np.ndarray:
    """``image`` at most ``height`` px tall: enlarged by the largest whole factor that fits (each pixel a k x k
    block, as the policy saw it), or reduced (nearest pixel) when it is taller than ``height``."""
    h, w = image.shape[:2]
    if h <= height:
        k = height // h
        return image if k == 1 else np.repeat(np.repeat(image, k, axis=0), k, axis=1)
    out_w = max(1, w * height // h)
    return image[(np.arange(height) * h) // height][:, (np.arange(out_w) * w) // out_w]


def compose(view: np.ndarray, images: Mapping[str, np.ndarray]) -> np.ndarray:
    """One video frame: ``view`` (HxWx3) on the left, the policy's ``images`` stacked top to bottom on the right
    (each fitted into an equal share of the height by ``_fit``), spaced evenly on a dark background."""
    height = view.shape[0]
    if not images:
        return view
    tiles = [_fit(np.asarray(img, np.uint8), height // len(images)) for img in images.values()]
    width = max(t.shape[1] for t in tiles)
    column = np.full((height, width, 3), BACKGROUND, np.uint8)
    gap = (height - sum(t.shape[0] for t in tiles)) // (len(tiles) + 1)
    y = gap
    for tile in tiles:
        h, w = tile.shape[:2]
        column[y : y + h, :w] = tile[..., :3] if tile.ndim == 3 else tile[..., None]
        y += h + gap
    return np.concatenate([view, column], axis=1)


class VideoEnv:
    """``env`` filmed: after every reset and step while ``recording``, ``frames`` gets one frame, the viewing camera
    (``camera``, ``height`` px tall, 4:3) beside the observation's camera images (``compose``). The viewing camera's
    renderer is made on the first recorded frame and renders only for recorded frames, so an env that records no
    video pays nothing for it."""

    def __init__(self, env: SO101Env, height: int = VIEW_HEIGHT, *, camera: str = VIEW_CAMERA):
        self.env = env
        base = self.unwrapped
        self.view = RenderedCamera(
            base.world, camera, name="video_view", height=height, width=height * 4 // 3, fps=base.fps
        )
        self.recording = False
        self.frames: list[np.ndarray] = []

    @property
    def unwrapped(self) -> SO101Env:
        return self.env.unwrapped if hasattr(self.env, "unwrapped") else self.env

    def _grab(self, obs: Mapping) -> None:
        if not self.recording:
            return
        if not self.view.is_connected:
            self.view.connect()
        images = {k[len(IMAGE_PREFIX) :]: v for k, v in obs.items() if k.startswith(IMAGE_PREFIX)}
        self.frames.append(compose(self.view.read_latest().rgb, images))

    def reset(self, **kwargs):
        out = self.env.reset(**kwargs)
        self._grab(out[0])
        return out

    def step(self, action):
        out = self.env.step(action)
        self._grab(out[0])
        return out

    def close(self) -> None:
        self.view.disconnect()
