"""`onboard bench serve` runs the served devices as a user does (`onboard sim serve-bus` / `serve` in their own
processes, with and without --no-realtime) beside CPU-spinning processes, and reports every round trip it timed."""

from __future__ import annotations

import json

from onboard.cli import main


def test_bench_serve_reports_each_target_and_priority(tmp_path, capsys):
    out = tmp_path / "serve.json"
    rc = main(
        ["bench", "serve", "--seconds", "0.5", "--load", "1", "--targets", "serve-bus", "serve", "--json", str(out)]
    )
    assert rc == 0
    text = capsys.readouterr().out
    report = json.loads(out.read_text())
    rows = {(r["target"], r["priority"]): r for r in report["rows"]}
    assert set(rows) == {(t, p) for t in ("serve-bus", "serve") for p in ("normal", "realtime")}
    for (target, _priority), r in rows.items():
        assert r["n"] + r["no_reply"] >= 10  # ~50 round trips at 10 ms in 0.5 s, answered or not
        assert r["n"] > 0 and 0 < r["p50_ms"] <= r["p99_ms"] <= r["max_ms"]
        assert f"onboard sim {target}" in text
    assert report["config"]["load"] == 1
