"""One emulated Feetech STS3215: its register memory and its instruction semantics; its controller and protections are
``ServoControl`` (``control.py``).

The servo is byte-faithful where the documents agree (hardware.md §1-2) and documents its choice where they do not:

- Memory: the 128-byte image of ``factory_memory()``; undefined addresses read 0 and ignore writes. Writes to
  read-only cells are skipped silently and the servo still answers OK (LeRobot writes the read-only
  Maximum_Acceleration and expects success). EEPROM cells (address < 40) take effect at once and are copied to the
  separate ``flash`` only when Lock (55) is 0 at the time of the write; ``power_cycle()`` reloads EEPROM from flash.
- Replies: PING always (even broadcast; the bus decides what collides); READ to its own id; everything else only
  when Response_Status_Level is 1 and the packet is not broadcast. RESTART and unknown instructions: silence. A
  change of ID, baud rate, status level or return delay applies from the next packet (the reply to the write that
  changes the ID comes from the old id). The ERROR byte of every reply is the Status register.
- Frames, protections, the controller and operating modes: ``control.py`` (``ServoControl``, which this servo is).
"""

from __future__ import annotations

import math

from hardware.feetech.protocol import BROADCAST_ID, MAX_ID, MAX_PARAMS, Instruction, InstructionPacket
from hardware.feetech.protocol import status as encode_status
from hardware.feetech.tables import BAUD_RATES, EEPROM_END, MEMORY_SIZE, RESOLUTION, Area, register
from sim.feetech.control import ServoControl
from sim.feetech.memory import (
    A_ASYNC,
    A_BAUD,
    A_GOAL,
    A_HOMING,
    A_ID,
    A_LOCK,
    A_MAX_TORQUE,
    A_RETURN_DELAY,
    A_STATUS,
    A_STATUS_LEVEL,
    A_TORQUE,
    A_TORQUE_LIMIT,
    FACTORY,
    HOMING_BIT,
    HOMING_MAX,
    WRITABLE,
    put16,
    s16,
    sm,
)
from sim.feetech.motor import DAMPING, TORQUE_OFF, Plant, PlantState, SimpleMotor


class EmulatedServo(ServoControl):
    """One STS3215 on the emulated bus. ``handle`` executes an instruction and returns the reply bytes (or None)."""

    def __init__(
        self,
        id: int = 1,
        *,
        plant: Plant | None = None,
        baudrate_code: int = 0,
        voltage: float = 7.4,
        ambient_c: float = 25.0,
    ):
        if not 0 <= id <= MAX_ID:
            raise ValueError(f"servo id must be within 0..{MAX_ID}, got {id}")
        if baudrate_code not in BAUD_RATES:
            raise ValueError(f"baudrate_code must be one of {sorted(BAUD_RATES)} ({BAUD_RATES}), got {baudrate_code}")
        self.plant: Plant = plant if plant is not None else SimpleMotor()
        self.voltage = float(voltage)
        self.ambient_c = float(ambient_c)
        self.temperature = float(ambient_c)
        self.memory = bytearray(FACTORY)
        self.memory[A_ID] = id
        self.memory[A_BAUD] = baudrate_code
        self._flash = bytearray(self.memory[:EEPROM_END])
        self._t: float | None = None
        self._forced_overload = False
        self._state: PlantState = self.plant.state()
        self._power_on()

    # --- identity ---------------------------------------------------------------------------------------------------
    @property
    def id(self) -> int:
        return self.memory[A_ID]

    @property
    def baudrate(self) -> int | None:
        """The line rate this servo listens at (None for a code outside the table: it hears nothing)."""
        return BAUD_RATES.get(self.memory[A_BAUD])

    @property
    def return_delay_s(self) -> float:
        return self.memory[A_RETURN_DELAY] * 2e-6

    @property
    def flash(self) -> bytes:
        """The persisted EEPROM image (addresses 0..EEPROM_END-1), what a power cycle reloads."""
        return bytes(self._flash)

    def __repr__(self) -> str:
        return f"EmulatedServo(id={self.id}, baud={self.baudrate}, torque={self.memory[A_TORQUE]})"

    # --- power ------------------------------------------------------------------------------------------------------
    def power_cycle(self) -> None:
        """Power off and on: EEPROM reloads from flash, SRAM takes its power-on values, torque is off."""
        self.memory[:EEPROM_END] = self._flash
        self._power_on()

    def _power_on(self) -> None:
        mem = self.memory
        mem[EEPROM_END:] = FACTORY[EEPROM_END:]
        mem[A_TORQUE_LIMIT : A_TORQUE_LIMIT + 2] = mem[A_MAX_TORQUE : A_MAX_TORQUE + 2]
        self._reg_write: tuple[int, bytes] | None = None
        self._latched = 0  # fault bits that turned torque off and wait for re-enable
        self._causes = 0
        self._over_since: float | None = None
        self._oc_since: float | None = None
        self._goal_written = False
        self._cmd_key: tuple | None = None
        self._target_present = 0.0
        homing = s16(mem, A_HOMING, HOMING_BIT)
        self._turn_base = math.floor((self._state.position - homing) / RESOLUTION) * RESOLUTION
        self._refresh()
        put16(mem, A_GOAL, sm(self._present_reading(), 15))
        self._protect(self._t if self._t is not None else 0.0)
        self._command()

    # --- protocol ---------------------------------------------------------------------------------------------------
    def handle(self, packet: InstructionPacket, t: float) -> bytes | None:
        """Execute one instruction packet heard at time ``t``; return the encoded reply, or None for silence.

        SYNC_READ and SYNC_WRITE are the bus's business (``SimBus`` calls ``read_bytes``/``reply`` and
        ``sync_write_part``); handed here they are ignored.
        """
        mem = self.memory
        my_id = mem[A_ID]
        pid = packet.id
        if pid != my_id and pid != BROADCAST_ID:
            return None
        self.advance(t)
        broadcast = pid == BROADCAST_ID
        level = mem[A_STATUS_LEVEL]
        instr = packet.instruction
        p = packet.params
        if instr == Instruction.PING:
            return self.reply(id_=my_id)
        if instr == Instruction.READ:
            if broadcast or len(p) != 2 or p[1] > MAX_PARAMS:
                return None
            return self.reply(self.read_bytes(p[0], p[1]), id_=my_id)
        if instr == Instruction.WRITE:
            if not p:
                return None
            self._write(p[0], p[1:], t)
        elif instr == Instruction.REG_WRITE:
            if not p:
                return None
            self._reg_write = (p[0], bytes(p[1:]))
            mem[A_ASYNC] = 1
        elif instr == Instruction.ACTION:
            pending, self._reg_write = self._reg_write, None
            mem[A_ASYNC] = 0
            if pending is not None:
                self._write(pending[0], pending[1], t)
        elif instr == Instruction.RECOVERY:
            self._recovery(t)
        elif instr == Instruction.RESTART:
            self.power_cycle()
            return None
        elif instr == Instruction.BACKUP:
            self._flash[:] = mem[:EEPROM_END]
        elif instr == Instruction.RESET:
            self._status_reset()
        elif instr == Instruction.OFSCAL:
            if len(p) == 0:
                self._calibrate(RESOLUTION // 2)
            elif len(p) == 2:
                self._calibrate((p[0] | p[1] << 8) % RESOLUTION)
            else:
                return None
        else:
            return None  # unknown instruction (and SYNC_* sent to one servo): silence
        if broadcast or level == 0:
            return None
        return self.reply(id_=my_id)

    def reply(self, params: bytes = b"", *, id_: int | None = None) -> bytes:
        """This servo's status packet: ERROR byte = the Status register."""
        return encode_status(self.memory[A_ID] if id_ is None else id_, self.memory[A_STATUS], params)

    def read_bytes(self, address: int, length: int) -> bytes:
        """``length`` bytes of memory from ``address`` (beyond the map: zeros)."""
        end = address + length
        if end <= MEMORY_SIZE:
            return bytes(self.memory[address:end])
        return bytes(self.memory[address:MEMORY_SIZE]) + bytes(end - max(address, MEMORY_SIZE))

    def sync_write_part(self, address: int, data: bytes, t: float) -> None:
        """This servo's slice of a SYNC_WRITE (no reply)."""
        self.advance(t)
        self._write(address, data, t)

    # --- helpers for tests and fault injection ----------------------------------------------------------------------
    def read_register(self, name: str | int) -> int:
        reg = register(name)
        return reg.decode(bytes(self.memory[reg.address : reg.address + reg.size]))

    def write_register(self, name: str | int, value: int, *, persist: bool = False) -> None:
        """Write a register directly (no protocol, no access check); ``persist`` also stores an EEPROM cell in flash.

        Side effects apply as for a bus write (torque enable, goal, homing offset, ...).
        """
        reg = register(name)
        self._write(reg.address, reg.encode(value), self._now(), force=True)
        if persist and reg.area is Area.EEPROM:
            self._flash[reg.address : reg.address + reg.size] = self.memory[reg.address : reg.address + reg.size]

    def set_voltage(self, volts: float) -> None:
        """Change the supply voltage (the VOLTAGE bit follows at once)."""
        self.voltage = float(volts)
        self._refresh()
        self._protect(self._now())
        self._command()

    def force_overload(self, on: bool = True) -> None:
        """A jammed joint: while on, the servo sees its load above Overload_Torque whenever torque is on, so the
        overload protection trips after Protection_Time (and turns torque off if Unloading_Condition says so)."""
        self._forced_overload = bool(on)
        self._refresh()
        self._protect(self._now())
        self._command()

    # --- internals --------------------------------------------------------------------------------------------------
    def _now(self) -> float:
        return self._t if self._t is not None else 0.0

    def _write(self, address: int, data: bytes, t: float, *, force: bool = False) -> None:
        mem = self.memory
        lock = mem[A_LOCK]
        old_id, old_torque = mem[A_ID], mem[A_TORQUE]
        end = min(address + len(data), MEMORY_SIZE)
        eeprom_touched = []
        for i, a in enumerate(range(address, end)):
            if force or WRITABLE[a]:
                mem[a] = data[i]
                if a < EEPROM_END:
                    eeprom_touched.append(a)
        if mem[A_ID] > MAX_ID:
            mem[A_ID] = old_id  # not an address a servo can have; the real one would be lost to the bus
        if eeprom_touched and lock == 0 and not force:
            for a in eeprom_touched:
                self._flash[a] = mem[a]
        if address <= A_GOAL + 1 and end > A_GOAL:
            self._goal_written = True
        self._refresh()
        if address <= A_TORQUE < end:
            self._torque_written(old_torque, mem[A_TORQUE])
        self._protect(t)
        self._command()

    def _torque_written(self, old: int, new: int) -> None:
        mem = self.memory
        if new == 128:
            mem[A_TORQUE] = old  # a command, not a torque state
            self._calibrate(RESOLUTION // 2, persist=True)
            return
        if new == TORQUE_OFF:
            self._goal_written = False
            return
        if old == TORQUE_OFF or old == DAMPING:
            if new != DAMPING:
                if not self._goal_written:
                    put16(mem, A_GOAL, sm(self._present_reading(), 15))  # hold where it is
                self._goal_written = False
            self._latched &= self._causes  # re-enabling clears the faults whose cause is gone (_protect follows)

    def _calibrate(self, reading: int, *, persist: bool = True) -> None:
        """Set Homing_Offset so that the present position reads ``reading`` (Torque_Enable 128 / OFSCAL)."""
        mem = self.memory
        homing = s16(mem, A_HOMING, HOMING_BIT)
        present = round((self._state.position - homing) % RESOLUTION) % RESOLUTION
        new = homing + present - reading
        new = (new + RESOLUTION // 2) % RESOLUTION - RESOLUTION // 2  # same wrap point, smallest magnitude
        new = max(-HOMING_MAX, min(HOMING_MAX, new))  # -2048 does not fit sign-magnitude bit 11: one step off
        put16(mem, A_HOMING, sm(new, HOMING_BIT))
        if persist:
            self._flash[A_HOMING : A_HOMING + 2] = mem[A_HOMING : A_HOMING + 2]
        self._refresh()
        if mem[A_TORQUE] not in (TORQUE_OFF, DAMPING):
            put16(mem, A_GOAL, sm(self._present_reading(), 15))  # no jump in the new frame
        self._command()

    def _recovery(self, t: float) -> None:
        mem = self.memory
        my_id = mem[A_ID]
        mem[:EEPROM_END] = FACTORY[:EEPROM_END]
        mem[A_ID] = my_id
        if mem[A_LOCK] == 0:
            self._flash[:] = mem[:EEPROM_END]
        self._refresh()
        self._protect(t)
        self._command()

    def _status_reset(self) -> None:
        homing = s16(self.memory, A_HOMING, HOMING_BIT)
        self._turn_base = math.floor((self._state.position - homing) / RESOLUTION) * RESOLUTION
        self._refresh()
        self._command()
