"""What an SO-100/SO-101 follower or leader is (``MotorSpec``, ``ArmSpec``, ``ARM_SPECS``) and how one is configured
(``ArmConfig``: type, port, id, calibration file, ``max_relative_target``), and the action format its keys define
(``parse_action``). Plain data, validated on construction; ``robot.arm.Arm`` is the driver that takes an ``ArmConfig``.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from robot.calibration import ROBOTS, TELEOPERATORS, default_calibration_dir
from robot.errors import ArmConfigError
from robot.units import NormMode


# ------------------------------------------------------------------------------------------------------------ specs
@dataclass(frozen=True)
class MotorSpec:
    name: str
    id: int
    model: str = "sts3215"
    norm_mode: NormMode = NormMode.DEGREES  # with use_degrees=True; DEGREES becomes RANGE_M100_100 without

    def mode(self, use_degrees: bool) -> NormMode:
        if self.norm_mode is NormMode.DEGREES and not use_degrees:
            return NormMode.RANGE_M100_100
        return self.norm_mode


@dataclass(frozen=True)
class ArmSpec:
    """What an arm type is. ``name`` is LeRobot's ``robot.name`` / ``teleop.name``: the calibration directory and the
    dataset ``robot_type``; ``category`` is LeRobot's calibration subdirectory (``robots`` / ``teleoperators``)."""

    type: str
    name: str
    role: Literal["follower", "leader"]
    motors: tuple[MotorSpec, ...]
    full_turn_motors: tuple[str, ...] = ("wrist_roll",)

    @property
    def category(self) -> str:
        return ROBOTS if self.role == "follower" else TELEOPERATORS

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.motors)

    @property
    def ids(self) -> dict[str, int]:
        return {m.name: m.id for m in self.motors}

    @property
    def keys(self) -> tuple[str, ...]:
        """LeRobot's observation/action keys, in vector order: ``shoulder_pan.pos`` ... ``gripper.pos``."""
        return tuple(f"{m.name}.pos" for m in self.motors)

    @property
    def features(self) -> dict[str, type]:
        """LeRobot's ``observation_features`` (motors only) / ``action_features``."""
        return dict.fromkeys(self.keys, float)


def _so_motors() -> tuple[MotorSpec, ...]:
    body = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll")
    return (
        *(MotorSpec(n, i) for i, n in enumerate(body, start=1)),
        MotorSpec("gripper", 6, norm_mode=NormMode.RANGE_0_100),
    )


ARM_SPECS: dict[str, ArmSpec] = {
    spec.type: spec
    for spec in (
        ArmSpec("so101_follower", "so_follower", "follower", _so_motors()),
        ArmSpec("so100_follower", "so_follower", "follower", _so_motors()),
        ArmSpec("so101_leader", "so_leader", "leader", _so_motors()),
        ArmSpec("so100_leader", "so_leader", "leader", _so_motors()),
    )
}


def arm_spec(type_: str) -> ArmSpec:
    try:
        return ARM_SPECS[type_]
    except KeyError:
        close = difflib.get_close_matches(str(type_), ARM_SPECS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ArmConfigError(f"unknown arm type {type_!r}; known types: {', '.join(ARM_SPECS)}.{hint}") from None


# ----------------------------------------------------------------------------------------------------------- config
def check_arm_id(id_: object, type_: str) -> None:
    flag = "--robot" if arm_spec(type_).role == "follower" else "--teleop"
    if not isinstance(id_, str) or not id_.strip():
        raise ArmConfigError(
            f"{type_} needs an id ({flag}.id=my_arm): it names the calibration file, so each physical arm keeps "
            "its own calibration"
        )
    if any(c in id_ for c in "/\\") or id_ in (".", ".."):
        raise ArmConfigError(f"arm id {id_!r} cannot contain '/' or '\\' or be '.' or '..': it is a file name")


def calibration_file(type_: str, id_: str, calibration_dir: Path | str | None = None) -> Path:
    """Where the calibration of arm ``id_`` of type ``type_`` lives: ``calibration_dir/<id>.json``, by default in
    LeRobot 0.4.4's place (``.../calibration/robots/so_follower/<id>.json``, ``.../teleoperators/so_leader/...``)."""
    spec = arm_spec(type_)
    check_arm_id(id_, type_)
    base = Path(calibration_dir).expanduser() if calibration_dir else default_calibration_dir(spec.category, spec.name)
    return base / f"{id_}.json"


PORT_HELP = (
    "serial port of the servo bus: /dev/ttyACM0 (real arm), /dev/pts/N (from `onboard sim serve-bus`), "
    "a pyserial URL such as simbus://?ids=1-6&faults=corrupt:0.02 (in-process emulator), or 'sim' (= simbus://?ids=1-6)"
)
_TYPES = "; ".join(
    ", ".join(t for t, s in ARM_SPECS.items() if s.role == role) + f" ({role}s)" for role in ("follower", "leader")
)


@dataclass(frozen=True)
class ArmConfig:
    """One arm: its type (a key of ``ARM_SPECS``), its bus port, its id (names its calibration file).

    ``max_relative_target``: for followers, the largest step (in joint units) a goal may be from the present position,
    one number for all joints or a dict keyed by motor name (without ``.pos``); None = no limit.

    The commands take an arm's options from here (``--robot.*`` for a follower, ``--teleop.*`` for a leader; the
    metadata is their help, ``onboard.cli.options``); the last three fields are not options.
    """

    type: str = field(metadata={"help": f"the arm's type: {_TYPES}", "metavar": "TYPE"})
    port: str = field(metadata={"help": PORT_HELP, "metavar": "PORT"})
    id: str = field(metadata={"help": "the arm's name: it names its calibration file (<id>.json)", "metavar": "ID"})
    calibration_dir: Path | None = field(
        default=None,
        metadata={
            "help": "where its calibration file lives (default: LeRobot's, "
            "~/.cache/huggingface/lerobot/calibration/robots|teleoperators/...)",
            "metavar": "DIR",
        },
    )
    use_degrees: bool = field(default=True, metadata={"cli": False})
    max_relative_target: float | Mapping[str, float] | None = field(default=None, metadata={"cli": False})
    disable_torque_on_disconnect: bool = field(default=True, metadata={"cli": False})
    spec: ArmSpec = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        spec = arm_spec(self.type)
        object.__setattr__(self, "spec", spec)
        flag = "--robot" if spec.role == "follower" else "--teleop"
        if not isinstance(self.port, str) or not self.port:
            raise ArmConfigError(
                f"{self.type} needs a port ({flag}.port=/dev/ttyACM0 on Linux, /dev/tty.usbmodem... on macOS; "
                "`onboard bus scan --port ...` checks one; `sim` for the simulated arm)"
            )
        check_arm_id(self.id, self.type)
        if self.calibration_dir is not None:
            object.__setattr__(self, "calibration_dir", Path(self.calibration_dir).expanduser())
        if not isinstance(self.use_degrees, bool):
            raise ArmConfigError(f"use_degrees must be True or False, got {self.use_degrees!r}")
        object.__setattr__(self, "max_relative_target", self._check_max_relative_target(spec))

    def _check_max_relative_target(self, spec: ArmSpec) -> float | dict[str, float] | None:
        mrt = self.max_relative_target
        if mrt is None:
            return None
        units = "degrees" if self.use_degrees else "units of -100..100"

        def positive(name: str, v: object) -> float:
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
                raise ArmConfigError(
                    f"max_relative_target{name} must be a positive number ({units} per step), got {v!r}"
                )
            return float(v)

        if isinstance(mrt, Mapping):
            keys = [k.removesuffix(".pos") for k in mrt]
            if sorted(keys) != sorted(spec.names):
                missing = [n for n in spec.names if n not in keys]
                unknown = [k for k in keys if k not in spec.names]
                raise ArmConfigError(
                    "max_relative_target as a dict needs exactly one entry per motor "
                    f"({', '.join(spec.names)})"
                    + (f"; missing {', '.join(missing)}" if missing else "")
                    + (f"; unknown {', '.join(unknown)}" if unknown else "")
                    + "; or give one number for every joint"
                )
            return {k.removesuffix(".pos"): positive(f"[{k!r}]", v) for k, v in mrt.items()}
        return positive("", mrt)

    @property
    def calibration_path(self) -> Path:
        return calibration_file(self.type, self.id, self.calibration_dir)

    def cli_flags(self) -> str:
        """The `onboard` flags naming this arm (for messages)."""
        p = "--robot" if self.spec.role == "follower" else "--teleop"
        flags = f"{p}.type={self.type} {p}.port={self.port} {p}.id={self.id}"
        if self.calibration_dir is not None:
            flags += f" {p}.calibration_dir={self.calibration_dir}"
        return flags


# ----------------------------------------------------------------------------------------------------------- action
def parse_action(
    action: Mapping[str, float] | np.ndarray, names: Sequence[str], keys: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    """An action (a dict of ``<joint>.pos`` goals, a subset allowed, other keys ignored; or an array in ``names``
    order) -> (joint indices, float64 goals). Raises ValueError for unknown joints, a wrong shape or non-finite goals:
    nothing may be sent then."""
    if isinstance(action, Mapping):
        idx, values = [], []
        for key, value in action.items():
            if not isinstance(key, str) or not key.endswith(".pos"):
                continue
            name = key.removesuffix(".pos")
            if name not in names:
                raise ValueError(f"unknown joint {key!r} in the action; this arm has {', '.join(keys)}")
            idx.append(list(names).index(name))
            values.append(float(value))
        if not idx:
            raise ValueError(f"the action has no joint goals; expected keys {', '.join(keys)}")
        goal = np.asarray(values, dtype=np.float64)
        order = np.asarray(idx)
    else:
        goal = np.asarray(action, dtype=np.float64).reshape(-1)
        if goal.shape != (len(names),):
            raise ValueError(
                f"an action array must have shape ({len(names)},) in the order {', '.join(keys)}; "
                f"got shape {np.shape(action)}"
            )
        order = np.arange(len(names))
    if not np.all(np.isfinite(goal)):
        bad = [keys[i] for i, v in zip(order, goal, strict=True) if not math.isfinite(v)]
        raise ValueError(f"non-finite goal for {', '.join(bad)}: nothing was sent")
    return order, goal
