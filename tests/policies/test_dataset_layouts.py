"""LeRobot's own layouts are first-class: a dataset LeRobot 0.4.4 wrote (several episodes per data, video and
episodes-metadata file) passes verify, is read frame-accurately, is continued by our writer in new files that
LeRobot then loads, and LeRobot continues what we wrote; an unfinalised one is named for what it is; ``--full``
finds a video that stops decoding after its first frames."""

from __future__ import annotations

import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from policies.dataset import DatasetReadError, DatasetWriter, EpisodeReader, info, repair, verify
from tests.policies import lerobot_made as lm

N = 20  # frames per episode
FRONT, WRIST = "observation.images.front", "observation.images.wrist"


@pytest.fixture(scope="module")
def lerobot_3(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lr") / "ds"
    lm.make(root, episodes=3, frames=N)
    return root


def files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def check_episode(reader: EpisodeReader, ep: int) -> None:
    e = reader.episode(ep)
    np.testing.assert_array_equal(e.state[:, 0], 100 * ep + np.arange(N))
    np.testing.assert_array_equal(e.action[:, 3], -(100 * ep + np.arange(N)))
    assert e.task == f"task {ep % 2}"
    front = reader.frames(ep, FRONT).mean(axis=(1, 2, 3))
    assert np.abs(front - 10 * np.arange(N)).max() < 3, (ep, front)
    assert abs(reader.frames(ep, WRIST).mean() - (40 * ep + 20)) < 3


def check_lerobot(root: Path, episodes: int) -> None:
    ds = lm.load(root)
    assert ds.num_episodes == episodes and len(ds) == episodes * N
    for idx in range(0, len(ds), 3):
        ep, i = divmod(idx, N)
        item = ds[idx]
        assert item["episode_index"].item() == ep and item["frame_index"].item() == i
        assert item["observation.state"][0].item() == 100 * ep + i
        assert abs(float(item[FRONT].mean()) * 255 - 10 * i) < 3, idx
        assert abs(float(item[WRIST].mean()) * 255 - (40 * ep + 20)) < 3, idx


def test_lerobot_layout_verifies_reads_and_resumes_both_ways(lerobot_3: Path, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    shutil.copytree(lerobot_3, root)
    # LeRobot's layout: all three episodes share one file of each kind
    assert [f for f in files(root) if f.endswith((".parquet", ".mp4"))] == [
        "data/chunk-000/file-000.parquet",
        "meta/episodes/chunk-000/file-000.parquet",
        "meta/tasks.parquet",
        f"videos/{FRONT}/chunk-000/file-000.mp4",
        f"videos/{WRIST}/chunk-000/file-000.mp4",
    ]
    report = verify(root, full=True)
    assert report.ok and not report.warnings, str(report)
    assert report.frames_decoded == 3 * N * 2  # every frame of both concatenated videos
    assert verify(root).ok
    assert "3 episodes, 60 frames at 30 fps" in info(root)
    before = files(root)
    fixed = repair(root)
    assert not fixed.changed and not fixed.problems, str(fixed)  # nothing of LeRobot's files is a leftover
    assert files(root) == before
    reader = EpisodeReader(root)
    for ep in range(3):
        check_episode(reader, ep)

    with DatasetWriter.resume(root) as w:  # ours continues LeRobot's: each new episode in its own new files
        for ep in (3, 4):
            for i in range(N):
                w.add_frame(lm.frame(ep, i))
            w.save_episode(f"task {ep % 2}")
    assert "data/chunk-000/file-003.parquet" in files(root) and f"videos/{WRIST}/chunk-000/file-004.mp4" in files(root)
    report = verify(root, full=True)
    assert report.ok and not report.warnings, str(report)
    check_lerobot(root, 5)

    ds = lm.load(root)  # and LeRobot continues ours, after our files
    for i in range(N):
        ds.add_frame({**lm.frame(5, i), "task": "task 1"})
    ds.save_episode()
    ds.finalize()
    assert "data/chunk-000/file-005.parquet" in files(root)
    report = verify(root, full=True)
    assert report.ok and not report.warnings, str(report)
    reader = EpisodeReader(root)
    for ep in range(6):
        check_episode(reader, ep)
    assert not repair(root).changed


def test_unfinalised_lerobot_recording_is_named_not_guessed(tmp_path: Path) -> None:
    """LeRobot keeps the episodes metadata in memory (and the data parquet's footer unwritten) until finalize():
    a recording killed before then has videos and info.json but no readable rows. verify says so, repair touches
    nothing, resume refuses with the reason."""
    live, killed = tmp_path / "live", tmp_path / "killed"
    ds = lm.make(live, episodes=2, frames=N, size=32, finalize=False)
    shutil.copytree(live, killed)  # the files as a SIGKILL would leave them
    ds.finalize()
    report = verify(killed)
    assert not report.ok
    text = str(report)
    assert "episodes [0, 1] are in info.json but not in meta/episodes/" in text and "finalize()" in text
    assert "data/chunk-000/file-000.parquet has no parquet footer" in text
    before = files(killed)
    fixed = repair(killed)
    assert fixed.problems and not fixed.removed and files(killed) == before
    with pytest.raises(DatasetReadError, match="not in meta/episodes"):
        DatasetWriter.resume(killed)
    assert verify(live).ok  # finalised, the same recording is fine


def _break_frame(mp4: Path, k: int) -> None:
    """Overwrite the start of packet k (its OBU headers) so that the decoder rejects it."""
    with av.open(str(mp4)) as c:
        pos = [p.pos for p in c.demux(c.streams.video[0]) if p.size > 0][k]
    data = bytearray(mp4.read_bytes())
    data[pos : pos + 64] = b"\xff" * 64
    mp4.write_bytes(bytes(data))


def test_verify_full_names_the_first_frame_that_does_not_decode(lerobot_3: Path, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    shutil.copytree(lerobot_3, root)
    mp4 = root / f"videos/{FRONT}/chunk-000/file-000.mp4"
    _break_frame(mp4, N + 7)  # episode 1, frame 7: after the frames the default check decodes
    report = verify(root)
    assert report.ok, str(report)  # the fast check decodes frames 0, 10 and 19 of each episode
    report = verify(root, full=True)
    assert not report.ok
    assert report.errors[0].startswith(f"{mp4}: episode 1 {FRONT} frame 7 does not decode"), str(report)
    reader = EpisodeReader(root)  # what training reads: a typed error naming the file, not a PyAV traceback
    check_episode(reader, 0)
    with pytest.raises(DatasetReadError, match=f"{mp4}: episode 1 {FRONT}"):
        reader.frames(1, FRONT)
