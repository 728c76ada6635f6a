"""The emulated half-duplex bus: servos on one wire, a wire-time model, and fault injection.

``SimBus.transact(data, t, line_baud)`` is the whole interface the transports use: bytes the host wrote at time ``t``
at baud ``line_baud`` go in; the replies come out in wire order, each with the time its last byte arrives:

    request end   = t + wire_time(bytes up to the end of the packet, line_baud)     (10 bits per byte)
    reply start   = end of the previous reply (or of the request) + the servo's Return_Delay_Time x 2 us
    reply ready   = reply start + wire_time(len(reply), line_baud)

A servo hears packets only when the line baud is within 3 % of its own Baud_Rate, as a UART would; at any other rate
it hears noise and stays silent. An unplugged servo hears nothing and says nothing.

Bus semantics (hardware.md §1.3-1.5): broadcast instructions run on every servo and only PING is answered; a
broadcast PING is answered by every servo in id order (on a real bus several answers collide: a broadcast PING is
meant for one servo at a time, as when setting one up). SYNC_WRITE writes each listed servo's slice, silently.
SYNC_READ is answered by each listed servo that is present, with its own ordinary status packet, in the order of the
request's id list (absent ids are silent). Sync instructions count only when sent to the broadcast id. Packets with a
bad checksum are ignored, as a real servo ignores them. If two servos share an id, both execute and both answer
(a real bus would garble the answers).

Named buses: ``register_bus(name, bus)`` / ``get_bus(name)`` let several openers (``simbus://NAME``, a pty server, a
test) share one bus, like two opens of one device.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from hardware.feetech.errors import ChecksumError
from hardware.feetech.protocol import (
    BROADCAST_ID,
    MAX_PARAMS,
    Instruction,
    InstructionPacket,
    PacketDecoder,
    wire_time,
)
from sim.feetech.faults import LOW_VOLTAGE_V, FaultProfile
from sim.feetech.servo import EmulatedServo

BAUD_TOLERANCE = 0.03  # a UART decodes a frame whose rate is within ~3 % of its own


@dataclass
class Reply:
    ready_at: float  # time (bus clock) when the reply's last byte has arrived at the host
    data: bytes
    late_s: float = 0.0  # extra delay injected by the `late` fault (already included in ready_at)


class SimBus:
    """Emulated STS3215 servos on one half-duplex wire (see the module docstring)."""

    def __init__(
        self,
        servos: Iterable[EmulatedServo] | None = None,
        *,
        ids: Iterable[int] | None = None,
        faults: FaultProfile | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.clock = clock
        self._wire_free = 0.0  # bus-clock time when the wire is quiet again
        self._lock = threading.RLock()
        self._servos: list[EmulatedServo] = []
        self._unplugged: set[EmulatedServo] = set()
        self._decoder = PacketDecoder("instruction")
        self._faults = FaultProfile()
        self._rng = random.Random(0)
        self._fault_overloaded: set[EmulatedServo] = set()
        self._fault_low_voltage: dict[EmulatedServo, float] = {}
        self.fault_counts: dict[str, int] = {"drop": 0, "corrupt": 0, "late": 0}
        self.counts: dict[str, int] = {"packets": 0, "bad_packets": 0, "replies": 0}
        for s in servos or ():
            self.add(s)
        for i in ids or ():
            self.add(EmulatedServo(i))
        self.faults = faults or FaultProfile()

    # --- servos -----------------------------------------------------------------------------------------------------
    @property
    def servos(self) -> dict[int, EmulatedServo]:
        """Servos by their *current* id (read from each servo's ID register), in id order."""
        return {s.id: s for s in sorted(self._servos, key=lambda s: s.id)}

    def servo(self, id_: int) -> EmulatedServo:
        """The servo whose ID register reads ``id_`` (plugged or not)."""
        for s in self._servos:
            if s.id == id_:
                return s
        raise KeyError(f"no emulated servo with id {id_} on this bus (ids: {sorted(s.id for s in self._servos)})")

    def add(self, servo: EmulatedServo) -> EmulatedServo:
        with self._lock:
            self._servos.append(servo)
            self._apply_servo_faults()
        return servo

    def unplug(self, id_: int) -> None:
        """Disconnect the servo(s) with this id: they hear nothing and say nothing until ``plug``."""
        with self._lock:
            found = [s for s in self._servos if s.id == id_]
            if not found:
                raise KeyError(f"no emulated servo with id {id_} to unplug")
            self._unplugged.update(found)

    def plug(self, id_: int) -> None:
        with self._lock:
            found = [s for s in self._unplugged if s.id == id_]
            if not found:
                raise KeyError(f"no unplugged emulated servo with id {id_}")
            self._unplugged.difference_update(found)

    def is_plugged(self, id_: int) -> bool:
        return any(s.id == id_ and self._connected(s) for s in self._servos)

    def power_cycle(self) -> None:
        """Switch the arm's power off and on: every servo reloads EEPROM from flash and starts with torque off."""
        with self._lock:
            for s in self._servos:
                s.power_cycle()
            self._decoder.clear()

    def advance(self, t: float) -> None:
        with self._lock:
            for s in self._servos:
                s.advance(t)

    # --- faults -----------------------------------------------------------------------------------------------------
    @property
    def faults(self) -> FaultProfile:
        return self._faults

    @faults.setter
    def faults(self, profile: FaultProfile | None) -> None:
        """Swap the fault profile (the random generator restarts from its seed)."""
        with self._lock:
            self._faults = profile or FaultProfile()
            self._rng = random.Random(self._faults.seed)
            self._apply_servo_faults()

    def _apply_servo_faults(self) -> None:
        f = self._faults
        overloaded = {s for s in self._servos if s.id in f.overload}
        for s in self._fault_overloaded - overloaded:
            s.force_overload(False)
        for s in overloaded - self._fault_overloaded:
            s.force_overload(True)
        self._fault_overloaded = overloaded
        low = {s for s in self._servos if s.id in f.low_voltage}
        for s in [s for s in self._fault_low_voltage if s not in low]:
            s.set_voltage(self._fault_low_voltage.pop(s))
        for s in low:
            if s not in self._fault_low_voltage:
                self._fault_low_voltage[s] = s.voltage
                s.set_voltage(LOW_VOLTAGE_V)

    def _connected(self, s: EmulatedServo) -> bool:
        return s not in self._unplugged and s.id not in self._faults.unplugged

    def _hears(self, s: EmulatedServo, line_baud: float) -> bool:
        baud = s.baudrate
        return baud is not None and abs(line_baud - baud) <= BAUD_TOLERANCE * baud and self._connected(s)

    # --- the wire ---------------------------------------------------------------------------------------------------
    def transact(self, data: bytes, t: float, line_baud: int) -> list[Reply]:
        """Feed bytes the host wrote at time ``t``; return the replies in wire order with their ready times."""
        with self._lock:
            before = self._decoder.pending
            items = self._decoder.feed(data)
            if not items or line_baud <= 0:
                return []  # nothing complete yet (or no line rate at all: nobody can decode anything)
            for s in self._servos:
                s.advance(t)
            replies: list[Reply] = []
            pos = -before  # offset (in this chunk) of the end of the last item consumed
            # Half duplex: a request written while earlier traffic is still on the wire goes out after it (a real
            # adapter queues the bytes), so back-to-back writes pile up the way they would on the bus.
            start = max(t, self._wire_free)
            cursor = start
            for item in items:
                if not isinstance(item, InstructionPacket):
                    # garbage / checksum errors: a real servo ignores them (the decoder dropped these bytes)
                    self.counts["bad_packets"] += 1
                    pos += 2 if isinstance(item, ChecksumError) else len(getattr(item, "data", b""))
                    continue
                self.counts["packets"] += 1
                pos += len(item.params) + 6
                cursor = max(cursor, start + wire_time(max(pos, 0), line_baud))
                for delay, reply in self._execute(item, t, line_baud):
                    reply, late = self._inject(reply)
                    if reply is None:
                        continue
                    cursor += delay + wire_time(len(reply), line_baud) + late
                    replies.append(Reply(cursor, reply, late))
                    self.counts["replies"] += 1
            self._wire_free = max(cursor, start + wire_time(max(pos, 0), line_baud))
            return replies

    def _execute(self, pkt: InstructionPacket, t: float, line_baud: int) -> list[tuple[float, bytes]]:
        hearing = [s for s in self._servos if self._hears(s, line_baud)]
        if not hearing:
            return []
        instr, pid, p = pkt.instruction, pkt.id, pkt.params
        out: list[tuple[float, bytes]] = []
        if instr == Instruction.SYNC_READ or instr == Instruction.SYNC_WRITE:
            if pid != BROADCAST_ID or len(p) < 2:
                return out
            by_id: dict[int, list[EmulatedServo]] = {}
            for s in hearing:
                by_id.setdefault(s.id, []).append(s)
            address, length = p[0], p[1]
            if instr == Instruction.SYNC_WRITE:
                stride = length + 1
                for k in range(2, len(p) - stride + 1, stride):  # whole (id, data) slices only
                    for s in by_id.get(p[k], ()):
                        s.sync_write_part(address, p[k + 1 : k + stride], t)
                return out
            if length > MAX_PARAMS:
                return out
            for sid in dict.fromkeys(p[2:]):  # each listed id once, in request order
                for s in by_id.get(sid, ()):
                    out.append((s.return_delay_s, s.reply(s.read_bytes(address, length))))
            return out
        if pid == BROADCAST_ID:
            hearing.sort(key=lambda s: s.id)
        else:
            hearing = [s for s in hearing if s.id == pid]
        for s in hearing:
            delay = s.return_delay_s  # a new Return_Delay_Time applies from the next packet
            reply = s.handle(pkt, t)
            if reply is not None:
                out.append((delay, reply))
        return out

    def _inject(self, reply: bytes) -> tuple[bytes | None, float]:
        f = self._faults
        rng = self._rng
        if f.drop and rng.random() < f.drop:
            self.fault_counts["drop"] += 1
            return None, 0.0
        if f.corrupt and rng.random() < f.corrupt:
            b = bytearray(reply)
            b[rng.randrange(2, len(b))] ^= 1 << rng.randrange(8)
            reply = bytes(b)
            self.fault_counts["corrupt"] += 1
        late = 0.0
        if f.late and rng.random() < f.late:
            late = f.late_s
            self.fault_counts["late"] += 1
        return reply, late

    def reset_fault_counts(self) -> None:
        for k in self.fault_counts:
            self.fault_counts[k] = 0

    def __repr__(self) -> str:
        ids = ", ".join(f"{s.id}{'' if self._connected(s) else ' (unplugged)'}" for s in self.servos.values())
        return f"SimBus([{ids}], faults={self._faults})"


_REGISTRY: dict[str, SimBus] = {}
_REGISTRY_LOCK = threading.Lock()


def register_bus(name: str, bus: SimBus) -> SimBus:
    """Make ``bus`` reachable as ``simbus://NAME`` (replacing any bus of that name)."""
    if not name:
        raise ValueError("a named bus needs a non-empty name")
    with _REGISTRY_LOCK:
        _REGISTRY[name] = bus
    return bus


def get_bus(name: str) -> SimBus | None:
    """The bus registered as ``name``, or None."""
    with _REGISTRY_LOCK:
        return _REGISTRY.get(name)


def get_or_create_bus(name: str, factory: Callable[[], SimBus]) -> tuple[SimBus, bool]:
    """The bus named ``name``, creating and registering it with ``factory()`` if missing. Returns (bus, created)."""
    with _REGISTRY_LOCK:
        bus = _REGISTRY.get(name)
        if bus is not None:
            return bus, False
        bus = _REGISTRY[name] = factory()
        return bus, True


def unregister_bus(name: str) -> SimBus | None:
    with _REGISTRY_LOCK:
        return _REGISTRY.pop(name, None)
