"""robot.arm: specs and configs, and the Arm against emulated STS3215 servos (simbus://), checked in the emulated
registers."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from robot.arm import Arm
from robot.arm_config import ARM_SPECS, ArmConfig, calibration_file
from robot.calibration import MotorCalibration, load_calibration
from robot.errors import (
    ArmConfigError,
    ArmDisconnectError,
    ArmNotConnectedError,
    CalibrationFileError,
    CalibrationMismatchError,
    CalibrationMissingError,
    HandshakeError,
)
from tests.simarm import NAMES, wait_until

KEYS = tuple(f"{n}.pos" for n in NAMES)


# ------------------------------------------------------------------------------------------------- specs and config
def test_specs_are_lerobots():
    assert set(ARM_SPECS) == {"so101_follower", "so100_follower", "so101_leader", "so100_leader"}
    for spec in ARM_SPECS.values():
        assert spec.names == NAMES and spec.ids == dict(zip(NAMES, range(1, 7), strict=True))
        assert all(m.model == "sts3215" for m in spec.motors)
        assert spec.keys == KEYS and spec.features == dict.fromkeys(KEYS, float)
    assert ARM_SPECS["so101_follower"].name == ARM_SPECS["so100_follower"].name == "so_follower"
    assert ARM_SPECS["so101_leader"].name == "so_leader"
    assert ARM_SPECS["so101_leader"].category == "teleoperators"
    modes = [m.mode(True).value for m in ARM_SPECS["so101_follower"].motors]
    assert modes == ["degrees"] * 5 + ["range_0_100"]
    assert [m.mode(False).value for m in ARM_SPECS["so101_follower"].motors] == ["range_m100_100"] * 5 + ["range_0_100"]


def test_config_errors_teach():
    with pytest.raises(ArmConfigError, match=r"known types: so101_follower, so100_follower.*Did you mean 'so101_f"):
        ArmConfig("so101_folower", "/dev/ttyACM0", "a")
    with pytest.raises(ArmConfigError, match=r"needs an id"):
        ArmConfig("so101_follower", "/dev/ttyACM0", "")
    with pytest.raises(ArmConfigError, match=r"--teleop\.id"):
        ArmConfig("so101_leader", "/dev/ttyACM0", "  ")
    with pytest.raises(ArmConfigError, match=r"file name"):
        ArmConfig("so101_follower", "/dev/ttyACM0", "../x")
    with pytest.raises(ArmConfigError, match=r"needs a port"):
        ArmConfig("so101_follower", "", "a")
    with pytest.raises(ArmConfigError, match=r"positive number"):
        ArmConfig("so101_follower", "p", "a", max_relative_target=-1.0)
    with pytest.raises(ArmConfigError, match=r"missing gripper"):
        ArmConfig("so101_follower", "p", "a", max_relative_target={n: 5.0 for n in NAMES[:5]})
    cfg = ArmConfig("so101_follower", "p", "a", max_relative_target=5)
    assert cfg.max_relative_target == 5.0 and isinstance(cfg.max_relative_target, float)
    cfg = ArmConfig("so101_follower", "p", "a", max_relative_target={f"{n}.pos": 5 for n in NAMES})
    assert cfg.max_relative_target == dict.fromkeys(NAMES, 5.0)


def test_calibration_path_defaults_to_lerobots(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_LEROBOT_CALIBRATION", str(tmp_path))
    assert ArmConfig("so101_follower", "p", "my_arm").calibration_path == tmp_path / "robots/so_follower/my_arm.json"
    assert calibration_file("so100_leader", "l") == tmp_path / "teleoperators/so_leader/l.json"
    cfg = ArmConfig("so101_follower", "p", "my_arm", calibration_dir=tmp_path / "x")
    assert cfg.calibration_path == tmp_path / "x/my_arm.json"


def test_constructor_touches_nothing():
    arm = Arm(ArmConfig("so101_follower", "/dev/does-not-exist", "a"))
    assert not arm.is_connected
    with pytest.raises(ArmNotConnectedError):
        arm.read_positions()
    arm.disconnect()  # harmless when not connected


# --------------------------------------------------------------------------------------------------------- the arm
@pytest.fixture
def calibrated(sim_arm, tmp_path):
    """A calibrated emulated arm and its config (calibration file in tmp_path)."""
    cfg = ArmConfig("so101_follower", sim_arm.url, "my_arm", calibration_dir=tmp_path)
    calibration = sim_arm.install_calibration(cfg.calibration_path)
    sim_arm.to_middle()
    return sim_arm, cfg, calibration


def expected_units(sim_arm, calibration) -> np.ndarray:
    out = []
    for n in NAMES:
        c = calibration[n]
        raw = sim_arm.reg(n, "Present_Position")
        if n == "gripper":
            out.append((min(max(raw, c.range_min), c.range_max) - c.range_min) / (c.range_max - c.range_min) * 100)
        else:
            out.append((raw - (c.range_min + c.range_max) / 2) * 360 / 4095)
    return np.array(out)


def test_connect_configures_like_lerobot(calibrated):
    sim_arm, cfg, _ = calibrated
    for n in NAMES:  # factory values that configure() changes
        sim_arm.servo(n).write_register("Return_Delay_Time", 250, persist=True)
    with Arm(cfg) as arm:
        assert arm.is_connected and arm.is_calibrated
        for n in NAMES:
            regs = {r: sim_arm.reg(n, r) for r in ("Return_Delay_Time", "Acceleration", "Operating_Mode")}
            assert regs == {"Return_Delay_Time": 0, "Acceleration": 254, "Operating_Mode": 0}
            assert (sim_arm.reg(n, "P_Coefficient"), sim_arm.reg(n, "I_Coefficient")) == (16, 0)
            assert sim_arm.reg(n, "D_Coefficient") == 32
            assert sim_arm.reg(n, "Torque_Enable") == 1 and sim_arm.reg(n, "Lock") == 1
        assert sim_arm.reg("gripper", "Max_Torque_Limit") == 500
        assert sim_arm.reg("gripper", "Protection_Current") == 250
        assert sim_arm.reg("gripper", "Overload_Torque") == 25
        assert sim_arm.reg("elbow_flex", "Max_Torque_Limit") == 1000
        assert sim_arm.reg("elbow_flex", "Overload_Torque") == 80
    # EEPROM settings were written unlocked: they persist
    sim_arm.bus.power_cycle()
    assert sim_arm.reg("gripper", "Max_Torque_Limit") == 500 and sim_arm.reg("shoulder_pan", "P_Coefficient") == 16


def test_leader_configure_leaves_torque_off(sim_arm, tmp_path):
    cfg = ArmConfig("so101_leader", sim_arm.url, "lead", calibration_dir=tmp_path)
    sim_arm.install_calibration(cfg.calibration_path)
    sim_arm.to_middle()
    with Arm(cfg) as arm:
        assert all(sim_arm.reg(n, "Torque_Enable") == 0 for n in NAMES)
        assert all(sim_arm.reg(n, "Return_Delay_Time") == 0 for n in NAMES)
        assert sim_arm.reg("gripper", "P_Coefficient") == 32  # leaders keep the factory gains
        sim_arm.move("elbow_flex", sim_arm.mids["elbow_flex"] + 455)  # a hand moves the leader
        action = arm.get_action()
        assert list(action) == list(KEYS)
        assert action["elbow_flex.pos"] == pytest.approx(expected_units(sim_arm, arm.calibration)[2], abs=1e-4)
        with pytest.raises(ArmConfigError, match=r"leader"):
            arm.send_action(np.zeros(6))


def test_read_positions_in_lerobot_units(calibrated):
    sim_arm, cfg, calibration = calibrated
    rng = np.random.default_rng(3)
    with Arm(cfg) as arm:
        arm.disable_torque()  # a hand moves the joints
        for _ in range(5):
            for n in NAMES:
                lo, hi = sim_arm.spans[n]
                sim_arm.move(n, sim_arm.mids[n] + int(rng.integers(-lo, hi + 1)))
            pos = arm.read_positions()
            assert pos.dtype == np.float32 and pos.shape == (6,)
            assert np.allclose(pos, expected_units(sim_arm, calibration), atol=1e-4)
        obs = arm.get_observation()
        assert list(obs) == list(KEYS) and all(isinstance(v, float) for v in obs.values())
        # at the middle pose every joint reads ~0 degrees (the range is centred on it) and the gripper ~mid
        sim_arm.to_middle()
        pos = arm.read_positions()
        for k, n in enumerate(NAMES[:5]):
            lo, hi = sim_arm.spans[n] if n != "wrist_roll" else (2047, 2048)
            assert pos[k] == pytest.approx((lo - hi) / 2 * 360 / 4095, abs=0.1)


def test_send_action_moves_the_servos_and_returns_what_was_sent(calibrated):
    _, cfg, _ = calibrated
    with Arm(cfg) as arm:
        goal = np.array([10.0, -15.0, 20.0, -5.0, 30.0, 40.0], dtype=np.float32)
        sent = arm.send_action(goal)
        assert sent == dict(zip(KEYS, map(float, goal), strict=True))
        assert wait_until(lambda: np.allclose(arm.read_positions(), goal, atol=0.5), timeout=5)
        # a dict, with a subset of the joints and extra keys that are not joints
        sent = arm.send_action({"elbow_flex.pos": 0.0, "observation.images.front": None})
        assert sent == {"elbow_flex.pos": 0.0}
        assert wait_until(lambda: abs(arm.read_positions()[2]) < 0.5, timeout=5)
        assert arm.read_positions()[0] == pytest.approx(10.0, abs=0.5)


def test_send_action_clips_to_the_calibrated_range(calibrated):
    sim_arm, cfg, calibration = calibrated
    with Arm(cfg) as arm:
        lo, hi = arm.units.limits()
        sent = arm.send_action(np.array([500.0, -500.0, 0, 0, 0, 150.0]))
        assert sent["shoulder_pan.pos"] == pytest.approx(hi[0], abs=1e-3)
        assert sent["shoulder_lift.pos"] == pytest.approx(lo[1], abs=1e-3)
        assert sent["gripper.pos"] == 100.0
        assert sim_arm.reg("shoulder_pan", "Goal_Position") == calibration["shoulder_pan"].range_max
        assert sim_arm.reg("shoulder_lift", "Goal_Position") == calibration["shoulder_lift"].range_min
        assert sim_arm.reg("gripper", "Goal_Position") == calibration["gripper"].range_max
        with pytest.raises(ValueError, match=r"non-finite goal for elbow_flex.pos"):
            arm.send_action({"elbow_flex.pos": float("nan")})
        with pytest.raises(ValueError, match=r"unknown joint 'elbow.pos'"):
            arm.send_action({"elbow.pos": 1.0})
        with pytest.raises(ValueError, match=r"shape"):
            arm.send_action(np.zeros(5))


def test_send_action_max_relative_target(calibrated):
    _, cfg, _ = calibrated
    cfg = ArmConfig(cfg.type, cfg.port, cfg.id, calibration_dir=cfg.calibration_dir, max_relative_target=5.0)
    with Arm(cfg) as arm:
        present = arm.read_positions()
        sent = arm.send_action({"elbow_flex.pos": float(present[2]) + 30, "wrist_flex.pos": float(present[3]) - 2})
        assert sent["elbow_flex.pos"] == pytest.approx(present[2] + 5, abs=1e-4)
        assert sent["wrist_flex.pos"] == pytest.approx(present[3] - 2, abs=1e-4)
    per_joint = {n: 1.0 for n in NAMES} | {"gripper": 10.0}
    cfg = ArmConfig(cfg.type, cfg.port, cfg.id, calibration_dir=cfg.calibration_dir, max_relative_target=per_joint)
    with Arm(cfg) as arm:
        present = arm.read_positions()
        sent = arm.send_action(present + 50)
        assert np.allclose(list(sent.values()), np.minimum(present + np.array([1, 1, 1, 1, 1, 10]), 100), atol=1e-4)


def test_file_and_eeprom_mismatch_raises_and_can_be_applied(calibrated, caplog):
    sim_arm, cfg, calibration = calibrated
    sim_arm.servo("wrist_flex").write_register("Homing_Offset", calibration["wrist_flex"].homing_offset + 10)
    sim_arm.servo("gripper").write_register("Max_Position_Limit", 4095)
    arm = Arm(cfg)
    with pytest.raises(CalibrationMismatchError) as info:
        arm.connect()
    err = info.value
    assert len(err.differences) == 2
    assert "wrist_flex (id 4): Homing_Offset" in str(err) and "gripper (id 6): Max_Position_Limit" in str(err)
    assert "onboard calibrate --robot.type=so101_follower" in str(err) and str(cfg.calibration_path) in str(err)
    assert not arm.is_connected
    assert all(sim_arm.reg(n, "Torque_Enable") == 0 for n in NAMES)  # nothing was switched on
    with pytest.raises(CalibrationMismatchError), Arm(cfg):  # the context manager refuses too
        pass


def test_mismatch_written_to_the_servos_when_asked(calibrated):
    sim_arm, cfg, calibration = calibrated
    sim_arm.servo("wrist_flex").write_register("Homing_Offset", 0, persist=True)
    arm = Arm(cfg)
    arm.connect(calibrate_if_needed=True)
    try:
        assert arm.read_servo_calibration() == calibration
    finally:
        arm.disconnect()
    sim_arm.bus.power_cycle()
    assert sim_arm.reg("wrist_flex", "Homing_Offset") == calibration["wrist_flex"].homing_offset


def test_missing_or_bad_file(sim_arm, tmp_path):
    cfg = ArmConfig("so101_follower", sim_arm.url, "nobody", calibration_dir=tmp_path)
    arm = Arm(cfg)
    with pytest.raises(CalibrationMissingError, match=r"onboard calibrate .*--robot.id=nobody.*onboard calibration"):
        arm.connect()
    assert not arm.is_connected
    cal = sim_arm.install_calibration(cfg.calibration_path)
    text = cfg.calibration_path.read_text().replace('"id": 3', '"id": 9')
    cfg.calibration_path.write_text(text)
    with pytest.raises(CalibrationFileError, match=r"(?s)elbow_flex: id 9, but elbow_flex is servo id 3.*Recalibrate"):
        arm.connect()
    assert load_calibration(cfg.calibration_path)["gripper"] == cal["gripper"]


def test_torque_off_after_disconnect_and_after_an_exception(calibrated):
    sim_arm, cfg, _ = calibrated
    arm = Arm(cfg).connect()
    assert all(sim_arm.reg(n, "Torque_Enable") == 1 for n in NAMES)
    arm.disconnect()
    assert not arm.is_connected
    assert all(sim_arm.reg(n, "Torque_Enable") == 0 and sim_arm.reg(n, "Lock") == 0 for n in NAMES)
    with pytest.raises(RuntimeError, match=r"policy crashed"):
        with Arm(cfg) as arm:
            arm.send_action(np.zeros(6))
            assert all(sim_arm.reg(n, "Torque_Enable") == 1 for n in NAMES)
            raise RuntimeError("policy crashed")
    assert not arm.is_connected
    assert all(sim_arm.reg(n, "Torque_Enable") == 0 for n in NAMES)
    # and not when asked to keep it
    keep = ArmConfig(
        cfg.type, cfg.port, cfg.id, calibration_dir=cfg.calibration_dir, disable_torque_on_disconnect=False
    )
    with Arm(keep):
        pass
    assert all(sim_arm.reg(n, "Torque_Enable") == 1 for n in NAMES)


def test_disconnect_closes_the_port_even_if_a_servo_is_gone(calibrated):
    sim_arm, cfg, _ = calibrated
    arm = Arm(cfg).connect()
    bus = arm.bus
    sim_arm.bus.unplug(3)
    with pytest.raises(ArmDisconnectError, match=r"elbow_flex \(id 3\)"):
        arm.disconnect()
    assert not bus.is_connected
    assert sim_arm.reg("gripper", "Torque_Enable") == 0  # the others were still switched off


def test_handshake(calibrated, caplog):
    sim_arm, cfg, _ = calibrated
    sim_arm.bus.unplug(3)
    arm = Arm(cfg)
    with pytest.raises(HandshakeError, match=r"no answer from elbow_flex \(id 3\)"):
        arm.connect()
    assert not arm.is_connected and not arm.bus.is_connected  # the port was closed again
    sim_arm.bus.plug(3)
    sim_arm.servo("wrist_roll").write_register("Model_Number", 778)  # other STS3215 firmware: warn, go on
    with caplog.at_level(logging.WARNING, logger="robot.arm"):
        with Arm(cfg) as arm:
            assert arm.is_connected
    assert "wrist_roll (id 5) reports model number 778" in caplog.text
    sim_arm.servo("wrist_roll").write_register("Model_Number", 2825)
    with pytest.raises(HandshakeError, match=r"wrist_roll \(id 5\) is a sts3250"):
        Arm(cfg).connect()
    sim_arm.servo("wrist_roll").write_register("Model_Number", 777)
    sim_arm.servo("gripper").write_register("Firmware_Minor_Version", 9)
    with pytest.raises(HandshakeError, match=r"different firmware versions.*gripper 3.9"):
        Arm(cfg).connect()


def test_injected_bus_stays_open_if_it_was(calibrated):
    import serial

    from hardware.feetech.bus import FeetechBus

    sim_arm, cfg, calibration = calibrated
    bus = FeetechBus(serial.serial_for_url(sim_arm.url, baudrate=1_000_000)).connect()
    with Arm(cfg, bus=bus) as arm:
        assert arm.bus is bus
        assert arm.calibration == calibration
    assert bus.is_connected
    bus.disconnect()
    assert isinstance(calibration["gripper"], MotorCalibration)
