"""`onboard eval --num_envs N` (``--backend=processes``, the fallback without Ray): the episodes of an evaluation in N
worker processes, each with its own env and policy.

Each worker (a "spawn" process: MuJoCo's EGL context and the runtime's threads do not survive ``fork``) builds the env
and policy of the config once (``onboard.eval.runner.EpisodeRunner``, the serial loop's code, with the ``load_policy``
and ``make_runner`` factories it was given: top-level functions such as ``onboard.eval.factories``'s, which pickle by
reference), then takes episode indices from a shared queue until none are left. Episodes are independent and
deterministic per seed (the runner runs on the env's own sim clock), so the records, put back in episode order, are
those of the serial run apart from wall times. Videos are written by whichever worker runs episodes ``0 .. videos - 1``.
Math libraries get one thread per worker (``OMP_NUM_THREADS=1`` and the like in the workers'
environment, ``torch.set_num_threads(1)``).

A worker's exception is raised in the parent as an ``EvalWorkerError`` naming the episode, with the worker's
traceback; a worker that dies (a crash in native code) is noticed within two seconds; the workers ignore SIGINT and
are terminated by the parent on Ctrl-C or any error.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from onboard.eval.fleet import THREAD_VARS
from onboard.eval.runner import EpisodeRunner, episode_line
from sim import tasks as T


class EvalWorkerError(RuntimeError):
    """A worker failed or died; the message names the episode and holds the worker's traceback."""


def run_parallel(
    cfg,
    specs: list[T.TaskSpec],
    latency_s: float | None,
    out: Path,
    *,
    log: Callable[[str], None],
    load_policy: Callable[..., Any],
    make_runner: Callable[..., Any],
):
    """The records of ``specs`` (episode order) run by ``min(cfg.num_envs, len(specs))`` workers; ``log`` gets a
    progress line per episode as it finishes. ``load_policy`` / ``make_runner``: picklable factories
    (``onboard.eval.episodes.LoadPolicy`` / ``MakeRunner``; top-level functions, e.g. ``onboard.eval.factories``'s)."""
    ctx = mp.get_context("spawn")
    tasks, results = ctx.Queue(), ctx.Queue()
    n_workers = min(cfg.num_envs, len(specs))
    for i in range(len(specs)):
        tasks.put(i)
    for _ in range(n_workers):
        tasks.put(None)
    procs: list[Any] = []
    running: dict[int, int | None] = {}  # worker -> the episode it is running
    exited: set[int] = set()
    dead: set[int] = set()
    records: dict[int, dict] = {}
    try:
        with thread_env(1):
            for w in range(n_workers):
                args = (w, cfg, specs, latency_s, str(out), tasks, results, load_policy, make_runner)
                proc = ctx.Process(target=_worker, args=args, name=f"onboard-eval-{w}", daemon=True)
                proc.start()
                procs.append(proc)
        while len(records) < len(specs):
            try:
                kind, w, i, payload = results.get(timeout=1.0)
            except queue.Empty:
                for w, p in enumerate(procs):
                    if w not in exited and not p.is_alive():
                        if w not in dead:  # its last messages may still be on their way: look once more
                            dead.add(w)
                            continue
                        raise EvalWorkerError(
                            f"eval worker {w} died (exit code {p.exitcode}) {describe_episode(running.get(w), specs)}"
                        ) from None
                continue
            if kind == "start":
                running[w] = i
            elif kind == "done":
                records[i], running[w] = payload, None
                log(episode_line(payload, len(specs)))
            elif kind == "exit":
                exited.add(w)
            else:
                raise EvalWorkerError(f"eval worker {w} failed {describe_episode(i, specs)}:\n{payload}")
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=10)
    return [records[i] for i in range(len(specs))]


def describe_episode(i: int | None, specs: list[T.TaskSpec]) -> str:
    """Where a worker was when it failed, for the error message."""
    if i is None:
        return "while building its env and policy (or between episodes)"
    return f"in episode {i} (seed {specs[i].seed}, {specs[i].instruction!r})"


@contextmanager
def thread_env(threads: int) -> Iterator[None]:
    """``THREAD_VARS`` set to ``threads`` while worker processes start (they inherit the environment)."""
    saved = {k: os.environ.get(k) for k in THREAD_VARS}
    os.environ.update({k: str(threads) for k in THREAD_VARS})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _worker(w: int, cfg, specs, latency_s, out: str, tasks, results, load_policy, make_runner) -> None:
    """A worker process: build the env and policy, run episodes from ``tasks`` until ``None``, report to ``results``
    as ("start" | "done" | "exit" | "error", worker, episode, record or traceback)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the parent terminates the workers
    i = None
    try:
        runner = EpisodeRunner(cfg, Path(out), latency_s, load_policy=load_policy, make_runner=make_runner)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(1)
        try:
            while (i := tasks.get()) is not None:
                results.put(("start", w, i, None))
                results.put(("done", w, i, runner.run(i, specs[i])))
        finally:
            runner.close()
        results.put(("exit", w, None, None))
    except BaseException:
        results.put(("error", w, i, traceback.format_exc()))
