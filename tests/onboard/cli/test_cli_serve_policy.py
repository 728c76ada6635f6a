"""`onboard serve-policy` as a real process and the `--policy.url` client in `onboard eval`, `run` and `demo`: the
served bundle gives the local bundle's episodes on the same seeds; a server killed mid-run is a typed stop with one
line; a wrong token, a dead address and an exposed host without a token are one-line refusals."""

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import urllib.request

import pytest

from onboard.cli import main
from tests.conftest import require

require("websockets", "remote")
require("msgpack", "remote")
require("onnxruntime", "onnx")
require("mujoco", "sim")

ONBOARD = [sys.executable, "-m", "onboard"]


class Lines:
    """The lines of a process's stream, read on a thread (``next(limit)`` waits for one, generously bounded)."""

    def __init__(self, stream):
        self.q: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream):
        for line in stream:
            self.q.put(line)
        self.q.put(None)

    def until(self, text: str, limit_s: float = 120.0) -> str:
        while True:
            line = self.q.get(timeout=limit_s)
            if line is None:
                raise AssertionError(f"the stream ended before {text!r}: {''.join(self.seen)}")
            self.seen.append(line)
            if text in line:
                return line


def _env(tmp_path, **extra):
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONUNBUFFERED": "1", **extra}
    env.pop("ONBOARD_POLICY_TOKEN", None)
    env.update(extra)
    return env


@pytest.fixture
def served(tmp_path):
    """`onboard serve-policy` of the bundled model on a free port, token "t0ken": (url, process)."""
    proc = subprocess.Popen(
        [*ONBOARD, "serve-policy", "--port", "0", "--token", "t0ken"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(tmp_path),
    )
    try:
        line = Lines(proc.stdout).until("serving onnx policy")
        url = line.split(" on ", 1)[1].split()[0].rstrip(";")
        assert url.startswith("ws://127.0.0.1:")
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(30)


def _episodes(out):
    return [
        (e["seed"], e["success"], e["time_to_success"], e["ticks"])
        for e in json.loads((out / "report.json").read_text())["episodes"]
    ]


@pytest.mark.parametrize("task", ["touch", "pick"])
def test_eval_through_the_served_bundle_matches_the_local_bundle(served, tmp_path, monkeypatch, task):
    url, _ = served
    monkeypatch.setenv("ONBOARD_POLICY_TOKEN", "t0ken")
    local, remote = tmp_path / "local", tmp_path / "remote"
    assert main(["eval", f"--task={task}", "--n=2", f"--output_dir={local}"]) == 0
    assert main(["eval", f"--policy.url={url}", f"--task={task}", "--n=2", f"--output_dir={remote}"]) == 0
    want = _episodes(local)
    assert [seed for seed, *_ in want] == [100_000, 100_001]
    assert _episodes(remote) == want  # same successes, same times, same ticks: the same chunks went over the wire
    report = json.loads((remote / "report.json").read_text())
    assert report["config"]["policy_type"] == "remote" and f"--policy.path={url}" in report["command"]


def test_healthz_of_the_served_process(served):
    url, _ = served
    with urllib.request.urlopen(url.replace("ws://", "http://") + "/healthz", timeout=30) as reply:
        assert reply.status == 200 and reply.read() == b"ok\n"


def test_server_killed_mid_run_holds_then_stops_with_a_typed_error(served, tmp_path):
    """`onboard run` on the simulated arm with the served policy; the server is killed after the first status line:
    the arm holds, the run stops on repeated policy failures (exit 1), and says the server was lost."""
    url, server = served
    summary = tmp_path / "summary.json"
    run = subprocess.Popen(
        [
            *ONBOARD,
            "run",
            "--robot.port=sim",
            "--robot.id=sim_arm",
            f"--robot.calibration_dir={tmp_path / 'cal'}",
            f"--policy.url={url}",
            "--duration_s=600",
            f"--summary_json={summary}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(tmp_path, ONBOARD_POLICY_TOKEN="t0ken"),
    )
    try:
        Lines(run.stderr).until("t=1.0s")  # the first status line: chunks are arriving
        server.send_signal(signal.SIGKILL)
        server.wait(30)
        out, _ = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait(30)
    assert run.returncode == 1, out
    assert "run ended: the policy failed repeatedly" in out
    assert "RemotePolicyError" in out and f"lost the policy server at {url}" in out
    s = json.loads(summary.read_text())
    assert s["stopped_by"] == "policy" and s["chunks"] >= 1 and s["failures"] >= 10
    assert s["elapsed_s"] < 600  # stopped long before the set duration


def test_wrong_token_and_dead_server_are_one_line_errors(served, tmp_path):
    url, server = served
    argv = [*ONBOARD, "eval", f"--policy.url={url}", "--task=touch", "--n=1", f"--output_dir={tmp_path / 'e'}"]
    wrong = subprocess.run(argv, capture_output=True, text=True, env=_env(tmp_path, ONBOARD_POLICY_TOKEN="nope"))
    assert wrong.returncode == 2, wrong.stderr
    assert wrong.stderr.strip().splitlines() == [
        f"error: the policy server at {url} refused the connection: wrong or missing token (set ONBOARD_POLICY_TOKEN "
        "to the server's --token)"
    ]
    server.terminate()
    server.wait(30)
    for cmd in (argv, [*ONBOARD, "run", "--robot.port=sim", "--robot.id=a", f"--policy.url={url}"]):
        dead = subprocess.run(cmd, capture_output=True, text=True, env=_env(tmp_path, ONBOARD_POLICY_TOKEN="t0ken"))
        lines = dead.stderr.strip().splitlines()
        assert dead.returncode == 2 and len(lines) == 1, dead.stderr
        assert lines[0].startswith(f"error: cannot reach the policy server at {url}")


def test_exposed_host_needs_a_token(tmp_path):
    r = subprocess.run(
        [*ONBOARD, "serve-policy", "--host", "0.0.0.0"], capture_output=True, text=True, env=_env(tmp_path)
    )
    assert r.returncode == 2 and "exposes the policy server to the network" in r.stderr and "--token" in r.stderr


def test_run_takes_a_folder_or_an_address_not_both(tmp_path):
    r = subprocess.run(
        [*ONBOARD, "run", "--robot.port=sim", "--robot.id=a", "--policy.path=x", "--policy.url=ws://127.0.0.1:1"],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
    )
    assert r.returncode == 2 and "--policy.url" in r.stderr and "one of them" in r.stderr


def test_bench_policy_reports_the_round_trip_beside_the_local_rows(served, tmp_path, monkeypatch, capsys):
    require("torch", "train")
    url, _ = served
    monkeypatch.setenv("ONBOARD_POLICY_TOKEN", "t0ken")
    out = tmp_path / "bench.json"
    argv = ["bench", "policy", "--n", "3", "--warmup", "1", "--no-lerobot", f"--policy.url={url}", "--json", str(out)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    rows = {r["backend"]: r for r in json.loads(out.read_text())["rows"]}
    assert set(rows) == {"VLA, eager torch", "VLA, onnxruntime", "served onnx over ws"}
    served_row = rows["served onnx over ws"]
    assert served_row["n"] == 3 and served_row["chunk_size"] == 20 and served_row["url"] == url
    assert 0 < served_row["server_ms_p50"] <= served_row["server_ms_p99"]
    assert served_row["chunk_ms_p50"] > 0 and served_row["observation_bytes"] == 2 * 96 * 96 * 3 + 6 * 4
    assert f"served at {url}: round trip" in text and "served onnx over ws" in text


def test_demo_through_the_served_bundle_matches_the_local_demo(served, tmp_path, monkeypatch, capsys):
    url, _ = served
    monkeypatch.setenv("ONBOARD_POLICY_TOKEN", "t0ken")
    outcomes = []
    for extra in ([], [f"--policy.url={url}"]):
        assert main(["demo", "--policy-only", "--seed=0", f"--out={tmp_path / 'demo.mp4'}", *extra]) == 0
        text = capsys.readouterr().out
        outcomes.append(next(line for line in text.splitlines() if line.startswith("success:")))
    assert outcomes[0].startswith("success: yes, at ") and outcomes[1] == outcomes[0]
    assert f"policy: {url} (served, 96x96 cameras)" in text and "round trip of each call to the server" in text
