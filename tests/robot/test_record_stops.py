"""How `onboard record` ends: a signal (SIGINT, SIGTERM) saves the episode in progress and stops; SIGKILL loses only
the episode in progress. The recorder runs as a person runs it, in its own process on the simulated rig; the test
waits on what it writes (the status file, the videos being written), never on a sleep."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from onboard.cli import main as onboard
from policies.dataset import EpisodeReader, layout, verify
from tests.conftest import require
from tests.robot.test_record import CAMERAS, FPS, REPO, _calibrate, _record_args


@pytest.fixture(scope="module")
def cal(tmp_path_factory) -> Path:
    cal = tmp_path_factory.mktemp("record_stops") / "cal"
    _calibrate(cal)
    return cal


def _events(status: Path) -> list[dict]:
    """The status file's complete lines (a line being written is not read yet)."""
    if not status.exists():
        return []
    return [json.loads(line) for line in status.read_text().splitlines(keepends=True) if line.endswith("\n")]


def _videos_open(root: Path, episode: int) -> bool:
    """Both cameras' videos of ``episode`` are being written: frames of the episode are on their way to disk."""
    return all(layout.partial(layout.video_path(root, key, episode)).exists() for key in CAMERAS)


def _wait_for(condition, what: str, proc: subprocess.Popen, timeout_s: float = 180.0) -> None:
    """Wait (as long as a loaded machine needs) until ``condition()``, while the recorder runs."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"onboard record exited ({proc.returncode}) before {what}:\n{out[-2000:]}\n{err[-2000:]}")
        assert time.monotonic() < deadline, f"no {what} after {timeout_s:.0f} s"
        time.sleep(0.01)


def _start_record(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "onboard.cli", *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize(
    ("sig", "rc"), [(signal.SIGINT, 0), (signal.SIGTERM, 128 + signal.SIGTERM)], ids=["SIGINT", "SIGTERM"]
)
def test_signal_saves_the_episode_in_progress_and_stops(cal, tmp_path, sig, rc):
    """README: Ctrl-C (SIGINT), or SIGTERM, saves the episode in progress and stops. The first episode is ended early
    with SIGUSR1 ("next"); the stop signal comes while the second one is being written (its videos open)."""
    root, status = tmp_path / "ds", tmp_path / "status.jsonl"
    long = 600  # seconds per episode: only the signals end these episodes
    args = _record_args(
        cal,
        root,
        "--dataset.num_episodes=3",
        f"--dataset.episode_time_s={long}",
        "--dataset.reset_time_s=0",
        "--dataset.capture_time=true",
        f"--status_file={status}",
    )
    proc = _start_record(args)
    try:
        _wait_for(lambda: _videos_open(root, 0), "videos of episode 1", proc)
        proc.send_signal(signal.SIGUSR1)  # next
        _wait_for(lambda: _videos_open(root, 1), "videos of episode 2", proc)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    assert proc.returncode == rc, err[-2000:]
    events = _events(status)
    assert [e["event"] for e in events] == ["episode_start", "episode_saved"] * 2 + ["done"]
    saved = [e for e in events if e["event"] == "episode_saved"]
    assert [e["episode"] for e in saved] == [0, 1] and events[-1]["episodes"] == 2
    lengths = [e["frames"] for e in saved]
    assert all(0 < k < long * FPS for k in lengths), lengths  # both ended early, with their frames
    assert f"saved 2 episode(s) ({sum(lengths)} frames), stopped early" in out
    assert f"saved as dataset episode 1 ({lengths[1]} frames)" in err

    report = verify(root)
    assert report.ok, report
    reader = EpisodeReader(root)
    assert [reader.episode(i).length for i in range(reader.num_episodes)] == lengths
    last = reader.episode(1)
    np.testing.assert_allclose(last.timestamp, np.arange(lengths[1]) / FPS, atol=1e-6)
    assert last.task == next(e["task"] for e in events if e["event"] == "episode_start" and e["episode"] == 1)
    for key in CAMERAS:
        assert reader.frames(1, key).shape == (lengths[1], 96, 96, 3)  # a frame in the video for every row
    lrd = require("lerobot.datasets.lerobot_dataset", "interop")
    ds = lrd.LeRobotDataset("local/sim_record", root=root, video_backend="pyav")
    assert ds.meta.total_episodes == 2 and ds.num_frames == sum(lengths)
    item = ds[ds.num_frames - 1]
    assert (int(item["episode_index"]), int(item["frame_index"])) == (1, lengths[1] - 1)
    np.testing.assert_array_equal(item["observation.state"].numpy(), last.state[-1])


def test_killed_recording_keeps_saved_episodes(cal, tmp_path, capfd):
    root, status = tmp_path / "ds", tmp_path / "status.jsonl"
    args = _record_args(
        cal,
        root,
        "--dataset.num_episodes=3",
        "--dataset.episode_time_s=6",
        "--dataset.reset_time_s=0.2",
        f"--status_file={status}",
    )
    proc = _start_record(args)
    try:
        # into episode 3: its frames and videos are on their way to disk when the recorder is killed
        _wait_for(lambda: _videos_open(root, 2), "videos of episode 3", proc)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert [e["episode"] for e in _events(status) if e["event"] == "episode_saved"] == [0, 1]

    report = verify(root)
    assert report.ok, report
    lrd = require("lerobot.datasets.lerobot_dataset", "interop")
    ds = lrd.LeRobotDataset("local/sim_record", root=root, video_backend="pyav")
    assert ds.meta.total_episodes == 2
    assert ds.num_frames == 2 * 6 * FPS
    last = ds[ds.num_frames - 1]  # the last saved frame is whole: episode 2's, at its end
    assert (int(last["episode_index"]), int(last["frame_index"])) == (1, 6 * FPS - 1)
    assert last["observation.images.wrist"].shape == (3, 96, 96) and float(last["observation.images.wrist"].std()) > 0
    # and the recording resumes into it
    args = _record_args(
        cal, root, "--dataset.num_episodes=1", "--dataset.episode_time_s=1", "--dataset.reset_time_s=0", "--resume=true"
    )
    capfd.readouterr()
    assert onboard(args) == 0
    assert "episode 1/1 (dataset episode 2)" in capfd.readouterr().err  # this session's count, and where it lands
    ds = lrd.LeRobotDataset("local/sim_record", root=root, video_backend="pyav")
    assert ds.meta.total_episodes == 3 and ds.num_frames == 2 * 6 * FPS + FPS
