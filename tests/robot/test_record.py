"""Teleop, recording and replay end to end on the simulated rig (sim clock, headless, no hardware): the follower
twin with its rendered cameras, the expert-driven simulated leader on its own bus, the real Arm/SafeArm/loop code."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from onboard.cli import main as onboard
from policies.dataset import EpisodeReader
from robot.arm_config import ArmConfig
from robot.controls import RecordControls, parse_keys
from robot.record import RecordConfig, record
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


CAMERAS = ("observation.images.front", "observation.images.wrist")


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
    reader = EpisodeReader(root)
    for i in (0, n - 1, n, 3 * n - 1):
        item = ds[i]
        ep, k = divmod(i, n)
        assert (int(item["index"]), int(item["episode_index"]), int(item["frame_index"])) == (i, ep, k)
        assert float(item["timestamp"]) == pytest.approx(k / FPS, abs=1e-6)
        assert item["task"] == tasks[ep]
        # LeRobot's reader and ours give the same values for the same frame
        rows = reader.episode(ep)
        np.testing.assert_array_equal(item["observation.state"].numpy(), rows.state[k])
        np.testing.assert_array_equal(item["action"].numpy(), rows.action[k])
        for key in CAMERAS:
            image = item[key]
            assert image.shape == (3, 96, 96)
            assert float(image.float().std()) > 0.01  # a rendered scene, not a blank
            ours = reader.frames(ep, key)[k].astype(np.float32) / 255.0
            assert np.abs(image.numpy().transpose(1, 2, 0) - ours).max() < 1e-5  # the same decoded frame
    # the scene changes over an episode: its first and last frames differ
    front = reader.frames(1, "observation.images.front").astype(np.int16)
    assert np.abs(front[-1] - front[0]).mean() > 1.0
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


def test_recorded_frames_hold_what_the_loop_read(recorded, tmp_path):
    """Every row of a recorded episode is the tick it was recorded at: the follower's state as read, the leader's
    action, the capture time on the sim clock, the timestamp k / fps, and the camera images (through the codec)."""
    cal, root = recorded[0], tmp_path / "ds"
    rig = build_sim_rig(robot_calibration=cal / "f.json", teleop_calibration=cal / "l.json", seed=0)
    samples: list[tuple[float, np.ndarray, np.ndarray, dict[str, np.ndarray]]] = []
    tasks: list[str] = []

    def keep(sample) -> None:  # what the loop read and the writer was given, copied at that tick
        images = {f"observation.images.{k}": f.rgb.copy() for k, f in sample.frames.items()}
        samples.append((sample.t, sample.state.copy(), sample.action.copy(), images))

    def on_event(event) -> None:
        if event["event"] == "episode_start":
            tasks.append(event["task"])

    robot = ArmConfig(type="so101_follower", port=rig.robot_port, id="f", calibration_dir=cal)
    leader = ArmConfig(type="so101_leader", port=rig.teleop_port, id="l", calibration_dir=cal)
    config = RecordConfig(root=root, fps=FPS, num_episodes=1, episode_time_s=1.0, reset_time_s=0, capture_time=True)
    try:
        report = record(rig, config, robot=robot, teleop=leader, on_sample=keep, on_event=on_event)
    finally:
        rig.close()
    n = FPS
    assert report.episodes_saved == [0] and report.frames_saved == n == len(samples) and report.dropped_frames == 0

    reader = EpisodeReader(root)
    assert reader.num_episodes == 1 and reader.fps == FPS
    ep = reader.episode(0)
    assert ep.length == n and ep.task == tasks[0]
    np.testing.assert_array_equal(ep.state, np.stack([s[1] for s in samples]))
    np.testing.assert_array_equal(ep.action, np.stack([s[2] for s in samples]))
    np.testing.assert_array_equal(ep.columns["frame_index"], np.arange(n))
    np.testing.assert_array_equal(ep.columns["episode_index"], np.zeros(n))
    np.testing.assert_allclose(ep.timestamp, np.arange(n) / FPS, atol=1e-6)
    capture = ep.columns["capture_time"]
    np.testing.assert_array_equal(capture, [s[0] for s in samples])
    # ticks on the sim clock: frame k captured at the 2 ms physics step nearest its deadline, t0 + k / fps
    np.testing.assert_allclose(capture - capture[0], np.arange(n) / FPS, atol=1.01e-3)
    assert np.abs(ep.action[-1, :5] - ep.action[0, :5]).max() > 1.0  # the leader moved: the rows are not one row

    for key in CAMERAS:
        decoded = reader.frames(0, key).astype(np.int16)
        given = np.stack([s[3][key] for s in samples]).astype(np.int16)
        assert decoded.shape == given.shape == (n, 96, 96, 3)
        assert len({g.tobytes() for g in given}) >= n // 2  # the scene changes: not one image over and over
        # mean absolute difference of decoded frame i to the image given at tick j
        diff = np.array([[np.abs(d - g).mean() for g in given] for d in decoded])
        assert diff.diagonal().max() < 8.0, diff.diagonal()  # what the lossy codec changed (about 3-4 levels)
        # each row holds its own tick's image: none given at another tick is nearer (the same image may repeat)
        np.testing.assert_array_equal(diff.diagonal(), diff.min(axis=1))

    lrd = require("lerobot.datasets.lerobot_dataset", "interop")
    ds = lrd.LeRobotDataset("local/sim_record", root=root, video_backend="pyav")
    for i in (0, n // 2, n - 1):
        item = ds[i]
        np.testing.assert_array_equal(item["observation.state"].numpy(), samples[i][1])
        np.testing.assert_array_equal(item["action"].numpy(), samples[i][2])
        assert float(item["timestamp"]) == pytest.approx(i / FPS, abs=1e-6) and item["task"] == tasks[0]
        image = item["observation.images.front"].numpy().transpose(1, 2, 0) * 255.0
        assert np.abs(image - samples[i][3]["observation.images.front"]).mean() < 8.0


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
