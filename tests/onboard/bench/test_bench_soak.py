"""`onboard bench soak`: LeRobot's unmodified lerobot-teleoperate drives the served twin (follower, `onboard sim serve
--calibrated --robot.id`) from the served leader servos (`onboard sim serve-bus`) beside a CPU-spinning process, and
the report says how it ran."""

from __future__ import annotations

import json

import pytest

from onboard.cli import main
from tests.conftest import require

pytestmark = pytest.mark.interop


def test_lerobot_teleoperate_runs_against_the_served_twin(tmp_path, capsys):
    require("lerobot.scripts.lerobot_teleoperate", "interop")
    out = tmp_path / "soak.json"
    rc = main(["bench", "soak", "--seconds", "3", "--load", "1", "--json", str(out)])
    result = json.loads(out.read_text())["result"]
    assert result["errors"] == [], result["errors"]
    assert rc == 0 and result["rc"] == 0
    assert result["loops"] >= 30  # 3 s at 30 Hz: lerobot's loop ran (about 90 loops) and printed each
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert "exit code 0" in capsys.readouterr().out


def test_served_twin_writes_its_calibration_for_lerobot(tmp_path):
    """`onboard sim serve --calibrated --robot.id=X` writes the served arm's calibration in LeRobot's format: the
    file LeRobot's SO101Follower finds calibrated (checked end to end by the soak above)."""
    import subprocess
    import sys

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "onboard",
            "sim",
            "serve",
            "--calibrated",
            "--robot.id=arm",
            "--duration",
            "0.2",
            f"--robot.calibration_dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    cal = json.loads((tmp_path / "arm.json").read_text())
    assert list(cal) == ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
    assert [c["id"] for c in cal.values()] == [1, 2, 3, 4, 5, 6]
    assert cal["wrist_roll"]["range_min"] == 0 and cal["wrist_roll"]["range_max"] == 4095
    assert all(c["range_min"] < c["range_max"] for c in cal.values())
    assert f"calibration of the served arm: {tmp_path / 'arm.json'}" in proc.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "onboard", "sim", "serve", "--robot.id=arm"], capture_output=True, text=True, timeout=60
    )
    assert bad.returncode == 2 and "add --calibrated" in bad.stderr
