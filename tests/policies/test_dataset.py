"""Our LeRobotDataset v3.0 writer: LeRobot 0.4.4 loads what it writes, frame-accurately, and a killed recording
loses only the episode in progress."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from policies.dataset import DatasetWriter, EncoderBehindError, info, layout, repair, verify
from policies.dataset.stats import ImageStatsAccumulator
from tests.conftest import require

FPS = 30
N = 40
NAMES = ["j1", "j2", "j3", "j4", "j5", "gripper"]
CAM = {"dtype": "video", "shape": (96, 96, 3), "names": ["height", "width", "channels"]}
FEATURES = {
    "observation.state": {"dtype": "float32", "shape": (6,), "names": NAMES},
    "action": {"dtype": "float32", "shape": (6,), "names": NAMES},
    "observation.images.front": CAM,
    "observation.images.wrist": CAM,
}


def front_level(i: int) -> int:  # the front camera's gray level encodes the frame index
    return 20 + 5 * i


def wrist_level(ep: int) -> int:  # the wrist camera's gray level encodes the episode
    return 20 + 45 * ep


def make_frame(ep: int, i: int) -> dict:
    front = np.full((96, 96, 3), front_level(i), np.uint8)
    wrist = np.full((96, 96, 3), wrist_level(ep), np.uint8)
    return {
        "observation.state": np.arange(6, dtype=np.float32) + 1000 * ep + i,
        "action": -(np.arange(6, dtype=np.float32) + 1000 * ep + i),
        "observation.images.front": front,
        "observation.images.wrist": wrist,
    }


def record(writer: DatasetWriter, ep: int, n: int = N) -> None:
    for i in range(n):
        writer.add_frame(make_frame(ep, i), t_capture=100.0 + ep + i / FPS)
    writer.save_episode(f"task {ep % 2}")


def load_lerobot(root: Path):
    mod = require("lerobot.datasets.lerobot_dataset", "interop")
    return mod.LeRobotDataset("local/test", root=root, video_backend="pyav")


def check_lerobot(root: Path, episodes: int, every: int = 1) -> None:
    ds = load_lerobot(root)
    assert ds.num_episodes == episodes
    assert len(ds) == ds.num_frames == episodes * N
    assert ds.fps == FPS
    assert ds.meta.robot_type == "so_follower"
    for key in FEATURES:
        assert key in ds.features
        assert tuple(ds.features[key]["shape"]) == tuple(FEATURES[key]["shape"])
    assert list(ds.meta.tasks.index) == ["task 0", "task 1"][: min(episodes, 2)]
    assert ds.meta.stats["observation.images.front"]["mean"].shape == (3, 1, 1)
    for idx in range(0, len(ds), every):
        ep, i = divmod(idx, N)
        item = ds[idx]
        assert item["episode_index"].item() == ep and item["frame_index"].item() == i
        assert item["timestamp"].item() == pytest.approx(i / FPS, abs=1e-6)
        np.testing.assert_array_equal(item["observation.state"].numpy(), make_frame(ep, i)["observation.state"])
        np.testing.assert_array_equal(item["action"].numpy(), make_frame(ep, i)["action"])
        assert item["task"] == f"task {ep % 2}"
        assert item["observation.images.front"].shape == (3, 96, 96)
        front = float(item["observation.images.front"].mean()) * 255
        wrist = float(item["observation.images.wrist"].mean()) * 255
        assert abs(front - front_level(i)) < 2.0, (idx, front)
        assert abs(wrist - wrist_level(ep)) < 2.0, (idx, wrist)


@pytest.fixture
def three_episodes(tmp_path: Path) -> Path:
    root = tmp_path / "ds"
    with DatasetWriter.create(root, fps=FPS, features=FEATURES, robot_type="so_follower") as w:
        for ep in range(3):
            record(w, ep)
    return root


def test_lerobot_loads_what_we_write(three_episodes: Path) -> None:
    root = three_episodes
    report = verify(root, decode_frames=N)
    assert report.ok, str(report)
    assert not report.warnings, str(report)
    assert report.episodes == 3 and report.frames == 3 * N
    assert report.frames_decoded == 3 * 2 * N
    meta = json.loads((root / layout.INFO_PATH).read_text())
    assert meta["total_episodes"] == 3 and meta["total_frames"] == 3 * N and meta["total_tasks"] == 2
    assert meta["features"]["observation.images.front"]["info"]["video.pix_fmt"] == "yuv420p"
    assert list(meta["features"])[-5:] == ["timestamp", "frame_index", "episode_index", "index", "task_index"]
    stats = json.loads((root / layout.STATS_PATH).read_text())
    assert np.asarray(stats["observation.images.wrist"]["q50"]).shape == (3, 1, 1)
    assert stats["observation.state"]["count"] == [3 * N]
    assert stats["observation.state"]["min"] == pytest.approx([0, 1, 2, 3, 4, 5])
    assert stats["observation.state"]["max"] == pytest.approx([2039, 2040, 2041, 2042, 2043, 2044])
    assert stats["observation.images.wrist"]["max"][0][0][0] == pytest.approx(wrist_level(2) / 255, abs=2 / 255)
    check_lerobot(root, 3)
    assert "3 episodes, 120 frames at 30 fps" in info(root)


def test_resume_and_discard(three_episodes: Path) -> None:
    root = three_episodes
    with DatasetWriter.resume(root) as w:
        assert w.num_episodes == 3 and w.num_frames == 3 * N
        for i in range(10):  # a botched take, re-recorded
            w.add_frame(make_frame(4, i))
        w.discard_episode()
        record(w, 3)
        for i in range(5):  # left unsaved at close: discarded
            w.add_frame(make_frame(4, i))
    assert not list(root.rglob("*" + layout.PARTIAL))
    report = verify(root)
    assert report.ok and not report.warnings, str(report)
    check_lerobot(root, 4, every=3)
    stats = json.loads((root / layout.STATS_PATH).read_text())
    assert stats["observation.state"]["count"] == [4 * N]
    assert stats["observation.state"]["max"] == pytest.approx([3039, 3040, 3041, 3042, 3043, 3044])


def test_frames_are_validated(tmp_path: Path) -> None:
    w = DatasetWriter.create(tmp_path / "ds", fps=FPS, features=FEATURES)
    frame = make_frame(0, 0)
    with pytest.raises(ValueError, match="missing"):
        w.add_frame({k: v for k, v in frame.items() if k != "action"})
    with pytest.raises(ValueError, match="shape"):
        w.add_frame({**frame, "action": np.zeros(5, np.float32)})
    with pytest.raises(ValueError, match="uint8"):
        w.add_frame({**frame, "observation.images.front": np.zeros((96, 96, 3), np.float32)})
    with pytest.raises(RuntimeError, match="no frames"):
        w.save_episode("t")
    w.close()
    with pytest.raises(FileExistsError):
        DatasetWriter.create(tmp_path / "ds", fps=FPS, features=FEATURES)
    with pytest.raises(ValueError, match="image"):
        DatasetWriter.create(tmp_path / "img", fps=FPS, features={"observation.images.x": {**CAM, "dtype": "image"}})


def test_encoder_falling_behind_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An encoder that cannot keep up: each camera's encoder thread is held inside its first frame (a gate in the
    per-frame image statistics, which the thread runs after encoding), so its queue fills on a schedule set by the
    test, not by the machine's speed. add_frame never waits: the frame that finds the queue full raises."""
    entered = threading.Semaphore(0)
    gate = threading.Event()
    update = ImageStatsAccumulator.update

    def held(self, img):  # in the encoder threads
        entered.release()
        gate.wait(60)
        update(self, img)

    monkeypatch.setattr(ImageStatsAccumulator, "update", held)
    w = DatasetWriter.create(tmp_path / "ds", fps=FPS, features=FEATURES, queue_size=2)
    try:
        w.add_frame(make_frame(0, 0))
        for _ in [k for k, ft in FEATURES.items() if ft["dtype"] == "video"]:  # one thread per camera
            assert entered.acquire(timeout=30), "an encoder thread never took its first frame"
        w.add_frame(make_frame(0, 1))  # each queue: 1 of 2
        w.add_frame(make_frame(0, 2))  # 2 of 2
        with pytest.raises(EncoderBehindError, match="fell behind: 2 frames are waiting"):
            w.add_frame(make_frame(0, 3))
        assert w.episode_frames == 3
    finally:
        gate.set()
    w.discard_episode()
    w.close()
    assert not list((tmp_path / "ds").rglob("*.mp4*"))


def test_capture_time_column_loads(tmp_path: Path) -> None:
    root = tmp_path / "ds"
    kwargs = {"fps": FPS, "features": FEATURES, "robot_type": "so_follower", "record_capture_time": True}
    with DatasetWriter.create(root, **kwargs) as w:
        record(w, 0)
    assert verify(root).ok
    ds = load_lerobot(root)
    assert ds[7]["capture_time"].item() == pytest.approx(100.0 + 7 / FPS)
    table = pq.read_table(root / "data/chunk-000/file-000.parquet")
    assert table.schema.field("capture_time").type == "double"


def test_crash_during_commit_leaves_loadable_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Killed after the episode's files were renamed into place but before info.json was updated."""
    root = tmp_path / "ds"
    w = DatasetWriter.create(root, fps=FPS, features=FEATURES, robot_type="so_follower")
    record(w, 0)
    record(w, 1)
    real = layout.write_json_atomic

    def crash_on_info(path: Path, data: object) -> None:
        if path.name == "info.json":
            raise KeyboardInterrupt("simulated kill")
        real(path, data)

    monkeypatch.setattr(layout, "write_json_atomic", crash_on_info)
    with pytest.raises(KeyboardInterrupt):
        record(w, 2)
    monkeypatch.undo()
    assert (root / "data/chunk-000/file-002.parquet").exists()  # an uncommitted episode's files
    report = verify(root)
    assert report.ok, str(report)
    check_lerobot(root, 2, every=5)
    fixed = repair(root)
    # episode 2's data, episodes metadata and 2 videos; stats.json (which already counted episode 2) is rewritten
    assert len(fixed.removed) == 4 and fixed.rewrote_stats, str(fixed)
    assert json.loads((root / layout.STATS_PATH).read_text())["action"]["count"] == [2 * N]
    with DatasetWriter.resume(root) as w2:
        record(w2, 2)
    assert verify(root).ok
    check_lerobot(root, 3, every=5)


CHILD = textwrap.dedent(
    """
    import faulthandler, sys, time
    from pathlib import Path

    faulthandler.dump_traceback_later(150, exit=True)  # stuck: every thread's stack on stderr, then exit
    from tests.policies.test_dataset import FEATURES, FPS, N, make_frame, record
    from policies.dataset import DatasetWriter, layout

    root, marker = Path(sys.argv[1]), Path(sys.argv[2])
    w = DatasetWriter.create(root, fps=FPS, features=FEATURES, robot_type="so_follower")
    record(w, 0)
    record(w, 1)
    # Episode 2, never saved. An encoder's file appears when it muxes its first packet, and SVT-AV1 holds back a
    # varying number of frames before the first one: feed frames, at the camera's pace, until both files exist.
    deadline, i = time.monotonic() + 120, 0  # generous: the machine may be loaded
    while len(list(root.rglob("*.mp4" + layout.PARTIAL))) < 2:
        assert time.monotonic() < deadline, f"the encoders never wrote episode 2's videos ({i} frames fed)"
        w.add_frame(make_frame(2, i % N))
        i += 1
        time.sleep(1 / FPS)
    faulthandler.cancel_dump_traceback_later()
    marker.write_text("mid-episode")
    time.sleep(600)  # killed here, the episode in progress
    """
)


def test_sigkill_mid_episode_loses_only_that_episode(tmp_path: Path) -> None:
    root, marker = tmp_path / "ds", tmp_path / "marker"
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root), str(marker)],
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(repo)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 240  # generous (the machine may be loaded), and inside pytest's timeout
        while not marker.exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-8000:] if proc.stderr else ""
            assert time.monotonic() < deadline, "the recorder never reached episode 3"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    report = verify(root)  # loads as is; leftovers of episode 2 are only warnings
    assert report.ok, str(report)
    assert report.episodes == 2
    assert any("leftover" in w for w in report.warnings), str(report)
    check_lerobot(root, 2, every=3)
    fixed = repair(root)
    assert len(fixed.removed) == 2, str(fixed)  # episode 2's two unfinished videos
    assert all(p.name.endswith(".mp4" + layout.PARTIAL) for p in fixed.removed), str(fixed)
    report = verify(root)
    assert report.ok and not report.warnings, str(report)
    check_lerobot(root, 2, every=7)
    with DatasetWriter.resume(root) as w:
        record(w, 2)
    check_lerobot(root, 3, every=7)


def test_no_torch_or_lerobot_import() -> None:
    code = "import sys, policies.dataset; bad = [m for m in ('torch', 'lerobot') if m in sys.modules]; print(bad)"
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
