"""Typed errors of the Feetech bus driver.

Every error carries what a person debugging a real arm needs: the servo id, the instruction, what was expected and
what arrived, and a hint about what to check.
"""

from __future__ import annotations

from enum import IntFlag

from serial import SerialException

try:  # tcflush/tcsetattr on a port whose device went away raise termios.error, which is not an OSError
    from termios import error as _TermiosError

    PORT_ERRORS: tuple[type[BaseException], ...] = (OSError, SerialException, _TermiosError)
except ImportError:  # Windows
    PORT_ERRORS = (OSError, SerialException)


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
    """A packet whose checksum does not match its contents (noise on the wire). ``servo_id`` is the id byte of the
    damaged packet (None if it was too short to have one); ``for_servo`` adds what the driver knows after its
    retries (the servo's name, the instruction, how many attempts)."""

    def __init__(self, data: bytes, expected: int, got: int, *, context: str = ""):
        text = f"checksum mismatch in {data.hex(' ')}: expected 0x{expected:02X}, got 0x{got:02X}"
        super().__init__(f"{context}{text}" if context else text)
        self.data = bytes(data)
        self.expected = expected
        self.got = got
        self.servo_id: int | None = data[2] if len(data) > 2 else None

    def for_servo(self, what: str, attempts: int, name: str | None = None) -> ChecksumError:
        """The same error, its message naming the servo and the instruction, after ``attempts`` tries."""
        who = "a servo" if self.servo_id is None else f"servo {self.servo_id}" + (f" ({name})" if name else "")
        context = (
            f"no clean reply from {who} to {what} in {attempts} attempt(s), the last one damaged on the wire (check "
            "the cable and connectors between the servos, the ground, and that no two servos share an id): "
        )
        return ChecksumError(self.data, self.expected, self.got, context=context)


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


class BusDisconnectedError(FeetechError):
    """The port itself failed (the USB adapter was unplugged or lost power, the device went away): an OS or serial
    error on the port, not a missing reply. Not retried: nothing on this port can answer until it is opened again."""

    def __init__(self, port: str, error: BaseException, servo_id: int | None = None, what: str = ""):
        during = ""
        if what:
            during = f" during {what}" + (f" to servo {servo_id}" if servo_id is not None else "")
        args = getattr(error, "args", ())
        why = f"{args[1]} (errno {args[0]})" if len(args) == 2 and isinstance(args[0], int) else str(error)
        super().__init__(
            f"lost the servo bus on {port}{during}: {why}. The USB cable came out, the "
            "adapter lost power or the device went away: plug it back in, check `onboard find port`, and start again"
        )
        self.port = port
        self.servo_id = servo_id
        self.what = what
        self.error = error


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
