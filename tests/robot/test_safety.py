"""robot.safety on the mirrored stack: SimulatedSO101 (MuJoCo + emulated STS3215 servos) + calibration file + Arm,
on the sim clock. Everything is checked in the emulated servos' registers or the simulated joints."""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from hardware.feetech.protocol import BROADCAST_ID, Instruction, PacketDecoder
from hardware.feetech.tables import REGISTERS
from robot.arm import Arm
from robot.arm_config import ArmConfig
from robot.calibration import MotorCalibration, save_calibration
from robot.errors import (
    EmergencyStopError,
    OverheatError,
    SafetyConfigError,
    ServoFaultError,
    StallError,
)
from robot.loop import ControlLoop
from robot.safety import SafeArm
from robot.safety_config import SafetyConfig
from sim.twin.so101 import SimulatedSO101

NAMES = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
KEYS = tuple(f"{n}.pos" for n in NAMES)
RATE = 30.0


class Rig:
    def __init__(self, tmp: Path, seed: int = 0):
        self.sim = SimulatedSO101(seed=seed, uncalibrated=False)
        cal = {n: MotorCalibration(**v) for n, v in self.sim.factory_calibration().items()}
        save_calibration(tmp / "sim.json", cal)
        self.arm = Arm(ArmConfig(type="so101_follower", port=self.sim.url, id="sim", calibration_dir=tmp))
        # EEPROM settings written by configure() (the gripper's Max_Torque_Limit) are in force after a power cycle
        self.arm.connect()
        self.arm.disconnect()
        self.sim.bus.power_cycle()
        self.arm.connect()
        self.clock = self.sim.clock

    def torque(self) -> list[int]:
        return [self.sim.servos[n].read_register("Torque_Enable") for n in NAMES]

    def close(self) -> None:
        self.arm.disconnect()  # also after a latched fault: the servos obey torque off, and Arm reads it back
        self.sim.close()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    r.close()


# --------------------------------------------------------------------------------------------------------- config
def test_config_defaults_are_on_and_validated():
    c = SafetyConfig()
    assert c.max_step_deg == 10 and c.max_velocity_deg_s == 180 and c.gripper_torque_limit == 0.5
    assert c.watchdog_timeout_s == 0.1 and c.on_exit == "torque_off" and c.temperature_stop_c == 65
    with pytest.raises(SafetyConfigError, match=r"max_step_deg must be a positive number"):
        SafetyConfig(max_step_deg=0)
    with pytest.raises(SafetyConfigError, match=r"fraction of full torque.*0\.5 = 50 %"):
        SafetyConfig(gripper_torque_limit=50)
    with pytest.raises(SafetyConfigError, match=r"warning comes first"):
        SafetyConfig(temperature_warn_c=70, temperature_stop_c=60)
    with pytest.raises(SafetyConfigError, match=r"or None"):
        SafetyConfig(watchdog_timeout_s=-1)
    with pytest.raises(SafetyConfigError, match=r"'torque_off' or 'hold'"):
        SafetyConfig(on_exit="limp")
    assert SafetyConfig(watchdog_timeout_s=None).watchdog_timeout_s is None


# -------------------------------------------------------------------------------------------------------- clamping
def test_oversized_step_is_clamped_and_reported(rig: Rig):
    with SafeArm(rig.arm, rig.clock) as safe:
        # the gripper's torque cap is in force in RAM at once
        assert rig.sim.servos["gripper"].read_register("Torque_Limit") == 500
        start = safe.check().positions
        goal = start.copy()
        goal[0] += 50.0  # way more than one step
        goal[3] -= 3.0  # a small one
        sent = safe.send_action(goal)
        assert sent[KEYS[0]] == pytest.approx(start[0] + 10.0, abs=0.1)
        assert sent[KEYS[3]] == pytest.approx(start[3] - 3.0, abs=0.1)
        assert sent.clamped == {KEYS[0]: ("step",)}
        assert safe.stats.clamps["step"] == 1 and safe.stats.clamps_by_joint["shoulder_pan"] == 1
        # what was sent is what the servo got
        goal_raw = rig.sim.servos["shoulder_pan"].read_register("Goal_Position")
        assert float(rig.arm.units.to_units(np.array([goal_raw, 0, 0, 0, 0, 0]))[0]) == pytest.approx(
            sent[KEYS[0]], abs=0.1
        )

        # one tick later the velocity limit binds: 180 deg/s * 0.04 s = 7.2 deg from the last goal
        rig.clock.sleep(0.04)  # a whole number of 2 ms physics steps
        sent2 = safe.send_action({KEYS[0]: start[0] + 50.0})
        assert set(sent2) == {KEYS[0]}  # a subset of the joints
        assert sent2[KEYS[0]] == pytest.approx(sent[KEYS[0]] + 7.2, abs=0.1)
        assert sent2.clamped == {KEYS[0]: ("velocity",)}

        # beyond the calibrated range: clamped to it first
        hi = rig.arm.units.limits()[1]
        rig.clock.sleep(1.0)
        sent3 = safe.send_action({KEYS[5]: 150.0})
        assert "limits" in sent3.clamped[KEYS[5]] and sent3[KEYS[5]] <= hi[5]
        assert safe.stats.clamps["limits"] == 1
        with pytest.raises(ValueError, match="non-finite"):
            safe.send_action({KEYS[1]: math.nan})


def test_a_free_move_is_not_a_stall(rig: Rig):
    with SafeArm(rig.arm, rig.clock) as safe:
        target = safe.check().positions.copy()
        target[0] += 90.0

        def step(tick):
            safe.check()
            safe.send_action(target)

        ControlLoop(rig.clock, RATE).run(step, duration_s=1.5)
        assert safe.check().positions[0] == pytest.approx(target[0], abs=1.5)
        assert not safe.stopped and safe.stats.clamps["velocity"] > 10
        assert rig.torque() == [1] * 6


# ----------------------------------------------------------------------------------------------------------- stall
def test_pushing_into_the_table_is_a_stall_and_stops_the_arm(rig: Rig):
    with SafeArm(rig.arm, rig.clock) as safe:
        target = safe.check().positions.copy()
        target[1], target[2] = 90.0, 60.0  # shoulder forward, elbow down: the gripper presses into the table
        t0 = rig.clock.now()

        def step(tick):
            safe.check()
            safe.send_action(target)

        with pytest.raises(StallError, match=r"shoulder_lift stalled.*torque turned off") as info:
            ControlLoop(rig.clock, RATE).run(step, duration_s=3.0)
        assert info.value.joint == "shoulder_lift" and info.value.load >= 0.7 and info.value.error > 2
        assert rig.clock.now() - t0 < 1.5  # well before the servo's own 2 s overload cut-out
        assert rig.torque() == [0] * 6
        assert safe.stopped and safe.stats.stops == 1
        with pytest.raises(EmergencyStopError, match="reset"):
            safe.send_action(target)
    assert rig.torque() == [0] * 6


def test_a_stalled_gripper_is_derated_not_stopped(rig: Rig):
    grip = rig.sim.servos["gripper"]
    with SafeArm(rig.arm, rig.clock) as safe:
        goal = safe.check().positions.copy()
        rig.sim.hand.hold("gripper", rig.sim.joint_angle("gripper"))  # something in the gripper: it cannot close
        goal[5] = 0.0  # close

        def step(tick):
            safe.check()
            safe.send_action(goal)

        ControlLoop(rig.clock, RATE).run(step, duration_s=4.0)  # twice the servo's overload protection time
        assert safe.stats.gripper_derates == 1 and safe.grasp == -1.0 and not safe.stopped
        assert grip.read_register("Torque_Limit") == 200 and grip.read_register("Status") == 0
        assert rig.torque() == [1] * 6  # still squeezing the object, below the servo's overload threshold
        # opening ends the grasp: full gripper torque again
        rig.sim.hand.release()
        for _ in range(5):  # the opening goal ramps at the gripper's velocity limit; once past the jaw, full torque
            rig.clock.sleep(0.04)
            safe.check()
            safe.send_action({KEYS[5]: 80.0})
        assert safe.grasp is None and grip.read_register("Torque_Limit") == 500


def test_a_held_grasp_survives_goal_jitter_and_ends_when_the_goal_opens_past_the_jaw(rig: Rig):
    """A policy holding a cube jitters its gripper goal by a unit or two: that is not a release. The grasp ends when
    the goal no longer squeezes (``gripper_release_margin`` on the open side of the measured jaw)."""
    grip = rig.sim.servos["gripper"]
    with SafeArm(rig.arm, rig.clock) as safe:
        goal = safe.check().positions.copy()
        rig.sim.hand.hold("gripper", rig.sim.joint_angle("gripper"))
        jaw = float(safe.check().positions[5])
        goal[5] = jaw - 4.0  # a policy's grasp: a few units inside the object

        def step(tick):
            safe.check()
            safe.send_action(goal)

        ControlLoop(rig.clock, RATE).run(step, duration_s=1.5)
        assert safe.grasp == -1.0 and grip.read_register("Torque_Limit") == 200  # derated (error < the old 5 units)
        for g in (jaw - 2.0, jaw - 3.5, jaw - 0.5):  # jitter, still squeezing
            rig.clock.sleep(1 / RATE)
            safe.check()
            safe.send_action({KEYS[5]: g})
            assert safe.grasp == -1.0 and grip.read_register("Torque_Limit") == 200
        rig.clock.sleep(1 / RATE)
        safe.check()
        safe.send_action({KEYS[5]: jaw + 1.5})  # open past the jaw: the grasp is over
        assert safe.grasp is None and grip.read_register("Torque_Limit") == 500
        rig.sim.hand.release()


def test_a_squeeze_with_the_goal_within_a_unit_of_the_jaw_is_derated_before_the_servo_overloads(rig: Rig):
    """The stiff position loop saturates with the goal less than a unit inside the object: a loaded jaw that does
    not move is a grasp whatever the goal error, derated below the servo's 25 % Overload_Torque in time."""
    grip = rig.sim.servos["gripper"]
    with SafeArm(rig.arm, rig.clock) as safe:
        goal = safe.check().positions.copy()
        rig.sim.hand.hold("gripper", rig.sim.joint_angle("gripper"))
        goal[5] = float(safe.check().positions[5]) - 0.3  # a quarter unit of squeeze
        loads = []

        def step(tick):
            loads.append(abs(float(safe.check().load[5])))
            safe.send_action(goal)

        ControlLoop(rig.clock, RATE).run(step, duration_s=4.0)  # twice the servo's overload protection time
        assert max(loads[:10]) > 0.25  # it did squeeze above the Overload_Torque before the derate
        assert safe.stats.gripper_derates == 1 and safe.grasp == -1.0 and not safe.stopped
        assert grip.read_register("Torque_Limit") == 200 and grip.read_register("Status") == 0
        assert rig.torque() == [1] * 6
        rig.sim.hand.release()


# ---------------------------------------------------------------------------------------------------- temperature
def test_temperature_warns_then_stops(rig: Rig, caplog):
    with SafeArm(rig.arm, rig.clock) as safe:
        rig.sim.servos["gripper"].temperature = 57.0
        with caplog.at_level(logging.WARNING, logger="robot.safety"):
            safe.check()
            safe.check()
        assert safe.stats.temperature_warnings == 1 and "gripper is at 57 C" in caplog.text
        rig.sim.servos["gripper"].temperature = 66.0
        with pytest.raises(OverheatError, match=r"gripper is at 66 C") as info:
            safe.check()
        assert info.value.joint == "gripper" and info.value.temperature_c == 66
        assert rig.torque() == [0] * 6


def test_a_servo_fault_stops_the_arm(rig: Rig):
    rig.sim.servos["elbow_flex"].force_overload(True)  # a jammed joint: its own protection trips after 2 s
    with SafeArm(rig.arm, rig.clock) as safe:
        with pytest.raises(ServoFaultError, match=r"elbow_flex: overload") as info:
            ControlLoop(rig.clock, RATE).run(lambda tick: safe.check() is not None, duration_s=3.0)
        assert info.value.joints == ["elbow_flex"]
        assert rig.torque() == [0] * 6


# -------------------------------------------------------------------------------------------------------- watchdog
def test_watchdog_holds_the_present_position_when_actions_stop(rig: Rig):
    with SafeArm(rig.arm, rig.clock) as safe:
        goal = safe.check().positions.copy()
        trip: dict = {}

        def step(tick):
            r = safe.check()
            if safe.holding and "t" not in trip:
                trip["t"] = r.t
                trip["angles"] = rig.sim.joint_angles()
            if tick.count < 15:  # a policy that moves the pan joint at 150 deg/s, then dies
                goal[0] += 5.0
                safe.send_action(goal)
                trip["last_action"] = tick.start
            return r

        ControlLoop(rig.clock, RATE).run(step, duration_s=2.0)
        assert safe.stats.watchdog_holds == 1 and safe.holding
        # tripped at the first check after the 0.1 s timeout
        assert trip["last_action"] + 0.1 < trip["t"] <= trip["last_action"] + 0.1 + 1.5 / RATE
        drift = np.degrees(np.abs(rig.sim.joint_angles() - trip["angles"]))
        assert drift.max() < 1.5  # held where it was when the watchdog tripped (not at the stale goal)
        assert rig.torque() == [1] * 6
        # the next action starts from the held position, within one step
        held = safe.check().positions
        sent = safe.send_action(held + 30.0)
        assert sent[KEYS[0]] == pytest.approx(held[0] + 10.0, abs=0.1) and not safe.holding


# ------------------------------------------------------------------------------------------------------- lifecycle
@pytest.mark.parametrize("exc", [RuntimeError("policy crashed"), KeyboardInterrupt()])
def test_exceptions_and_ctrl_c_leave_torque_off(rig: Rig, exc: BaseException):
    assert rig.torque() == [1] * 6
    with pytest.raises(type(exc)):
        with SafeArm(rig.arm, rig.clock) as safe:
            safe.send_action(safe.check().positions + 1.0)
            raise exc
    assert rig.torque() == [0] * 6


def test_on_exit_hold_keeps_torque_at_the_present_position(rig: Rig):
    with SafeArm(rig.arm, rig.clock, SafetyConfig(on_exit="hold")) as safe:
        safe.send_action(safe.check().positions + 5.0)
    assert rig.torque() == [1] * 6
    servo = rig.sim.servos["shoulder_pan"]
    assert servo.read_register("Goal_Position") == servo.read_register("Present_Position")
    # a safety fault still ends with torque off
    with pytest.raises(OverheatError):
        with SafeArm(rig.arm, rig.clock, SafetyConfig(on_exit="hold")) as safe:
            rig.sim.servos["wrist_flex"].temperature = 66.0  # our stop threshold, below the servo's own 70 C
            safe.check()
    assert rig.torque() == [0] * 6


def test_emergency_stop_then_reset(rig: Rig):
    with SafeArm(rig.arm, rig.clock) as safe:
        assert safe.emergency_stop("test") == []
        assert rig.torque() == [0] * 6 and safe.stopped
        with pytest.raises(EmergencyStopError):
            safe.check()
        safe.reset()
        assert rig.torque() == [1] * 6 and not safe.stopped
        r = safe.check()
        sent = safe.send_action(r.positions + 1.0)
        assert sent.clamped == {}


def test_one_read_per_check(rig: Rig):
    """check() costs one SYNC_READ (Present_Position .. Status) and replaces the position read of a tick."""
    bus = rig.sim.bus
    wire: list[bytes] = []
    transact = bus.transact

    def listen(data: bytes, t: float, line_baud: int):  # what the driver puts on the wire, passed on unchanged
        wire.append(bytes(data))
        return transact(data, t, line_baud)

    with SafeArm(rig.arm, rig.clock) as safe:
        stats = rig.arm.bus.stats
        before = stats.as_dict()
        bus.transact = listen
        try:
            r = safe.check()
        finally:
            del bus.transact
        after = stats.as_dict()
        changed = {k: after[k] - before[k] for k in after if after[k] != before[k]}
        assert changed == {"transactions": 1}, changed  # one transaction, no retry, no error
        first = REGISTERS["Present_Position"].address
        length = REGISTERS["Status"].address + 1 - first  # position, speed, load, voltage, temperature, .., status
        ids = bytes(rig.arm.ids[n] for n in NAMES)
        packets = [(p.id, p.instruction, p.params) for p in PacketDecoder("instruction").feed(b"".join(wire))]
        assert packets == [(BROADCAST_ID, Instruction.SYNC_READ, bytes([first, length]) + ids)], packets
        np.testing.assert_allclose(r.positions, rig.arm.read_positions(), atol=1e-4)
        assert r.temperature.tolist() == [rig.sim.servos[n].read_register("Present_Temperature") for n in NAMES]
