"""Calibration end to end on an uncalibrated simulated arm (MuJoCo twin), with a scripted person, then degrees that
match the simulated joint angles."""

import json

import numpy as np
import pytest

from onboard.cli import main
from onboard.cli.calibrate import run_calibration
from robot.arm import Arm
from robot.arm_config import ArmConfig
from sim.twin.person import SimulatedPerson
from sim.twin.so101 import SimulatedSO101
from sim.twin.world import JOINT_NAMES, qpos_to_lerobot


@pytest.mark.parametrize("seed", [1, 7])
def test_guided_calibration_then_degrees_match_the_joints(tmp_path, seed):
    with SimulatedSO101(seed=seed) as sim_arm:
        before = {j: sim_arm.servos[j].read_register("Present_Position") for j in JOINT_NAMES}
        assert any(abs(v - 2047) > 50 for v in before.values())  # uncalibrated: horns anywhere
        config = ArmConfig(type="so101_follower", port=sim_arm.url, id="twin", calibration_dir=tmp_path)
        person = SimulatedPerson(sim_arm, out=lambda _: None)
        calibration = run_calibration(config, person, sleep=person.sleep)
        assert any("middle of its range" in p for p in person.prompts)

        # the LeRobot-format file holds what the procedure found, which is what a perfect person would get
        saved = json.loads((tmp_path / "twin.json").read_text())
        expected = sim_arm.factory_calibration()
        for joint in JOINT_NAMES:
            assert saved[joint]["id"] == expected[joint]["id"]
            for key in ("homing_offset", "range_min", "range_max"):
                assert abs(saved[joint][key] - expected[joint][key]) <= 2, (joint, key)
            assert calibration[joint].homing_offset == saved[joint]["homing_offset"]

        sim_arm.bus.power_cycle()  # the calibration lives in the servos' EEPROM too
        rng = np.random.default_rng(seed)
        with Arm(config) as arm:
            low, high = arm.units.limits()
            for _ in range(4):
                goal = rng.uniform(np.asarray(low) * 0.6, np.asarray(high) * 0.6).astype(np.float32)
                goal[5] = rng.uniform(10, 90)
                arm.send_action(goal)
                sim_arm.clock.sleep(1.5)
                read = arm.read_positions()
                true = qpos_to_lerobot(sim_arm.joint_angles())
                assert np.abs(read[:5] - true[:5]).max() < 1.0  # degrees
                assert abs(read[5] - true[5]) < 1.0  # gripper, 0..100


def test_cli_calibrates_a_simulated_arm(tmp_path, capsys):
    rc = main(
        [
            "calibrate",
            "--robot.type=so101_follower",
            "--robot.port=sim",
            "--robot.id=cli_twin",
            f"--robot.calibration_dir={tmp_path}",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0, out
    assert (tmp_path / "cli_twin.json").is_file()
    assert "simulated joints are within" in out
    worst = float(out.split("within ")[-1].split("°")[0])
    assert worst < 1.0
