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


def test_simple_motor_keeps_the_plant_contract():
    """The promises of ``Plant``: the first ``advance`` only sets the time base, ``state()`` is the state at the last
    ``advance``, and a command holds until the next one."""
    from sim.feetech.motor import Plant

    motor = SimpleMotor(position=1000)
    assert isinstance(motor, Plant)
    motor.command(MotorCommand(mode=1, target=2000))
    motor.advance(50.0)  # the time base: nothing moves yet
    assert motor.state().position == 1000
    motor.advance(50.1)
    moving = motor.state()
    assert 1000 < moving.position < 2000 and moving.velocity > 0 and moving.load > 0
    motor.command(MotorCommand(mode=1, target=0))  # a new command: nothing happens until time passes
    assert motor.state() == moving
    motor.command(MotorCommand(mode=1, target=2000))
    motor.advance(52.0)  # the command held for 1.9 s, with no other call: it arrived
    assert motor.state().position == pytest.approx(2000, abs=1) and abs(motor.state().velocity) < 1


def test_an_emulated_servo_reads_its_simple_motor():
    servo = EmulatedServo(1)
    assert isinstance(servo.plant, SimpleMotor)  # the default plant
    servo.plant.move_to(1234.0)  # the horn turned by hand, torque off
    servo.advance(0.0)
    assert servo.read_register("Present_Position") == 1234
