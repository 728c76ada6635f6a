"""Safety on by default: ``SafeArm``, a filter around a connected ``Arm``, within the limits and thresholds of its
``SafetyConfig`` (``robot.safety_config``).

    with SafeArm(arm, clock) as safe:          # torque off on exit, exception and Ctrl-C (or hold: on_exit="hold")
        while ...:
            readings = safe.check()            # one SYNC_READ: positions, load, temperature, status; may raise
            sent = safe.send_action(action)    # clamped to the calibrated range, the step and the velocity limit
            sent.clamped                       # {"elbow_flex.pos": ("step",), ...}: which clamps fired

What it does (all on by default; field.md §5 gap 5: LeRobot's ``max_relative_target`` defaults to None and its stall
protection is opt-in):

- Goals are clamped to the calibrated joint range, to ``max_step`` per call from the last goal sent (the present
  position after a start, a hold or a reset) and to ``max_velocity`` times the time since the last goal.
- ``check()`` reads Present_Position .. Status (addresses 56-65, ten bytes) of every servo in one SYNC_READ: a tick
  needs no other read (``readings.positions`` are the joint positions in LeRobot units). It raises, after stopping
  the arm (torque off): ``ServoFaultError`` when a servo reports a fault (overload, overheat, ...),
  ``OverheatError`` at ``temperature_stop_c`` (a warning is logged at ``temperature_warn_c``), ``StallError`` when a
  joint's |Present_Load| stays above ``stall_load`` (of its torque limit) with a position error above
  ``stall_error`` while it does not move, for ``stall_time_s``. A stalled *gripper* is a grasp: by default it is not
  stopped but derated: its Torque_Limit drops to ``gripper_hold_torque`` (below the servo's own overload threshold,
  25 % after ``Arm.configure``) until it is commanded to open, so it keeps holding without burning.
- Watchdog: when no fresh goal arrives within ``watchdog_timeout_s`` (checked in ``check()``), every joint holds its
  present position (once; ``stats.watchdog_holds`` counts it) until the next goal, which starts from there.
- The gripper's Torque_Limit (RAM) is set to ``gripper_torque_limit`` at start: in force at once, unlike the
  EEPROM Max_Torque_Limit that ``Arm.configure`` writes and that only a power cycle copies to RAM.
- ``emergency_stop()``: torque off now (one broadcast SYNC_WRITE, checked, retried servo by servo). After a stop or a
  fault the arm takes no goals (``EmergencyStopError``) until ``reset()``.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from hardware.feetech.errors import BusDisconnectedError, FeetechError, StatusBit
from hardware.feetech.tables import REGISTERS
from robot.arm import Arm
from robot.arm_config import parse_action
from robot.clock import Clock
from robot.errors import EmergencyStopError, OverheatError, SafetyConfigError, SafetyError, ServoFaultError, StallError
from robot.safety_config import SafetyConfig
from robot.shutdown import deferred_signals

log = logging.getLogger(__name__)

GRIPPER = "gripper"
_POS, _VEL, _LOAD = REGISTERS["Present_Position"], REGISTERS["Present_Velocity"], REGISTERS["Present_Load"]
BLOCK_ADDRESS = _POS.address  # 56: Present_Position, Velocity, Load, Voltage, Temperature, Async_Write_Flag, Status
BLOCK_LENGTH = REGISTERS["Status"].address + 1 - BLOCK_ADDRESS  # 10 bytes
DEG_PER_STEP = 360.0 / 4096
FAULT_BITS = int(StatusBit.VOLTAGE | StatusBit.ANGLE | StatusBit.OVERHEAT | StatusBit.OVERCURRENT | StatusBit.OVERLOAD)


# --------------------------------------------------------------------------------------------------------- readings
@dataclass(frozen=True)
class Readings:
    """One ``SafeArm.read()``: every servo's Present_Position .. Status, names order."""

    t: float  # clock time of the read
    raw: np.ndarray  # int64 (n,) Present_Position, steps
    positions: np.ndarray  # float64 (n,) LeRobot units
    velocity: np.ndarray  # int64 (n,) Present_Velocity, steps/s
    load: np.ndarray  # float64 (n,) Present_Load as a signed fraction of full torque
    voltage: np.ndarray  # float64 (n,) volts
    temperature: np.ndarray  # float64 (n,) degrees C
    status: np.ndarray  # int64 (n,) Status register bits (StatusBit)

    def observation(self, keys: tuple[str, ...]) -> dict[str, float]:
        return dict(zip(keys, map(float, self.positions), strict=True))


class SentAction(dict):
    """What ``SafeArm.send_action`` sent (``{"<motor>.pos": value}``, like ``Arm.send_action``), and ``clamped``:
    for each key whose goal was changed, the clamps that fired (``"limits"``, ``"step"``, ``"velocity"``)."""

    def __init__(self, sent: Mapping[str, float], clamped: Mapping[str, tuple[str, ...]]):
        super().__init__(sent)
        self.clamped: dict[str, tuple[str, ...]] = dict(clamped)


@dataclass
class SafetyStats:
    clamps: Counter = field(default_factory=Counter)  # clamp kind -> joint goals it changed
    clamps_by_joint: Counter = field(default_factory=Counter)  # joint -> clamped goals
    actions: int = 0
    checks: int = 0
    watchdog_holds: int = 0
    gripper_derates: int = 0
    temperature_warnings: int = 0
    stops: int = 0


# ------------------------------------------------------------------------------------------------------------ arm
class SafeArm:
    """Safety filter around a connected follower ``Arm`` (see the module doc). Cheap to construct; ``start()`` (or
    ``with``) touches the servos. ``clock``: the runtime's clock (wall or sim), for the velocity limit, the stall
    persistence and the watchdog."""

    def __init__(self, arm: Arm, clock: Clock, config: SafetyConfig | None = None):
        self.arm = arm
        self.clock = clock
        self.config = config if config is not None else SafetyConfig()
        self.names = arm.names
        self.keys = arm.spec.keys
        self.ids = [arm.ids[n] for n in self.names]
        n = len(self.names)
        grip = np.array([name == GRIPPER for name in self.names])
        c = self.config
        self._step_cap = np.where(grip, c.gripper_max_step, c.max_step_deg)
        self._vel_cap = np.where(grip, c.gripper_max_velocity, c.max_velocity_deg_s)
        self._stall_error = np.where(grip, c.gripper_stall_error, c.stall_error_deg)
        self._torque_frac = np.where(grip, c.gripper_torque_limit, 1.0)
        self._stall_load = np.where(grip, c.gripper_stall_load, c.stall_load)
        self._grip = int(np.flatnonzero(grip)[0]) if grip.any() else None
        self.stats = SafetyStats()
        self.last_readings: Readings | None = None
        self._goal = np.full(n, np.nan)  # last goal sent per joint (units); NaN: none yet
        self._sent_t = np.full(n, np.nan)  # when each joint's last goal was sent; NaN: none since start/hold
        self._last_action_t: float | None = None
        self._stall_since: list[float | None] = [None] * n
        self._hot = np.zeros(n, dtype=bool)
        self.grasp: float | None = None  # while a gripper stall is derated: the direction it squeezes (+1/-1)
        self.holding = False  # the watchdog (or hold()) holds the present position
        self.stopped_reason: str | None = None
        self._last_failed: list[str] = []
        self._started = False

    def __repr__(self) -> str:
        state = "stopped" if self.stopped else "holding" if self.holding else "active" if self._started else "idle"
        return f"SafeArm({self.arm!r}, {state})"

    @property
    def stopped(self) -> bool:
        return self.stopped_reason is not None

    # ------------------------------------------------------------------------------------------------ lifecycle
    def start(self) -> SafeArm:
        """Check that the arm is a connected follower, cap the gripper's torque (RAM Torque_Limit), read the state
        and take the present position as the reference of the step limit."""
        if self.arm.spec.role != "follower":
            raise SafetyConfigError(f"{self.arm.config.type} is a leader: SafeArm guards followers only")
        self.arm.units  # noqa: B018  (raises ArmNotConnectedError before connect())
        self.grasp = None
        self._set_gripper_torque(self.config.gripper_torque_limit)
        self.stopped_reason = None
        self._reset_state(self.read())
        self._started = True
        return self

    def _reset_state(self, readings: Readings) -> None:
        self._goal = readings.positions.copy()
        self._sent_t[:] = np.nan
        self._last_action_t = readings.t
        self._stall_since = [None] * len(self.names)
        self.holding = False

    def close(self, exc: BaseException | None = None) -> None:
        """What ``on_exit`` says: torque off, or hold the present position. A safety fault, a bus error, or an arm
        already stopped always ends with torque off. Never raises over ``exc``."""
        if not self._started:
            return
        self._started = False
        hold = self.config.on_exit == "hold" and not self.stopped and not isinstance(exc, SafetyError | FeetechError)
        try:
            with deferred_signals():  # a second Ctrl-C or SIGTERM does not cut the torque off short
                if hold:
                    self.hold()
                    return
                failed = self._torque_off()
            if failed:
                log.error("torque may still be on for %s: switch the arm's power off", ", ".join(failed))
        except Exception as err:  # the bus itself failed: say so, keep the original exception
            if exc is None:
                raise
            log.error("while stopping the arm after %s: %s", type(exc).__name__, err)

    def __enter__(self) -> SafeArm:
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(exc)

    # --------------------------------------------------------------------------------------------------- reading
    def read(self) -> Readings:
        """One SYNC_READ of Present_Position .. Status (10 bytes per servo). Fault bits do not raise here
        (``check()`` decides)."""
        data = self.arm.bus.sync_read_bytes(self.ids, BLOCK_ADDRESS, BLOCK_LENGTH, check_status=False)
        n = len(self.ids)
        raw = np.empty(n, np.int64)
        vel = np.empty(n, np.int64)
        load = np.empty(n)
        volt = np.empty(n)
        temp = np.empty(n)
        status = np.empty(n, np.int64)
        for k, servo_id in enumerate(self.ids):
            b = data[servo_id]
            raw[k] = _POS.decode(b[0:2])
            vel[k] = _VEL.decode(b[2:4])
            load[k] = _LOAD.decode(b[4:6]) / 1000.0
            volt[k] = b[6] / 10.0
            temp[k] = b[7]
            status[k] = b[9]
        positions = self.arm.units.to_units(raw).astype(np.float64)
        readings = Readings(self.clock.now(), raw, positions, vel, load, volt, temp, status)
        self.last_readings = readings
        return readings

    def check(self, readings: Readings | None = None) -> Readings:
        """Read (unless given ``readings``), then: servo faults, temperatures, stalls, watchdog. Raises a
        ``SafetyError`` after stopping the arm; returns the readings."""
        if self.stopped:
            raise EmergencyStopError(f"the arm is stopped ({self.stopped_reason}): call reset() to go on")
        r = readings if readings is not None else self.read()
        self.stats.checks += 1
        faults = {self.names[k]: int(s) & FAULT_BITS for k, s in enumerate(r.status) if int(s) & FAULT_BITS}
        if faults:
            listing = "; ".join(f"{j}: {StatusBit(b).describe()}" for j, b in faults.items())
            self._stop(f"servo fault: {listing}")
            raise ServoFaultError(
                f"servo fault, torque turned off: {listing}. Remove the cause (a blocked joint, the supply), "
                "then reset() to re-enable torque",
                faults,
            )
        self._check_temperature(r)
        self._check_stall(r)
        self._check_watchdog(r)
        return r

    def _check_temperature(self, r: Readings) -> None:
        c = self.config
        k = int(np.argmax(r.temperature))
        if r.temperature[k] >= c.temperature_stop_c:
            joint, temp = self.names[k], float(r.temperature[k])
            self._stop(f"{joint} at {temp:.0f} C")
            raise OverheatError(
                f"{joint} is at {temp:.0f} C (stop threshold {c.temperature_stop_c:.0f} C): torque turned off. Let it "
                "cool, and hold lighter or shorter (a gripper squeezing an object heats up)",
                joint,
                temp,
            )
        for k, temp in enumerate(r.temperature):
            if temp >= c.temperature_warn_c and not self._hot[k]:
                self._hot[k] = True
                self.stats.temperature_warnings += 1
                log.warning(
                    "%s is at %.0f C (warning at %.0f C, stop at %.0f C)",
                    self.names[k],
                    temp,
                    c.temperature_warn_c,
                    c.temperature_stop_c,
                )
            elif temp < c.temperature_warn_c - 2:  # hysteresis: warn again after it cooled
                self._hot[k] = False

    def _check_stall(self, r: Readings) -> None:
        c = self.config
        error = self._goal - r.positions
        loaded = np.abs(r.load) >= self._stall_load * self._torque_frac
        off = np.abs(error) >= self._stall_error  # NaN goal (none sent): False
        still = np.abs(r.velocity) * DEG_PER_STEP < c.stall_velocity_deg_s
        for k, joint in enumerate(self.names):
            if not (loaded[k] and off[k] and still[k]):
                self._stall_since[k] = None
                continue
            since = self._stall_since[k]
            if since is None:
                self._stall_since[k] = r.t
                continue
            duration = r.t - since
            if duration < c.stall_time_s - 1e-9:
                continue
            if k == self._grip and c.gripper_on_stall == "derate":
                if self.grasp is None:  # already derated: it holds, as it should
                    self._derate_grip(r, float(error[k]))
                self._stall_since[k] = None
                continue
            unit = "" if k == self._grip else " deg"
            message = (
                f"{joint} stalled: load {abs(r.load[k]) * 100:.0f} % with its goal {error[k]:+.1f}{unit} away for "
                f"{duration:.2f} s (it is pushing against something): torque turned off. Free the joint, then reset()"
            )
            self._stop(f"{joint} stalled")
            raise StallError(message, joint, float(r.load[k]), float(error[k]), duration)

    def _derate_grip(self, r: Readings, error: float) -> None:
        """A grasp: keep squeezing, at ``gripper_hold_torque``, until the gripper is commanded to open."""
        k = self._grip
        self.grasp = math.copysign(1.0, error) if error else -1.0  # a goal on the jaw: squeezing is closing
        self._set_gripper_torque(self.config.gripper_hold_torque)
        self._stall_since[k] = None
        self.stats.gripper_derates += 1
        log.info(
            "gripper stalled at %.1f (a grasp?): torque limited to %.0f %%",
            r.positions[k],
            self.config.gripper_hold_torque * 100,
        )

    def _releases_grasp(self, goal: float) -> bool:
        """Does a new gripper ``goal`` end the derated grasp? When it no longer squeezes: the goal is at least
        ``gripper_release_margin`` on the open side of the jaw's last measured position (a policy's goal jitters by a
        unit or two while it holds; that is not a release). A grasp exists only after a ``check()``, so there is a
        reading."""
        assert self.grasp is not None and self._grip is not None and self.last_readings is not None
        jaw = float(self.last_readings.positions[self._grip])
        return self.grasp * (goal - jaw) <= -self.config.gripper_release_margin

    def _set_gripper_torque(self, fraction: float) -> None:
        if self._grip is not None:
            self.arm.bus.write(self.ids[self._grip], "Torque_Limit", round(fraction * 1000))
        if fraction == self.config.gripper_torque_limit:
            self.grasp = None

    def _check_watchdog(self, r: Readings) -> None:
        timeout = self.config.watchdog_timeout_s
        if timeout is None or self.holding or self._last_action_t is None:
            return
        if r.t - self._last_action_t > timeout + 1e-9:
            log.warning(
                "no action for %.3f s (watchdog %.3f s): holding the present position",
                r.t - self._last_action_t,
                timeout,
            )
            self.stats.watchdog_holds += 1
            self.hold(r)

    # --------------------------------------------------------------------------------------------------- acting
    def hold(self, readings: Readings | None = None) -> dict[str, float]:
        """Hold the present position (send it as the goal of every joint); the next goal starts from there."""
        if self.stopped:
            raise EmergencyStopError(f"the arm is stopped ({self.stopped_reason}): call reset() to go on")
        r = readings if readings is not None else self.read()
        sent = self.arm.send_action(r.positions)
        self._reset_state(r)
        self.holding = True
        return sent

    def send_action(self, action: Mapping[str, float] | np.ndarray) -> SentAction:
        """Clamp and send goals (LeRobot units; a dict with ``<motor>.pos`` keys, a subset allowed, or an array in
        the names order). Returns what was sent, with ``.clamped`` naming the clamps that fired per key."""
        if self.stopped:
            raise EmergencyStopError(f"the arm is stopped ({self.stopped_reason}): call reset() to go on")
        if not self._started:
            raise SafetyError("SafeArm not started: use `with SafeArm(arm, clock) as safe:` or call start()")
        idx, goal = self._parse(action)
        now = self.clock.now()
        lo, hi = self.arm.units.limits()
        fired: dict[int, list[str]] = {}

        def clamp(k: int, value: float, low: float, high: float, kind: str) -> float:
            if value < low - 1e-9 or value > high + 1e-9:
                fired.setdefault(k, []).append(kind)
                return min(high, max(low, value))
            return value

        out = np.empty(len(idx))
        for m, (k, g) in enumerate(zip(idx, goal, strict=True)):
            g = clamp(k, float(g), float(lo[k]), float(hi[k]), "limits")
            ref = self._goal[k]
            if not math.isnan(ref):
                step = float(self._step_cap[k])
                last = self._sent_t[k]  # NaN: the first goal since start or a hold, the step limit only
                dt = math.inf if math.isnan(last) else max(0.0, now - last)
                if self._vel_cap[k] * dt < step:
                    g = clamp(k, g, ref - self._vel_cap[k] * dt, ref + self._vel_cap[k] * dt, "velocity")
                else:
                    g = clamp(k, g, ref - step, ref + step, "step")
            if k == self._grip and self.grasp is not None and self._releases_grasp(g):
                self._set_gripper_torque(self.config.gripper_torque_limit)  # commanded to open: the grasp is over
            out[m] = g
        sent = self.arm.send_action({self.keys[k]: float(v) for k, v in zip(idx, out, strict=True)})
        for k in idx:
            self._goal[k] = sent[self.keys[k]]
            self._sent_t[k] = now
        self._last_action_t = now
        self.holding = False
        self.stats.actions += 1
        clamped = {self.keys[k]: tuple(kinds) for k, kinds in fired.items()}
        for k, kinds in fired.items():
            self.stats.clamps.update(kinds)
            self.stats.clamps_by_joint[self.names[k]] += 1
        return SentAction(sent, clamped)

    def _parse(self, action: Mapping[str, float] | np.ndarray) -> tuple[list[int], np.ndarray]:
        order, goal = parse_action(action, self.names, self.keys)
        return [int(k) for k in order], goal

    # ---------------------------------------------------------------------------------------------------- stops
    def emergency_stop(self, reason: str = "emergency_stop()") -> list[str]:
        """Torque off on every servo now; the arm then takes no goals until ``reset()``. Returns the joints whose
        torque could not be confirmed off (empty when all are off)."""
        self._stop(reason)
        return self._last_failed

    def _stop(self, reason: str) -> None:
        if self.stopped_reason is None:
            self.stopped_reason = reason
            self.stats.stops += 1
        log.error("stopping the arm: %s", reason)
        self._last_failed = self._torque_off()

    def _torque_off(self) -> list[str]:
        """One broadcast SYNC_WRITE Torque_Enable 0 (the fastest way), then read back and retry servo by servo."""
        bus = self.arm.bus
        try:
            bus.sync_write("Torque_Enable", dict.fromkeys(self.ids, 0))
        except BusDisconnectedError as exc:  # the port is gone: nothing more can reach the servos through it
            log.error("torque off failed: %s", exc)
            return list(self.names)
        except FeetechError as exc:
            log.error("broadcast torque off failed: %s", exc)
        try:
            enabled = bus.sync_read("Torque_Enable", self.ids, check_status=False)
            pending = [i for i in self.ids if enabled[i] != 0]
        except FeetechError:
            pending = list(self.ids)
        failed = []
        for servo_id in pending:
            try:
                bus.write(servo_id, "Torque_Enable", 0, check_status=False)
            except FeetechError as exc:
                log.error("torque off failed on servo %d: %s", servo_id, exc)
                failed.append(self.names[self.ids.index(servo_id)])
        return failed

    def reset(self) -> None:
        """After a stop: re-enable torque holding the present position (the servos' latched faults clear if their
        cause is gone; ``check()`` says if not) and accept goals again."""
        self.stopped_reason = None
        r = self.read()
        self.arm.bus.sync_write("Goal_Position", {i: int(p) for i, p in zip(self.ids, r.raw, strict=True)})
        self.arm.enable_torque()
        self._set_gripper_torque(self.config.gripper_torque_limit)
        self._hot[:] = False
        self._reset_state(r)
        self._started = True
