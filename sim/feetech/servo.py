"""One emulated Feetech STS3215: its register memory, its instruction semantics, its controller and protections.

The servo is byte-faithful where the documents agree (hardware.md §1-2) and documents its choice where they do not:

- Memory: the 128-byte image of ``factory_memory()``; undefined addresses read 0 and ignore writes. Writes to
  read-only cells are skipped silently and the servo still answers OK (LeRobot writes the read-only
  Maximum_Acceleration and expects success). EEPROM cells (address < 40) take effect at once and are copied to the
  separate ``flash`` only when Lock (55) is 0 at the time of the write; ``power_cycle()`` reloads EEPROM from flash.
- Replies: PING always (even broadcast; the bus decides what collides); READ to its own id; everything else only
  when Response_Status_Level is 1 and the packet is not broadcast. RESTART and unknown instructions: silence. A
  change of ID, baud rate, status level or return delay applies from the next packet (the reply to the write that
  changes the ID comes from the old id). The ERROR byte of every reply is the Status register.
- Frames: the plant works in continuous actual steps; Present_Position = (actual - Homing_Offset) mod 4096
  (unwrapped, clamped to +-32767, when Phase bit 4 asks for multi-turn feedback). The controller works in the
  present frame like the real servo: the goal, clamped to Min/Max_Position_Limit unless both are 0, is reached by
  moving (goal - present) steps, so the homing offset moves the wrap point and a goal never crosses it.
- Protections are sampled at each ``advance`` (each bus transaction in practice): |load| above Overload_Torque for
  Protection_Time sets OVERLOAD; current above Protection_Current for Over_Current_Protection_Time sets OVERCURRENT;
  temperature above Max_Temperature_Limit sets OVERHEAT; voltage outside Min/Max_Voltage_Limit sets VOLTAGE. A fault
  whose bit is set in Unloading_Condition turns torque off (Torque_Enable reads 0) and its bit stays set until the
  cause is gone and torque is enabled again; other bits clear as soon as their cause is gone.
- Operating modes: 0 (position) and 1 (constant speed, Goal_Velocity) are modelled; 2 (PWM) and 3 (step) act as
  position mode.
"""

from __future__ import annotations

import math

from hardware.feetech.errors import StatusBit
from hardware.feetech.protocol import BROADCAST_ID, MAX_ID, MAX_PARAMS, Instruction, InstructionPacket
from hardware.feetech.protocol import status as encode_status
from hardware.feetech.tables import (
    BAUD_RATES,
    EEPROM_END,
    MEMORY_SIZE,
    REGISTERS,
    RESOLUTION,
    STS3215_REGISTERS,
    Access,
    Area,
    decode_sign_magnitude,
    factory_memory,
    register,
)
from sim.feetech.motor import DAMPING, POSITION, STALL_CURRENT, TORQUE_OFF, MotorCommand, Plant, PlantState, SimpleMotor

_A = {name: reg.address for name, reg in REGISTERS.items()}
A_ID, A_BAUD, A_RETURN_DELAY = _A["ID"], _A["Baud_Rate"], _A["Return_Delay_Time"]
A_STATUS_LEVEL = _A["Response_Status_Level"]
A_MIN_POS, A_MAX_POS = _A["Min_Position_Limit"], _A["Max_Position_Limit"]
A_MAX_TEMP, A_MAX_VOLT, A_MIN_VOLT = _A["Max_Temperature_Limit"], _A["Max_Voltage_Limit"], _A["Min_Voltage_Limit"]
A_MAX_TORQUE, A_PHASE, A_UNLOADING = _A["Max_Torque_Limit"], _A["Phase"], _A["Unloading_Condition"]
A_P, A_D, A_I = _A["P_Coefficient"], _A["D_Coefficient"], _A["I_Coefficient"]
A_CW_DEAD, A_CCW_DEAD = _A["CW_Dead_Zone"], _A["CCW_Dead_Zone"]
A_PROT_CURRENT, A_HOMING, A_MODE = _A["Protection_Current"], _A["Homing_Offset"], _A["Operating_Mode"]
A_PROT_TIME, A_OVERLOAD, A_OC_TIME = _A["Protection_Time"], _A["Overload_Torque"], _A["Over_Current_Protection_Time"]
A_TORQUE, A_ACCEL, A_GOAL, A_GOAL_VEL = (
    _A["Torque_Enable"],
    _A["Acceleration"],
    _A["Goal_Position"],
    _A["Goal_Velocity"],
)
A_TORQUE_LIMIT, A_LOCK = _A["Torque_Limit"], _A["Lock"]
A_POS, A_VEL, A_LOAD = _A["Present_Position"], _A["Present_Velocity"], _A["Present_Load"]
A_VOLT, A_TEMP, A_ASYNC = _A["Present_Voltage"], _A["Present_Temperature"], _A["Async_Write_Flag"]
A_STATUS, A_MOVING, A_PGOAL, A_CURRENT = _A["Status"], _A["Moving"], _A["Present_Goal_Position"], _A["Present_Current"]
A_MOVING_THRESHOLD = _A["Moving_Velocity_Threshold"]

_FACTORY = bytes(factory_memory())
_WRITABLE = bytes(
    1 if any(r.access is Access.RW and a in r.addresses for r in STS3215_REGISTERS) else 0 for a in range(MEMORY_SIZE)
)
_HOMING_BIT = REGISTERS["Homing_Offset"].sign_bit
_HOMING_MAX = (1 << _HOMING_BIT) - 1

CURRENT_UNIT = 0.0065  # A per Present_Current / Protection_Current step
HEAT_RISE_C = 50.0  # steady-state temperature rise at stall current
THERMAL_TAU_S = 60.0  # first-order thermal time constant
MULTI_TURN_PHASE_BIT = 0x10  # Phase bit 4: multi-turn (unwrapped) position feedback

_VOLTAGE, _OVERHEAT, _OVERCURRENT, _OVERLOAD = (
    int(StatusBit.VOLTAGE),
    int(StatusBit.OVERHEAT),
    int(StatusBit.OVERCURRENT),
    int(StatusBit.OVERLOAD),
)


def _u16(mem: bytearray, a: int) -> int:
    return mem[a] | mem[a + 1] << 8


def _s16(mem: bytearray, a: int, bit: int) -> int:
    return decode_sign_magnitude(mem[a] | mem[a + 1] << 8, bit)


def _put16(mem: bytearray, a: int, raw: int) -> None:
    mem[a] = raw & 0xFF
    mem[a + 1] = raw >> 8 & 0xFF


def _sm(value: int, bit: int) -> int:
    """Sign-magnitude encode, saturating the magnitude (a reading never overflows its field)."""
    mag = min(abs(value), (1 << bit) - 1)
    return mag | (1 << bit) if value < 0 else mag


class EmulatedServo:
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
        self.memory = bytearray(_FACTORY)
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
        mem[EEPROM_END:] = _FACTORY[EEPROM_END:]
        mem[A_TORQUE_LIMIT : A_TORQUE_LIMIT + 2] = mem[A_MAX_TORQUE : A_MAX_TORQUE + 2]
        self._reg_write: tuple[int, bytes] | None = None
        self._latched = 0  # fault bits that turned torque off and wait for re-enable
        self._causes = 0
        self._over_since: float | None = None
        self._oc_since: float | None = None
        self._goal_written = False
        self._cmd_key: tuple | None = None
        self._target_present = 0.0
        homing = _s16(mem, A_HOMING, _HOMING_BIT)
        self._turn_base = math.floor((self._state.position - homing) / RESOLUTION) * RESOLUTION
        self._refresh()
        _put16(mem, A_GOAL, _sm(self._present_reading(), 15))
        self._protect(self._t if self._t is not None else 0.0)
        self._command()

    # --- time -------------------------------------------------------------------------------------------------------
    def advance(self, t: float) -> None:
        """Advance the plant to ``t`` and refresh the readings, protections and the controller's command.

        At the time of the last call the plant is sampled again without advancing it (something may have moved it
        without time passing: a hand, a world reset); earlier times are ignored."""
        last = self._t
        if last is not None and t < last:
            return
        self._t = t
        self.plant.advance(t)
        st = self.plant.state()
        if last is not None:
            target = self.ambient_c + HEAT_RISE_C * (st.current / STALL_CURRENT) ** 2
            if self.temperature != target:
                self.temperature = target + (self.temperature - target) * math.exp(-(t - last) / THERMAL_TAU_S)
        old = self._state
        if (
            st.position != old.position
            or st.velocity != old.velocity
            or st.load != old.load
            or st.current != old.current
            or self.memory[A_TEMP] != round(self.temperature)
        ):
            self._state = st
            self._refresh()
            self._protect(t)
            self._command()  # also re-aims the target when the reading wrapped
        else:
            self._protect(t)  # nothing moved: readings and command stand, only the timers run
            if self._cmd_key is None or self._cmd_key[0] != self._mode():
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
            if force or _WRITABLE[a]:
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
                    _put16(mem, A_GOAL, _sm(self._present_reading(), 15))  # hold where it is
                self._goal_written = False
            self._latched &= self._causes  # re-enabling clears the faults whose cause is gone (_protect follows)

    def _calibrate(self, reading: int, *, persist: bool = True) -> None:
        """Set Homing_Offset so that the present position reads ``reading`` (Torque_Enable 128 / OFSCAL)."""
        mem = self.memory
        homing = _s16(mem, A_HOMING, _HOMING_BIT)
        present = round((self._state.position - homing) % RESOLUTION) % RESOLUTION
        new = homing + present - reading
        new = (new + RESOLUTION // 2) % RESOLUTION - RESOLUTION // 2  # same wrap point, smallest magnitude
        new = max(-_HOMING_MAX, min(_HOMING_MAX, new))  # -2048 does not fit sign-magnitude bit 11: one step off
        _put16(mem, A_HOMING, _sm(new, _HOMING_BIT))
        if persist:
            self._flash[A_HOMING : A_HOMING + 2] = mem[A_HOMING : A_HOMING + 2]
        self._refresh()
        if mem[A_TORQUE] not in (TORQUE_OFF, DAMPING):
            _put16(mem, A_GOAL, _sm(self._present_reading(), 15))  # no jump in the new frame
        self._command()

    def _recovery(self, t: float) -> None:
        mem = self.memory
        my_id = mem[A_ID]
        mem[:EEPROM_END] = _FACTORY[:EEPROM_END]
        mem[A_ID] = my_id
        if mem[A_LOCK] == 0:
            self._flash[:] = mem[:EEPROM_END]
        self._refresh()
        self._protect(t)
        self._command()

    def _status_reset(self) -> None:
        homing = _s16(self.memory, A_HOMING, _HOMING_BIT)
        self._turn_base = math.floor((self._state.position - homing) / RESOLUTION) * RESOLUTION
        self._refresh()
        self._command()

    def _present_reading(self) -> int:
        mem = self.memory
        return decode_sign_magnitude(mem[A_POS] | mem[A_POS + 1] << 8, 15)

    def _refresh(self) -> None:
        """Readings from the plant state: present position/velocity/load/voltage/temperature/current."""
        mem = self.memory
        st = self._state
        homing = _s16(mem, A_HOMING, _HOMING_BIT)
        continuous = st.position - homing
        self._present_wrapped = wrapped = continuous % RESOLUTION
        self._present_multi = continuous - self._turn_base
        if mem[A_PHASE] & MULTI_TURN_PHASE_BIT:
            _put16(mem, A_POS, _sm(round(self._present_multi), 15))
        else:
            _put16(mem, A_POS, round(wrapped) % RESOLUTION)
        _put16(mem, A_VEL, _sm(round(st.velocity), 15))
        load = st.load
        if self._forced_overload and mem[A_TORQUE] not in (TORQUE_OFF, DAMPING):
            load = max(abs(load), _u16(mem, A_TORQUE_LIMIT) / 1000.0)
        _put16(mem, A_LOAD, _sm(round(load * 1000), 10))
        mem[A_VOLT] = max(0, min(255, round(self.voltage * 10)))
        mem[A_TEMP] = max(0, min(255, round(self.temperature)))
        _put16(mem, A_CURRENT, max(0, min(0x7FFF, round(st.current / CURRENT_UNIT))))

    def _protect(self, t: float) -> None:
        mem = self.memory
        st = self._state
        torque = mem[A_TORQUE]
        driving = torque != TORQUE_OFF and torque != DAMPING
        causes = 0
        if not mem[A_MIN_VOLT] <= mem[A_VOLT] <= mem[A_MAX_VOLT]:
            causes |= _VOLTAGE
        if mem[A_TEMP] > mem[A_MAX_TEMP]:
            causes |= _OVERHEAT
        if driving and (self._forced_overload or abs(st.load) * 100.0 > mem[A_OVERLOAD]):
            if self._over_since is None:
                self._over_since = t
            if t - self._over_since >= mem[A_PROT_TIME] * 0.01:
                causes |= _OVERLOAD
        else:
            self._over_since = None
        if st.current > _u16(mem, A_PROT_CURRENT) * CURRENT_UNIT:
            if self._oc_since is None:
                self._oc_since = t
            if t - self._oc_since >= mem[A_OC_TIME] * 0.01:
                causes |= _OVERCURRENT
        else:
            self._oc_since = None
        self._causes = causes
        trip = causes & mem[A_UNLOADING]
        if trip and torque != TORQUE_OFF:
            mem[A_TORQUE] = TORQUE_OFF
            self._goal_written = False
            self._latched |= trip
            self._over_since = None
        mem[A_STATUS] = (mem[A_STATUS] & 0x12) | causes | self._latched  # bits 1 and 4 are not modelled: kept

    def _mode(self) -> int:
        torque = self.memory[A_TORQUE]
        return TORQUE_OFF if torque == TORQUE_OFF else DAMPING if torque == DAMPING else POSITION

    def _command(self) -> None:
        """The controller: registers (present frame) -> MotorCommand (plant frame). Also Moving and goal readings."""
        mem = self.memory
        st = self._state
        mode = self._mode()
        multi = mem[A_MIN_POS] == 0 and mem[A_MIN_POS + 1] == 0 and mem[A_MAX_POS] == 0 and mem[A_MAX_POS + 1] == 0
        present = self._present_multi if multi else self._present_wrapped
        goal_velocity = _s16(mem, A_GOAL_VEL, 15)
        max_velocity = float(abs(goal_velocity))
        if mode != POSITION:
            target_present = present
            target = st.position
        elif mem[A_MODE] == 1:  # constant speed: Goal_Velocity sets speed and direction
            target_present = present + math.copysign(1e6, goal_velocity) if goal_velocity else present
            target = st.position + (target_present - present)
        else:
            goal = _s16(mem, A_GOAL, 15)
            if not multi:
                goal = max(_u16(mem, A_MIN_POS), min(_u16(mem, A_MAX_POS), goal))
            target_present = goal
            target = st.position + (goal - present)
        self._target_present = target_present
        key = (
            mode,
            target,
            max_velocity,
            mem[A_ACCEL] * 100.0,
            min(1.0, _u16(mem, A_TORQUE_LIMIT) / 1000.0),
            mem[A_P],
            mem[A_I],
            mem[A_D],
        )
        if key != self._cmd_key:
            self._cmd_key = key
            self.plant.command(MotorCommand(*key))
        dead = max(mem[A_CW_DEAD], mem[A_CCW_DEAD], 1) + 1
        moving = abs(st.velocity) > max(mem[A_MOVING_THRESHOLD], 1) or (
            mode == POSITION and abs(target_present - present) > dead
        )
        mem[A_MOVING] = 1 if moving else 0
        if mode == POSITION and mem[A_MODE] != 1:
            _put16(mem, A_PGOAL, _sm(round(target_present), 15))
        else:
            _put16(mem, A_PGOAL, mem[A_POS] | mem[A_POS + 1] << 8)
