"""The physics side of an emulated STS3215: its readings, its protections and its position controller, on top of the
register memory that ``servo.py`` keeps (``EmulatedServo`` is a ``ServoControl``).

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
- Temperature follows the current with a first-order lag (``HEAT_RISE_C`` at stall current, ``THERMAL_TAU_S``).
"""

from __future__ import annotations

import math

from hardware.feetech.errors import StatusBit
from hardware.feetech.tables import RESOLUTION, decode_sign_magnitude
from sim.feetech.memory import (
    A_ACCEL,
    A_CCW_DEAD,
    A_CURRENT,
    A_CW_DEAD,
    A_D,
    A_GOAL,
    A_GOAL_VEL,
    A_HOMING,
    A_I,
    A_LOAD,
    A_MAX_POS,
    A_MAX_TEMP,
    A_MAX_VOLT,
    A_MIN_POS,
    A_MIN_VOLT,
    A_MODE,
    A_MOVING,
    A_MOVING_THRESHOLD,
    A_OC_TIME,
    A_OVERLOAD,
    A_P,
    A_PGOAL,
    A_PHASE,
    A_POS,
    A_PROT_CURRENT,
    A_PROT_TIME,
    A_STATUS,
    A_TEMP,
    A_TORQUE,
    A_TORQUE_LIMIT,
    A_UNLOADING,
    A_VEL,
    A_VOLT,
    HOMING_BIT,
    put16,
    s16,
    sm,
    u16,
)
from sim.feetech.motor import DAMPING, POSITION, STALL_CURRENT, TORQUE_OFF, MotorCommand, Plant, PlantState

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


class ServoControl:
    """Readings, protections and the controller of one servo, mixed into ``EmulatedServo``, whose state they share:
    ``memory`` (the register image), ``plant`` and its last sampled ``_state``, ``voltage``, ``temperature``,
    ``ambient_c``, the time ``_t`` of the last ``advance``, and the protection timers and latched faults that
    ``EmulatedServo._power_on`` initialises."""

    memory: bytearray
    plant: Plant
    voltage: float
    temperature: float
    ambient_c: float
    _t: float | None
    _state: PlantState
    _forced_overload: bool
    _turn_base: float
    _present_wrapped: float
    _present_multi: float
    _over_since: float | None
    _oc_since: float | None
    _causes: int
    _latched: int
    _goal_written: bool
    _cmd_key: tuple | None
    _target_present: float

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

    # --- readings, protections, controller --------------------------------------------------------------------------
    def _present_reading(self) -> int:
        mem = self.memory
        return decode_sign_magnitude(mem[A_POS] | mem[A_POS + 1] << 8, 15)

    def _refresh(self) -> None:
        """Readings from the plant state: present position/velocity/load/voltage/temperature/current."""
        mem = self.memory
        st = self._state
        homing = s16(mem, A_HOMING, HOMING_BIT)
        continuous = st.position - homing
        self._present_wrapped = wrapped = continuous % RESOLUTION
        self._present_multi = continuous - self._turn_base
        if mem[A_PHASE] & MULTI_TURN_PHASE_BIT:
            put16(mem, A_POS, sm(round(self._present_multi), 15))
        else:
            put16(mem, A_POS, round(wrapped) % RESOLUTION)
        put16(mem, A_VEL, sm(round(st.velocity), 15))
        load = st.load
        if self._forced_overload and mem[A_TORQUE] not in (TORQUE_OFF, DAMPING):
            load = max(abs(load), u16(mem, A_TORQUE_LIMIT) / 1000.0)
        put16(mem, A_LOAD, sm(round(load * 1000), 10))
        mem[A_VOLT] = max(0, min(255, round(self.voltage * 10)))
        mem[A_TEMP] = max(0, min(255, round(self.temperature)))
        put16(mem, A_CURRENT, max(0, min(0x7FFF, round(st.current / CURRENT_UNIT))))

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
        if st.current > u16(mem, A_PROT_CURRENT) * CURRENT_UNIT:
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
        goal_velocity = s16(mem, A_GOAL_VEL, 15)
        max_velocity = float(abs(goal_velocity))
        if mode != POSITION:
            target_present = present
            target = st.position
        elif mem[A_MODE] == 1:  # constant speed: Goal_Velocity sets speed and direction
            target_present = present + math.copysign(1e6, goal_velocity) if goal_velocity else present
            target = st.position + (target_present - present)
        else:
            goal = s16(mem, A_GOAL, 15)
            if not multi:
                goal = max(u16(mem, A_MIN_POS), min(u16(mem, A_MAX_POS), goal))
            target_present = goal
            target = st.position + (goal - present)
        self._target_present = target_present
        key = (
            mode,
            target,
            max_velocity,
            mem[A_ACCEL] * 100.0,
            min(1.0, u16(mem, A_TORQUE_LIMIT) / 1000.0),
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
            put16(mem, A_PGOAL, sm(round(target_present), 15))
        else:
            put16(mem, A_PGOAL, mem[A_POS] | mem[A_POS + 1] << 8)
