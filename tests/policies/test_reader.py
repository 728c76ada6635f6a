"""Reading datasets for training: EpisodeReader (ours and LeRobot-written, episodes sharing files) and ChunkDataset."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from policies.data import ChunkDataset, collate, make_dataloader, normalization_stats
from policies.dataset import DatasetWriter
from policies.dataset.reader import EpisodeReader
from tests.conftest import require

FPS = 30
LENGTHS = [12, 7, 9]
NAMES = ["j1", "j2", "j3", "j4", "j5", "gripper"]
FRONT, WRIST = "observation.images.front", "observation.images.wrist"


def front_level(i: int) -> int:  # the front camera's gray level encodes the frame index
    return 20 + 8 * i


def wrist_level(ep: int) -> int:  # the wrist camera's gray level encodes the episode
    return 30 + 60 * ep


def state(ep: int, i: int) -> np.ndarray:
    return np.arange(6, dtype=np.float32) + 1000 * ep + i


def action(ep: int, i: int) -> np.ndarray:
    return -state(ep, i)


def task(ep: int) -> str:
    return f"task {ep % 2}"


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ours") / "ds"
    cam = {"dtype": "video", "shape": (96, 96, 3), "names": ["height", "width", "channels"]}
    features = {
        "observation.state": {"dtype": "float32", "shape": (6,), "names": NAMES},
        "action": {"dtype": "float32", "shape": (6,), "names": NAMES},
        FRONT: cam,
        WRIST: cam,
    }
    with DatasetWriter.create(root, fps=FPS, features=features, robot_type="so_follower") as w:
        for ep, n in enumerate(LENGTHS):
            for i in range(n):
                w.add_frame(
                    {
                        "observation.state": state(ep, i),
                        "action": action(ep, i),
                        FRONT: np.full((96, 96, 3), front_level(i), np.uint8),
                        WRIST: np.full((96, 96, 3), wrist_level(ep), np.uint8),
                    }
                )
            w.save_episode(task(ep))
    return root


@pytest.fixture(scope="module")
def lerobot_written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Written by LeRobot 0.4.4 itself: all episodes in one data parquet and one mp4 per camera."""
    mod = require("lerobot.datasets.lerobot_dataset", "interop")
    root = tmp_path_factory.mktemp("lerobot") / "ds"
    cam = {"dtype": "video", "shape": (64, 96, 3), "names": ["height", "width", "channels"]}
    features = {
        "observation.state": {"dtype": "float32", "shape": (6,), "names": NAMES},
        "action": {"dtype": "float32", "shape": (6,), "names": NAMES},
        FRONT: cam,
    }
    ds = mod.LeRobotDataset.create(
        repo_id="local/test", fps=FPS, features=features, root=root, use_videos=True, vcodec="h264"
    )
    for ep, n in enumerate(LENGTHS):
        for i in range(n):
            img = np.full((64, 96, 3), front_level(i), np.uint8)
            img[..., 1] = wrist_level(ep)  # green encodes the episode
            ds.add_frame({"observation.state": state(ep, i), "action": action(ep, i), FRONT: img, "task": task(ep)})
        ds.save_episode()
    ds.finalize()
    return root


def check_episodes(reader: EpisodeReader, cams: dict[str, str]) -> None:
    """Rows and frames of every episode are the recorded ones. ``cams``: key -> "front" / "wrist" / "green"."""
    assert reader.num_episodes == len(LENGTHS) and reader.num_frames == sum(LENGTHS)
    assert reader.fps == FPS and reader.tasks == ["task 0", "task 1"]
    start = 0
    for ep, n in enumerate(LENGTHS):
        meta = reader.episodes[ep]
        assert (meta.length, meta.from_index, meta.to_index) == (n, start, start + n)
        e = reader.episode(ep)
        assert e.length == n and e.task == task(ep)
        np.testing.assert_array_equal(e.state, np.stack([state(ep, i) for i in range(n)]))
        np.testing.assert_array_equal(e.action, np.stack([action(ep, i) for i in range(n)]))
        np.testing.assert_array_equal(e.columns["frame_index"], np.arange(n))
        np.testing.assert_array_equal(e.columns["index"], np.arange(start, start + n))
        for key, kind in cams.items():
            frames = reader.frames(ep, key)
            assert frames.dtype == np.uint8 and frames.shape == (n, *reader.camera_shape(key))
            for i in range(n):  # levels 8 apart (frame) and 60 apart (episode): these tolerances identify them
                img = frames[i].astype(np.float64)
                if kind == "front":
                    assert abs(img.mean() - front_level(i)) < 3.5, (ep, i, key, img.mean())
                elif kind == "wrist":
                    assert abs(img.mean() - wrist_level(ep)) < 10, (ep, i, key, img.mean())
                else:  # red = frame, green = episode
                    assert abs(img[..., 0].mean() - front_level(i)) < 3.5, (ep, i, key, img[..., 0].mean())
                    assert abs(img[..., 1].mean() - wrist_level(ep)) < 10, (ep, i, key, img[..., 1].mean())
        start += n


def test_reader_imports_no_torch() -> None:
    code = "import sys, policies.dataset.reader; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_reads_our_dataset(ours: Path) -> None:
    reader = EpisodeReader(ours)
    assert reader.camera_keys == [FRONT, WRIST]
    check_episodes(reader, {FRONT: "front", WRIST: "wrist"})
    assert reader.frames(1, FRONT) is reader.frames(1, FRONT)  # cached


def test_reads_lerobot_written_dataset_with_shared_files(lerobot_written: Path) -> None:
    reader = EpisodeReader(lerobot_written)
    assert {m.data_file for m in reader.episodes} == {(0, 0)}
    assert {m.videos[FRONT][:2] for m in reader.episodes} == {(0, 0)}
    assert reader.episodes[1].videos[FRONT][2] == pytest.approx(LENGTHS[0] / FPS)
    assert len(list((lerobot_written / "videos").rglob("*.mp4"))) == 1
    check_episodes(reader, {FRONT: "green"})
    # the episodes decoded in reverse order and without a cache give the same frames
    fresh = EpisodeReader(lerobot_written, cache_frames=False)
    for ep in reversed(range(len(LENGTHS))):
        np.testing.assert_array_equal(fresh.frames(ep, FRONT), reader.frames(ep, FRONT))
    # and LeRobot's own reader agrees with ours on the pixels
    mod = require("lerobot.datasets.lerobot_dataset", "interop")
    lr = mod.LeRobotDataset("local/test", root=lerobot_written, video_backend="pyav")
    for idx in (0, LENGTHS[0] - 1, LENGTHS[0], sum(LENGTHS) - 1):
        item = lr[idx]
        ep, i = int(item["episode_index"]), int(item["frame_index"])
        ours_chw = torch.from_numpy(reader.frames(ep, FRONT)[i]).permute(2, 0, 1).float() / 255
        assert (ours_chw - item[FRONT]).abs().max() < 2 / 255, idx


def test_stats(ours: Path, tmp_path: Path) -> None:
    reader = EpisodeReader(ours)
    on_disk = json.loads((ours / "meta/stats.json").read_text())
    stats = normalization_stats(reader)
    for key in ("observation.state", "action"):
        for name in ("mean", "std", "min", "max"):
            assert stats[key][name].dtype == np.float32 and stats[key][name].shape == (6,)
            np.testing.assert_allclose(stats[key][name], on_disk[key][name], rtol=1e-6)
    all_states = np.concatenate([reader.episode(e).state for e in range(len(LENGTHS))])
    np.testing.assert_allclose(stats["observation.state"]["mean"], all_states.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats["observation.state"]["std"], all_states.std(0), rtol=1e-5)
    assert stats["action"]["min"][0] == -(1000 * 2 + LENGTHS[2] - 1)
    # without meta/stats.json they are recomputed from the rows
    copy = tmp_path / "copy"
    shutil.copytree(ours, copy)
    (copy / "meta/stats.json").unlink()
    recomputed = normalization_stats(copy)
    for key in ("observation.state", "action"):
        for name in ("mean", "std", "min", "max"):
            np.testing.assert_allclose(recomputed[key][name], stats[key][name], rtol=1e-5)


def test_chunk_targets_and_padding(ours: Path) -> None:
    T = 5
    ds = ChunkDataset(ours, chunk_size=T)
    assert len(ds) == sum(LENGTHS)
    row = 0
    for ep, n in enumerate(LENGTHS):
        for i in range(n):
            item = ds[row]
            np.testing.assert_array_equal(item["observation.state"].numpy(), state(ep, i))
            steps = [min(i + k, n - 1) for k in range(T)]
            np.testing.assert_array_equal(item["action"].numpy(), np.stack([action(ep, s) for s in steps]))
            np.testing.assert_array_equal(item["action_is_pad"].numpy(), [i + k >= n for k in range(T)])
            assert item["task"] == task(ep)
            assert int(item["episode_index"]) == ep and int(item["frame_index"]) == i
            assert abs(float(item[FRONT].float().mean()) - front_level(i)) < 3.5
            assert abs(float(item[WRIST].float().mean()) - wrist_level(ep)) < 10
            row += 1
    # not caching decodes on demand and gives the same items
    lazy = ChunkDataset(EpisodeReader(ours, cache_frames=2), chunk_size=T, image_keys=[FRONT], cache=False)
    for idx in (0, 11, 12, len(ds) - 1):
        a, b = ds[idx], lazy[idx]
        assert WRIST not in b
        for key in ("observation.state", "action", "action_is_pad", FRONT):
            assert torch.equal(a[key], b[key]), (idx, key)


def test_batches(ours: Path, lerobot_written: Path) -> None:
    ds = ChunkDataset(ours, chunk_size=4, image_keys=[FRONT])
    batch = next(iter(make_dataloader(ds, batch_size=6, shuffle=True, seed=0)))
    assert batch["observation.state"].shape == (6, 6) and batch["observation.state"].dtype == torch.float32
    assert batch["action"].shape == (6, 4, 6) and batch["action"].dtype == torch.float32
    assert batch["action_is_pad"].shape == (6, 4) and batch["action_is_pad"].dtype == torch.bool
    assert batch[FRONT].shape == (6, 3, 96, 96) and batch[FRONT].dtype == torch.uint8
    assert (
        isinstance(batch["task"], list) and len(batch["task"]) == 6 and all(isinstance(t, str) for t in batch["task"])
    )
    assert WRIST not in batch
    # the batched path (__getitems__) and the item-by-item path agree
    items = [ds[int(i)] for i in range(6)]
    stacked = collate(items)
    gathered = ds.__getitems__(list(range(6)))
    for key, value in stacked.items():
        if key == "task":
            assert value == gathered[key]
        else:
            assert torch.equal(value, gathered[key]), key
    # float images in [0, 1], on a LeRobot-written dataset
    lr = ChunkDataset(lerobot_written, chunk_size=3, image_dtype="float32")
    batch = next(iter(make_dataloader(lr, batch_size=len(lr), shuffle=False)))
    assert batch[FRONT].shape == (sum(LENGTHS), 3, 64, 96) and batch[FRONT].dtype == torch.float32
    assert 0.0 <= float(batch[FRONT].min()) and float(batch[FRONT].max()) <= 1.0
    assert batch["action_is_pad"].sum() == len(LENGTHS) * (1 + 2)  # the last 2 frames of each episode pad 2 + 1


def test_frames_transformed_as_decoded(lerobot_written: Path) -> None:
    """``frames(..., transform)`` gives what decoding whole and transforming after gives, per frame, at the
    transform's size (training shrinks 640x480 episodes this way without holding them at full size), and does not
    touch the cache of untransformed frames."""
    from policies.features import resize_image

    reader = EpisodeReader(lerobot_written)
    for ep in range(reader.num_episodes):
        shrunk = reader.frames(ep, FRONT, lambda rgb: resize_image(rgb, (16, 24)))
        full = reader.frames(ep, FRONT)
        assert full.shape == (LENGTHS[ep], 64, 96, 3) and shrunk.shape == (LENGTHS[ep], 16, 24, 3)
        np.testing.assert_array_equal(shrunk, np.stack([resize_image(f, (16, 24)) for f in full]))
        assert reader.frames(ep, FRONT) is full  # the full-size frames are the cached ones
        # the content is the recorded one: gray level = frame index, green = episode (lossy video: a tolerance)
        assert np.abs(shrunk[..., 0].mean(axis=(1, 2)) - [front_level(i) for i in range(LENGTHS[ep])]).max() < 6
