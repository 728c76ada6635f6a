"""EmulatedServo's controller and protections (``sim.feetech.control``), driven with raw instruction packets
(hardware.md §1-2): holding and tracking goals, frames and limits, torque limit and load, temperature, overload,
overheat and voltage faults."""

import pytest

from hardware.feetech import protocol as P
from sim.feetech.motor import SimpleMotor
from sim.feetech.servo import EmulatedServo
from tests.sim.feetech.test_emulator_servo import ask, run, write


# --- controller -----------------------------------------------------------------------------------------------------
def test_enabling_torque_holds_the_present_position():
    motor = SimpleMotor(position=1000)
    servo = EmulatedServo(1, plant=motor)
    motor.move_to(1700)  # moved by hand while torque is off
    servo.advance(0.0)
    assert servo.read_register("Present_Position") == 1700
    write(servo, "Torque_Enable", 1)
    assert servo.read_register("Goal_Position") == 1700
    run(servo, 0.0, 1.0)
    assert servo.read_register("Present_Position") == 1700


def test_goal_written_with_torque_off_is_used_when_torque_comes_on():
    servo = EmulatedServo(1, plant=SimpleMotor(position=1000))
    servo.advance(0.0)
    write(servo, "Goal_Position", 1500)
    run(servo, 0.0, 0.5)
    assert servo.read_register("Present_Position") == 1000  # torque off: goes nowhere
    write(servo, "Torque_Enable", 1, t=0.5)
    run(servo, 0.5, 1.5)
    assert servo.read_register("Present_Position") == 1500


def test_goal_tracking_velocity_and_moving_flag():
    servo = EmulatedServo(1, plant=SimpleMotor(position=1000))
    servo.advance(0.0)
    write(servo, "Torque_Enable", 1)
    write(servo, "Goal_Velocity", 1000)  # steps/s
    write(servo, "Goal_Position", 3000)
    run(servo, 0.0, 1.0)
    pos = servo.read_register("Present_Position")
    assert 1000 + 800 < pos < 1000 + 1100  # ~1000 steps in 1 s at 1000 steps/s
    assert servo.read_register("Moving") == 1
    assert 900 <= servo.read_register("Present_Velocity") <= 1010
    assert servo.read_register("Present_Goal_Position") == 3000
    run(servo, 1.0, 3.0)
    assert servo.read_register("Present_Position") == 3000
    assert servo.read_register("Moving") == 0
    assert servo.read_register("Present_Velocity") == 0


def test_homing_offset_shifts_the_present_frame():
    motor = SimpleMotor(position=3000)
    servo = EmulatedServo(1, plant=motor)
    write(servo, "Homing_Offset", 1000)
    assert servo.read_register("Present_Position") == 2000  # Present = Actual - Offset
    write(servo, "Torque_Enable", 1)
    write(servo, "Goal_Position", 2500)
    run(servo, 0.0, 1.0)
    assert servo.read_register("Present_Position") == 2500
    assert motor.position == pytest.approx(3500, abs=1)


def test_homing_offset_moves_the_wrap_point():
    motor = SimpleMotor(position=100)
    servo = EmulatedServo(1, plant=motor)
    write(servo, "Homing_Offset", 200)
    assert servo.read_register("Present_Position") == 3996  # (100 - 200) mod 4096
    write(servo, "Torque_Enable", 1)
    write(servo, "Goal_Position", 10)
    run(servo, 0.0, 2.0)
    assert servo.read_register("Present_Position") == 10
    # the servo travelled down through its own frame (3996 -> 10), never across the wrap point
    assert motor.position == pytest.approx(100 - 3986, abs=1)


def test_position_limits_clamp_the_goal():
    servo = EmulatedServo(1, plant=SimpleMotor(position=2000))
    write(servo, "Min_Position_Limit", 1000)
    write(servo, "Max_Position_Limit", 3000)
    write(servo, "Torque_Enable", 1)
    write(servo, "Goal_Position", 3500)
    run(servo, 0.0, 1.0)
    assert servo.read_register("Present_Position") == 3000
    assert servo.read_register("Present_Goal_Position") == 3000
    write(servo, "Goal_Position", -200, t=1.0)
    run(servo, 1.0, 2.0)
    assert servo.read_register("Present_Position") == 1000


def test_multi_turn_when_both_limits_are_zero():
    motor = SimpleMotor(position=2048)
    servo = EmulatedServo(1, plant=motor)
    write(servo, "Min_Position_Limit", 0)
    write(servo, "Max_Position_Limit", 0)
    write(servo, "Phase", 12 | 0x10)  # multi-turn feedback
    write(servo, "Torque_Enable", 1)
    write(servo, "Goal_Position", 6000)
    run(servo, 0.0, 2.0)
    assert servo.read_register("Present_Position") == 6000
    assert motor.position == pytest.approx(6000, abs=1)


def test_torque_limit_and_external_load():
    motor = SimpleMotor(position=2048)
    servo = EmulatedServo(1, plant=motor)
    write(servo, "Torque_Enable", 1)
    motor.external_torque = -0.5  # a weight pulling down, within the torque limit: held, with a small sag
    run(servo, 0.0, 0.5)
    assert abs(servo.read_register("Present_Position") - 2048) <= 20
    assert servo.read_register("Present_Load") == pytest.approx(500, abs=15)  # ~+50 % duty against the load
    assert servo.read_register("Present_Current") == pytest.approx(1.0 / 0.0065, abs=5)  # ~0.5 x 2 A stall current
    write(servo, "Torque_Limit", 300, t=0.5)  # now the load wins: the motor yields
    run(servo, 0.5, 1.0)
    assert servo.read_register("Present_Position") < 2048 - 100
    motor.external_torque = 0.5
    run(servo, 1.0, 1.5)
    raw = int.from_bytes(servo.read_bytes(60, 2), "little")
    assert raw == (1 << 10) | 300  # negative load: sign-magnitude bit 10, saturated at the 30 % limit


def test_temperature_rises_with_sustained_load_and_cools_down():
    motor = SimpleMotor(position=2048)
    servo = EmulatedServo(1, plant=motor, ambient_c=25.0)
    write(servo, "Torque_Enable", 1)
    motor.external_torque = 0.6  # below Overload_Torque (80 %)
    run(servo, 0.0, 300.0, dt=1.0)
    hot = servo.read_register("Present_Temperature")
    assert hot >= 38
    motor.external_torque = 0.0
    run(servo, 300.0, 900.0, dt=1.0)
    assert servo.read_register("Present_Temperature") <= 26
    assert servo.read_register("Status") == 0


# --- protections ----------------------------------------------------------------------------------------------------
def test_overload_turns_torque_off_after_the_protection_time():
    motor = SimpleMotor(position=2048)
    servo = EmulatedServo(1, plant=motor)
    write(servo, "Protection_Time", 10)  # 100 ms
    write(servo, "Torque_Enable", 1)
    motor.external_torque = 1.5  # beyond the torque limit
    run(servo, 0.0, 0.05)
    assert servo.read_register("Status") == 0  # not yet: the protection time has not passed
    assert servo.read_register("Torque_Enable") == 1
    run(servo, 0.05, 0.3)
    assert servo.read_register("Torque_Enable") == 0
    assert servo.read_register("Status") & 0x20
    assert ask(servo, P.ping(1), t=0.3).error == 0x20
    assert ask(servo, P.read(1, 56, 2), t=0.3).error == 0x20
    # the cause goes away, torque is enabled again: the bit clears
    motor.external_torque = 0.0
    run(servo, 0.3, 0.4)
    assert servo.read_register("Status") == 0x20  # latched until torque is re-enabled
    assert write(servo, "Torque_Enable", 1, t=0.4).error == 0
    assert servo.read_register("Status") == 0


def test_overload_without_unloading_only_reports():
    motor = SimpleMotor(position=2048)
    servo = EmulatedServo(1, plant=motor)
    write(servo, "Unloading_Condition", 44 & ~0x20)
    write(servo, "Protection_Time", 5)
    write(servo, "Torque_Enable", 1)
    motor.external_torque = 1.2
    run(servo, 0.0, 0.2)
    assert servo.read_register("Status") & 0x20
    assert servo.read_register("Torque_Enable") == 1
    motor.external_torque = 0.0
    run(servo, 0.2, 0.5)
    assert servo.read_register("Status") == 0


def test_forced_overload_trips_whenever_torque_is_on():
    servo = EmulatedServo(1)
    write(servo, "Protection_Time", 10)
    servo.force_overload(True)
    run(servo, 0.0, 0.5)
    assert servo.read_register("Status") == 0  # torque off: no load, no overload
    write(servo, "Torque_Enable", 1, t=0.5)
    run(servo, 0.5, 0.7)
    assert servo.read_register("Torque_Enable") == 0
    assert servo.read_register("Status") == 0x20
    servo.force_overload(False)
    write(servo, "Torque_Enable", 1, t=0.7)
    run(servo, 0.7, 1.0)
    assert servo.read_register("Status") == 0 and servo.read_register("Torque_Enable") == 1


def test_overheat_turns_torque_off():
    servo = EmulatedServo(1, ambient_c=25.0)
    write(servo, "Torque_Enable", 1)
    write(servo, "Max_Temperature_Limit", 20)
    assert servo.read_register("Status") == 0x04
    assert servo.read_register("Torque_Enable") == 0
    write(servo, "Max_Temperature_Limit", 70)
    assert servo.read_register("Status") == 0x04  # latched until torque comes back on
    write(servo, "Torque_Enable", 1)
    assert servo.read_register("Status") == 0


def test_voltage_limits():
    servo = EmulatedServo(1, voltage=7.4)
    write(servo, "Max_Voltage_Limit", 70)
    assert servo.read_register("Status") == 0x01
    write(servo, "Max_Voltage_Limit", 80)
    assert servo.read_register("Status") == 0
