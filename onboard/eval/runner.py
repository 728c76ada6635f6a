"""The episodes of an evaluation, one by one: ``EpisodeRunner`` builds the env and policy of an ``EvalConfig`` once and
runs episodes by index, each giving its report record (with a video for the first ``cfg.videos``). Used by the serial
loop of ``onboard.eval.evaluate`` and by each worker of ``--num_envs`` (``onboard.eval.workers``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from onboard.eval.config import EvalConfig
from onboard.eval.episodes import LoadPolicy, MakeRunner, RunnerEpisodeResult, run_episode_with_runner
from onboard.eval.factories import DEFAULT_IMAGE_SIZE
from onboard.video import VideoEnv, write_mp4
from robot.policy_loader import get_policy_kind
from robot.policy_loader import load_policy as load_kind
from sim import tasks as T
from sim.envs.env import SO101Env


def _make_policy(cfg: EvalConfig, env_factory: Callable[[int], SO101Env], load_policy: LoadPolicy):
    """(policy, env): the policy of ``cfg`` and an env whose cameras give it the image size it takes. A kind loaded
    from a folder comes from ``load_policy``; a kind built on the env (the scripted expert) from the registry, on an
    env at the default size."""
    kind = cfg.resolved_policy_type()
    if not get_policy_kind(kind).needs_path:
        env = env_factory(DEFAULT_IMAGE_SIZE)
        return load_kind(None, kind, env=env, horizon=cfg.horizon).policy, env
    if not cfg.policy_path:
        raise ValueError(f"--policy.path is required for --policy.type={kind}")
    policy, size = load_policy(kind, cfg.policy_path)
    return policy, env_factory(size)


def _record(i: int, result: RunnerEpisodeResult, wall_s: float, video: str | None) -> dict[str, Any]:
    s = result.spec
    return {
        "episode": i,
        "seed": s.seed,
        "task": s.task,
        "color": s.color,
        "instruction": s.instruction,
        "split": s.split,
        "success": bool(result.success),
        # µs: the sim clock runs on across episodes, so the same episode's times differ in the last float bits
        # between an env that ran other episodes before and a fresh one (--num_envs)
        "time_to_success": None if result.time_to_success is None else round(result.time_to_success, 6),
        "ticks": result.ticks,
        "duration_s": round(result.duration_s, 6),
        "wall_s": wall_s,
        "fault": result.fault,
        "video": video,
        "runner_stats": result.stats,
    }


class EpisodeRunner:
    """The env and policy of ``cfg``, built once, running episodes by index (with a video for the first
    ``cfg.videos``). ``load_policy`` / ``make_runner``: the factories (``onboard.eval.factories``)."""

    def __init__(
        self, cfg: EvalConfig, out: Path, latency_s: float | None, *, load_policy: LoadPolicy, make_runner: MakeRunner
    ):
        self.cfg, self.out, self.latency_s = cfg, out, latency_s
        self.make_runner = make_runner
        self.policy, self.env = _make_policy(
            cfg, lambda size: SO101Env(task=cfg.task, image_size=(size, size), safety=cfg.safety), load_policy
        )
        self.venv = VideoEnv(self.env, cfg.video_size) if cfg.videos > 0 else None

    def run(self, i: int, spec: T.TaskSpec) -> dict[str, Any]:
        """Episode ``i`` (of ``spec``): its report record."""
        venv = self.venv
        recording = venv is not None and i < self.cfg.videos
        if venv is not None:
            venv.recording, venv.frames = recording, []
        t = time.monotonic()
        kwargs = {k: v for k in ("refill_at", "blend_steps") if (v := getattr(self.cfg, k)) is not None}
        result = run_episode_with_runner(
            venv or self.env, self.policy, self.cfg.runner, self.latency_s, spec, make_runner=self.make_runner, **kwargs
        )
        wall = time.monotonic() - t
        video = None
        if recording and venv is not None and venv.frames:
            path = write_mp4(self.out / "videos" / f"episode_{i:03d}.mp4", venv.frames, fps=self.env.fps)
            video = str(path.relative_to(self.out))
            venv.frames = []
        return _record(i, result, wall, video)

    def close(self) -> None:
        if self.venv is not None:
            self.venv.close()
        self.env.close()


def episode_line(record: dict[str, Any], n: int) -> str:
    """The progress line of a finished episode."""
    outcome = f"success at {record['time_to_success']:.2f} s" if record["success"] else "failure"
    if record["fault"]:
        outcome += f" (fault: {record['fault']})"
    return f"  episode {record['episode'] + 1}/{n} seed {record['seed']} {record['instruction']!r}: {outcome}"
