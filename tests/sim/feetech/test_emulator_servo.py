"""EmulatedServo's memory and instruction semantics, driven with raw instruction packets (hardware.md §1-2). Its
controller and protections: test_servo_control.py; SimpleMotor: test_motor.py."""

import pytest

from hardware.feetech import protocol as P
from hardware.feetech.protocol import BROADCAST_ID, Instruction, PacketDecoder, StatusPacket
from hardware.feetech.tables import REGISTERS, factory_memory
from sim.feetech.motor import SimpleMotor
from sim.feetech.servo import EmulatedServo


def packet(raw: bytes):
    (pkt,) = PacketDecoder("instruction").feed(raw)
    return pkt


def ask(servo: EmulatedServo, raw: bytes, t: float = 0.0) -> StatusPacket | None:
    reply = servo.handle(packet(raw), t)
    if reply is None:
        return None
    (status,) = PacketDecoder("status").feed(reply)
    assert isinstance(status, StatusPacket)
    return status


def write(servo, name: str, value: int, t: float = 0.0, id_: int | None = None) -> StatusPacket | None:
    reg = REGISTERS[name]
    return ask(servo, P.write(servo.id if id_ is None else id_, reg.address, reg.encode(value)), t)


def run(servo: EmulatedServo, t0: float, t1: float, dt: float = 0.01) -> float:
    """Advance in steps of dt (a driver polling the bus); returns t1."""
    n = round((t1 - t0) / dt)
    for k in range(1, n + 1):
        servo.advance(t0 + k * dt)
    return t1


# --- the worked examples of hardware.md §1.2 -----------------------------------------------------------------------
def test_ping_example_bytes():
    assert P.ping(1) == bytes.fromhex("FF FF 01 02 01 FB")
    assert EmulatedServo(1).handle(packet(P.ping(1)), 0.0) == bytes.fromhex("FF FF 01 02 00 FC")


def test_read_present_position_example_bytes():
    servo = EmulatedServo(1, plant=SimpleMotor(position=1304))
    request = bytes.fromhex("FF FF 01 04 02 38 02 BE")
    assert P.read(1, 0x38, 2) == request
    assert servo.handle(packet(request), 0.0) == bytes.fromhex("FF FF 01 04 00 18 05 DD")


def test_write_example_bytes():
    servo = EmulatedServo(1)
    request = bytes.fromhex("FF FF 01 09 03 2A 00 08 00 00 E8 03 D5")
    assert servo.handle(packet(request), 0.0) == bytes.fromhex("FF FF 01 02 00 FC")
    assert servo.read_register("Goal_Position") == 2048
    assert servo.read_register("Goal_Time") == 0
    assert servo.read_register("Goal_Velocity") == 1000


def test_broadcast_write_example_gets_no_reply():
    servo = EmulatedServo(7)
    assert servo.handle(packet(bytes.fromhex("FF FF FE 04 03 05 01 F4")), 0.0) is None
    assert servo.id == 1  # executed: ID := 1
    assert servo.flash[5] == 7  # Lock = 1 (factory): not saved


# --- memory ---------------------------------------------------------------------------------------------------------
def test_factory_defaults_are_readable():
    servo = EmulatedServo(1)
    reply = ask(servo, P.read(1, 3, 2))
    assert reply.error == 0 and int.from_bytes(reply.params, "little") == 777
    assert ask(servo, P.read(1, 0, 2)).params == bytes([3, 6])  # firmware 3.6
    expected = factory_memory()
    reply = ask(servo, P.read(1, 9, 31))  # limits .. velocity loop I: all EEPROM defaults but ID/baud
    assert reply.params == bytes(expected[9:40])
    assert servo.read_register("Lock") == 1
    assert servo.read_register("Torque_Limit") == 1000
    assert servo.read_register("Present_Voltage") == 74
    assert servo.read_register("Present_Temperature") == 25


def test_undefined_addresses_read_zero_and_ignore_writes():
    servo = EmulatedServo(1)
    assert ask(servo, P.write(1, 50, bytes([1, 2, 3]))).error == 0
    assert ask(servo, P.read(1, 50, 5)).params == bytes(5)
    assert ask(servo, P.read(1, 120, 16)).params[8:] == bytes(8)  # beyond the 128-byte map: zeros


def test_read_only_cells_are_ignored_and_the_write_still_succeeds():
    servo = EmulatedServo(1, plant=SimpleMotor(position=1000))
    # LeRobot writes Maximum_Acceleration (read-only) = 254 and expects an OK status
    assert ask(servo, P.write(1, 85, bytes([7]))) == StatusPacket(1, 0, b"")
    assert servo.read_register("Maximum_Acceleration") == 254
    assert write(servo, "Model_Number", 1234).error == 0
    assert servo.read_register("Model_Number") == 777
    # a block write across read-only and writable cells: only the writable ones change
    assert ask(servo, P.write(1, 55, bytes([0, 0x11, 0x22]))).error == 0
    assert servo.read_register("Lock") == 0
    assert servo.read_register("Present_Position") == 1000


def test_eeprom_write_with_lock_1_is_lost_at_power_cycle():
    servo = EmulatedServo(1)
    assert servo.read_register("Lock") == 1
    write(servo, "Max_Torque_Limit", 500)
    assert servo.read_register("Max_Torque_Limit") == 500  # takes effect at once
    servo.power_cycle()
    assert servo.read_register("Max_Torque_Limit") == 1000
    assert servo.read_register("Torque_Limit") == 1000


def test_eeprom_write_with_lock_0_survives_power_cycle():
    servo = EmulatedServo(1)
    write(servo, "Lock", 0)
    write(servo, "Max_Torque_Limit", 500)
    write(servo, "Homing_Offset", -300)
    write(servo, "Lock", 1)
    servo.power_cycle()
    assert servo.read_register("Max_Torque_Limit") == 500
    assert servo.read_register("Torque_Limit") == 500  # copied at power-on
    assert servo.read_register("Homing_Offset") == -300
    assert servo.read_register("Lock") == 1  # SRAM: back to its power-on value


def test_only_the_cells_written_while_unlocked_are_saved():
    servo = EmulatedServo(1)
    write(servo, "P_Coefficient", 16)  # locked: not saved
    write(servo, "Lock", 0)
    write(servo, "D_Coefficient", 20)  # saved
    servo.power_cycle()
    assert servo.read_register("P_Coefficient") == 32
    assert servo.read_register("D_Coefficient") == 20


def test_power_cycle_resets_sram():
    servo = EmulatedServo(1, plant=SimpleMotor(position=1500))
    write(servo, "Torque_Enable", 1)
    write(servo, "Torque_Limit", 300)
    ask(servo, P.reg_write(1, 42, (100).to_bytes(2, "little")))
    servo.power_cycle()
    assert servo.read_register("Torque_Enable") == 0
    assert servo.read_register("Torque_Limit") == 1000
    assert servo.read_register("Goal_Position") == 1500  # the present position
    assert servo.read_register("Async_Write_Flag") == 0
    assert servo.read_register("Status") == 0


# --- identity and replies -------------------------------------------------------------------------------------------
def test_id_change_replies_from_the_old_id_then_answers_to_the_new_one():
    servo = EmulatedServo(1)
    reply = write(servo, "ID", 5, id_=1)
    assert reply.id == 1
    assert ask(servo, P.ping(1)) is None
    assert ask(servo, P.ping(5)).id == 5


def test_invalid_id_write_is_refused():
    servo = EmulatedServo(3)
    ask(servo, P.write(3, 5, bytes([254])))
    assert servo.id == 3


def test_response_status_level_0_replies_only_to_read_and_ping():
    servo = EmulatedServo(2)
    assert write(servo, "Response_Status_Level", 0).id == 2  # the change applies from the next packet
    assert write(servo, "Goal_Position", 100) is None
    assert servo.read_register("Goal_Position") == 100
    assert ask(servo, P.reg_write(2, 42, bytes(2))) is None
    assert ask(servo, P.action(2)) is None
    assert ask(servo, P.ping(2)).id == 2
    assert ask(servo, P.read(2, 42, 2)).params == bytes(2)


def test_broadcast_only_ping_replies():
    servo = EmulatedServo(4)
    assert ask(servo, P.ping(BROADCAST_ID)).id == 4
    assert ask(servo, P.read(BROADCAST_ID, 56, 2)) is None
    assert ask(servo, P.write(BROADCAST_ID, 41, bytes([10]))) is None
    assert servo.read_register("Acceleration") == 10
    assert ask(servo, P.ping(3)) is None  # not addressed to it


def test_unknown_instruction_and_bad_parameters_get_no_reply():
    servo = EmulatedServo(1)
    assert ask(servo, P.instruction(1, 0x07)) is None
    assert ask(servo, P.instruction(1, 0x55, b"\x01")) is None
    assert ask(servo, P.instruction(1, Instruction.READ, b"\x38")) is None  # READ needs 2 parameters
    assert ask(servo, P.sync_read([1], 56, 2)) is None  # sync instructions are the bus's business


def test_return_delay():
    servo = EmulatedServo(1)
    assert servo.return_delay_s == 0.0
    write(servo, "Return_Delay_Time", 250)
    assert servo.return_delay_s == pytest.approx(500e-6)


def test_reply_error_byte_is_the_status_register():
    servo = EmulatedServo(1)
    servo.set_voltage(3.5)
    assert ask(servo, P.ping(1)).error == 0x01
    assert servo.read_register("Status") == 0x01
    assert servo.read_register("Present_Voltage") == 35
    servo.set_voltage(7.4)  # voltage faults clear at once
    assert ask(servo, P.ping(1)).error == 0


# --- instructions ---------------------------------------------------------------------------------------------------
def test_reg_write_waits_for_action():
    servo = EmulatedServo(1)
    assert ask(servo, P.reg_write(1, 42, (1234).to_bytes(2, "little"))).error == 0
    assert servo.read_register("Async_Write_Flag") == 1
    assert servo.read_register("Goal_Position") == 2048
    assert ask(servo, P.action(BROADCAST_ID)) is None
    assert servo.read_register("Goal_Position") == 1234
    assert servo.read_register("Async_Write_Flag") == 0
    assert ask(servo, P.action(1)).error == 0  # nothing buffered: still OK


def test_recovery_restores_factory_values_except_id():
    servo = EmulatedServo(9)
    write(servo, "Lock", 0)
    write(servo, "P_Coefficient", 16)
    write(servo, "Baud_Rate", 4)
    assert ask(servo, P.instruction(9, Instruction.RECOVERY)).error == 0
    assert servo.read_register("P_Coefficient") == 32
    assert servo.read_register("Baud_Rate") == 0
    assert servo.id == 9
    servo.power_cycle()  # saved, since Lock was 0
    assert servo.read_register("P_Coefficient") == 32 and servo.id == 9


def test_restart_is_a_silent_power_cycle():
    servo = EmulatedServo(1)
    write(servo, "Torque_Enable", 1)
    write(servo, "P_Coefficient", 10)  # locked: lost at restart
    assert ask(servo, P.instruction(1, Instruction.RESTART)) is None
    assert servo.read_register("Torque_Enable") == 0
    assert servo.read_register("P_Coefficient") == 32


def test_ofscal_and_torque_enable_128_make_the_present_position_read_2048():
    servo = EmulatedServo(1, plant=SimpleMotor(position=3000))
    assert ask(servo, P.instruction(1, Instruction.OFSCAL)).error == 0
    assert servo.read_register("Present_Position") == 2048
    assert servo.read_register("Homing_Offset") == 952
    assert servo.flash[31:33] == servo.memory[31:33]  # stored

    other = EmulatedServo(2, plant=SimpleMotor(position=500))
    write(other, "Torque_Enable", 128)
    assert other.read_register("Present_Position") == 2048
    assert other.read_register("Homing_Offset") == 500 - 2048
    assert other.read_register("Torque_Enable") == 0  # a command, not a torque state
    other.power_cycle()
    assert other.read_register("Present_Position") == 2048


def test_reset_instruction_replies():
    servo = EmulatedServo(1)
    assert ask(servo, P.instruction(1, Instruction.RESET)).error == 0


# --- helpers --------------------------------------------------------------------------------------------------------
def test_register_helpers():
    servo = EmulatedServo(3)
    servo.write_register("Homing_Offset", -5)
    assert servo.read_register("Homing_Offset") == -5
    assert servo.memory[31:33] == bytes([5, 0x08])  # sign-magnitude, bit 11
    assert servo.flash[31:33] == bytes(2)
    servo.write_register("Homing_Offset", -5, persist=True)
    assert servo.flash[31:33] == bytes([5, 0x08])
    assert servo.read_register(56) == servo.read_register("Present_Position")


def test_constructor_validates():
    with pytest.raises(ValueError, match="id"):
        EmulatedServo(254)
    with pytest.raises(ValueError, match="baudrate_code"):
        EmulatedServo(1, baudrate_code=9)
