"""Joint units: raw STS3215 encoder steps <-> LeRobot 0.4.4's normalised units, exactly.

LeRobot normalises only ``Present_Position`` and ``Goal_Position`` (``lerobot/motors/motors_bus.py``
``_normalize``/``_unnormalize``), per motor, from the calibrated range ``range_min..range_max`` (raw steps, after the
homing offset) and ``max_res = 4095`` (STS3215 resolution - 1):

- ``DEGREES`` (SO arms' joints, ``use_degrees=True``, the 0.4.4 default): ``(raw - mid) * 360 / max_res`` with
  ``mid = (min + max) / 2``; no clamping, drive_mode ignored. Inverse ``int(x * max_res / 360 + mid)``.
- ``RANGE_M100_100`` (joints with ``use_degrees=False``, LeRobot <= 0.4.3 data): raw clamped to the range, then
  ``(raw - min) / (max - min) * 200 - 100`` (negated when drive_mode is 1). Inverse: negate if drive_mode, clamp to
  [-100, 100], ``int((x + 100) / 200 * (max - min) + min)``.
- ``RANGE_0_100`` (the gripper): clamped, ``(raw - min) / (max - min) * 100`` (``100 - x`` when drive_mode is 1).
  Inverse: ``100 - x`` if drive_mode, clamp to [0, 100], ``int(x / 100 * (max - min) + min)``.

``int()`` truncates toward zero. The arithmetic below performs the same IEEE operations in the same order as LeRobot,
so the numbers are bit-identical (tests/robot/test_units.py checks this against LeRobot's own code). Everything works
on scalars and on numpy arrays (broadcasting); ``JointUnits`` applies a per-joint mode to a whole joint vector.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

MAX_RES = 4095  # STS3215: 4096 steps per turn, LeRobot's max_res = resolution - 1


class NormMode(StrEnum):
    """LeRobot's ``MotorNormMode`` (same values)."""

    RANGE_0_100 = "range_0_100"
    RANGE_M100_100 = "range_m100_100"
    DEGREES = "degrees"


def _check_range(range_min, range_max) -> None:
    if np.any(np.asarray(range_max) == np.asarray(range_min)):
        raise ValueError(f"invalid calibration range {range_min}..{range_max}: min and max are equal")


def normalize(raw, range_min, range_max, mode: NormMode | str, drive_mode=0, max_res: int = MAX_RES):
    """Raw steps -> units (float64; a scalar for scalar inputs). See the module docstring for the formulas."""
    mode = NormMode(mode)
    _check_range(range_min, range_max)
    val = np.asarray(raw, dtype=np.int64)
    mn = np.asarray(range_min, dtype=np.int64)
    mx = np.asarray(range_max, dtype=np.int64)
    if mode is NormMode.DEGREES:
        mid = (mn + mx) / 2
        out = (val - mid) * 360 / max_res
    else:
        bounded = np.minimum(mx, np.maximum(mn, val))
        flip = np.asarray(drive_mode).astype(bool)
        if mode is NormMode.RANGE_M100_100:
            norm = ((bounded - mn) / (mx - mn)) * 200 - 100
            out = np.where(flip, -norm, norm)
        else:
            norm = ((bounded - mn) / (mx - mn)) * 100
            out = np.where(flip, 100 - norm, norm)
    out = np.asarray(out, dtype=np.float64)
    return float(out) if out.ndim == 0 else out


def unnormalize(value, range_min, range_max, mode: NormMode | str, drive_mode=0, max_res: int = MAX_RES):
    """Units -> raw steps (int64, truncated toward zero like ``int()``; an int for scalar inputs).

    Raises ``ValueError`` on NaN or infinite values (LeRobot would send garbage or crash)."""
    mode = NormMode(mode)
    _check_range(range_min, range_max)
    val = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(val)):
        raise ValueError(f"cannot convert non-finite joint values to servo steps: {value!r}")
    mn = np.asarray(range_min, dtype=np.int64)
    mx = np.asarray(range_max, dtype=np.int64)
    if mode is NormMode.DEGREES:
        mid = (mn + mx) / 2
        out = (val * max_res / 360) + mid
    else:
        flip = np.asarray(drive_mode).astype(bool)
        if mode is NormMode.RANGE_M100_100:
            val = np.where(flip, -val, val)
            bounded = np.minimum(100.0, np.maximum(-100.0, val))
            out = ((bounded + 100) / 200) * (mx - mn) + mn
        else:
            val = np.where(flip, 100 - val, val)
            bounded = np.minimum(100.0, np.maximum(0.0, val))
            out = (bounded / 100) * (mx - mn) + mn
    out = np.trunc(np.asarray(out, dtype=np.float64)).astype(np.int64)
    return int(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class JointUnits:
    """Per-joint conversion for a whole joint vector (the names order), from a calibration.

    ``modes[i]``, ``range_min[i]``, ``range_max[i]``, ``drive_mode[i]`` describe joint i.
    """

    modes: tuple[NormMode, ...]
    range_min: np.ndarray  # int64[n]
    range_max: np.ndarray  # int64[n]
    drive_mode: np.ndarray  # int64[n]
    max_res: int = MAX_RES

    @classmethod
    def build(
        cls,
        modes: Sequence[NormMode | str],
        range_min: Sequence[int],
        range_max: Sequence[int],
        drive_mode: Sequence[int] | None = None,
        max_res: int = MAX_RES,
    ) -> JointUnits:
        n = len(modes)
        mn = np.asarray(range_min, dtype=np.int64).reshape(n)
        mx = np.asarray(range_max, dtype=np.int64).reshape(n)
        dm = np.zeros(n, np.int64) if drive_mode is None else np.asarray(drive_mode, dtype=np.int64).reshape(n)
        _check_range(mn, mx)
        return cls(tuple(NormMode(m) for m in modes), mn, mx, dm, max_res)

    def __len__(self) -> int:
        return len(self.modes)

    def _masks(self):
        modes = np.array([m.value for m in self.modes])
        for mode in NormMode:
            mask = modes == mode.value
            if mask.any():
                yield mode, mask

    def to_units(self, raw) -> np.ndarray:
        """Raw steps (n,) or (..., n) -> units, float64 of the same shape."""
        raw = np.asarray(raw, dtype=np.int64)
        out = np.empty(raw.shape, dtype=np.float64)
        for mode, m in self._masks():
            out[..., m] = normalize(
                raw[..., m], self.range_min[m], self.range_max[m], mode, self.drive_mode[m], self.max_res
            )
        return out

    def to_raw(self, units) -> np.ndarray:
        """Units (n,) or (..., n) -> raw steps, int64 (not clipped to the range in DEGREES mode, like LeRobot)."""
        units = np.asarray(units, dtype=np.float64)
        out = np.empty(units.shape, dtype=np.int64)
        for mode, m in self._masks():
            out[..., m] = unnormalize(
                units[..., m], self.range_min[m], self.range_max[m], mode, self.drive_mode[m], self.max_res
            )
        return out

    def limits(self) -> tuple[np.ndarray, np.ndarray]:
        """(low, high) units of the calibrated range per joint (low <= high, also with drive_mode 1)."""
        a = self.to_units(self.range_min)
        b = self.to_units(self.range_max)
        return np.minimum(a, b), np.maximum(a, b)
