"""`onboard eval --num_envs N`: episodes in worker processes give the serial run's report; worker errors surface."""

import copy
import json

import pytest

from onboard.cli import main
from onboard.eval.config import EvalConfig, specs_for
from onboard.eval.factories import make_runner, policy_and_size
from onboard.eval.workers import EvalWorkerError, run_parallel

WALL = ("wall_s", "runner_stats")  # wall times (the runner's stats hold infer wall times)


def _episodes(out):
    report = json.loads((out / "report.json").read_text())
    return report, [{k: v for k, v in e.items() if k not in WALL} for e in report["episodes"]]


def test_num_envs_2_matches_serial(tmp_path, capsys):
    argv = ["eval", "--policy.type=expert", "--task=touch", "--n=4", "--seed0=100040", "--videos=2"]
    assert main([*argv, f"--output_dir={tmp_path / 'serial'}"]) == 0
    assert main([*argv, "--num_envs=2", f"--output_dir={tmp_path / 'par'}"]) == 0
    serial, serial_eps = _episodes(tmp_path / "serial")
    par, par_eps = _episodes(tmp_path / "par")
    assert [e["episode"] for e in par_eps] == [0, 1, 2, 3]
    assert [(e["success"], e["time_to_success"]) for e in par_eps] == [
        (e["success"], e["time_to_success"]) for e in serial_eps
    ]
    assert par_eps == serial_eps  # everything but wall times, videos included
    assert par["summary"] == serial["summary"]
    assert par["command"].endswith("--num_envs=2") and par["config"]["num_envs"] == 2
    assert sorted(p.name for p in (tmp_path / "par" / "videos").iterdir()) == ["episode_000.mp4", "episode_001.mp4"]
    progress = [line for line in capsys.readouterr().out.splitlines() if line.startswith("  episode ")]
    assert len(progress) == 8  # 4 per run, as episodes finish


def test_worker_error_names_the_episode(tmp_path):
    cfg = EvalConfig(policy_type="expert", task="touch", n=3, num_envs=2, output_dir=str(tmp_path))
    specs = specs_for(cfg)
    specs[1] = copy.copy(specs[1])
    object.__setattr__(specs[1], "color", "purple")  # past the spec's check: the env cannot reset to this
    with pytest.raises(EvalWorkerError, match=r"in episode 1 \(seed 100001") as exc:
        run_parallel(
            cfg, specs, 0.0, tmp_path, log=lambda line: None, load_policy=policy_and_size, make_runner=make_runner
        )
    assert "Traceback" in str(exc.value) and "purple" in str(exc.value)


def test_num_envs_must_be_positive(tmp_path, capsys):
    argv = ["eval", "--policy.type=expert", "--task=touch", "--n=1", "--num_envs=0", f"--output_dir={tmp_path}"]
    assert main(argv) == 2
    assert "--num_envs" in capsys.readouterr().err


def test_episode_does_not_depend_on_the_episodes_before():
    """Workers run different histories of episodes than the serial loop: an episode must not depend on them (the
    emulated servo wire's timing once carried over a reset)."""
    from onboard.eval.episodes import ExpertChunkPolicy, run_episode_with_runner
    from sim.envs.env import SO101Env
    from sim.expert.harness import spec_for_seed

    *before, spec = (spec_for_seed("pick", 100000 + i, ("red", "green", "blue"), "train") for i in range(4))
    results = []
    for history in (before, []):  # seed 100003 after 100000-100002 took 15 ticks longer than alone
        env = SO101Env(task="pick", image_size=(96, 96))
        policy = ExpertChunkPolicy(env, horizon=30)
        try:
            for s in history:
                run_episode_with_runner(env, policy, "async", 0.0, s, make_runner=make_runner)
            r = run_episode_with_runner(env, policy, "async", 0.0, spec, make_runner=make_runner)
        finally:
            env.close()
        results.append((r.success, r.ticks, round(r.time_to_success or 0.0, 6), r.stats["requests"]))
    assert results[0] == results[1]
