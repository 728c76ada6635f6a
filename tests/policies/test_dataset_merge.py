"""policies/dataset/merge.py and `onboard dataset merge`: shards written by our writer become one dataset that
`onboard dataset verify` passes and LeRobot 0.4.4's reader loads, episode by episode and frame by frame; shards that
differ or were left unclean are refused, and nothing is left behind."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from onboard.cli import main
from policies.dataset import DatasetWriter, verify
from policies.dataset.merge import MergeError, merge
from policies.dataset.reader import EpisodeReader
from tests.conftest import require

NAMES = [f"j{i}.pos" for i in range(6)]
FEATURES = {
    "observation.state": {"dtype": "float32", "shape": (6,), "names": NAMES},
    "action": {"dtype": "float32", "shape": (6,), "names": NAMES},
    "observation.images.front": {"dtype": "video", "shape": (32, 32, 3), "names": ["height", "width", "channels"]},
}
FPS = 30


def state(shard: int, ep: int, i: int) -> np.ndarray:
    return np.full(6, 100 * shard + 10 * ep + i, np.float32)


def make_shard(root: Path, shard: int, episodes: list[tuple[int, str]], features=FEATURES) -> None:
    """A dataset of ``episodes`` [(frames, task)], values that name shard, episode and frame."""
    with DatasetWriter.create(root, fps=FPS, features=features, robot_type="so_follower") as w:
        for ep, (n, task) in enumerate(episodes):
            for i in range(n):
                frame = {"observation.state": state(shard, ep, i), "action": state(shard, ep, i) + 1}
                if "observation.images.front" in features:
                    frame["observation.images.front"] = np.full((32, 32, 3), 40 * shard + 8 * ep, np.uint8)
                w.add_frame(frame)
            w.save_episode(task)


SHARDS = [
    [(6, "pick up the red cube"), (5, "touch the blue cube")],
    [(7, "touch the blue cube"), (4, "place the green cube")],
    [(3, "pick up the red cube")],
]
# the merged dataset's episodes: (shard, episode in the shard, frames, task)
MERGED = [(s, e, n, t) for s, eps in enumerate(SHARDS) for e, (n, t) in enumerate(eps)]
TASKS = ["pick up the red cube", "touch the blue cube", "place the green cube"]


@pytest.fixture(scope="module")
def merged(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("merge")
    shards = []
    for s, eps in enumerate(SHARDS):
        make_shard(tmp / f"shard-{s}", s, eps)
        shards.append(tmp / f"shard-{s}")
    report = merge(tmp / "out", shards)
    return tmp / "out", report


def test_merged_dataset_is_whole_and_verifies(merged):
    root, report = merged
    assert (report.episodes, report.frames, report.tasks) == (5, 25, TASKS)
    assert report.per_shard == [2, 2, 1]
    result = verify(root, full=True)
    assert result.ok, str(result)
    info = json.loads((root / "meta" / "info.json").read_text())
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (5, 25, 3)
    assert info["splits"] == {"train": "0:5"}
    reader = EpisodeReader(root)
    start = 0
    for ep, (s, e, n, task) in enumerate(MERGED):
        episode = reader.episode(ep)
        assert episode.task == task and episode.length == n
        np.testing.assert_array_equal(episode.state, [state(s, e, i) for i in range(n)])
        np.testing.assert_array_equal(episode.columns["index"], np.arange(start, start + n))
        start += n
    assert not list(root.parent.glob(".out.merging*"))


def test_lerobot_loads_the_merged_dataset(merged):
    root, _ = merged
    mod = require("lerobot.datasets.lerobot_dataset", "interop")
    ds = mod.LeRobotDataset("local/merged", root=root, video_backend="pyav")
    assert ds.num_episodes == 5 and len(ds) == ds.num_frames == 25
    assert list(ds.meta.tasks.index) == TASKS
    idx = 0
    for ep, (s, e, n, task) in enumerate(MERGED):
        for i in range(n):
            item = ds[idx]
            assert item["episode_index"].item() == ep and item["frame_index"].item() == i
            assert item["index"].item() == idx and item["task"] == task
            np.testing.assert_array_equal(item["observation.state"].numpy(), state(s, e, i))
            grey = float(item["observation.images.front"].mean()) * 255
            assert grey == pytest.approx(40 * s + 8 * e, abs=3)
            idx += 1


def test_cli_merge_and_refusals(tmp_path, capsys):
    make_shard(tmp_path / "a", 0, [(4, "task a")])
    make_shard(tmp_path / "b", 1, [(5, "task b")])
    out = tmp_path / "ab"
    assert main(["dataset", "merge", str(out), str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    assert "2 episodes, 9 frames" in capsys.readouterr().out
    assert main(["dataset", "verify", str(out)]) == 0
    capsys.readouterr()

    assert main(["dataset", "merge", str(out), str(tmp_path / "a")]) == 2  # never over an existing folder
    assert "already exists" in capsys.readouterr().err

    no_video = {k: v for k, v in FEATURES.items() if v["dtype"] != "video"}
    make_shard(tmp_path / "c", 2, [(3, "task c")], features=no_video)
    assert main(["dataset", "merge", str(tmp_path / "ac"), str(tmp_path / "a"), str(tmp_path / "c")]) == 2
    assert "observation.images.front" in capsys.readouterr().err
    assert not (tmp_path / "ac").exists() and not list(tmp_path.glob(".ac.merging*"))

    (tmp_path / "b" / "data" / "chunk-000" / "file-001.parquet.partial").write_bytes(b"half an episode")
    with pytest.raises(MergeError, match="onboard dataset repair"):
        merge(tmp_path / "ab2", [tmp_path / "a", tmp_path / "b"])


def test_merges_lerobots_layout_with_ours(tmp_path):
    """A LeRobot-written dataset (several episodes per data, video and metadata file) and one of ours merge."""
    from tests.policies import lerobot_made as L

    L.make(tmp_path / "lerobot", episodes=2, frames=5, size=32)
    with DatasetWriter.create(tmp_path / "ours", fps=L.FPS, features=L.features(32), robot_type="so_follower") as w:
        for i in range(3):
            w.add_frame(L.frame(5, i, 32))
        w.save_episode("task 1")
    report = merge(tmp_path / "out", [tmp_path / "lerobot", tmp_path / "ours"])
    assert (report.episodes, report.frames, report.tasks) == (3, 13, ["task 0", "task 1"])
    assert verify(tmp_path / "out", full=True).ok
    ds = L.load(tmp_path / "out")
    assert ds.num_episodes == 3 and len(ds) == 13
    want = [(ep, 100 * ep + i) for ep in range(2) for i in range(5)] + [(2, 500 + i) for i in range(3)]
    got = [(ds[k]["episode_index"].item(), float(ds[k]["observation.state"][0])) for k in range(len(ds))]
    assert got == want
    assert [ds[k]["task"] for k in (0, 5, 10)] == ["task 0", "task 1", "task 1"]
