"""An SO-101 on the emulated bus: six EmulatedServos whose SimpleMotor horns sit at arbitrary positions, as on a
freshly assembled arm, reachable as ``simbus://<name>``; and a scripted person who moves the horns by hand."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pytest

import sim  # noqa: F401  (registers simbus://)
from robot.calibration import HALF_TURN, MotorCalibration, save_calibration
from sim.feetech import EmulatedServo, SimBus, SimpleMotor, register_bus, unregister_bus

NAMES = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
IDS = dict(zip(NAMES, range(1, 7), strict=True))
_counter = itertools.count()


@dataclass
class SimArm:
    """The emulated servos of one arm, and what a person knows about its horns (plant frame, steps)."""

    bus: SimBus
    name: str
    mids: dict[str, int]  # horn position of the middle pose
    spans: dict[str, tuple[int, int]]  # steps below / above the middle that each joint can travel

    @property
    def url(self) -> str:
        return f"simbus://{self.name}"

    def servo(self, name: str) -> EmulatedServo:
        return self.bus.servo(IDS[name])

    def reg(self, name: str, register: str) -> int:
        return self.servo(name).read_register(register)

    def move(self, name: str, position: float) -> None:
        self.servo(name).plant.move_to(position)

    def to_middle(self) -> None:
        for n in NAMES:
            self.move(n, self.mids[n])

    def expected_calibration(self) -> dict[str, MotorCalibration]:
        """The calibration a perfect sweep of this arm produces."""
        out = {}
        for n in NAMES:
            offset = min(2047, self.mids[n] % 4096 - HALF_TURN)
            at_mid = (self.mids[n] - offset) % 4096
            lo, hi = self.spans[n]
            full = n == "wrist_roll"
            out[n] = MotorCalibration(IDS[n], 0, offset, 0 if full else at_mid - lo, 4095 if full else at_mid + hi)
        return out

    def install_calibration(self, path, calibration: dict[str, MotorCalibration] | None = None):
        """What a completed calibration leaves: the file, and the values in every servo's EEPROM (and flash)."""
        calibration = calibration or self.expected_calibration()
        for n, c in calibration.items():
            s = self.servo(n)
            s.write_register("Homing_Offset", c.homing_offset, persist=True)
            s.write_register("Min_Position_Limit", c.range_min, persist=True)
            s.write_register("Max_Position_Limit", c.range_max, persist=True)
        save_calibration(path, calibration)
        return calibration


def make_sim_arm(seed: int = 0, mids: dict[str, int] | None = None) -> SimArm:
    rng = np.random.default_rng(seed)
    starts = {n: float(rng.uniform(0, 4096)) for n in NAMES}
    servos = [EmulatedServo(IDS[n], plant=SimpleMotor(position=starts[n])) for n in NAMES]
    mids = mids or {n: int(rng.integers(0, 4095)) for n in NAMES}
    spans = {n: (int(rng.integers(300, 1500)), int(rng.integers(300, 1500))) for n in NAMES}
    bus = SimBus(servos)
    name = f"robot-test-{seed}-{next(_counter)}"
    register_bus(name, bus)
    return SimArm(bus, name, mids, spans)


@pytest.fixture
def sim_arm() -> Iterator[SimArm]:
    arm = make_sim_arm(seed=1)
    yield arm
    unregister_bus(arm.name)


@pytest.fixture
def make_arm() -> Iterator[Callable[..., SimArm]]:
    made: list[SimArm] = []

    def make(seed: int = 0, mids: dict[str, int] | None = None) -> SimArm:
        made.append(make_sim_arm(seed, mids))
        return made[-1]

    yield make
    for a in made:
        unregister_bus(a.name)


@dataclass
class ScriptedPerson:
    """A person at the calibration prompts, moving the simulated horns by hand.

    ``answers``: replies to the prompts other than "move to the middle" (e.g. "" or "c" for the existing-file
    question). At "middle of its range" they put every joint at its middle; while the ranges are recorded, each
    ``enter_pressed`` poll moves the joints one step further through their sweep (to both ends and back), and ENTER is
    pressed once every joint has been swept. ``sweep`` may name fewer joints (a joint that never moves)."""

    arm: SimArm
    answers: list[str] = field(default_factory=list)
    steps: int = 6
    sweep: tuple[str, ...] = tuple(n for n in NAMES if n != "wrist_roll")
    prompts: list[str] = field(default_factory=list)
    shown: list[str] = field(default_factory=list)
    _plan: Iterator[None] | None = None

    def ask(self, prompt: str) -> str:
        self.prompts.append(prompt)
        if "middle of its range" in prompt:
            self.arm.to_middle()
            self._plan = self._sweep()
            return ""
        return self.answers.pop(0)

    def _sweep(self) -> Iterator[None]:
        for n in self.sweep:
            mid = self.arm.mids[n]
            lo, hi = self.arm.spans[n]
            path = [*np.linspace(mid, mid - lo, self.steps), *np.linspace(mid - lo, mid + hi, 2 * self.steps)]
            path += [*np.linspace(mid + hi, mid, self.steps)]
            for p in path:
                self.arm.move(n, round(float(p)))
                yield

    def enter_pressed(self) -> bool:
        assert self._plan is not None, "ranges recorded before the middle pose"
        return next(self._plan, "done") == "done"

    def show(self, text: str, *, live: bool = False) -> None:
        self.shown.append(text)


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, period: float = 0.01) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(period)
    return predicate()
