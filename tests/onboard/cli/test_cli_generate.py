"""`onboard generate`: the scripted expert's demonstrations recorded by 2 workers (Ray actors on a real local Ray, and
spawned processes) into shards, merged into one dataset that `onboard dataset verify` and LeRobot's reader accept,
with episode j the scene of (--sim.seed, j) and the same data whichever backend ran the workers."""

import numpy as np
import pytest

from onboard.cli import main
from policies.dataset.reader import EpisodeReader
from tests.conftest import require

SEED = 7
EPISODES = 3  # over 2 workers: blocks of 2 and 1
SECONDS = 2.0
FPS = 30


def _arms(tmp_path):
    for prefix, type_, id_ in (("robot", "so101_follower", "f"), ("teleop", "so101_leader", "l")):
        flags = [f"--{prefix}.type={type_}", f"--{prefix}.port=sim", f"--{prefix}.id={id_}"]
        assert main(["calibrate", *flags, f"--{prefix}.calibration_dir={tmp_path / 'cal'}"]) == 0
    return [
        "--robot.id=f",
        f"--robot.calibration_dir={tmp_path / 'cal'}",
        "--teleop.id=l",
        f"--teleop.calibration_dir={tmp_path / 'cal'}",
    ]


def _generate(arms, root, *flags):
    return main(
        [
            "generate",
            *arms,
            "--sim.task=touch",
            f"--sim.seed={SEED}",
            f"--dataset.root={root}",
            f"--dataset.num_episodes={EPISODES}",
            f"--dataset.episode_time_s={SECONDS}",
            "--num_workers=2",
            *flags,
        ]
    )


def _instructions():
    """Each episode's instruction as a single recording would draw it (sim.rigs.teleop.SimEpisodes.spec_for)."""
    from sim import tasks as T

    return [T.sample_task(np.random.default_rng([SEED, j]), tasks=("touch",)).instruction for j in range(EPISODES)]


@pytest.mark.slow
def test_generate_on_ray_and_processes(tmp_path, capsys, monkeypatch):
    require("ray", "fleet")
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    arms = _arms(tmp_path)
    ray_root, proc_root = tmp_path / "ray", tmp_path / "proc"
    assert _generate(arms, ray_root, "--backend=ray") == 0
    out = capsys.readouterr().out
    assert "with 2 worker(s) (ray)" in out and f"{EPISODES} episodes, {EPISODES * SECONDS * FPS:.0f} frames" in out
    assert out.count(" saved by worker ") == EPISODES
    assert not (tmp_path / "ray.shards").exists()  # merged, then removed
    assert main(["dataset", "verify", str(ray_root)]) == 0

    assert _generate(arms, proc_root, "--keep_shards") == 0  # auto: spawned processes
    assert "(processes)" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "proc.shards").iterdir() if p.is_dir()) == ["shard-000", "shard-001"]

    want = _instructions()
    a, b = EpisodeReader(ray_root), EpisodeReader(proc_root)
    for j in range(EPISODES):
        ea, eb = a.episode(j), b.episode(j)
        assert ea.task == eb.task == want[j]
        assert ea.length == eb.length == SECONDS * FPS
        np.testing.assert_array_equal(ea.state, eb.state)  # the same workers' data, whichever backend ran them
        np.testing.assert_array_equal(ea.action, eb.action)
    assert len(np.unique(a.episode(1).columns["index"])) == SECONDS * FPS

    lerobot = require("lerobot.datasets.lerobot_dataset", "interop")
    ds = lerobot.LeRobotDataset("local/generated", root=ray_root, video_backend="pyav")
    assert ds.num_episodes == EPISODES and len(ds) == EPISODES * SECONDS * FPS
    assert set(ds.meta.tasks.index) == set(want)
    last = ds[len(ds) - 1]
    assert last["episode_index"].item() == EPISODES - 1 and last["task"] == want[-1]
    assert last["observation.images.front"].shape == (3, 96, 96)


def test_generate_refuses_before_recording(tmp_path, capsys):
    cal = [
        "--robot.id=f",
        f"--robot.calibration_dir={tmp_path / 'cal'}",
        "--teleop.id=l",
        f"--teleop.calibration_dir={tmp_path / 'cal'}",
    ]
    assert _generate(cal, tmp_path / "ds") == 2  # no calibration yet
    assert "onboard calibrate" in capsys.readouterr().err
    assert not (tmp_path / "ds.shards").exists() and not (tmp_path / "ds").exists()
    (tmp_path / "ds").mkdir()
    assert _generate(cal, tmp_path / "ds") == 2
    assert "already exists" in capsys.readouterr().err
    assert _generate(cal, tmp_path / "x", "--backend=serial") == 2
    assert "--backend=serial runs one worker" in capsys.readouterr().err
    assert _generate(cal, tmp_path / "x", "--robot.port=/dev/ttyACM0") == 2
    assert "onboard record" in capsys.readouterr().err


def test_shards_plan_and_a_failed_shard_is_named(tmp_path):
    from onboard.eval.generate import GenerateError, plan_shards, run_shards
    from robot.arm_config import ArmConfig
    from robot.record_config import RecordConfig

    record = RecordConfig(root=tmp_path / "ds", num_episodes=5, episode_time_s=1.0)
    robot = ArmConfig(type="so101_follower", port="sim", id="f", calibration_dir=tmp_path)
    teleop = ArmConfig(type="so101_leader", port="sim", id="l", calibration_dir=tmp_path)
    kwargs = {"record": record, "robot": robot, "teleop": teleop, "rig": {"tasks": ("juggle",)}}
    jobs = plan_shards(5, 3, tmp_path / "shards", **kwargs)
    assert [(j.start, j.count) for j in jobs] == [(0, 2), (2, 2), (4, 1)]
    assert [j.record.root.name for j in jobs] == ["shard-000", "shard-001", "shard-002"]
    assert [(j.start, j.count) for j in plan_shards(2, 4, tmp_path / "shards", **kwargs)] == [(0, 1), (1, 1)]
    (tmp_path / "shards").mkdir()
    with pytest.raises(GenerateError, match="3 of 3 shard") as exc:
        run_shards(jobs, backend="serial", log=lambda line: None)
    assert "worker 2" in str(exc.value) and "juggle" in str(exc.value)
