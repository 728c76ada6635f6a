"""The simulated SO-101 in a child process in real time (``sim.process.so101``): our driver on its pty, and the
acceptance test: LeRobot's own SO-101 driver (and its guided calibration) on the simulated arm."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported (tests/conftest.py does the same)

import builtins
import gc
import json
import math
import time

import numpy as np
import pytest

from tests.conftest import require

require("mujoco", "sim")  # skipped without MuJoCo; a failure in CI (ONBOARD_REQUIRE_INTEROP=1)

import sim  # noqa: E402, F401  (registers simbus://)
from hardware.feetech.bus import FeetechBus  # noqa: E402
from sim.twin.world import JOINT_NAMES, lerobot_to_qpos  # noqa: E402

IDS = list(range(1, 7))


def test_arm_in_a_child_process_in_real_time():
    from sim.process.so101 import SO101Process

    with SO101Process(seed=2, uncalibrated=False) as arm, FeetechBus(arm.path) as bus:
        arm.hand_to_middle()
        assert bus.sync_read("Present_Position", IDS) == {i: 2047 for i in IDS}  # calibrated: the middle reads 2047
        for i in IDS:
            bus.write(i, "Torque_Enable", 1)
        arm.hand_release()
        bus.write(3, "Goal_Position", 2047 + 300)
        deadline = time.monotonic() + 5.0
        while abs(bus.read(3, "Present_Position") - 2347) > 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert math.degrees(arm.joint_angles()[2]) == pytest.approx(300 * 360 / 4096, abs=1.0)
        assert arm.read_register("elbow_flex", "Torque_Enable") == 1
        assert arm.time > 0.1
        with pytest.raises(RuntimeError, match="outside its range"):
            arm.hand_hold("gripper", 3.0)


# --- (f) acceptance: LeRobot's own SO-101 driver over the pty ---------------------------------------------------------
@pytest.fixture(scope="module")
def so_follower():
    return require("lerobot.robots.so_follower", "interop")


@pytest.fixture
def arm_process():
    """The simulated arm in real time in a child process (SO101Process): LeRobot's SDK busy-polls and LeRobot's
    heap makes garbage collections long, which would stall a "device" served by threads of this process past
    LeRobot's 50 ms reply timeout. What LeRobot's imports allocated is moved out of this process's collector's way
    too (the host side waits on the same timeout)."""
    from sim.process.so101 import SO101Process

    gc.collect()
    gc.freeze()
    try:
        with SO101Process(seed=7, wire_time=True) as proc:
            yield proc
    finally:
        gc.unfreeze()


@pytest.mark.interop
def test_lerobot_so_follower_drives_the_simulated_arm(so_follower, arm_process, tmp_path, monkeypatch):
    arm = arm_process
    calibration = arm.factory_calibration()
    (tmp_path / "sim_arm.json").write_text(json.dumps(calibration, indent=4))
    prompts = []
    # The servos still hold a fresh arm's calibration: LeRobot asks whether to write the file's. ENTER = yes.
    monkeypatch.setattr(builtins, "input", lambda prompt="": prompts.append(prompt) or "")
    config = so_follower.SO101FollowerConfig(port=arm.path, id="sim_arm", calibration_dir=tmp_path, use_degrees=True)
    robot = so_follower.SOFollower(config)
    arm.hand_to_middle()  # the user holds the arm while it connects (torque comes on in configure())
    robot.connect()
    try:
        assert len(prompts) == 1 and "ENTER" in prompts[0]
        arm.hand_release()
        assert robot.is_calibrated
        for joint in JOINT_NAMES:
            assert arm.read_register(joint, "Homing_Offset") == calibration[joint]["homing_offset"]
            assert arm.read_register(joint, "P_Coefficient") == 16

        def observed() -> np.ndarray:
            obs = robot.get_observation()
            return np.array([obs[f"{n}.pos"] for n in JOINT_NAMES])

        def error_deg(values: np.ndarray) -> np.ndarray:
            return np.degrees(lerobot_to_qpos(values) - arm.joint_angles())

        assert np.abs(error_deg(observed())).max() < 1.0

        goal = observed() + np.array([15.0, -10.0, 20.0, -15.0, 30.0, 25.0])
        sent = robot.send_action({f"{n}.pos": float(g) for n, g in zip(JOINT_NAMES, goal)})
        assert sent == pytest.approx({f"{n}.pos": float(g) for n, g in zip(JOINT_NAMES, goal)})
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline and np.abs(error_deg(goal)).max() >= 1.0:
            time.sleep(0.05)
        assert np.abs(error_deg(goal)).max() < 1.0, error_deg(goal).round(2)
        assert np.abs(error_deg(observed())).max() < 1.0
        assert arm.time > 0.2  # the arm ran in real time meanwhile
    finally:
        robot.disconnect()
    assert arm.read_register("elbow_flex", "Torque_Enable") == 0  # disable_torque_on_disconnect


@pytest.mark.interop
def test_lerobot_calibration_procedure_gives_factory_calibration(so_follower, arm_process, tmp_path, monkeypatch):
    """LeRobot's own guided calibration on the simulated arm, with the scripted hand as the person: the arm held
    at the middle when asked, each joint swept through its range while LeRobot records min/max, ENTER when done.
    The result is exactly ``factory_calibration()``."""
    motors_bus = require("lerobot.motors.motors_bus", "interop")
    arm = arm_process

    def person(prompt: str = "") -> str:
        if "middle" in prompt:
            arm.hand_to_middle()
        return ""

    monkeypatch.setattr(builtins, "input", person)
    arm.hand_start_sweep([j for j in JOINT_NAMES if j != "wrist_roll"], step_deg=5.0)
    # record_ranges_of_motion samples the bus, then asks whether ENTER was pressed: the hand moves one step each time.
    monkeypatch.setattr(motors_bus, "enter_pressed", lambda: not arm.hand_sweep_step())
    config = so_follower.SO101FollowerConfig(port=arm.path, id="fresh_arm", calibration_dir=tmp_path)
    robot = so_follower.SOFollower(config)
    robot.connect(calibrate=False)
    try:
        robot.calibrate()
    finally:
        robot.disconnect()
    saved = json.loads((tmp_path / "fresh_arm.json").read_text())
    assert saved == arm.factory_calibration()
