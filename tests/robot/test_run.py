"""`onboard run` on the simulated twin (sim clock, headless): a policy drives the follower through Arm/SafeArm, the
ControlLoop and the AsyncRunner; what it commanded is read back from the simulated joints and servos."""

from __future__ import annotations

import json

import numpy as np
import pytest

import onboard.cli.run
from onboard.cli import main as onboard_main
from policies.base import ActionChunk
from robot.arm_config import ArmConfig
from robot.controls import parse_run_keys
from robot.policy_loader import describe, policy_kind
from robot.run import CameraMismatchError, RunConfig, format_summary, run_policy
from sim.rigs.follower import build_sim_follower_rig
from sim.twin.world import qpos_to_lerobot

PAN_GOAL = 20.0


class MovePan:
    """Every chunk: hold every joint where it was observed, except shoulder_pan, which goes to ``PAN_GOAL``."""

    def __init__(self, cameras: tuple[str, ...] | None = None):
        if cameras is not None:
            self.cameras = cameras
        self.calls = 0
        self.tasks: list[str] = []
        self.image_keys: set[str] = set()

    def reset(self, task: str) -> None:
        self.tasks.append(task)

    def infer(self, observation: dict) -> ActionChunk:
        self.calls += 1
        self.image_keys |= {k for k in observation if k.startswith("observation.images.")}
        for k in self.image_keys:
            img = observation[k]
            assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
        state = np.asarray(observation["observation.state"], np.float32).copy()
        state[0] = PAN_GOAL
        return ActionChunk(np.tile(state, (10, 1)), t_obs=observation["t_capture"])


class Broken:
    def reset(self, task: str) -> None:
        pass

    def infer(self, observation: dict) -> ActionChunk:
        raise RuntimeError("model exploded")


def _rig(tmp_path, cameras=()):
    path = ArmConfig(type="so101_follower", port="sim", id="f", calibration_dir=tmp_path / "cal").calibration_path
    return build_sim_follower_rig(robot_calibration=path, seed=1, task="pick", color="red", cameras=cameras)


def _robot(rig, tmp_path) -> ArmConfig:
    return ArmConfig(type="so101_follower", port=rig.robot_port, id="f", calibration_dir=tmp_path / "cal")


def _joints(rig) -> np.ndarray:
    return qpos_to_lerobot(rig.sim.joint_angles())


def _torque(rig) -> dict[str, int]:
    return {joint: servo.read_register("Torque_Enable") for joint, servo in rig.sim.servos.items()}


def test_policy_moves_the_arm_and_torque_is_off_after(tmp_path):
    rig = _rig(tmp_path)
    try:
        start = _joints(rig)
        policy = MovePan()
        statuses: list[dict] = []
        summary = run_policy(
            rig,
            policy,
            RunConfig(task="pick up the red cube", duration_s=1.5, latency_s=0.1, status_every_s=0.5),
            robot=_robot(rig, tmp_path),
            judge=rig.judge,
            on_status=statuses.append,
        )
        end = _joints(rig)
        torque = _torque(rig)
    finally:
        rig.close()
    assert policy.tasks == ["pick up the red cube"] and policy.calls >= 2
    assert summary["stopped_by"] == "duration" and summary["ticks"] == 45 and summary["failures"] == 0
    assert summary["chunks"] >= 2 and summary["warmup_ticks"] == 3  # 100 ms emulated latency at 30 Hz
    assert abs(end[0] - PAN_GOAL) < 1.5, end  # the commanded joint got there (velocity-limited: 180 deg/s)
    assert np.all(np.abs(end[1:5] - start[1:5]) < 3.0), (start, end)  # the others held
    assert set(torque.values()) == {0}, torque  # SafeArm turned torque off on the way out
    assert len(statuses) == 2 and statuses[0]["ticks"] > 0
    assert summary["judge"]["task"] == "pick" and summary["judge"]["success"] is False
    assert "ran for the set duration" in format_summary(summary)


def test_failing_policy_holds_and_the_run_ends_cleanly(tmp_path):
    rig = _rig(tmp_path)
    try:
        start = _joints(rig)
        summary = run_policy(
            rig,
            Broken(),
            RunConfig(task="pick", duration_s=2.0, latency_s=0.0, max_policy_failures=5),
            robot=_robot(rig, tmp_path),
        )
        end = _joints(rig)
        torque = _torque(rig)
    finally:
        rig.close()
    assert summary["stopped_by"] == "policy" and summary["failures"] == 5 and summary["chunks"] == 0
    assert summary["holds"] == summary["ticks"] == 5
    assert "model exploded" in summary["policy_errors"][-1]
    assert np.all(np.abs(end[:5] - start[:5]) < 1.0), (start, end)  # held still
    assert set(torque.values()) == {0}
    assert "the policy failed repeatedly" in format_summary(summary)


def test_safety_stop_names_the_joint(tmp_path):
    rig = _rig(tmp_path)

    class HeatsUp(MovePan):
        def infer(self, observation):
            if self.calls == 3:
                rig.sim.servos["elbow_flex"].temperature = 70.0
            return super().infer(observation)

    try:
        summary = run_policy(
            rig, HeatsUp(), RunConfig(task="pick", duration_s=2.0, latency_s=0.05), robot=_robot(rig, tmp_path)
        )
        torque = _torque(rig)
    finally:
        rig.close()
    assert summary["stopped_by"] == "safety" and summary["ticks"] < 60
    assert summary["safety_stop"]["joint"] == "elbow_flex" and summary["safety_stop"]["error"] == "OverheatError"
    assert set(torque.values()) == {0}
    assert "safety stop on elbow_flex" in format_summary(summary)


def test_camera_names_must_match_the_policy(tmp_path):
    rig = _rig(tmp_path, cameras=("front", "wrist"))
    try:
        with pytest.raises(CameraMismatchError) as info:
            run_policy(rig, MovePan(cameras=("top", "wrist")), RunConfig(task="pick"), robot=_robot(rig, tmp_path))
    finally:
        rig.close()
    text = str(info.value)
    assert "top, wrist" in text and "front, wrist" in text and "no top" in text


def test_cli_runs_a_policy_on_the_simulated_arm(tmp_path, monkeypatch, capsys):
    policy = MovePan(cameras=("front", "wrist"))
    monkeypatch.setattr(onboard.cli.run, "load_policy", lambda path, kind=None: describe(policy, "custom", str(path)))
    out = tmp_path / "summary.json"
    rc = onboard_main(
        [
            "run",
            "--robot.port=sim",
            "--robot.id=f",
            f"--robot.calibration_dir={tmp_path / 'cal'}",
            "--policy.path=my_policy",
            "--task",
            "pick up the red cube",
            "--duration_s",
            "2",
            "--latency=50ms",
            "--sim.image_size=32",
            f"--summary_json={out}",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "run ended: ran for the set duration" in captured.out
    assert "sim: task pick (red)" in captured.out and "ticks=60" in captured.out
    assert "latency p50=50ms" in captured.err  # periodic status lines
    summary = json.loads(out.read_text())
    assert summary["ticks"] == 60 and summary["judge"]["color"] == "red"
    assert policy.image_keys == {"observation.images.front", "observation.images.wrist"}


def test_cli_camera_mismatch_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(
        onboard.cli.run, "load_policy", lambda path, kind=None: describe(MovePan(cameras=("top",)), "custom", str(path))
    )
    args = ["run", "--robot.port=sim", "--robot.id=f", f"--robot.calibration_dir={tmp_path / 'cal'}"]
    assert onboard_main([*args, "--policy.path=p", "--task", "pick up the red cube"]) == 2
    assert "the policy takes cameras top; the robot has front, wrist" in capsys.readouterr().err


def test_policy_kind_by_folder(tmp_path):
    (tmp_path / "bundle").mkdir()
    (tmp_path / "bundle" / "bundle.json").write_text("{}")
    (tmp_path / "act").mkdir()
    (tmp_path / "act" / "config.json").write_text(json.dumps({"type": "act"}))
    (tmp_path / "vla").mkdir()
    (tmp_path / "vla" / "config.json").write_text(json.dumps({"chunk_size": 20}))
    assert [policy_kind(tmp_path / k) for k in ("bundle", "act", "vla")] == ["onnx", "lerobot", "vla"]
    with pytest.raises(FileNotFoundError):
        policy_kind(tmp_path / "missing")


def test_run_keys():
    assert parse_run_keys(b"\n") == ["stop"] and parse_run_keys(b"q") == ["stop"]
    assert parse_run_keys(b" ") == ["estop"] and parse_run_keys(b"\x1b[A\x1b") == ["stop"]
