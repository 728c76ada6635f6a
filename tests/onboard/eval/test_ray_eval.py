"""`onboard eval --backend=ray`: episodes on Ray actors (a real local Ray, 2 CPUs) give the serial run's report for the
same seeds, videos included; an actor's failure names the episode; the options are checked before anything starts."""

import copy
import json
import signal
import sys

import pytest

from onboard.cli import main
from onboard.eval.config import EvalConfig, specs_for
from onboard.eval.factories import make_runner, policy_and_size
from onboard.eval.workers import EvalWorkerError
from tests.conftest import require

WALL = ("wall_s", "runner_stats")  # wall times (the runner's stats hold infer wall times)


def _report(out):
    report = json.loads((out / "report.json").read_text())
    return report, [{k: v for k, v in e.items() if k not in WALL} for e in report["episodes"]]


@pytest.mark.slow
def test_ray_backend_gives_the_serial_report(tmp_path, capsys, monkeypatch):
    ray = require("ray", "fleet")
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    started_here = not ray.is_initialized()
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    argv = ["eval", "--policy.type=expert", "--task=touch", "--n=3", "--seed0=100040", "--videos=1"]
    assert main([*argv, f"--output_dir={tmp_path / 'serial'}"]) == 0
    assert main([*argv, "--backend=ray", "--num_envs=2", f"--output_dir={tmp_path / 'ray'}"]) == 0
    serial, serial_eps = _report(tmp_path / "serial")
    par, par_eps = _report(tmp_path / "ray")
    assert [e["episode"] for e in par_eps] == [0, 1, 2]
    assert par_eps == serial_eps  # every record but wall times: seeds, phrasings, success, times, ticks, faults
    assert par["summary"] == serial["summary"]
    assert {k: v for k, v in par["config"].items() if k not in ("backend", "num_envs", "output_dir")} == {
        k: v for k, v in serial["config"].items() if k not in ("backend", "num_envs", "output_dir")
    }
    assert par["config"]["backend"] == "ray" and par["config"]["ray"] == {"address": None}
    assert par["command"].endswith("--num_envs=2 --backend=ray")
    # the video came back from the actor's folder, byte for byte the serial run's
    video = (tmp_path / "ray" / "videos" / "episode_000.mp4").read_bytes()
    assert video == (tmp_path / "serial" / "videos" / "episode_000.mp4").read_bytes()
    progress = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  episode ")]
    assert len(progress) == 6  # 3 per run, as episodes finish
    if started_here:
        assert not ray.is_initialized()  # the local Ray of the run was shut down with it
    # ray.init installs its own SIGTERM handler and its shutdown leaves it: ours are back after the run
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers


@pytest.mark.slow
def test_actor_failures_name_the_episode(tmp_path, monkeypatch):
    ray = require("ray", "fleet")
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    from onboard.eval.ray_backend import run_on_ray

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:
        cfg = EvalConfig(policy_type="expert", task="touch", n=3, num_envs=2, backend="ray", output_dir=str(tmp_path))
        specs = specs_for(cfg)
        specs[1] = copy.copy(specs[1])
        object.__setattr__(specs[1], "color", "purple")  # past the spec's check: the env cannot reset to this
        kwargs = {"log": lambda line: None, "load_policy": policy_and_size, "make_runner": make_runner}
        with pytest.raises(EvalWorkerError, match=r"failed in episode 1 \(seed 100001") as exc:
            run_on_ray(cfg, specs, 0.0, tmp_path, **kwargs)
        assert "purple" in str(exc.value)

        broken = EvalConfig(
            policy_type="onnx", policy_path=str(tmp_path / "no_bundle"), task="touch", n=2, backend="ray"
        )
        with pytest.raises(EvalWorkerError, match="could not build its env and policy") as exc:
            run_on_ray(broken, specs_for(broken), 0.0, tmp_path, **kwargs)
        assert "no_bundle" in str(exc.value)
        assert ray.is_initialized()  # a Ray the caller started is left running
    finally:
        ray.shutdown()
        for sig, handler in handlers.items():  # ray.init replaced this process's SIGTERM handler (as the app's
            signal.signal(sig, handler)  # ray_session puts back; here the test started Ray itself)


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--ray.address=auto"], "add --backend=ray"),
        (["--backend=serial", "--num_envs=2"], "--backend=serial runs one env"),
        (["--backend=threads"], "invalid choice"),
    ],
)
def test_backend_options_are_checked_first(tmp_path, capsys, flags, says):
    argv = ["eval", "--policy.type=expert", "--task=touch", "--n=1", f"--output_dir={tmp_path}", *flags]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse refuses an unknown choice itself
        code = exc.code
    assert code == 2
    assert says in capsys.readouterr().err
    assert not (tmp_path / "report.json").exists()


def test_without_ray_the_error_names_the_extra(monkeypatch):
    from onboard.eval.fleet import FleetError, import_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(FleetError, match=r"pip install 'onboard\[fleet\]'"):
        import_ray()
