"""Typed errors of the robot layer (arms, calibration). Bus-level errors stay ``hardware.feetech`` errors.

Every message says what is wrong and what to do about it.
"""

from __future__ import annotations

from pathlib import Path


class RobotError(Exception):
    """Base class of the errors robot/ raises."""


class ArmConfigError(RobotError, ValueError):
    """An ``ArmConfig`` that cannot work (unknown type, bad id, bad limits)."""


class ArmNotConnectedError(RobotError):
    """An operation that needs the bus before ``connect()`` or after ``disconnect()``."""


class HandshakeError(RobotError):
    """The servos on the bus are not the arm's (missing ids, another servo model, mixed firmware)."""


class ArmDisconnectError(RobotError):
    """Torque could not be turned off on every servo while disconnecting (the port was closed anyway)."""


class CalibrationError(RobotError):
    """Base class of calibration problems."""


class CalibrationFileError(CalibrationError, ValueError):
    """A calibration file that cannot be read or does not fit the arm."""

    def __init__(self, message: str, path: Path | str | None = None, problems: list[str] | None = None):
        super().__init__(message)
        self.path = None if path is None else Path(path)
        self.problems = list(problems or [])


class CalibrationMissingError(CalibrationError):
    """No calibration file for this arm id."""

    def __init__(self, message: str, path: Path):
        super().__init__(message)
        self.path = Path(path)


class CalibrationMismatchError(CalibrationError):
    """The calibration in the servos' EEPROM differs from the calibration file."""

    def __init__(self, message: str, path: Path, differences: list[str]):
        super().__init__(message)
        self.path = Path(path)
        self.differences = list(differences)


class SafetyError(RobotError):
    """Base class of the faults the safety layer (``robot.safety``) detects. When one is raised the arm has already
    been stopped (torque off) and stays stopped until ``SafeArm.reset()``."""


class SafetyConfigError(SafetyError, ValueError):
    """A ``SafetyConfig`` that cannot work (a negative limit, a warning above its stop threshold, ...)."""


class StallError(SafetyError):
    """A joint pushed against something: high load with a persistent position error (see ``SafetyConfig``)."""

    def __init__(self, message: str, joint: str, load: float, error: float, duration_s: float):
        super().__init__(message)
        self.joint = joint
        self.load = load  # fraction of full torque, signed
        self.error = error  # goal - present, joint units
        self.duration_s = duration_s


class OverheatError(SafetyError):
    """A servo reached the stop temperature of ``SafetyConfig``."""

    def __init__(self, message: str, joint: str, temperature_c: float):
        super().__init__(message)
        self.joint = joint
        self.temperature_c = temperature_c


class ServoFaultError(SafetyError):
    """A servo reports a fault in its Status register (overload, over-current, overheat, voltage, angle sensor)."""

    def __init__(self, message: str, faults: dict[str, int]):
        super().__init__(message)
        self.faults = dict(faults)  # joint -> Status bits

    @property
    def joints(self) -> list[str]:
        return list(self.faults)


class EmergencyStopError(SafetyError):
    """The arm was stopped (``emergency_stop()`` or an earlier fault) and takes no goals until ``reset()``."""


class BusFailureError(SafetyError):
    """The servo bus failed under a running arm (the port went away, a servo stopped answering): the session stopped
    as on a safety stop, and torque off was sent to the servos still reachable."""
