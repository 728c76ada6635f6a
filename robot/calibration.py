"""Calibration: LeRobot 0.4.4's calibration files and procedure for Feetech (STS3215) arms.

A calibration is stored twice (lerobot-interop.md §2.5, §9.2): in a JSON file, one entry per motor name::

    {
        "shoulder_pan": {
            "id": 1,
            "drive_mode": 0,
            "homing_offset": -1016,
            "range_min": 758,
            "range_max": 3292
        },
        ...
    }

(what LeRobot's ``draccus.dump(..., indent=4)`` writes: 4-space indent, fields in this order, no trailing newline),
and in each servo's EEPROM (``Homing_Offset``, ``Min_Position_Limit``, ``Max_Position_Limit``). Files live where
LeRobot 0.4.4 puts them, so an existing LeRobot calibration is found as it is and ours works in LeRobot:
``$HF_LEROBOT_CALIBRATION`` (default ``$HF_LEROBOT_HOME/calibration``, default ``$HF_HOME/lerobot/calibration``,
default ``~/.cache/huggingface/lerobot/calibration``) ``/robots/so_follower/<id>.json`` or
``/teleoperators/so_leader/<id>.json``.

The procedure (``Calibrator``) is LeRobot's, as a state machine with no prompts (prompts live in the CLI):
``start()`` -> the person puts every joint at the middle of its range -> ``set_homing()`` -> the person sweeps each
joint through its range while ``sample_range()`` is called repeatedly -> ``finish()``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

from hardware.feetech.bus import FeetechBus
from hardware.feetech.tables import REGISTERS
from robot.errors import CalibrationError, CalibrationFileError

RESOLUTION_MAX = 4095  # highest raw position of an STS3215 (4096 steps per turn)
HALF_TURN = RESOLUTION_MAX // 2  # 2047: what the middle pose reads after homing (LeRobot: int(max_res / 2))
HOMING_MAX = REGISTERS["Homing_Offset"].max  # 2047: sign-magnitude with the sign in bit 11
FIELDS = ("id", "drive_mode", "homing_offset", "range_min", "range_max")
ROBOTS = "robots"  # LeRobot's calibration subdirectories
TELEOPERATORS = "teleoperators"
CALIBRATION_REGISTERS = ("Homing_Offset", "Min_Position_Limit", "Max_Position_Limit")


@dataclass(frozen=True)
class MotorCalibration:
    """One motor's calibration, field for field LeRobot's ``lerobot.motors.MotorCalibration``."""

    id: int
    drive_mode: int
    homing_offset: int
    range_min: int
    range_max: int


Calibration = dict[str, MotorCalibration]


# --------------------------------------------------------------------------------------------------------- locations
def lerobot_home() -> Path:
    """``$HF_LEROBOT_HOME``, else ``$HF_HOME/lerobot`` (``$HF_HOME`` defaulting like huggingface_hub's)."""
    env = os.environ.get("HF_LEROBOT_HOME")
    if env:
        return Path(env).expanduser()
    hf_home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.join(os.path.expanduser("~"), ".cache")), "huggingface"
    )
    return Path(os.path.expandvars(os.path.expanduser(hf_home))) / "lerobot"


def calibration_root() -> Path:
    """``$HF_LEROBOT_CALIBRATION``, else ``lerobot_home()/calibration`` (LeRobot 0.4.4's rule, read at call time)."""
    env = os.environ.get("HF_LEROBOT_CALIBRATION")
    return Path(env).expanduser() if env else lerobot_home() / "calibration"


def default_calibration_dir(category: str, name: str) -> Path:
    """``calibration_root()/<category>/<name>``, e.g. ``.../robots/so_follower``."""
    return calibration_root() / category / name


# ------------------------------------------------------------------------------------------------------------ files
def calibration_to_json(calibration: Mapping[str, MotorCalibration]) -> str:
    """The file's text, byte for byte what LeRobot (draccus, indent 4) writes for the same calibration."""
    return json.dumps({name: asdict(c) for name, c in calibration.items()}, indent=4)


def save_calibration(path: Path | str, calibration: Mapping[str, MotorCalibration]) -> Path:
    """Write the file atomically (temp file in the same directory, fsync, ``os.replace``): a crash leaves the old
    file or the new one, never half of one. Creates the directory. Returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = calibration_to_json(calibration)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable (POSIX); best effort elsewhere
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return path
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
    return path


def parse_calibration(data: object, source: str = "calibration") -> Calibration:
    """A decoded JSON object -> calibration. Checks the structure (names -> the five integer fields) only."""
    if not isinstance(data, dict):
        raise CalibrationFileError(
            f"{source}: expected a JSON object of motor name -> calibration, got {type(data).__name__}"
        )
    if {"motor_names", "calib_mode"} & set(data) or any(isinstance(v, list) for v in data.values()):
        raise CalibrationFileError(
            f"{source}: this is a calibration file of LeRobot before 0.3 (lists per field, 'motor_names', "
            "'calib_mode'), whose zero pose and units differ: recalibrate the arm (`onboard calibrate ...`)"
        )
    problems = []
    out: Calibration = {}
    for name, entry in data.items():
        if not isinstance(entry, dict):
            problems.append(f"{name}: expected an object with {', '.join(FIELDS)}, got {entry!r}")
            continue
        missing = [f for f in FIELDS if f not in entry]
        unknown = [f for f in entry if f not in FIELDS]
        bad = [f for f in FIELDS if f in entry and (type(entry[f]) is not int)]
        if missing:
            problems.append(f"{name}: missing {', '.join(missing)}")
        if unknown:
            problems.append(f"{name}: unknown field(s) {', '.join(unknown)} (expected {', '.join(FIELDS)})")
        if bad:
            problems.append(f"{name}: " + ", ".join(f"{f} must be an integer, got {entry[f]!r}" for f in bad))
        if not (missing or unknown or bad):
            out[name] = MotorCalibration(**{f: entry[f] for f in FIELDS})
    if problems:
        listing = "\n  - ".join(problems)
        raise CalibrationFileError(f"{source} is not a valid calibration:\n  - {listing}", None, problems)
    return out


def load_calibration(path: Path | str) -> Calibration:
    """Read a LeRobot-format calibration file (structure checked; see ``validate_calibration`` for the values)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CalibrationFileError(f"no calibration file at {path}", path) from None
    except OSError as exc:
        raise CalibrationFileError(f"cannot read calibration file {path}: {exc}", path) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CalibrationFileError(
            f"{path} is not valid JSON ({exc}); a LeRobot calibration file looks like "
            '{"shoulder_pan": {"id": 1, "drive_mode": 0, "homing_offset": -1016, "range_min": 758, '
            '"range_max": 3292}, ...}',
            path,
        ) from None
    try:
        return parse_calibration(data, str(path))
    except CalibrationFileError as exc:
        raise CalibrationFileError(str(exc), path, exc.problems) from None


def calibration_problems(
    calibration: Mapping[str, MotorCalibration], motors: Mapping[str, int] | None = None
) -> list[str]:
    """What is wrong with a calibration for an arm whose motors are ``motors`` (name -> id); [] if nothing."""
    problems: list[str] = []
    if motors is not None:
        missing = [n for n in motors if n not in calibration]
        unknown = [n for n in calibration if n not in motors]
        if missing:
            problems.append(f"no entry for {', '.join(missing)}")
        if unknown:
            problems.append(f"unknown motor name(s) {', '.join(unknown)} (this arm has {', '.join(motors)})")
    for name, c in calibration.items():
        if motors is not None and name in motors and c.id != motors[name]:
            problems.append(f"{name}: id {c.id}, but {name} is servo id {motors[name]} on this arm")
        if c.drive_mode not in (0, 1):
            problems.append(f"{name}: drive_mode must be 0 or 1, got {c.drive_mode}")
        if not (0 <= c.range_min <= RESOLUTION_MAX and 0 <= c.range_max <= RESOLUTION_MAX):
            problems.append(f"{name}: range {c.range_min}..{c.range_max} is outside the servo's 0..{RESOLUTION_MAX}")
        elif c.range_min >= c.range_max:
            problems.append(
                f"{name}: range_min {c.range_min} must be below range_max {c.range_max}"
                + (" (the joint did not move during calibration)" if c.range_min == c.range_max else "")
            )
        if not -HOMING_MAX <= c.homing_offset <= HOMING_MAX:
            problems.append(
                f"{name}: homing_offset {c.homing_offset} is outside +-{HOMING_MAX} (what the servo can store)"
            )
    return problems


def validate_calibration(
    calibration: Mapping[str, MotorCalibration], motors: Mapping[str, int] | None = None, source: str = "calibration"
) -> None:
    """Raise ``CalibrationFileError`` listing every problem (see ``calibration_problems``)."""
    problems = calibration_problems(calibration, motors)
    if problems:
        raise CalibrationFileError(f"{source} does not fit this arm:\n  - " + "\n  - ".join(problems), None, problems)


def import_calibration(src: Path | str, dest: Path | str, motors: Mapping[str, int]) -> Calibration:
    """Validate a LeRobot calibration file for an arm with ``motors`` (name -> id) and write it to ``dest``
    (atomically, in the arm's motor order; a file LeRobot wrote comes out byte-identical)."""
    src = Path(src)
    calibration = load_calibration(src)
    try:
        validate_calibration(calibration, motors, str(src))
    except CalibrationFileError as exc:
        raise CalibrationFileError(str(exc), src, exc.problems) from None
    ordered = {name: calibration[name] for name in motors}
    save_calibration(dest, ordered)
    return ordered


# ----------------------------------------------------------------------------------------------------------- servos
def read_servo_calibration(bus: FeetechBus, motors: Mapping[str, int]) -> Calibration:
    """The calibration stored in the servos' EEPROM (one READ per servo; drive_mode is 0 as in LeRobot)."""
    out: Calibration = {}
    for name, servo_id in motors.items():
        v = bus.read_registers(servo_id, CALIBRATION_REGISTERS)
        out[name] = MotorCalibration(servo_id, 0, v["Homing_Offset"], v["Min_Position_Limit"], v["Max_Position_Limit"])
    return out


def write_servo_calibration(bus: FeetechBus, calibration: Mapping[str, MotorCalibration]) -> None:
    """Write Homing_Offset, Min/Max_Position_Limit to each servo's EEPROM so they survive a power cycle: torque off
    and Lock 0 (EEPROM writes are kept only then), the three writes (LeRobot's order), Lock 1. Torque stays off."""
    for c in calibration.values():
        bus.unlock_eeprom(c.id)
        try:
            bus.write(c.id, "Homing_Offset", c.homing_offset)
            bus.write(c.id, "Min_Position_Limit", c.range_min)
            bus.write(c.id, "Max_Position_Limit", c.range_max)
        finally:
            bus.lock_eeprom(c.id)


def calibration_differences(
    expected: Mapping[str, MotorCalibration], actual: Mapping[str, MotorCalibration]
) -> list[str]:
    """What differs between a file (``expected``) and the servos (``actual``), LeRobot's ``is_calibrated`` test:
    the motor names, and per motor the homing offset and the range (drive_mode and id are not compared)."""
    out = [f"{n}: in the file but not on the arm" for n in expected if n not in actual]
    out += [f"{n}: on the arm but not in the file" for n in actual if n not in expected]
    for name, want in expected.items():
        got = actual.get(name)
        if got is None:
            continue
        for field, reg in zip(("homing_offset", "range_min", "range_max"), CALIBRATION_REGISTERS, strict=True):
            a, b = getattr(want, field), getattr(got, field)
            if a != b:
                out.append(f"{name} (id {got.id}): {reg} is {b} in the servo, {a} in the file")
    return out


# -------------------------------------------------------------------------------------------------------- procedure
class RangeSample(NamedTuple):
    min: int
    pos: int
    max: int


class Calibrator:
    """LeRobot's calibration procedure (``SOFollower.calibrate``) on a connected bus, without prompts.

    ``motors``: name -> servo id, in the arm's order. ``full_turn_motors`` (LeRobot: ``wrist_roll``) are not swept:
    their range is forced to 0..4095.

    1. ``start()``: torque off and Lock 0 on every servo (EEPROM writes persist), Operating_Mode 0 (position),
       Homing_Offset 0, Min_Position_Limit 0, Max_Position_Limit 4095 (LeRobot's ``reset_calibration``).
    2. The person puts every joint at the middle of its range; ``set_homing()``: Homing_Offset = present - 2047, so
       that the pose reads 2047 (Feetech: Present_Position = Actual - Homing_Offset).
    3. The person sweeps each joint through its whole range; ``sample_range()`` is called repeatedly (it reads every
       swept servo once and tracks min/max; it returns the live table).
    4. ``finish()``: refuses a joint that did not move (min == max), writes the homing offsets and ranges to the
       servos' EEPROM, returns the calibration (save it with ``save_calibration``).
    """

    def __init__(
        self, bus: FeetechBus, motors: Mapping[str, int], *, full_turn_motors: Iterable[str] = ("wrist_roll",)
    ):
        self.bus = bus
        self.motors = dict(motors)
        self.full_turn_motors = tuple(m for m in full_turn_motors if m in self.motors)
        self.range_motors = tuple(m for m in self.motors if m not in self.full_turn_motors)
        self.state = "new"
        self.homing_offsets: dict[str, int] = {}
        self.mins: dict[str, int] = {}
        self.maxes: dict[str, int] = {}
        self.positions: dict[str, int] = {}
        self.samples = 0

    def _require(self, *states: str, action: str) -> None:
        if self.state not in states:
            order = "start() -> set_homing() -> sample_range() ... -> finish()"
            raise CalibrationError(f"cannot {action} now (state {self.state!r}); the order is {order}")

    def _read(self, names: Iterable[str]) -> dict[str, int]:
        names = list(names)
        values = self.bus.sync_read("Present_Position", [self.motors[n] for n in names])
        return {n: values[self.motors[n]] for n in names}

    def start(self) -> None:
        for servo_id in self.motors.values():
            self.bus.unlock_eeprom(servo_id)
            self.bus.write(servo_id, "Operating_Mode", 0)
        self._reset()
        self.state = "started"

    def _reset(self) -> None:
        for servo_id in self.motors.values():
            self.bus.write(servo_id, "Homing_Offset", 0)
            self.bus.write(servo_id, "Min_Position_Limit", 0)
            self.bus.write(servo_id, "Max_Position_Limit", RESOLUTION_MAX)

    def set_homing(self) -> dict[str, int]:
        """Make the present pose read 2047 on every servo; returns the homing offsets written. May be repeated."""
        self._require("started", "homed", action="set the homing offsets")
        if self.state == "homed":
            self._reset()
        raw = self._read(self.motors)
        # raw is 0..4095, so the offset is -2047..2048; 2048 does not fit the register (sign bit 11): 2047, and the
        # pose reads 2048 instead of 2047 (LeRobot would fail to encode it)
        self.homing_offsets = {n: min(HOMING_MAX, p - HALF_TURN) for n, p in raw.items()}
        for name, offset in self.homing_offsets.items():
            self.bus.write(self.motors[name], "Homing_Offset", offset)
        self.positions = self._read(self.range_motors) if self.range_motors else {}
        self.mins = dict(self.positions)
        self.maxes = dict(self.positions)
        self.samples = 0
        self.state = "homed"
        return dict(self.homing_offsets)

    def sample_range(self) -> dict[str, RangeSample]:
        """Read the swept servos once, update min/max; returns name -> (min, pos, max)."""
        self._require("homed", action="sample the ranges")
        if self.range_motors:
            self.positions = self._read(self.range_motors)
            for name, pos in self.positions.items():
                self.mins[name] = min(self.mins[name], pos)
                self.maxes[name] = max(self.maxes[name], pos)
        self.samples += 1
        return self.table()

    def table(self) -> dict[str, RangeSample]:
        return {n: RangeSample(self.mins[n], self.positions[n], self.maxes[n]) for n in self.range_motors}

    def finish(self) -> Calibration:
        self._require("homed", action="finish")
        still = [n for n in self.range_motors if self.mins[n] == self.maxes[n]]
        if still:
            raise CalibrationError(
                f"{', '.join(still)} did not move (min = max) while the ranges were recorded: sweep "
                f"{'each of these joints' if len(still) > 1 else 'this joint'} from one end of its range to the "
                "other before finishing (nothing was written to the servos)"
            )
        calibration: Calibration = {}
        for name, servo_id in self.motors.items():
            full = name in self.full_turn_motors
            calibration[name] = MotorCalibration(
                id=servo_id,
                drive_mode=0,
                homing_offset=self.homing_offsets[name],
                range_min=0 if full else self.mins[name],
                range_max=RESOLUTION_MAX if full else self.maxes[name],
            )
        write_servo_calibration(self.bus, calibration)
        self.state = "finished"
        return calibration
