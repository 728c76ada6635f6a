"""Smoke test of `onboard bench eval` (onboard/bench/eval.py): each worker count runs the same evaluation, the rates
and the speed-up are reported, and the runs are checked to agree. Never asserts speed."""

import json

from onboard.bench.eval import EvalBenchConfig, main
from tests.conftest import require


def test_bench_eval_runs_each_worker_count_and_checks_the_reports_agree(tmp_path, capsys):
    require("mujoco", "sim")
    out = tmp_path / "bench.json"
    cfg = EvalBenchConfig(workers=(1, 2), n=2, backend="processes", policy_type="expert", task="touch", json=str(out))
    assert main(cfg) == 0
    text = capsys.readouterr().out
    assert "command: onboard bench eval" in text
    assert "1 worker(s):" in text and "2 worker(s):" in text
    assert "same report for every worker count (records without wall times): yes" in text
    data = json.loads(out.read_text())
    runs = {r["workers"]: r for r in data["runs"]}
    assert set(runs) == {1, 2}
    for r in runs.values():
        assert r["wall_s"] > 0 and r["overall_eps_per_s"] == 2 / r["wall_s"]
        assert r["episodes_eps_per_s"] > 0 and r["startup_s"] >= 0
        assert r["successes"] == runs[1]["successes"]
    assert data["config"]["backend"] == "processes" and data["ray_start_s"] is None
