"""`onboard bench policy` runs end to end with a few calls and reports sane numbers (no speed asserts)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import require

require("torch", "train")  # skipped without them; a failure in CI (ONBOARD_REQUIRE_INTEROP=1)
require("onnxruntime", "onnx")

from onboard.cli import main  # noqa: E402


def _run(tmp_path, capsys, *extra: str) -> tuple[dict, str]:
    out = tmp_path / "bench.json"
    assert main(["bench", "policy", "--n", "3", "--warmup", "1", "--json", str(out), *extra]) == 0
    return json.loads(out.read_text()), capsys.readouterr().out


def _check(row: dict) -> None:
    assert row["n"] == 3 and row["chunk_size"] == 20
    for key in ("chunk_ms_p50", "chunk_ms_p99", "action_ms_p50", "action_ms_p99", "ratio_to_vla_torch_p50"):
        assert row[key] > 0, key
    assert row["chunk_ms_p99"] >= row["chunk_ms_p50"]
    assert row["action_ms_p50"] == pytest.approx(row["chunk_ms_p50"] / 20)


def test_torch_and_onnx_rows(tmp_path, capsys):
    report, text = _run(tmp_path, capsys, "--no-lerobot")
    rows = {r["backend"]: r for r in report["rows"]}
    assert set(rows) == {"VLA, eager torch", "VLA, onnxruntime"}
    for row in rows.values():
        _check(row)
    assert rows["VLA, eager torch"]["parameters"] > 0
    assert text.startswith("command: onboard bench policy --n 3")
    assert "machine:" in text and "VLA, onnxruntime" in text


def test_lerobot_act_row(tmp_path, capsys):
    require("lerobot.policies.act.modeling_act", "interop")
    report, text = _run(tmp_path, capsys)
    act = [r for r in report["rows"] if r["backend"].startswith("LeRobot")]
    assert len(act) == 1 and act[0]["call"] == "ACTPolicy.predict_action_chunk"
    _check(act[0])
    assert "LeRobot ACT takes" in text
