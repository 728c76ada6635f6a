"""Setting servos up for an arm: find them across baud rates and ids, give one a new id or baud rate, write EEPROM so
that it survives a power cycle, read model and firmware. ``FeetechBus`` is a ``ServoAssembly``: these run over its
transactions (``ping``, ``read``, ``write``), so they are the same bytes on a real bus and on the emulator.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from hardware.feetech import protocol as proto
from hardware.feetech.errors import BusTimeoutError, FeetechError, ProtocolError
from hardware.feetech.protocol import BROADCAST_ID
from hardware.feetech.tables import BAUD_CODES, BAUD_RATES, MODEL_NUMBERS, REGISTERS, Register


@dataclass(frozen=True)
class FoundServo:
    baudrate: int
    id: int
    model_number: int
    firmware: str

    @property
    def model(self) -> str:
        return MODEL_NUMBERS.get(self.model_number, f"unknown model {self.model_number}")


SILENT_PINGS = 2  # pings of an id that stays silent before the scan moves on (4 once the bus showed damaged replies)
DAMAGED_PINGS = 6  # pings of an id that answers only with damaged replies before it is reported as a problem


@dataclass(frozen=True)
class ScanProblem:
    """An id that answered during a scan, but never with a clean reply: a servo is probably there."""

    baudrate: int
    id: int
    error: str


class ScanResult(list):
    """What ``scan`` found: a list of ``FoundServo``, and ``problems``, the ids that answered only with damaged
    replies (``ScanProblem``), so that a noisy bus is reported instead of silently missing live servos."""

    def __init__(self, found: Iterable[FoundServo] = (), problems: Iterable[ScanProblem] = ()):
        super().__init__(found)
        self.problems: list[ScanProblem] = list(problems)


class ServoAssembly:
    """Mixed into ``FeetechBus``; uses its ``ping``/``try_ping``/``read``/``read_registers``/``write``, ``port``,
    ``baudrate`` and timeouts."""

    def model_number(self, servo_id: int) -> int:
        return self.read(servo_id, "Model_Number", check_status=False)

    def firmware_version(self, servo_id: int) -> str:
        v = self.read_registers(servo_id, ["Firmware_Major_Version", "Firmware_Minor_Version"], check_status=False)
        return f"{v['Firmware_Major_Version']}.{v['Firmware_Minor_Version']}"

    def scan(
        self,
        ids: Iterable[int] = range(0, proto.SCAN_MAX_ID + 1),
        baudrates: Iterable[int] | None = None,
        *,
        progress: Callable[[int, int], Any] | None = None,
    ) -> ScanResult:
        """Find servos across baud rates and ids. At each baud rate a broadcast PING first tells whether anything
        listens there (any bytes back); only then is each id pinged. An id that stays silent is pinged
        ``SILENT_PINGS`` times (twice that once the bus has shown damaged replies at this baud rate); one whose
        replies arrive damaged up to ``DAMAGED_PINGS`` times, then it is listed in ``problems``. Restores the bus
        baud rate afterwards."""
        ids = list(ids)
        result = ScanResult()
        saved, saved_retries = self._baudrate, self.retries
        try:
            for baud in baudrates if baudrates is not None else BAUD_RATES.values():
                self.baudrate = baud
                if progress:
                    progress(baud, -1)
                if not self._anything_listens():
                    continue
                noisy = False
                for servo_id in ids:
                    if progress:
                        progress(baud, servo_id)
                    try:
                        self.retries = 0  # the probe repeats pings itself, and tells silence from damage
                        answered, damaged = self._probe(servo_id, SILENT_PINGS * (2 if noisy else 1))
                        noisy = noisy or damaged
                        if not answered:
                            continue
                        self.retries = max(saved_retries, 4)  # it is there: ask harder for model and firmware
                        model, firmware = self.model_number(servo_id), self.firmware_version(servo_id)
                    except ProtocolError as exc:
                        noisy = True
                        result.problems.append(ScanProblem(baud, servo_id, str(exc)))
                        continue
                    result.append(FoundServo(baud, servo_id, model, firmware))
        finally:
            self.baudrate = saved
            self.retries = saved_retries
        return result

    def _probe(self, servo_id: int, silent_pings: int) -> tuple[bool, bool]:
        """(answered, any reply damaged): PING ``servo_id`` until it answers cleanly, stays silent ``silent_pings``
        times, or has answered damaged ``DAMAGED_PINGS`` times in all (then the last ``ProtocolError`` is raised)."""
        silent, last = 0, None
        for _ in range(DAMAGED_PINGS):
            try:
                self.ping(servo_id)
                return True, last is not None
            except BusTimeoutError as exc:
                if exc.received:  # a partial reply: something is there
                    last = exc
                else:
                    silent += 1
            except ProtocolError as exc:  # ChecksumError, MalformedPacketError
                last = exc
            if last is None and silent >= silent_pings:
                return False, False
        if last is None:
            return False, False
        raise last

    def _anything_listens(self) -> bool:
        port = self.port
        port.reset_input_buffer()
        port.write(proto.ping(BROADCAST_ID))
        self._set_timeout(self.timeout_for(6, 6 * 4, 4))
        return bool(port.read(1))

    def unlock_eeprom(self, servo_id: int) -> None:
        """Torque off and Lock = 0, so EEPROM writes are saved (the servo refuses to keep them otherwise)."""
        self.write(servo_id, "Torque_Enable", 0, check_status=False)
        self.write(servo_id, "Lock", 0, check_status=False)

    def lock_eeprom(self, servo_id: int) -> None:
        self.write(servo_id, "Lock", 1, check_status=False)

    def write_eeprom(self, servo_id: int, reg: str | int | Register, value: int) -> None:
        """Write an EEPROM register so that it survives a power cycle (unlock, write, lock)."""
        self.unlock_eeprom(servo_id)
        try:
            self.write(servo_id, reg, value, check_status=False)
        finally:
            self.lock_eeprom(servo_id)

    def set_id(self, old_id: int, new_id: int) -> None:
        """Give a servo a new id, persistently. Refuses if another servo already answers at ``new_id``."""
        REGISTERS["ID"].check_range(new_id)
        if new_id == BROADCAST_ID:
            raise FeetechError("254 is the broadcast id; choose 0..253")
        if old_id == new_id:
            return
        self.ping(old_id)
        if self.try_ping(new_id, retries=1):
            raise FeetechError(
                f"another servo already answers at id {new_id}: connect only the servo you are setting up"
            )
        self.unlock_eeprom(old_id)
        self.write(old_id, "ID", new_id, check_status=False)  # the reply still comes from the old id
        try:
            self.ping(new_id)
        finally:
            self.lock_eeprom(new_id)

    def set_baudrate(self, servo_id: int, baudrate: int) -> None:
        """Set one servo's baud rate persistently and check that it answers at the new rate. The bus goes back to
        its own baud rate afterwards (the other servos on it have not changed)."""
        if baudrate not in BAUD_CODES:
            raise FeetechError(f"STS servos support {sorted(BAUD_CODES)} baud, not {baudrate}")
        saved = self._baudrate
        self.ping(servo_id)
        self.unlock_eeprom(servo_id)
        self.write(servo_id, "Baud_Rate", BAUD_CODES[baudrate], check_status=False)
        try:
            self.baudrate = baudrate
            self.ping(servo_id)
            self.lock_eeprom(servo_id)
        finally:
            self.baudrate = saved
