"""Where an evaluation's episodes run: one interface, three backends (`onboard eval --backend`).

    run = episode_backend(cfg)          # cfg.resolved_backend(): "serial" | "processes" | "ray"
    records = run(cfg, specs, latency_s, out, log=print, load_policy=policy_and_size, make_runner=make_runner)

Every backend takes the episodes of ``specs`` (index i is episode i, seed ``cfg.seed0 + i``), runs each on an env and
policy built once per worker (``onboard.eval.runner.EpisodeRunner``), calls ``log`` with a progress line per episode as
it finishes, and returns the report records in episode order. Episodes are deterministic per seed whatever ran before
on the same env (the env resets onto a common phase, the runner runs on the env's sim clock), so the three give the
same records apart from wall times, and so the same report:

- ``serial``: one env and policy in this process (``run_serial``, below);
- ``processes``: ``cfg.num_envs`` spawned worker processes on this machine (``onboard.eval.workers.run_parallel``),
  the fallback that needs no Ray;
- ``ray``: ``cfg.num_envs`` Ray actors, on a local Ray or a cluster (``onboard.eval.ray_backend.run_on_ray``).

A worker's failure is an ``onboard.eval.workers.EvalWorkerError`` naming the episode, whichever backend ran it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from onboard.eval.config import EvalConfig
from onboard.eval.episodes import LoadPolicy, MakeRunner
from onboard.eval.runner import EpisodeRunner, episode_line
from sim import tasks as T


class RunEpisodes(Protocol):
    """An episode backend: the records of ``specs``, in episode order."""

    def __call__(
        self,
        cfg: EvalConfig,
        specs: list[T.TaskSpec],
        latency_s: float | None,
        out: Path,
        *,
        log: Callable[[str], None],
        load_policy: LoadPolicy,
        make_runner: MakeRunner,
    ) -> list[dict[str, Any]]: ...


def run_serial(
    cfg: EvalConfig,
    specs: list[T.TaskSpec],
    latency_s: float | None,
    out: Path,
    *,
    log: Callable[[str], None],
    load_policy: LoadPolicy,
    make_runner: MakeRunner,
) -> list[dict[str, Any]]:
    """The episodes one after the other on one env and policy, in this process."""
    runner = EpisodeRunner(cfg, out, latency_s, load_policy=load_policy, make_runner=make_runner)
    records: list[dict[str, Any]] = []
    try:
        for i, spec in enumerate(specs):
            records.append(runner.run(i, spec))
            log(episode_line(records[-1], len(specs)))
    finally:
        runner.close()
    return records


def episode_backend(cfg: EvalConfig) -> RunEpisodes:
    """The backend ``cfg`` asks for (``--backend``; "auto": serial for one env, else processes). Ray's module is
    imported only when it is asked for."""
    name = cfg.resolved_backend()
    if name == "serial":
        return run_serial
    if name == "processes":
        from onboard.eval.workers import run_parallel

        return run_parallel
    if name == "ray":
        from onboard.eval.ray_backend import run_on_ray

        return run_on_ray
    raise ValueError(f"unknown episode backend {name!r}")
