"""Datasets written by LeRobot 0.4.4 itself (``LeRobotDataset.create`` + ``add_frame`` / ``save_episode``), in the
layout it writes: several episodes per data, video and episodes-metadata file. The features are those our simulated
rig records (``robot.record.dataset_features``: the SO-101's joint names, the front and wrist cameras, so_follower,
30 fps), so that ``onboard record --resume`` may continue them. Frame i of episode e: state = 100 e + i (action its
negative), the front camera's gray level 10 i, the wrist camera's 40 e + 20."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tests.conftest import require

NAMES = [f"{j}.pos" for j in ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")]
FPS = 30


def features(size: int = 96) -> dict[str, dict]:
    cam = {"dtype": "video", "shape": (size, size, 3), "names": ["height", "width", "channels"]}
    vec = {"dtype": "float32", "shape": (6,), "names": NAMES}
    return {
        "observation.state": dict(vec),
        "action": dict(vec),
        "observation.images.front": dict(cam),
        "observation.images.wrist": dict(cam),
    }


def frame(ep: int, i: int, size: int = 96) -> dict[str, np.ndarray]:
    return {
        "observation.state": np.full(6, 100 * ep + i, np.float32),
        "action": np.full(6, -(100 * ep + i), np.float32),
        "observation.images.front": np.full((size, size, 3), 10 * i, np.uint8),
        "observation.images.wrist": np.full((size, size, 3), 40 * ep + 20, np.uint8),
    }


def lerobot_dataset_class():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return require("lerobot.datasets.lerobot_dataset", "interop").LeRobotDataset


def make(root: Path, episodes: int = 3, frames: int = 20, *, size: int = 96, finalize: bool = True):
    """Write ``episodes`` episodes with LeRobot's own writer into ``root`` (which must not exist)."""
    ds = lerobot_dataset_class().create(
        repo_id="local/lerobot_made", fps=FPS, features=features(size), root=root, robot_type="so_follower"
    )
    for ep in range(episodes):
        for i in range(frames):
            ds.add_frame({**frame(ep, i, size), "task": f"task {ep % 2}"})
        ds.save_episode()
    if finalize:
        ds.finalize()
    return ds


def load(root: Path):
    """The dataset as LeRobot reads it, decoded with PyAV (what a LeRobot install without FFmpeg's shared libraries
    needs; the dev install has them, and tests/interop/test_lerobot_plugins.py decodes with torchcodec)."""
    return lerobot_dataset_class()("local/lerobot_made", root=root, video_backend="pyav")
