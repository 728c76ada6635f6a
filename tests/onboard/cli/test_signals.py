"""Safe on every exit: the commands that energise servos, run as a person runs them against emulated servos served
by another process, end with torque off however they are stopped (SIGINT, SIGTERM, SIGHUP, SIGQUIT, the parent
dying, the bus lost). Torque is read back through the real driver on the same pty after the command exited."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import serial

from hardware.feetech.bus import FeetechBus
from robot.arm_config import ArmConfig
from robot.calibration import MotorCalibration, save_calibration
from sim.process.bus import BusProcess
from tests.conftest import default_signals

IDS = (1, 2, 3, 4, 5, 6)
NAMES = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
RANGE = (1024, 3072)  # horns at 2048: every joint in the middle of its calibrated range
BUNDLE = Path(__file__).resolve().parents[3] / "policies" / "bundled" / "so101_vla"
EXPECTED = {  # exit code per (command, signal): Ctrl-C is how run, record and teleoperate are ended by a person
    "run": {"SIGINT": 0, "SIGTERM": 143, "SIGHUP": 129, "SIGQUIT": 131},
    "teleoperate": {"SIGINT": 0, "SIGTERM": 143, "SIGHUP": 129, "SIGQUIT": 131},
    "record": {"SIGINT": 0, "SIGTERM": 143, "SIGHUP": 129, "SIGQUIT": 131},
    "replay": {"SIGINT": 130, "SIGTERM": 143, "SIGHUP": 129, "SIGQUIT": 131},
}

RUNNING = {"run": "t=", "record": "episode 1/"}  # a line that says the loop is driving the arm (others: torque on)


def _install_calibration(proc: BusProcess, path: Path) -> None:
    """The servos' EEPROM and the calibration file agree (what a finished calibration leaves)."""
    calibration = {}
    for name, servo_id in zip(NAMES, IDS, strict=True):
        servo = proc.servo(servo_id)
        servo.write_register("Homing_Offset", 0, persist=True)
        servo.write_register("Min_Position_Limit", RANGE[0], persist=True)
        servo.write_register("Max_Position_Limit", RANGE[1], persist=True)
        calibration[name] = MotorCalibration(servo_id, 0, 0, *RANGE)
    save_calibration(path, calibration)


def _torque(proc: BusProcess) -> list[int]:
    """Torque_Enable of every servo as the emulator holds it (the control channel: no bytes on the pty)."""
    return [proc.servo(i).read_register("Torque_Enable") for i in IDS]


def _read_back(path: str) -> dict[int, int]:
    """Torque_Enable of every servo through the real driver on the pty."""
    with FeetechBus(serial.Serial(path, 1_000_000, timeout=0.1)) as bus:
        return bus.sync_read("Torque_Enable", list(IDS))


def _wait_for(condition, what: str, timeout_s: float = 120.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if proc is not None and proc.poll() is not None:
            _out, err = proc.communicate()
            pytest.fail(f"the command exited ({proc.returncode}) before {what}:\n{err[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    """A follower and a leader, each six emulated STS3215 in its own process, calibrated; a dataset with one long
    episode (for replay) and two small videos (the cameras of `onboard run`)."""
    root = tmp_path_factory.mktemp("signals")
    with BusProcess(IDS) as follower, BusProcess(IDS) as leader:
        _install_calibration(follower, root / "cal" / "f.json")
        _install_calibration(leader, root / "cal" / "l.json")
        yield {"follower": follower, "leader": leader, "root": root, "dataset": _dataset(root), "video": _video(root)}


def _dataset(root: Path) -> Path:
    from policies.dataset.writer import DatasetWriter

    spec = ArmConfig(type="so101_follower", port="x", id="f").spec
    vec = {"dtype": "float32", "shape": (6,), "names": list(spec.keys)}
    path = root / "replay_ds"
    writer = DatasetWriter.create(
        path, fps=30, features={"observation.state": dict(vec), "action": dict(vec)}, robot_type="so101_follower"
    )
    hold = np.array([0, 0, 0, 0, 0, 50], dtype=np.float32)  # the middle pose: nothing moves
    for _ in range(30 * 120):  # two minutes: the replay is still running when the signal comes
        writer.add_frame({"observation.state": hold, "action": hold, "task": "hold"})
    writer.save_episode()
    writer.close()
    return path


def _video(root: Path) -> Path:
    import cv2

    path = root / "cam.mp4"
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (64, 64))
    for k in range(30):
        out.write(np.full((64, 64, 3), 8 * k, dtype=np.uint8))
    out.release()
    return path


def _argv(command: str, rig: dict, tmp_path: Path) -> list[str]:
    cal = str(rig["root"] / "cal")
    robot = [
        "--robot.type=so101_follower",
        f"--robot.port={rig['follower'].path}",
        "--robot.id=f",
        f"--robot.calibration_dir={cal}",
    ]
    leader = [
        "--teleop.type=so101_leader",
        f"--teleop.port={rig['leader'].path}",
        "--teleop.id=l",
        f"--teleop.calibration_dir={cal}",
    ]
    if command == "run":
        v = rig["video"]
        cameras = f"{{front: {{type: opencv, index_or_path: {v}}}, wrist: {{type: opencv, index_or_path: {v}}}}}"
        return [
            "run",
            *robot,
            f"--robot.cameras={cameras}",
            f"--policy.path={BUNDLE}",
            "--task",
            "pick up the red cube",
        ]
    if command == "teleoperate":
        return ["teleoperate", *robot, *leader, "--fps", "30"]
    if command == "record":
        dataset = ["--dataset.root", str(tmp_path / "ds"), "--dataset.num_episodes", "2", "--dataset.single_task", "x"]
        return ["record", *robot, *leader, *dataset, "--dataset.episode_time_s", "600", "--dataset.reset_time_s", "0"]
    assert command == "replay"
    return ["replay", *robot, "--dataset.root", str(rig["dataset"]), "--dataset.episode", "0"]


def _start(argv: list[str]) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}  # no keyboard listener: signals only
    return subprocess.Popen(
        [sys.executable, "-m", "onboard.cli", *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=default_signals,  # stoppable by the signals under test, however the suite was started
    )


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"])
@pytest.mark.parametrize("command", ["teleoperate", "record", "replay", "run"])
def test_torque_is_off_after_each_signal(rig, command, sig, tmp_path):
    follower = rig["follower"]
    assert _torque(follower) == [0] * 6
    proc = _start(_argv(command, rig, tmp_path))
    try:
        _wait_for(lambda: _torque(follower) == [1] * 6, "torque on", proc=proc)
        seen = _wait_for_line(proc, RUNNING[command]) if command in RUNNING else ""
        proc.send_signal(getattr(signal, sig))
        _out, err = proc.communicate(timeout=60)
        err = seen + err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == EXPECTED[command][sig], err
    assert "Traceback" not in err, err
    assert _read_back(follower.path) == dict.fromkeys(IDS, 0)
    assert _read_back(rig["leader"].path) == dict.fromkeys(IDS, 0)


def test_torque_is_off_when_the_parent_dies(rig, tmp_path):
    """A launcher (a supervisor, a test, an SSH session's shell) killed with SIGKILL: the command gets SIGTERM from
    the kernel (PR_SET_PDEATHSIG) and ends through its shutdown."""
    follower = rig["follower"]
    argv = [sys.executable, "-m", "onboard.cli", *_argv("teleoperate", rig, tmp_path)]
    launcher = (
        "import subprocess, sys; "
        f"p = subprocess.Popen({argv!r}, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
        "print(p.pid, flush=True); p.wait()"
    )
    parent = subprocess.Popen([sys.executable, "-c", launcher], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    try:
        _wait_for(lambda: _torque(follower) == [1] * 6, "torque on")
        parent.kill()
        parent.wait()
        _wait_for(lambda: not _alive(child), "the command to exit after its parent died", timeout_s=60)
    finally:
        if _alive(child):
            os.kill(child, signal.SIGKILL)
    assert _read_back(follower.path) == dict.fromkeys(IDS, 0)


def _wait_for_line(proc: subprocess.Popen, prefix: str, timeout_s: float = 120.0) -> str:
    """Read the command's stderr until a line starts with ``prefix``; returns what was read."""
    seen = ""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not select.select([proc.stderr], [], [], 1.0)[0]:
            continue
        line = proc.stderr.readline()
        if not line:
            pytest.fail(f"the command exited ({proc.wait()}) before a line starting with {prefix!r}:\n{seen}")
        seen += line
        if line.startswith(prefix):
            return seen
    pytest.fail(f"no line starting with {prefix!r} within {timeout_s} s:\n{seen}")


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for init to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def test_bus_lost_mid_run_is_a_one_line_safety_stop(rig, tmp_path):
    """The served arm's process killed under a running policy (a USB cable pulled): exit code 1 (a safety stop),
    one line that says what happened and what to do, no traceback."""
    with BusProcess(IDS) as lost:
        _install_calibration(lost, tmp_path / "cal" / "f.json")
        argv = _argv("run", {**rig, "follower": lost, "root": tmp_path}, tmp_path)
        proc = _start(argv)
        try:
            seen = _wait_for_line(proc, "t=")  # the first status line: the policy is driving the arm
            lost._proc.kill()  # the device goes away: its end of the pty closes
            _out, err = proc.communicate(timeout=60)
            err = seen + err
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 1, err
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, err
    assert "lost the servo bus on" in errors[0] and lost.path in errors[0] and "plug it back in" in errors[0]
