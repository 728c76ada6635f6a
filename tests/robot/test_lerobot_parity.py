"""Our calibration and units against LeRobot 0.4.4's own SO follower, on one emulated arm: an arm calibrated by
`onboard calibrate` connects in LeRobot without a prompt (its file-vs-EEPROM check passes), and both stacks read the
same observation and write the same Goal_Position for the same action."""

from __future__ import annotations

import numpy as np
import pytest

from onboard.cli.calibrate import run_calibration
from robot.arm import Arm
from robot.arm_config import ArmConfig
from tests.conftest import require
from tests.simarm import NAMES, ScriptedPerson

pytestmark = pytest.mark.interop


def test_lerobot_so_follower_agrees_with_arm(sim_arm, tmp_path, monkeypatch):
    require("lerobot.robots.so_follower", "interop")
    from lerobot.robots.so_follower import SOFollower, SOFollowerRobotConfig

    from sim.transport.pty_server import PtyBusServer

    cfg = ArmConfig("so101_follower", sim_arm.url, "twin", calibration_dir=tmp_path)
    calibration = run_calibration(cfg, ScriptedPerson(sim_arm), sample_period_s=0)
    monkeypatch.setattr("builtins.input", lambda *a: pytest.fail("LeRobot prompted: it found our calibration wrong"))
    rng = np.random.default_rng(7)
    with PtyBusServer(sim_arm.bus, wire_time=False) as server:
        robot = SOFollower(SOFollowerRobotConfig(port=server.path, id="twin", calibration_dir=tmp_path))
        assert {n: (c.homing_offset, c.range_min, c.range_max) for n, c in robot.calibration.items()} == {
            n: (c.homing_offset, c.range_min, c.range_max) for n, c in calibration.items()
        }
        robot.connect()  # calibrate=True: it would prompt if file and EEPROM disagreed
        try:
            assert robot.is_calibrated
            robot.bus.disable_torque()
            arm = Arm(cfg).connect()
            try:
                arm.disable_torque()
                for _ in range(5):  # a hand puts the joints anywhere in their ranges
                    for n in NAMES:
                        lo, hi = sim_arm.spans[n]
                        sim_arm.move(n, sim_arm.mids[n] + int(rng.integers(-lo, hi + 1)))
                    theirs = robot.get_observation()
                    ours = arm.get_observation()
                    assert list(ours) == list(theirs)
                    assert np.array_equal(np.float32(list(ours.values())), np.float32(list(theirs.values())))
                arm.enable_torque()
                for _ in range(5):
                    action = dict(zip(ours, rng.uniform(-60, 60, 6).round(3), strict=True))
                    action["gripper.pos"] = float(rng.uniform(0, 100))
                    arm.send_action(action)
                    goals_ours = [sim_arm.reg(n, "Goal_Position") for n in NAMES]
                    robot.send_action(action)
                    goals_theirs = [sim_arm.reg(n, "Goal_Position") for n in NAMES]
                    # identical, except where LeRobot sends a goal outside the range (we clip; the servo would)
                    for n, a, b in zip(NAMES, goals_ours, goals_theirs, strict=True):
                        c = calibration[n]
                        assert a == min(max(b, c.range_min), c.range_max), n
            finally:
                arm.disconnect()
        finally:
            robot.disconnect()
