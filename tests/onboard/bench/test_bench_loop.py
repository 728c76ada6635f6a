"""Smoke test of `onboard bench loop` (onboard/bench/loop.py): both arm placements, both rates, the report's structure.
Never asserts speed."""

import json
import time

import numpy as np

from onboard.bench.loop import STAGES, StandInCamera
from onboard.cli import main


def test_bench_loop_reports_every_run(tmp_path, capsys):
    out = tmp_path / "loop.json"
    assert main(["bench", "loop", "--seconds", "0.3", "--rates", "30", "100", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "command: onboard bench loop --seconds 0.3 --rates 30 100 --arm both" in text
    assert "lateness ms p50/p99/max" in text and "load average" in text and "stand-in cameras" in text

    data = json.loads(out.read_text())
    assert data["command"].startswith("onboard bench loop")
    assert {"nproc", "loadavg", "versions"} <= set(data["machine"])
    assert [(r["arm"], r["stats"]["rate_hz"]) for r in data["runs"]] == [
        ("process", 30.0),
        ("process", 100.0),
        ("thread", 30.0),
        ("thread", 100.0),
    ]
    for r in data["runs"]:
        s = r["stats"]
        assert s["ticks"] >= 1 and s["ticks"] + s["skipped"] == round(0.3 * s["rate_hz"])
        assert set(STAGES) <= set(s["stages_s"])
        assert s["stages_s"]["bus_read"]["n"] == s["ticks"]
        assert {"p50", "p99", "max"} <= set(s["lateness_s"])
        assert s["errors"] == {"bus_read": 0, "bus_write": 0}


def test_stand_in_camera_hands_over_new_frames():
    cam = StandInCamera("front", fps=100.0)
    cam.connect()
    try:
        first = cam.read_latest()
        assert first.rgb.shape == (96, 96, 3) and first.rgb.dtype == np.uint8
        # wait for the capture thread's next frame (as long as a loaded machine needs), never a fixed sleep
        deadline = time.monotonic() + 30.0
        while (newer := cam.read_latest()).index == first.index:
            assert time.monotonic() < deadline, "the stand-in camera published no new frame in 30 s"
            time.sleep(0.001)
        assert newer.index > first.index and newer.t_capture > first.t_capture
        assert newer.rgb is not first.rgb  # a new array handed over, the old frame left as it was
        # frame k is the test image rolled k pixels: the content is the frame's, not a copy of the first
        np.testing.assert_array_equal(newer.rgb, np.roll(first.rgb, newer.index - first.index, axis=1))
        assert cam.frames >= newer.index + 1
    finally:
        cam.disconnect()
