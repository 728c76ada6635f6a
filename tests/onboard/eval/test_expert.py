"""The scripted expert's success rates (onboard/eval/expert.py)."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported

from tests.conftest import require

mujoco = require("mujoco", "sim")  # skipped without MuJoCo; a failure in CI (ONBOARD_REQUIRE_INTEROP=1)

from onboard.eval import expert as expert_eval  # noqa: E402


def test_evaluate_reports_rates_per_color():
    report = expert_eval.evaluate("touch", n=3, seed0=0)
    assert report.n == 3 and 0.0 <= report.success_rate <= 1.0
    assert sum(k for _, k in report.by_color().values()) == 3
    table = expert_eval.format_table([report])
    assert "touch" in table and "%" in table
