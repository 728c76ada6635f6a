"""robot.units: LeRobot 0.4.4's normalisation, number for number."""

from __future__ import annotations

import numpy as np
import pytest

from robot.units import JointUnits, NormMode, normalize, unnormalize
from tests.conftest import require

D, M, G = NormMode.DEGREES, NormMode.RANGE_M100_100, NormMode.RANGE_0_100


def test_documented_values():
    # lerobot-interop.md §2.4, checked there with LeRobot: range 1000..3000 (gripper 2000..3400)
    assert normalize(1000, 1000, 3000, M) == -100
    assert normalize(1000, 1000, 3000, D) == pytest.approx(-87.91, abs=0.005)
    assert normalize(1000, 2000, 3400, G) == 0
    assert normalize(2000, 1000, 3000, M) == 0 and normalize(2000, 1000, 3000, D) == 0
    assert normalize(3000, 1000, 3000, M) == 100
    assert normalize(3000, 1000, 3000, D) == pytest.approx(87.91, abs=0.005)
    assert normalize(3000, 2000, 3400, G) == pytest.approx(71.43, abs=0.005)
    assert normalize(3500, 1000, 3000, M) == 100  # clamped
    assert normalize(3500, 1000, 3000, D) == pytest.approx(131.87, abs=0.005)  # not clamped
    assert normalize(3500, 2000, 3400, G) == 100
    assert (unnormalize(0, 1000, 3000, M), unnormalize(90, 1000, 3000, D), unnormalize(50, 2000, 3400, G)) == (
        2000,
        3023,
        2700,
    )


def test_truncation_drive_mode_and_errors():
    assert unnormalize(-0.01, 1000, 3000, D) == 1999  # int() truncates toward zero: 1999.88 -> 1999
    assert unnormalize(-200, 1000, 3000, D) == int(-200 * 4095 / 360 + 2000)  # no clamp in degrees
    assert normalize(1000, 1000, 3000, M, drive_mode=1) == 100
    assert normalize(2000, 2000, 3400, G, drive_mode=1) == 100
    assert normalize(1500, 1000, 3000, D, drive_mode=1) == normalize(1500, 1000, 3000, D)  # ignored in degrees
    assert unnormalize(100, 2000, 3400, G, drive_mode=1) == 2000
    with pytest.raises(ValueError, match=r"min and max are equal"):
        normalize(5, 7, 7, D)
    with pytest.raises(ValueError, match=r"non-finite"):
        unnormalize(np.nan, 0, 10, G)
    with pytest.raises(ValueError):
        normalize(5, 0, 10, "furlongs")


def test_joint_units_vectorised_matches_scalar():
    modes = [D, D, M, D, D, G]
    mins, maxs, dms = [758, 1000, 900, 1200, 0, 2000], [3292, 3000, 3100, 2900, 4095, 3400], [0, 0, 1, 0, 0, 1]
    u = JointUnits.build(modes, mins, maxs, dms)
    raw = np.random.default_rng(0).integers(0, 4096, size=(50, 6))
    units = u.to_units(raw)
    for k in range(6):
        assert np.array_equal(units[:, k], normalize(raw[:, k], mins[k], maxs[k], modes[k], dms[k]))
    back = u.to_raw(units)
    assert back.dtype == np.int64 and back.shape == (50, 6)
    lo, hi = u.limits()
    assert np.all(lo < hi) and lo[5] == 0 and hi[5] == 100 and lo[2] == -100


def test_matches_lerobot_normalize_and_unnormalize():
    require("lerobot.motors.feetech", "interop")
    from lerobot.motors import Motor, MotorCalibration, MotorNormMode
    from lerobot.motors.feetech import FeetechMotorsBus

    # one motor per (mode, drive_mode, range) case
    cases = [
        (D, 0, 758, 3292),
        (D, 1, 1000, 3001),
        (D, 0, 0, 4095),
        (M, 0, 758, 3292),
        (M, 1, 1000, 3001),
        (G, 0, 2000, 3400),
        (G, 1, 1987, 3333),
        (M, 0, 2046, 2047),
    ]
    motors, cals = {}, {}
    for i, (mode, dm, lo, hi) in enumerate(cases, start=1):
        motors[f"m{i}"] = Motor(i, "sts3215", MotorNormMode(mode.value))
        cals[f"m{i}"] = MotorCalibration(i, dm, 0, lo, hi)
    lr = FeetechMotorsBus(port="/nonexistent", motors=motors, calibration=cals)
    raw_grid = [*range(0, 4096, 7), 4095, 758, 3292, 2025, 2047]
    value_grid = np.concatenate([np.linspace(-250, 250, 1001), [-0.01, 0.0, 0.01, 33.3, -87.91, 1e-9, 99.99]])
    for i, (mode, dm, lo, hi) in enumerate(cases, start=1):
        theirs = [lr._normalize({i: r})[i] for r in raw_grid]
        ours = normalize(np.array(raw_grid), lo, hi, mode, dm)
        assert np.array_equal(ours, np.array(theirs)), (mode, dm, lo, hi)  # bit-identical
        for r in raw_grid[:50]:
            assert normalize(r, lo, hi, mode, dm) == lr._normalize({i: r})[i]
        theirs_raw = [lr._unnormalize({i: float(v)})[i] for v in value_grid]
        assert np.array_equal(unnormalize(value_grid, lo, hi, mode, dm), np.array(theirs_raw)), (mode, dm, lo, hi)
        # float32 inputs (our action vectors) convert as LeRobot converts float(np.float32)
        v32 = value_grid.astype(np.float32)
        assert np.array_equal(unnormalize(v32, lo, hi, mode, dm), [lr._unnormalize({i: float(v)})[i] for v in v32])
