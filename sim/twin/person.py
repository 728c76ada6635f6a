"""A scripted person for ``onboard calibrate`` on a simulated arm: answers the prompts and moves the joints.

It implements robot's calibration ``Console`` (``ask`` / ``enter_pressed`` / ``show``): at "move to the middle" it
holds every joint at the middle of its range; during the range recording it sweeps each joint (wrist_roll excepted,
as LeRobot asks) through its whole range, one step per sample, then presses ENTER. The simulated world advances on
its own clock between samples (``sleep``), so the flow is the same one a person runs on a real arm.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator

from sim.twin.so101 import FULL_TURN_JOINTS, SimulatedSO101
from sim.twin.world import JOINT_NAMES

log = logging.getLogger(__name__)


class SimulatedPerson:
    """``out``: where what a person would see goes (the prompts, answered; the flow's messages; the final range
    table): the command passes ``print``; by default it is logged (INFO)."""

    def __init__(
        self,
        arm: SimulatedSO101,
        *,
        use_existing_file: bool = False,
        out: Callable[[str], object] | None = None,
        step_deg: float = 3.0,
    ):
        self.arm = arm
        self.use_existing_file = use_existing_file
        self.out = out if out is not None else _log
        self.step_deg = step_deg
        self._sweep: Iterator[float] | None = None
        self._last_live = ""
        self.prompts: list[str] = []

    # Console -----------------------------------------------------------------------------------------------------
    def ask(self, prompt: str) -> str:
        self.prompts.append(prompt)
        self.out(prompt.strip() + "  [simulated person]")
        if "use provided calibration" in prompt:
            return "" if self.use_existing_file else "c"
        if "middle of its range" in prompt:
            self.arm.hand.to_middle()
            self.sleep(0.2)
        return ""

    def enter_pressed(self) -> bool:
        if self._sweep is None:
            joints = [j for j in JOINT_NAMES if j not in FULL_TURN_JOINTS]
            self._sweep = itertools.chain.from_iterable(self.arm.hand.sweep(j, step_deg=self.step_deg) for j in joints)
        try:
            next(self._sweep)
        except StopIteration:
            self._sweep = None
            self.out(self._last_live)
            self.arm.hand.release()
            return True
        return False

    def show(self, text: str, *, live: bool = False) -> None:
        if live:
            self._last_live = text
        else:
            self.out(text)

    # the flow's sleep between samples: simulated time passes -------------------------------------------------------
    def sleep(self, seconds: float) -> None:
        self.arm.clock.sleep_until(self.arm.clock.now() + seconds)


def _log(text: str) -> None:
    log.info("%s", text)
