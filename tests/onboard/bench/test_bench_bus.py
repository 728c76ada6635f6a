"""Smoke test of `onboard bench bus` (onboard/bench/bus.py): every row is measured and reported. Never asserts speed."""

import importlib.util
import json

import sim  # noqa: F401  (registers simbus://)
from onboard.bench import bus as bench_bus
from onboard.bench.bus import LEROBOT, ONBOARD, SDK, main
from onboard.bench.config import BusBenchConfig


def test_bench_bus_reports_every_row(tmp_path, capsys, monkeypatch):
    # the emulator ahead of everything else, so that a loaded machine cannot time a transaction out here
    monkeypatch.setattr(bench_bus, "EMULATOR_BOOST", True)
    out = tmp_path / "bench.json"
    assert main(BusBenchConfig(n=30, json=str(out))) == 0
    table = capsys.readouterr().out
    assert "command: onboard bench bus --n 30" in table and "median us" in table

    data = json.loads(out.read_text())
    assert {"n", "warmup", "command", "machine", "wire_limit_us", "rows", "skipped"} <= set(data)
    assert data["n"] == 30
    assert data["wire_limit_us"] == {"sync_read": 620.0, "sync_write": 260.0}
    assert {"nproc", "python", "versions"} <= set(data["machine"])

    drivers = [ONBOARD]
    for driver, module in ((LEROBOT, "lerobot"), (SDK, "scservo_sdk")):
        if importlib.util.find_spec(module) is not None:
            drivers.append(driver)
        else:
            assert any(s["driver"] == driver for s in data["skipped"])
            assert f"skipped: {driver}" in table
    rows = {(r["driver"], r["transport"], r["timing"], r["op"]): r for r in data["rows"]}
    expected = {
        (d, t, timing, op)
        for d in drivers
        for t in (["simbus:// in-process"] if d == ONBOARD else []) + ["pty (separate process)"]
        for timing in ("instant", "wire")
        for op in ("sync_read", "sync_write")
    }
    assert set(rows) == expected, data["skipped"]
    for key, r in rows.items():
        assert r["n"] == 30 and r["errors"] == 0, key
        assert r["median_us"] > 0 and r["p99_us"] >= r["median_us"] and r["cpu_us_per_op"] > 0, key
        if r["timing"] == "wire":
            assert r["wire_limit_us"] in (620.0, 260.0) and r["ratio_to_wire"] > 0, key
        else:
            assert r["wire_limit_us"] is None and r["ratio_to_wire"] is None, key
        if r["driver"] != ONBOARD:
            assert r["vs_onboard"] > 0, key
        assert r["driver"] in table
