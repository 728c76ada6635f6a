"""Teleop, recording and replay end to end on the simulated rig (sim clock, headless, no hardware): the follower
twin with its rendered cameras, the expert-driven simulated leader on its own bus, the real Arm/SafeArm/loop code."""

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
from robot.arm_config import ArmConfig
from robot.controls import RecordControls, parse_keys
from robot.replay import episode_actions, replay_episode
from robot.rig import connected_arms
from sim.rigs.teleop import build_sim_rig
from tests.conftest import require

REPO = Path(__file__).resolve().parents[2]
FPS = 30
EPISODE_S = 2.0


def _calibrate(cal: Path) -> None:
    assert (
        onboard(
            [
                "calibrate",
                "--robot.type=so101_follower",
                "--robot.port=sim",
                "--robot.id=f",
                f"--robot.calibration_dir={cal}",
            ]
        )
        == 0
    )
    assert (
        onboard(
            [
                "calibrate",
                "--teleop.type=so101_leader",
                "--teleop.port=sim",
                "--teleop.id=l",
                f"--teleop.calibration_dir={cal}",
            ]
        )
        == 0
    )


def _record_args(cal: Path, root: Path, *extra: str) -> list[str]:
    return [
        "record",
        "--robot.type=so101_follower",
        "--robot.port=sim",
        "--robot.id=f",
        f"--robot.calibration_dir={cal}",
        "--teleop.type=so101_leader",
        "--teleop.port=sim",
        "--teleop.id=l",
        f"--teleop.calibration_dir={cal}",
        f"--dataset.root={root}",
        "--dataset.repo_id=local/sim_record",
        f"--dataset.fps={FPS}",
        *extra,
    ]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    base = tmp_path_factory.mktemp("record")
    cal, root = base / "cal", base / "ds"
    _calibrate(cal)
    status = base / "status.jsonl"
    args = _record_args(
        cal,
        root,
        "--dataset.num_episodes=3",
        f"--dataset.episode_time_s={EPISODE_S}",
        "--dataset.reset_time_s=0.5",
        "--dataset.capture_time=true",
        f"--status_file={status}",
    )
    assert onboard(args) == 0
    events = [json.loads(line) for line in status.read_text().splitlines()]
    return cal, root, events


def test_recording_loads_in_lerobot(recorded):
    _cal, root, events = recorded
    lrd = require("lerobot.datasets.lerobot_dataset", "interop")
    ds = lrd.LeRobotDataset("local/sim_record", root=root, video_backend="pyav")
    n = int(EPISODE_S * FPS)
    assert ds.meta.total_episodes == 3
    assert ds.num_frames == 3 * n
    assert ds.fps == FPS
    for key in ("observation.state", "action", "observation.images.front", "observation.images.wrist"):
        assert key in ds.meta.features
    tasks = [e["task"] for e in events if e["event"] == "episode_start"]
    assert len(tasks) == 3 and all(tasks)
    assert set(ds.meta.tasks.index) == set(tasks)
    for i in (0, n - 1, n, 3 * n - 1):
        item = ds[i]
        assert item["observation.images.front"].shape == (3, 96, 96)
        assert item["observation.images.wrist"].shape == (3, 96, 96)
        assert float(item["observation.images.front"].float().std()) > 0.01  # a rendered scene, not a blank
        assert item["task"] == tasks[int(item["episode_index"])]
    # monotonic capture times; the state read before the action: the follower lags the leader's action
    import pyarrow.parquet as pq

    t = pq.read_table(root / "data/chunk-000/file-000.parquet").column("capture_time").to_numpy()
    assert np.all(np.diff(np.asarray(t, dtype=np.float64).reshape(-1)) > 0)
    actions, states, fps = episode_actions(root, 1)
    assert fps == FPS and actions.shape == states.shape == (n, 6)
    moved = np.abs(actions[-1, :5] - actions[0, :5]).max()
    assert moved > 5.0, "the expert-driven leader should move"
    # the follower follows the leader: at the next frame it is near the action of this one
    err = np.abs(states[1:, :5] - actions[:-1, :5])
    assert np.median(err) < 5.0


def test_replay_reproduces_recorded_states(recorded):
    cal, root, _ = recorded
    rig = build_sim_rig(robot_calibration=cal / "f.json", teleop_calibration=cal / "l.json", seed=0)
    robot = ArmConfig(type="so101_follower", port=rig.robot_port, id="f", calibration_dir=cal)
    try:
        with connected_arms(rig, robot=robot, teleop=None) as (safe, _):
            rig.hooks.begin_reset(1)
            safe.hold()
            result = replay_episode(safe, rig.clock, root, 1)
    finally:
        rig.close()
    assert len(result.states) == int(EPISODE_S * FPS)
    err = result.max_state_error()
    assert np.all(err[:5] < 6.0), err  # within a few degrees (the recording's physics phase differs a little)
    typical = np.median(np.abs(result.states - result.recorded_states)[:, :5], axis=0)
    assert np.all(typical < 1.5), typical


def test_killed_recording_keeps_saved_episodes(tmp_path, capfd):
    cal, root, status = tmp_path / "cal", tmp_path / "ds", tmp_path / "status.jsonl"
    _calibrate(cal)
    args = _record_args(
        cal,
        root,
        "--dataset.num_episodes=3",
        "--dataset.episode_time_s=6",
        "--dataset.reset_time_s=0.2",
        f"--status_file={status}",
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "onboard.cli", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if status.exists() and any(
                json.loads(line).get("event") == "episode_start" and json.loads(line).get("episode") == 2
                for line in status.read_text().splitlines()
            ):
                break
            time.sleep(0.02)
        time.sleep(0.5)  # into episode 3: frames and video of the episode in progress are on their way
        assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    from policies.dataset import verify

    report = verify(root)
    assert report.ok, report
    lrd = require("lerobot.datasets.lerobot_dataset", "interop")
    ds = lrd.LeRobotDataset("local/sim_record", root=root, video_backend="pyav")
    assert ds.meta.total_episodes == 2
    assert ds.num_frames == 2 * 6 * FPS
    ds[ds.num_frames - 1]
    # and the recording resumes into it
    args = _record_args(
        cal, root, "--dataset.num_episodes=1", "--dataset.episode_time_s=1", "--dataset.reset_time_s=0", "--resume=true"
    )
    capfd.readouterr()
    assert onboard(args) == 0
    assert "episode 1/1 (dataset episode 2)" in capfd.readouterr().err  # this session's count, and where it lands
    ds = lrd.LeRobotDataset("local/sim_record", root=root, video_backend="pyav")
    assert ds.meta.total_episodes == 3 and ds.num_frames == 2 * 6 * FPS + FPS


def test_controls():
    assert parse_keys(b"\x1b[Cn") == ["next", "next"]
    assert parse_keys(b"\x1b[Dr") == ["rerecord", "rerecord"]
    assert parse_keys(b"\x1b") == ["stop"] and parse_keys(b"q\x1b[A") == ["stop"]
    c = RecordControls()
    c.press("rerecord")
    assert c.rerecord and c.exit_early and not c.stop
    c.clear_episode()
    c.press("stop")
    assert c.stop and c.exit_early


def test_control_file_next_and_rerecord(tmp_path):
    """Headless controls through a control file: re-record the first episode, then stop in the second."""
    cal, root = tmp_path / "cal", tmp_path / "ds"
    _calibrate(cal)
    rig = build_sim_rig(robot_calibration=cal / "f.json", teleop_calibration=cal / "l.json")
    from robot.record import RecordConfig, record

    control = tmp_path / "control"
    controls = RecordControls()
    controls.watch_file(control)
    events = []

    def on_event(e):
        events.append(e)
        if e["event"] == "episode_start" and len(events) == 1:
            control.write_text("rerecord\n")
        elif e["event"] == "episode_start":
            control.write_text("stop\n")

    robot = ArmConfig(type="so101_follower", port=rig.robot_port, id="f", calibration_dir=cal)
    leader = ArmConfig(type="so101_leader", port=rig.teleop_port, id="l", calibration_dir=cal)
    config = RecordConfig(root=root, fps=FPS, num_episodes=3, episode_time_s=2.0, reset_time_s=0.2)
    try:
        report = record(rig, config, robot=robot, teleop=leader, controls=controls, on_event=on_event)
    finally:
        controls.close()
        rig.close()
    assert report.rerecorded == 1 and report.stopped
    assert [e["event"] for e in events] == [
        "episode_start",
        "episode_discarded",
        "reset_start",
        "episode_start",
        "episode_saved",
        "done",
    ]
    assert len(report.episodes_saved) == 1 and report.frames_saved == 1  # stopped at its first tick, saved


def test_emergency_stop_key_turns_torque_off_and_discards_the_episode(tmp_path):
    assert parse_keys(b" ") == ["estop"] and parse_keys(b"e") == ["estop"]
    cal, root = tmp_path / "cal", tmp_path / "ds"
    _calibrate(cal)
    rig = build_sim_rig(robot_calibration=cal / "f.json", teleop_calibration=cal / "l.json")
    from robot.record import RecordConfig, record

    control = tmp_path / "control"
    controls = RecordControls()
    controls.watch_file(control)
    events = []
    torque_after: list[int] = []

    def on_event(e):
        events.append(e)
        if e["event"] == "episode_start" and e["episode"] == 1:
            control.write_text("estop\n")  # in the second episode
        if e["event"] == "emergency_stop":  # read back from the emulated servos at that moment
            torque_after.extend(s.read_register("Torque_Enable") for s in rig.sim.servos.values())

    robot = ArmConfig(type="so101_follower", port=rig.robot_port, id="f", calibration_dir=cal)
    leader = ArmConfig(type="so101_leader", port=rig.teleop_port, id="l", calibration_dir=cal)
    config = RecordConfig(root=root, fps=FPS, num_episodes=3, episode_time_s=1.0, reset_time_s=0.2)
    try:
        report = record(rig, config, robot=robot, teleop=leader, controls=controls, on_event=on_event)
    finally:
        controls.close()
        rig.close()
    kinds = [e["event"] for e in events]
    assert "emergency_stop" in kinds
    estop = next(e for e in events if e["event"] == "emergency_stop")
    assert estop["torque_off_unconfirmed"] == []  # every servo confirmed torque off
    assert report.stopped and report.episodes_saved == [0]  # the first episode is kept, the stopped one is not
    assert "episode_discarded" in kinds
    assert torque_after == [0] * 6
