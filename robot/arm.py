"""``Arm``: drives an SO-100/SO-101 follower or leader (configured by ``robot.arm_config.ArmConfig``) over a Feetech
bus in LeRobot 0.4.4's units.

``Arm`` follows LeRobot's ``SOFollower``/``SOLeader`` (lerobot-interop.md §2.2-2.5, hardware.md §3) where it matters
for interop: the same handshake, the same register configuration, the same calibration file and EEPROM check, the
same units and observation/action keys, ``max_relative_target`` clipping. It differs where LeRobot prompts: it never
asks anything (``connect`` raises a typed error that says what to do; the prompts are in ``onboard calibrate``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from hardware.feetech.bus import FeetechBus
from hardware.feetech.errors import BusDisconnectedError, FeetechError
from hardware.feetech.tables import MODEL_NUMBERS, REGISTERS
from robot.arm_config import ArmConfig, parse_action
from robot.calibration import (
    Calibration,
    calibration_differences,
    load_calibration,
    read_servo_calibration,
    validate_calibration,
    write_servo_calibration,
)
from robot.errors import (
    ArmConfigError,
    ArmDisconnectError,
    ArmNotConnectedError,
    CalibrationFileError,
    CalibrationMismatchError,
    CalibrationMissingError,
    HandshakeError,
)
from robot.shutdown import deferred_signals
from robot.units import JointUnits

log = logging.getLogger(__name__)

STS3215_MODEL_NUMBER = 777
MAX_ACCELERATION = REGISTERS["Maximum_Acceleration"]


class Arm:
    """An SO arm on a Feetech bus. Cheap to construct (touches no device); ``connect()`` opens the bus.

    ``bus``: a ``FeetechBus`` to use instead of one made from ``config.port`` on connect. The arm closes the port on
    ``disconnect()`` if ``connect()`` opened it.
    """

    def __init__(self, config: ArmConfig, bus: FeetechBus | None = None):
        self.config = config
        self.spec = config.spec
        self.names = self.spec.names
        self.ids = self.spec.ids
        self._id_list = [self.ids[n] for n in self.names]
        self._bus = bus
        self._owns_port = False
        self._connected = False
        self.calibration: Calibration | None = None
        self._units: JointUnits | None = None
        self.modes = tuple(m.mode(config.use_degrees) for m in self.spec.motors)

    def __repr__(self) -> str:
        state = "connected" if self._connected else "disconnected"
        return f"Arm({self.config.type} {self.config.id!r} on {self.config.port}, {state})"

    # ------------------------------------------------------------------------------------------------ lifecycle
    @property
    def bus(self) -> FeetechBus:
        if self._bus is None:
            raise ArmNotConnectedError(f"{self!r} has no bus yet: call connect() (or open())")
        return self._bus

    @property
    def is_connected(self) -> bool:
        return self._connected and self._bus is not None and self._bus.is_connected

    @property
    def is_calibrated(self) -> bool:
        """True once ``connect()`` has checked that the servos hold the file's calibration (or written it)."""
        return self._units is not None

    @property
    def calibration_path(self) -> Path:
        return self.config.calibration_path

    def open(self) -> Arm:
        """Open the bus and check the servos (LeRobot's handshake); no calibration check, no configuration.
        What ``onboard calibrate`` needs; ``connect()`` does this first."""
        if self.is_connected:
            return self
        if self._bus is None:
            self._bus = FeetechBus(self.config.port, names={i: n for n, i in self.ids.items()})
        elif not self._bus.names:
            self._bus.names = {i: n for n, i in self.ids.items()}
        self._owns_port = not self._bus.is_connected
        self._bus.connect()
        self._connected = True
        try:
            self._handshake()
        except BaseException:
            self._close()
            raise
        return self

    def connect(self, calibrate_if_needed: bool = False) -> Arm:
        """Open the bus, check the servos, load the calibration file and check it against the servos' EEPROM,
        then configure the servos (follower: torque on, holding the present pose; leader: torque off).

        ``calibrate_if_needed``: when the servos' EEPROM differs from the file, write the file's values to the
        servos (what LeRobot does when you press ENTER at its prompt) instead of raising
        ``CalibrationMismatchError``. Without a file it raises ``CalibrationMissingError`` either way (calibrating
        needs a person: ``onboard calibrate``).
        """
        if self.is_connected and self.is_calibrated:
            return self
        self.open()
        try:
            self.calibration = self.load_calibration_file()
            differences = calibration_differences(self.calibration, read_servo_calibration(self.bus, self.ids))
            if differences:
                if not calibrate_if_needed:
                    raise self._mismatch_error(differences)
                log.info("writing the calibration of %s to the servos: %s", self.calibration_path, differences)
                self.apply_calibration()
            self._units = JointUnits.build(
                self.modes,
                [self.calibration[n].range_min for n in self.names],
                [self.calibration[n].range_max for n in self.names],
                [self.calibration[n].drive_mode for n in self.names],
            )
            self.configure()
        except BaseException:  # a signal or an error after configure() may have turned torque on: off again
            self._units = None
            try:
                if self.spec.role == "follower" and self._bus is not None and self._bus.is_connected:
                    with deferred_signals():
                        self._torque_off_all()
            finally:
                self._close()
            raise
        return self

    def disconnect(self) -> None:
        """Torque off on every servo (if ``disable_torque_on_disconnect``; each servo is tried even if another
        fails), then close the port (always). Raises ``ArmDisconnectError`` if some servo kept its torque."""
        if not self._connected:
            return
        failed: list[str] = []
        with deferred_signals():  # a second Ctrl-C or SIGTERM does not cut the torque off short
            try:
                if self.config.disable_torque_on_disconnect and self._bus is not None and self._bus.is_connected:
                    failed = self._torque_off_all()
            finally:
                self._close()
        if failed:
            raise ArmDisconnectError(
                f"could not turn torque off on {', '.join(failed)} while disconnecting {self.config.type} "
                f"{self.config.id!r} (the port is closed): check the cable and power; if a joint still holds, "
                "switch the arm's power off"
            )

    def _close(self) -> None:
        self._connected = False
        self._units = None
        if self._bus is not None and self._owns_port:
            self._bus.disconnect()

    def __enter__(self) -> Arm:
        return self.connect()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.disconnect()
            return
        try:  # an exception is on its way out: do not replace it with a disconnect error
            self.disconnect()
        except Exception as err:
            log.error("while handling %s: %s", exc_type.__name__, err)

    # ------------------------------------------------------------------------------------------------ handshake
    def _handshake(self) -> None:
        bus = self.bus
        missing = [f"{n} (id {i})" for n, i in self.ids.items() if not bus.try_ping(i, retries=2)]
        if missing:
            raise HandshakeError(
                f"{self.config.type} on {self.config.port}: no answer from {', '.join(missing)}. Check the power "
                "supply and the cables between servos; `onboard bus scan --port ...` lists the servos that answer "
                "(ids and baud rates must be set first, one servo at a time: `onboard bus set-id`)."
            )
        wrong: list[str] = []
        for name, servo_id in self.ids.items():
            model = bus.model_number(servo_id)
            if model == STS3215_MODEL_NUMBER:
                continue
            known = MODEL_NUMBERS.get(model)
            if known is not None:
                wrong.append(f"{name} (id {servo_id}) is a {known} (model number {model})")
            else:
                log.warning(
                    "%s (id %d) reports model number %d, not %d (STS3215) as LeRobot expects; some STS3215 firmware "
                    "report other numbers, so continuing (LeRobot itself would refuse this servo)",
                    name,
                    servo_id,
                    model,
                    STS3215_MODEL_NUMBER,
                )
        if wrong:
            raise HandshakeError(
                f"{self.config.type} needs STS3215 servos (model number {STS3215_MODEL_NUMBER}): {'; '.join(wrong)}"
            )
        firmware = {name: bus.firmware_version(servo_id) for name, servo_id in self.ids.items()}
        if len(set(firmware.values())) > 1:
            listing = ", ".join(f"{n} {v}" for n, v in firmware.items())
            raise HandshakeError(
                f"the servos run different firmware versions ({listing}); update them to one version with "
                "Feetech's software (https://www.feetechrc.com/software) first, as LeRobot requires"
            )

    # ---------------------------------------------------------------------------------------------- calibration
    def load_calibration_file(self) -> Calibration:
        """Read and validate this arm's calibration file (``CalibrationMissingError`` if there is none)."""
        path = self.calibration_path
        if not path.is_file():
            raise CalibrationMissingError(
                f"no calibration for {self.config.type} {self.config.id!r}: {path} does not exist. Calibrate the arm "
                f"(`onboard calibrate {self.config.cli_flags()}`), or bring an existing LeRobot calibration "
                f"(`onboard calibration import FILE {self.config.cli_flags()}`)",
                path,
            )
        calibration = load_calibration(path)
        try:
            validate_calibration(calibration, self.ids, str(path))
        except CalibrationFileError as exc:
            raise CalibrationFileError(
                f"{exc}\nRecalibrate (`onboard calibrate {self.config.cli_flags()}`) or fix the file.",
                path,
                exc.problems,
            ) from None
        return {n: calibration[n] for n in self.names}

    def _mismatch_error(self, differences: list[str]) -> CalibrationMismatchError:
        listing = "\n  - ".join(differences)
        return CalibrationMismatchError(
            f"the calibration in the servos of {self.config.type} {self.config.id!r} differs from "
            f"{self.calibration_path}:\n  - {listing}\n"
            "The servos were calibrated with another file (another id?), reset or replaced. If the file is right "
            f"for this arm, write it to the servos: `onboard calibrate {self.config.cli_flags()}` and press ENTER "
            "to use the file (in code: connect(calibrate_if_needed=True)); otherwise recalibrate: the same command, "
            "then 'c'.",
            self.calibration_path,
            differences,
        )

    def apply_calibration(self, calibration: Calibration | None = None) -> None:
        """Write a calibration (default: the loaded file's) to the servos' EEPROM. Torque is off afterwards."""
        calibration = calibration if calibration is not None else self.calibration
        if calibration is None:
            raise CalibrationMissingError(f"no calibration loaded for {self!r}", self.calibration_path)
        write_servo_calibration(self.bus, calibration)

    def read_servo_calibration(self) -> Calibration:
        """The calibration the servos' EEPROM holds now."""
        return read_servo_calibration(self.bus, self.ids)

    # ------------------------------------------------------------------------------------------------ configure
    def configure(self) -> None:
        """LeRobot's register settings. Follower: inside torque off, Return_Delay_Time 0, Maximum_Acceleration 254,
        Acceleration 254, Operating_Mode 0, P 16 / I 0 / D 32, gripper Max_Torque_Limit 500 / Protection_Current 250
        / Overload_Torque 25; then torque on and Lock 1. Leader: torque off, the same first three, Operating_Mode 0."""
        bus = self.bus
        self.disable_torque()
        for servo_id in self._id_list:
            bus.write(servo_id, "Return_Delay_Time", 0)
            # read-only per Feetech (the servo ignores it) but LeRobot writes it: the same bytes on the wire
            bus.write_bytes(servo_id, MAX_ACCELERATION.address, MAX_ACCELERATION.encode(254))
            bus.write(servo_id, "Acceleration", 254)
        for name, servo_id in self.ids.items():
            bus.write(servo_id, "Operating_Mode", 0)
            if self.spec.role == "leader":
                continue
            bus.write(servo_id, "P_Coefficient", 16)  # LeRobot: lower than the default 32 "to avoid shakiness"
            bus.write(servo_id, "I_Coefficient", 0)
            bus.write(servo_id, "D_Coefficient", 32)
            if name == "gripper":
                bus.write(servo_id, "Max_Torque_Limit", 500)  # 50 % of max torque, avoids burnout
                bus.write(servo_id, "Protection_Current", 250)
                bus.write(servo_id, "Overload_Torque", 25)
        if self.spec.role == "follower":
            self.enable_torque()

    def enable_torque(self) -> None:
        """Torque_Enable 1 then Lock 1 on every servo (LeRobot's ``enable_torque``)."""
        for servo_id in self._id_list:
            self.bus.write(servo_id, "Torque_Enable", 1)
            self.bus.write(servo_id, "Lock", 1)

    def disable_torque(self) -> None:
        """Torque_Enable 0 then Lock 0 on every servo (LeRobot's ``disable_torque``: EEPROM writes then persist)."""
        for servo_id in self._id_list:
            self.bus.write(servo_id, "Torque_Enable", 0)
            self.bus.write(servo_id, "Lock", 0)

    def _torque_off_all(self) -> list[str]:
        failed = []
        items = list(self.ids.items())
        for k, (name, servo_id) in enumerate(items):
            try:
                # a servo with a latched fault (overload, overheat) still obeys, but its reply carries the fault
                # bits: don't take that for a failure; read the register back instead
                self.bus.write(servo_id, "Torque_Enable", 0, check_status=False)
                self.bus.write(servo_id, "Lock", 0, check_status=False)
                if self.bus.read(servo_id, "Torque_Enable", check_status=False) != 0:
                    raise FeetechError(f"servo {servo_id} still reports torque on")
            except BusDisconnectedError as exc:  # the port is gone: no servo can be reached through it
                log.error("torque off failed: %s", exc)
                return failed + [f"{n} (id {i})" for n, i in items[k:]]
            except FeetechError as exc:
                log.error("torque off failed on %s (id %d): %s", name, servo_id, exc)
                failed.append(f"{name} (id {servo_id})")
        return failed

    # ---------------------------------------------------------------------------------------------------- I/O
    @property
    def units(self) -> JointUnits:
        if self._units is None:
            raise ArmNotConnectedError(f"{self!r} is not connected (and calibrated): call connect() first")
        return self._units

    def _require_connected(self) -> JointUnits:
        units = self.units
        if not self.is_connected:
            raise ArmNotConnectedError(f"{self!r} is not connected: call connect() first")
        return units

    def read_raw(self) -> np.ndarray:
        """Present_Position of every servo (raw steps, int64[n], names order): one SYNC_READ."""
        values = self.bus.sync_read("Present_Position", self._id_list)
        return np.array([values[i] for i in self._id_list], dtype=np.int64)

    def read_positions(self) -> np.ndarray:
        """Joint positions in LeRobot units, float32[n] in the names order (one SYNC_READ)."""
        units = self._require_connected()
        return units.to_units(self.read_raw()).astype(np.float32)

    def get_observation(self) -> dict[str, float]:
        """LeRobot's ``get_observation`` for the motors: ``{"shoulder_pan.pos": ..., ..., "gripper.pos": ...}``."""
        return dict(zip(self.spec.keys, map(float, self.read_positions()), strict=True))

    def get_action(self) -> dict[str, float]:
        """A leader's ``get_action`` (LeRobot's teleoperator): its present positions."""
        return self.get_observation()

    def send_action(self, action: Mapping[str, float] | np.ndarray) -> dict[str, float]:
        """Send goal positions (LeRobot units): a dict with ``<motor>.pos`` keys (others are ignored; a subset of the
        motors is allowed) or an array in the names order. Each goal is clipped to ``max_relative_target`` of the
        present position (if set; costs one more SYNC_READ) and to the calibrated range, then all go out in one
        SYNC_WRITE of Goal_Position. Returns what was sent, in units (float32 values)."""
        units = self._require_connected()
        if self.spec.role != "follower":
            raise ArmConfigError(
                f"{self.config.type} is a leader (a teleoperator): its torque stays off and it takes no goals"
            )
        idx, goal = self._goals(action)
        mrt = self.config.max_relative_target
        if mrt is not None:
            present = self.read_positions().astype(np.float64)[idx]
            cap = (
                np.full(len(idx), mrt)
                if isinstance(mrt, float)
                else np.array([mrt[self.names[i]] for i in idx], dtype=np.float64)
            )
            safe = present + np.clip(goal - present, -cap, cap)
            if np.any(np.abs(safe - goal) > 1e-4):
                log.debug("goals clipped to max_relative_target: %s -> %s", goal, safe)
            goal = safe
        lo, hi = units.limits()
        goal = np.clip(goal, lo[idx], hi[idx])
        sub = JointUnits(
            tuple(units.modes[i] for i in idx),
            units.range_min[idx],
            units.range_max[idx],
            units.drive_mode[idx],
            units.max_res,
        )
        raw = np.clip(sub.to_raw(goal), units.range_min[idx], units.range_max[idx])
        self.bus.sync_write("Goal_Position", {self._id_list[i]: int(r) for i, r in zip(idx, raw, strict=True)})
        sent = goal.astype(np.float32)
        return {self.spec.keys[i]: float(v) for i, v in zip(idx, sent, strict=True)}

    def _goals(self, action: Mapping[str, float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return parse_action(action, self.names, self.spec.keys)
