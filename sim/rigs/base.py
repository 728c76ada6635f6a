"""What the simulated rigs share: ``SimRig``, a ``robot.rig.Rig`` around the follower twin (declared, typed), the
cameras and horn offsets of the simulated arms, and ``install_calibration_file``, which writes a calibration file into
a simulated arm's servos as the servos of a calibrated real arm keep it in their EEPROM.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from robot.calibration import load_calibration, validate_calibration
from robot.errors import CalibrationFileError, RobotError
from robot.rig import Rig
from sim.twin.so101 import SimulatedSO101

CAMERAS = ("front", "wrist")
ARM_SEED = 0  # the horn offsets `onboard calibrate --robot.port=sim` calibrates


class SimRigError(RobotError, ValueError):
    """A simulated rig asked for what the simulation does not have (an unknown task or colour, a bad option): the
    command cannot run as asked (exit code 2)."""


@dataclass(kw_only=True)
class SimRig(Rig):
    """A rig whose follower is the twin: ``sim`` (its world, servos and joint angles, for tests and tools)."""

    sim: SimulatedSO101


def install_calibration_file(sim_arm: SimulatedSO101, path: str | Path | None) -> bool:
    """Write the calibration in ``path`` into ``sim_arm``'s servos; False (nothing written) when there is no file.
    The file gets the checks a real port and `onboard calibration import` apply (``robot.calibration``'s structure
    and ``validate_calibration`` against the arm's motors): a ``CalibrationFileError`` naming the file otherwise."""
    if path is None or not Path(path).exists():
        return False
    if not Path(path).is_file():
        raise CalibrationFileError(f"{path} is a folder, not a calibration file: pass the .json file", path)
    cal = load_calibration(path)
    try:
        validate_calibration(cal, sim_arm.ids, str(path))
    except CalibrationFileError as exc:
        raise CalibrationFileError(str(exc), path, exc.problems) from None
    sim_arm.install_calibration(
        {
            name: {"homing_offset": m.homing_offset, "range_min": m.range_min, "range_max": m.range_max}
            for name, m in cal.items()
        }
    )
    return True
