"""`onboard eval --backend=ray`: the episodes of an evaluation on ``--num_envs`` Ray actors, each owning an env and a
policy, on a local Ray or a cluster (``--ray.address``; ``onboard.eval.fleet``).

Each actor (``EpisodeActor``, one CPU) builds ``onboard.eval.runner.EpisodeRunner`` once, the serial loop's code,
with the ``load_policy`` / ``make_runner`` factories it was given (top-level functions, imported by name on the
actor's node), then runs the episodes it is handed by index. The driver keeps every actor busy with one episode at a
time, takes results as they finish (``ray.wait``), logs a progress line each, and puts the records back in episode
order, so the report is the serial run's apart from wall times (``onboard.eval.backends``).

Videos: an actor may run on another machine, so it writes an episode's video into a folder of its own and returns the
bytes; the driver writes them under ``out/videos/`` as the serial run does.

An episode that raises becomes an ``EvalWorkerError`` naming the episode, with the actor's traceback; an actor that
could not build its env and policy, or died, too. The actors are killed when the run ends, however it ends.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from onboard.eval.config import EvalConfig
from onboard.eval.episodes import LoadPolicy, MakeRunner
from onboard.eval.fleet import actor_runtime_env, one_thread, ray_session
from onboard.eval.runner import EpisodeRunner, episode_line
from onboard.eval.workers import EvalWorkerError, describe_episode
from sim import tasks as T


class EpisodeActor:
    """The body of one Ray actor: an env and a policy of ``cfg``, built once, running episodes by index."""

    def __init__(self, cfg: EvalConfig, latency_s: float | None, load_policy: LoadPolicy, make_runner: MakeRunner):
        one_thread()
        self.folder = Path(tempfile.mkdtemp(prefix="onboard-eval-actor-"))
        try:
            self.runner = EpisodeRunner(cfg, self.folder, latency_s, load_policy=load_policy, make_runner=make_runner)
            one_thread()  # the policy may have loaded torch
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise

    def run(self, i: int, spec: T.TaskSpec) -> tuple[dict[str, Any], bytes | None]:
        """Episode ``i``: its record, and its video's bytes when it has one (the file is removed here)."""
        record = self.runner.run(i, spec)
        video = None
        if record["video"]:
            path = self.folder / record["video"]
            video = path.read_bytes()
            path.unlink()
        return record, video

    def close(self) -> None:
        try:
            self.runner.close()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def run_on_ray(
    cfg: EvalConfig,
    specs: list[T.TaskSpec],
    latency_s: float | None,
    out: Path,
    *,
    log: Callable[[str], None],
    load_policy: LoadPolicy,
    make_runner: MakeRunner,
) -> list[dict[str, Any]]:
    """The records of ``specs`` (episode order) run by ``min(cfg.num_envs, len(specs))`` Ray actors (module doc)."""
    n_actors = min(cfg.num_envs, len(specs))
    with ray_session(cfg.ray, num_cpus=n_actors) as ray:
        actor_class = ray.remote(num_cpus=1)(EpisodeActor).options(runtime_env=actor_runtime_env())
        actors = [actor_class.remote(cfg, latency_s, load_policy, make_runner) for _ in range(n_actors)]
        records: dict[int, dict[str, Any]] = {}
        pending: dict[Any, tuple[int, int]] = {}  # result ref -> (actor, episode)
        queue = iter(range(len(specs)))

        def submit(w: int) -> None:
            i = next(queue, None)
            if i is not None:
                pending[actors[w].run.remote(i, specs[i])] = (w, i)

        finished = False
        try:
            for w in range(n_actors):
                submit(w)
            while pending:
                [ref], _ = ray.wait(list(pending), num_returns=1)
                w, i = pending.pop(ref)
                try:
                    record, video = ray.get(ref)
                except ray.exceptions.RayActorError as exc:
                    raise EvalWorkerError(
                        f"eval actor {w} could not build its env and policy, or died, "
                        f"{describe_episode(i, specs)}:\n{exc}"
                    ) from None
                except ray.exceptions.RayError as exc:
                    raise EvalWorkerError(f"eval actor {w} failed {describe_episode(i, specs)}:\n{exc}") from None
                if video is not None:
                    path = out / record["video"]
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(video)
                records[i] = record
                log(episode_line(record, len(specs)))
                submit(w)
            finished = True
        finally:
            _stop(ray, actors, close=finished)
    return [records[i] for i in range(len(specs))]


def _stop(ray: Any, actors: list[Any], *, close: bool) -> None:
    """Kill the actors, after closing their envs when the run finished (a failed or interrupted run does not wait for
    the episodes still running): none is left behind."""
    try:
        if close:
            ray.wait([a.close.remote() for a in actors], num_returns=len(actors), timeout=10)
    finally:
        for a in actors:
            ray.kill(a)
