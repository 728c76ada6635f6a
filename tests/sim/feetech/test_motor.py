"""SimpleMotor, the plant behind an emulated servo, on its own (``sim.feetech.motor``)."""

import pytest

from sim.feetech.motor import MotorCommand, SimpleMotor
from sim.feetech.servo import EmulatedServo


# --- SimpleMotor on its own -----------------------------------------------------------------------------------------
def test_simple_motor_free_speed_and_acceleration():
    motor = SimpleMotor(position=0)
    motor.advance(0.0)
    motor.command(MotorCommand(mode=1, target=10_000, acceleration=1000))
    motor.advance(1.0)  # ramping at 1000 steps/s^2: ~500 steps
    assert motor.position == pytest.approx(500, abs=40)
    motor.command(MotorCommand(mode=1, target=10_000))  # maximum acceleration, no-load speed
    motor.advance(2.0)
    assert 3300 < motor.state().velocity <= 3551


def test_simple_motor_torque_off_is_moved_by_hand_or_load():
    motor = SimpleMotor(position=100)
    motor.advance(0.0)
    motor.advance(10.0)
    assert motor.position == 100
    motor.move_to(400.5)
    assert motor.state().position == 400.5
    motor.external_torque = 0.1
    motor.advance(11.0)
    assert motor.position > 600
    state = motor.state()
    assert state.load == 0.0 and state.velocity > 0


def test_simple_motor_is_a_plant():
    from sim.feetech.motor import Plant

    assert isinstance(SimpleMotor(), Plant)
    servo = EmulatedServo(1)
    assert isinstance(servo.plant, SimpleMotor)
