"""Typed errors of the Feetech bus driver.

Every error carries what a person debugging a real arm needs: the servo id, the instruction, what was expected and
what arrived, and a hint about what to check.
"""

from __future__ import annotations

from enum import IntFlag


class StatusBit(IntFlag):
    """Bits of a status packet's ERROR byte (and of the Status register, address 65)."""

    VOLTAGE = 0x01  # input voltage outside Min/Max_Voltage_Limit
    ANGLE = 0x02  # magnetic encoder (angle sensor) fault
    OVERHEAT = 0x04  # temperature above Max_Temperature_Limit
    OVERCURRENT = 0x08  # current above Protection_Current for Over_Current_Protection_Time
    OVERLOAD = 0x20  # load above Overload_Torque for Protection_Time

    def describe(self) -> str:
        names = [_BIT_TEXT[b] for b in StatusBit if b in self]
        unknown = int(self) & ~sum(int(b) for b in StatusBit)
        if unknown:
            names.append(f"undocumented bits 0x{unknown:02X}")
        return ", ".join(names) if names else "no fault"


_BIT_TEXT = {
    StatusBit.VOLTAGE: "input voltage out of range (check the power supply)",
    StatusBit.ANGLE: "angle sensor fault",
    StatusBit.OVERHEAT: "overheating",
    StatusBit.OVERCURRENT: "over-current",
    StatusBit.OVERLOAD: (
        "overload (torque turned off by the servo's protection; remove the load, then re-enable torque)"
    ),
}


class FeetechError(Exception):
    """Base class of every error this driver raises."""


class ProtocolError(FeetechError):
    """The bytes on the bus did not form the expected packet."""


class MalformedPacketError(ProtocolError):
    """Bytes that cannot be a packet (bad id, bad length, garbage between packets)."""

    def __init__(self, message: str, data: bytes = b""):
        super().__init__(message)
        self.data = bytes(data)


class ChecksumError(ProtocolError):
    """A packet whose checksum does not match its contents (noise on the wire)."""

    def __init__(self, data: bytes, expected: int, got: int):
        super().__init__(f"checksum mismatch in {data.hex(' ')}: expected 0x{expected:02X}, got 0x{got:02X}")
        self.data = bytes(data)
        self.expected = expected
        self.got = got


class BusTimeoutError(ProtocolError):
    """No (complete) reply within the time the bytes need on the wire plus margin."""

    def __init__(self, servo_id: int, what: str, timeout_s: float, received: bytes = b""):
        hint = (
            f"servo {servo_id} did not answer {what} within {timeout_s * 1000:.1f} ms"
            + (f" (got {len(received)} bytes: {received[:32].hex(' ')})" if received else " (no bytes)")
            + f". Check that servo {servo_id} is plugged in and powered, that its id is {servo_id}, and that the bus "
            "baud rate matches the servo's (`onboard bus scan` finds servos at every baud rate)."
        )
        super().__init__(hint)
        self.servo_id = servo_id
        self.what = what
        self.timeout_s = timeout_s
        self.received = bytes(received)


class ServoError(FeetechError):
    """A servo answered with fault bits set in its status packet."""

    def __init__(self, servo_id: int, error: int, what: str = "", name: str | None = None):
        bits = StatusBit(error)
        who = f"servo {servo_id}" + (f" ({name})" if name else "")
        super().__init__(
            f"{who} reports {bits.describe()} [status 0x{error:02X}]" + (f" during {what}" if what else "")
        )
        self.servo_id = servo_id
        self.error = error
        self.bits = bits
        self.what = what
        self.name = name


class RegisterError(FeetechError, ValueError):
    """A register name, address or value that does not fit the register map."""
