"""Feetech STS/SCS serial-bus servos (STS3215 and friends): packet codec, register map and bus driver."""

from hardware.feetech.errors import (
    BusTimeoutError,
    ChecksumError,
    FeetechError,
    MalformedPacketError,
    ProtocolError,
    RegisterError,
    ServoError,
    StatusBit,
)
from hardware.feetech.protocol import BROADCAST_ID, Instruction, InstructionPacket, PacketDecoder, StatusPacket
from hardware.feetech.tables import BAUD_CODES, BAUD_RATES, REGISTERS, STS3215_REGISTERS, Register, register

__all__ = [
    "BAUD_CODES",
    "BAUD_RATES",
    "BROADCAST_ID",
    "REGISTERS",
    "STS3215_REGISTERS",
    "BusTimeoutError",
    "ChecksumError",
    "FeetechError",
    "Instruction",
    "InstructionPacket",
    "MalformedPacketError",
    "PacketDecoder",
    "ProtocolError",
    "Register",
    "RegisterError",
    "ServoError",
    "StatusBit",
    "StatusPacket",
    "register",
]
