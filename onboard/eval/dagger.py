"""DAgger data: a trained policy drives the simulated arm, then the scripted expert takes over from the state the
policy reached and finishes the task; the expert's part is recorded as a demonstration (`onboard dagger`).

Behaviour cloning only sees the states the expert visits; a policy that drifts off them (hovering over a cube it
has not quite grasped, say) meets states no demonstration shows. DAgger (Ross et al., 2011) labels the states the
policy visits with the expert's actions. Our expert is a closed-loop script that can start from any state
(``sim.expert``: its moves start at the measured pose, a cube already in the hand is held on), so the labels here are
whole expert continuations: episode ``seed`` runs the policy (the async runtime on the sim clock, as `onboard eval`
does) for a takeover time drawn from ``takeover`` (a fraction of the task's time limit), then the expert acts until
the task succeeds (held for the task's hold time) or ``expert_s`` seconds pass. The frames from the takeover on
(observation, the expert's joint goal as the action, the episode's instruction) are one dataset episode, written by
the crash-safe ``DatasetWriter``. When the policy drives the arm into a servo's protection before its takeover, the
arm is powered off and on (as a person would) and the expert takes over from there: those are the states the policy
most needs the way out of. An episode the policy finished before its takeover records nothing, and one whose expert
part ends in a fault is discarded.

Workers (spawned processes, one env each) write shards that ``policies.dataset.merge`` joins, as `onboard generate`
does. The dataset has the features of `onboard record`'s (same names, 96x96 cameras), so `onboard train` takes it
next to the demonstrations.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sim import tasks as T


@dataclass(frozen=True)
class DaggerJob:
    """One worker's episodes: ``seeds`` of ``task`` into the dataset at ``root``."""

    root: str
    seeds: tuple[int, ...]
    task: str
    policy_kind: str
    policy_path: str
    takeover: tuple[float, float]
    expert_s: float
    colors: tuple[str, ...] = T.COLORS


@dataclass(frozen=True)
class DaggerEpisode:
    seed: int
    takeover_s: float  # when the expert took over, or was to (s since the episode start)
    frames: int  # frames recorded (0: nothing)
    success: bool  # the expert's continuation succeeded
    why: str  # "recorded", "recorded after a fault in the policy's part (...)", "policy succeeded", "fault in ..."


def run_episode(env, policy, spec: T.TaskSpec, *, takeover_s: float, expert_s: float, writer, make_runner):
    """One DAgger episode of ``spec`` on ``env`` (module docstring). Returns a ``DaggerEpisode``."""
    from hardware.feetech.errors import FeetechError
    from onboard.eval.episodes import _power_cycle, _skip_missed_deadlines
    from policies.base import STATE_KEY
    from robot.errors import SafetyError
    from sim.expert import ExpertState, ScriptedExpert

    base = env.unwrapped if hasattr(env, "unwrapped") else env
    clock = base.clock
    obs, _ = env.reset(seed=spec.seed, options={"spec": spec})
    why = "recorded"
    try:
        with make_runner("async", policy, clock, base.fps, 0.0) as runner:
            runner.reset(obs["task"])
            while clock.now() - base._t0 < takeover_s - 1e-9:
                action = runner.action_for(clock.now(), obs)
                _skip_missed_deadlines(base)
                obs, _, terminated, _, _ = env.step(action)
                if terminated:
                    return DaggerEpisode(spec.seed, takeover_s, 0, True, "policy succeeded")
    except (FeetechError, SafetyError) as exc:
        # The policy drove the arm into a servo's protection (or SafeArm's): exactly the states it needs the way out
        # of. Power the arm off and on, as a person would, and the expert takes over from where it stopped.
        _power_cycle(base)
        base.arm.enable_torque()
        base.arm.send_action(base.arm.read_positions())
        obs = base._observe()
        why = f"recorded after a fault in the policy's part ({str(exc).splitlines()[0][:80]})"
    t_take = clock.now() - base._t0
    expert = ScriptedExpert(base.world.model, spec)
    expert.reset()
    success = False
    try:
        while clock.now() - base._t0 - t_take < expert_s - 1e-9:
            with base.world.lock:
                state = ExpertState.from_mjdata(base.world.model, base.world.data, joints=obs[STATE_KEY])
            goal = expert.act(state, clock.now() - base._t0)
            frame = {k: v for k, v in obs.items() if k != "task"}
            writer.add_frame({**frame, "action": goal, "task": spec.instruction})
            obs, _, terminated, _, _ = env.step(goal)
            if terminated:
                success = True
                break
    except (FeetechError, SafetyError) as exc:  # the expert's part ended in a fault: nothing of it is kept
        writer.discard_episode()
        _power_cycle(base)
        return DaggerEpisode(spec.seed, t_take, 0, False, f"fault in the expert's part: {exc}")
    frames = writer.episode_frames
    if frames < 2:
        writer.discard_episode()
        return DaggerEpisode(spec.seed, t_take, 0, success, "too short")
    writer.save_episode()
    return DaggerEpisode(spec.seed, t_take, frames, success, why)


def run_job(job: DaggerJob, log: Callable[[str], None] | None = None) -> list[DaggerEpisode]:
    """A worker: its env, the policy, its shard (a new dataset at ``job.root``)."""
    from onboard.eval.factories import make_runner, policy_and_size
    from policies.dataset.writer import DatasetWriter
    from robot.record import dataset_features
    from sim.envs.env import SO101Env
    from sim.expert.harness import spec_for_seed

    policy, size = policy_and_size(job.policy_kind, job.policy_path, threads=1)
    env = SO101Env(task=job.task, image_size=(size, size))
    # the features and robot type `onboard record` writes for this arm and these cameras
    features = dataset_features(env.arm.spec.keys, env.cameras)
    writer = DatasetWriter.create(job.root, fps=int(env.fps), features=features, robot_type=env.arm.spec.name)
    out = []
    try:
        for seed in job.seeds:
            spec = spec_for_seed(job.task, seed, job.colors)
            rng = np.random.default_rng([seed, 7])
            lo, hi = job.takeover
            takeover_s = float(rng.uniform(lo, hi)) * spec.max_duration_s
            ep = run_episode(
                env, policy, spec, takeover_s=takeover_s, expert_s=job.expert_s, writer=writer, make_runner=make_runner
            )
            out.append(ep)
            if log is not None:
                log(describe(ep))
    finally:
        writer.close()
        env.close()
    return out


def describe(ep: DaggerEpisode) -> str:
    if ep.frames:
        what = f"{ep.frames} frames, expert {'succeeded' if ep.success else 'did not finish'}"
        if ep.why != "recorded":
            what += f"; {ep.why.removeprefix('recorded ')}"
    else:
        what = ep.why
    return f"seed {ep.seed}: takeover at {ep.takeover_s:.1f} s: {what}"


def _run_job_quietly(job: DaggerJob) -> list[DaggerEpisode]:
    from onboard.eval.fleet import one_thread

    one_thread()
    return run_job(job)


def collect(
    root: str | Path,
    *,
    task: str,
    seeds: Sequence[int],
    policy_kind: str,
    policy_path: str,
    takeover: tuple[float, float] = (0.1, 0.8),
    expert_s: float = 8.0,
    workers: int = 2,
    colors: Sequence[str] = T.COLORS,
    log: Callable[[str], None] = print,
) -> list[DaggerEpisode]:
    """DAgger episodes ``seeds`` of ``task`` into a new dataset at ``root``, on ``workers`` processes (shards in
    ``<root>.shards/``, merged, then removed). Returns the episodes in seed order."""
    from policies.dataset.merge import merge

    root = Path(root)
    if root.exists():
        raise FileExistsError(f"{root} already exists: choose another --dataset.root")
    if not 0 <= takeover[0] <= takeover[1] <= 1:
        raise ValueError(f"takeover must be fractions of the time limit, 0 <= lo <= hi <= 1; got {takeover}")
    shards_dir = root.parent / f"{root.name}.shards"
    shards_dir.mkdir(parents=True, exist_ok=False)
    n = max(1, min(workers, len(seeds)))
    parts = [tuple(int(s) for s in seeds[w::n]) for w in range(n)]
    jobs = [
        DaggerJob(
            str(shards_dir / f"shard-{w:03d}"),
            part,
            task,
            policy_kind,
            str(policy_path),
            tuple(takeover),
            expert_s,
            tuple(colors),
        )
        for w, part in enumerate(parts)
    ]
    t0 = time.monotonic()
    if n == 1:
        results = [run_job(jobs[0], log)]
    else:
        with cf.ProcessPoolExecutor(n, mp_context=mp.get_context("spawn")) as pool:
            futures = [pool.submit(_run_job_quietly, job) for job in jobs]
            results = []
            for fut in futures:
                eps = fut.result()
                for ep in eps:
                    log(describe(ep))
                results.append(eps)
    recorded = [Path(j.root) for j, eps in zip(jobs, results, strict=True) if any(e.frames for e in eps)]
    if not recorded:
        shutil.rmtree(shards_dir)
        raise RuntimeError(f"no episode of {len(seeds)} recorded anything (the policy finished every one first?)")
    report = merge(root, recorded)
    shutil.rmtree(shards_dir)
    order = {seed: i for i, seed in enumerate(seeds)}
    episodes = sorted((e for eps in results for e in eps), key=lambda e: order[e.seed])
    kept = sum(e.frames > 0 for e in episodes)
    log(f"{report}\n{kept} of {len(episodes)} episodes recorded in {time.monotonic() - t0:.0f} s")
    return episodes
