"""DAgger data (onboard/eval/dagger.py, `onboard dagger`): the scripted expert taking over mid-episode, and the
dataset the bundled policy + expert episodes make."""

from __future__ import annotations

import json
import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported

import numpy as np
import pytest

from tests.conftest import require

mujoco = require("mujoco", "sim")

from sim import tasks as T  # noqa: E402
from sim.expert import ExpertState, ScriptedExpert, harness  # noqa: E402

BUNDLE = "policies/bundled/so101_vla"


def _cube_z(executor, color: str) -> float:
    body = executor.model.body(T.cube_body(color)).id
    return float(executor.data.xpos[body][2])


@pytest.mark.parametrize("task", ["pick", "place"])
def test_an_expert_taking_over_with_the_cube_in_hand_holds_it_and_finishes(task):
    """The first expert grasps and lifts; a fresh expert, started from that state, must not open the jaws (it would
    drop the cube and start over) and must finish the task."""
    executor = harness.DirectExecutor()
    spec = harness.spec_for_seed(task, 501)
    executor.reset(spec)
    first = ScriptedExpert(executor.model, spec)
    first.reset()
    t = 0.0
    while first.phase not in ("lift", "carry") and t < 8.0:
        executor.apply(first.act(executor.observe(), t))
        t = executor.time
    assert first.phase in ("lift", "carry") and first.cube_in_hand()
    second = ScriptedExpert(executor.model, spec)
    second.reset()
    lowest, t_take, z_take = np.inf, t, _cube_z(executor, spec.color)
    jaw_take = float(ExpertState.from_mjdata(executor.model, executor.data).joints[5])
    widest = -np.inf
    while executor.time - t_take < 10.0 and not spec.success(executor.model, executor.data):
        goal = second.act(ExpertState.from_mjdata(executor.model, executor.data), executor.time - t_take)
        executor.apply(goal)
        if second.phase in ("start", "lift", "hold", "carry"):  # before a place's release
            lowest = min(lowest, _cube_z(executor, spec.color))
            widest = max(widest, float(goal[5]))
    assert spec.success(executor.model, executor.data), second.phase
    assert second.attempts == 0  # never went back to grasp: it held on
    assert lowest > z_take - 0.003  # the cube was not put down
    assert widest < jaw_take + 5  # nor were the jaws opened


def test_a_fresh_episode_is_unchanged_by_the_takeover_rules():
    """At an episode's start the cube is not in the hand: the expert grasps as before (attempt 1) and succeeds."""
    result = harness.run_episode(harness.spec_for_seed("pick", 502), executor=harness.DirectExecutor())
    assert result.success and result.attempts == 1


def test_onboard_dagger_records_the_experts_continuations(tmp_path, capsys):
    """The bundled policy drives, the expert takes over at a drawn time: the recorded episodes start at the takeover
    (the frames are the expert's part only), they load through our reader and LeRobot's layout checks, and the
    dataset has the demonstrations' features."""
    from onboard.cli import main
    from policies.dataset.reader import EpisodeReader

    root = tmp_path / "dagger"
    argv = ["dagger", "--policy.path", BUNDLE, "--dataset.root", str(root), "--sim.task", "pick", "--n", "4"]
    assert main([*argv, "--takeover", "0.1", "0.3", "--num_workers", "2", "--expert_s", "6"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("seed ")]
    assert len(lines) == 4
    takeovers = [float(line.split("takeover at ")[1].split(" s")[0]) for line in lines]
    assert all(1.0 - 0.05 <= t <= 3.0 + 0.05 for t in takeovers)  # 0.1-0.3 of pick's 10 s limit
    recorded = [line for line in lines if "frames" in line]
    assert recorded, out
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["total_episodes"] == len(recorded)
    assert info["features"]["observation.images.front"]["shape"] == [96, 96, 3]
    assert info["features"]["action"]["names"][0] == "shoulder_pan.pos"
    reader = EpisodeReader(root)
    frames = [int(line.split(": ")[2].split(" frames")[0]) for line in recorded]
    assert reader.num_frames == sum(frames)
    # an expert's continuation lasts at most --expert_s (6 s at 30 fps)
    assert max(frames) <= 6 * 30 + 1
    pick = T.get_task("pick")
    phrasings = {i for c in T.COLORS for i in pick.instructions(c, "train")}
    assert all(reader.episode(e).task in phrasings for e in range(reader.num_episodes))
    assert main(["dataset", "verify", str(root)]) == 0
    # the same command again into the same folder: refused, nothing overwritten
    assert main([*argv, "--num_workers", "1"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_a_fault_in_the_policys_part_hands_over_to_the_expert_after_a_power_cycle(tmp_path):
    """A servo protection tripping while the policy drives (injected on the 20th step) is where the policy most needs
    the way out: the arm is powered off and on and the expert takes over from that state, and its part is kept."""
    from hardware.feetech.errors import FeetechError
    from onboard.eval import dagger
    from onboard.eval.factories import make_runner, policy_and_size
    from policies.dataset.writer import DatasetWriter
    from robot.record import dataset_features
    from sim.envs.env import SO101Env

    policy, size = policy_and_size("onnx", BUNDLE, threads=1)
    env = SO101Env(task="pick", image_size=(size, size))
    real_step, calls = env.step, []

    def step(action):
        calls.append(1)
        if len(calls) == 20:
            raise FeetechError("servo 5 (wrist_roll) reports overload (injected)")
        return real_step(action)

    env.step = step
    writer = DatasetWriter.create(tmp_path / "ds", fps=30, features=dataset_features(env.arm.spec.keys, env.cameras))
    try:
        spec = harness.spec_for_seed("pick", 503)
        ep = dagger.run_episode(env, policy, spec, takeover_s=5.0, expert_s=8.0, writer=writer, make_runner=make_runner)
        assert env.arm.is_connected
    finally:
        writer.close()
        env.close()
    assert "after a fault" in ep.why and "injected" in ep.why, ep
    assert 19 / 30 - 0.05 < ep.takeover_s < 1.0  # taken over at the fault, not at 5 s
    assert ep.frames > 30 and ep.success, ep
    assert "after a fault" in dagger.describe(ep)
