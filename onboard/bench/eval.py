"""How much a simulation fleet speeds evaluation up on this machine: `onboard bench eval` runs the same `onboard eval`
(same seeds) with 1, 2, ... workers on one backend and prints episodes/s per worker count and the speed-up over one
worker, checking that every run gave the same report.

    onboard bench eval --workers 1 2 --n 16 --backend ray                       # the bundled model, "pick" episodes
    onboard bench eval --workers 1 2 4 --policy.type expert --task touch --backend processes

Two rates per run: ``overall`` (episodes / the whole run's wall time: actors or processes starting, env and policy
built, episodes, report) and ``episodes`` (after start-up: from when the first episode started, estimated as the first
finished episode's end minus its own wall time, to the last episode's end). With ``--backend ray`` one local Ray
(``num_cpus`` = the largest worker count) is started before the runs and its start-up reported apart, or the cluster
of ``--ray.address`` is joined. Each worker runs one math-library thread; a worker count above the free cores measures
the machine's contention, not the fleet.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from onboard.eval.fleet import RayOptions


@dataclass(frozen=True)
class EvalBenchConfig:
    """`onboard bench eval`."""

    workers: tuple[int, ...] = field(default=(1, 2), metadata={"help": "worker counts to compare"})
    n: int = field(default=16, metadata={"help": "episodes per run"})
    backend: str = field(
        default="ray", metadata={"choices": ("ray", "processes"), "help": "Ray actors or spawned worker processes"}
    )
    policy_path: str | None = field(
        default=None, metadata={"flag": "--policy.path", "help": "the policy (default: the bundled model)"}
    )
    policy_type: str | None = field(
        default=None, metadata={"flag": "--policy.type", "help": "its kind (default: detected; 'expert': the script)"}
    )
    task: str = field(default="pick", metadata={"help": "touch, pick or place"})
    seed0: int = field(default=100_000, metadata={"help": "first seed"})
    ray: RayOptions = field(default_factory=RayOptions)
    output_dir: str | None = field(default=None, metadata={"help": "the runs' reports (default: a temporary folder)"})
    json: str | None = field(default=None, metadata={"help": "also write the results to this JSON file"})

    def __post_init__(self) -> None:
        if not self.workers or min(self.workers) < 1:
            raise ValueError(f"--workers must be counts >= 1, got {self.workers}")
        if self.n < 1:
            raise ValueError(f"--n must be >= 1, got {self.n}")


def _eval_config(cfg: EvalBenchConfig, workers: int, out: Path) -> Any:
    from onboard.eval.config import EvalConfig
    from policies.bundle import BUNDLED
    from robot.policy_loader import policy_kind

    path, kind = cfg.policy_path, cfg.policy_type
    if kind != "expert":
        path = path or str(BUNDLED)
        kind = kind or policy_kind(path)
    return EvalConfig(
        policy_path=path,
        policy_type=kind,
        task=cfg.task,
        n=cfg.n,
        seed0=cfg.seed0,
        num_envs=workers,
        backend=cfg.backend,
        ray=cfg.ray,
        output_dir=str(out / f"workers_{workers}"),
    )


def run_one(cfg: EvalBenchConfig, workers: int, out: Path) -> dict[str, Any]:
    """One `onboard eval` run with ``workers`` workers: its rates and its report's episodes (without wall times)."""
    from onboard.eval.evaluate import evaluate

    finished: list[tuple[float, str]] = []  # (when, progress line) of each finished episode
    t0 = time.monotonic()
    report = evaluate(_eval_config(cfg, workers, out), log=lambda line: finished.append((time.monotonic(), line)))
    wall = time.monotonic() - t0
    episode_lines = [(t, line) for t, line in finished if line.startswith("  episode ")]
    first_end, first_line = episode_lines[0]
    first = int(first_line.split()[1].split("/")[0]) - 1  # "  episode 3/16 seed ...": episode index 2
    start = first_end - report["episodes"][first]["wall_s"]
    episodes_s = max(episode_lines[-1][0] - start, 1e-9)
    same = [{k: v for k, v in e.items() if k not in ("wall_s", "runner_stats")} for e in report["episodes"]]
    return {
        "workers": workers,
        "wall_s": wall,
        "overall_eps_per_s": cfg.n / wall,
        "episodes_eps_per_s": cfg.n / episodes_s,
        "startup_s": start - t0,
        "successes": report["summary"]["successes"],
        "records": same,
    }


def main(cfg: EvalBenchConfig) -> int:
    from onboard.bench.sysinfo import machine_info, machine_lines
    from onboard.cli.options import command_line
    from onboard.eval.fleet import ray_session

    print(f"command: {command_line('onboard bench eval', cfg)}")
    machine = machine_info()
    for line in machine_lines(machine):
        print(line)
    tmp = tempfile.TemporaryDirectory(prefix="onboard-bench-eval-") if cfg.output_dir is None else None
    out = Path(tmp.name if tmp is not None else cfg.output_dir)  # type: ignore[arg-type]
    results: list[dict[str, Any]] = []
    ray_start_s = None
    try:
        if cfg.backend == "ray":
            t = time.monotonic()
            with ray_session(cfg.ray, num_cpus=max(cfg.workers)):
                ray_start_s = time.monotonic() - t
                where = cfg.ray.address or f"a local Ray of {max(cfg.workers)} CPUs"
                print(f"ray: {where}, started/joined in {ray_start_s:.1f} s")
                results = [run_one(cfg, w, out) for w in cfg.workers]
        else:
            results = [run_one(cfg, w, out) for w in cfg.workers]
    finally:
        if tmp is not None:
            tmp.cleanup()
    policy = "the scripted expert" if cfg.policy_type == "expert" else (cfg.policy_path or "the bundled model")
    print(f"{cfg.n} '{cfg.task}' episodes of {policy} from seed {cfg.seed0}, backend {cfg.backend}:")
    base = results[0]
    for r in results:
        print(
            f"  {r['workers']} worker(s): {r['episodes_eps_per_s']:.3f} episodes/s after start-up "
            f"(x{r['episodes_eps_per_s'] / base['episodes_eps_per_s']:.2f}), {r['overall_eps_per_s']:.3f} overall "
            f"(x{r['overall_eps_per_s'] / base['overall_eps_per_s']:.2f}; {r['wall_s']:.1f} s, start-up "
            f"{r['startup_s']:.1f} s); {r['successes']}/{cfg.n} successes"
        )
    same = all(r["records"] == base["records"] for r in results)
    print(f"same report for every worker count (records without wall times): {'yes' if same else 'NO'}")
    if cfg.json:
        rows = [{k: v for k, v in r.items() if k != "records"} for r in results]
        data = {"config": dataclasses.asdict(cfg), "machine": machine, "ray_start_s": ray_start_s, "runs": rows}
        Path(cfg.json).write_text(json.dumps(data, indent=2) + "\n")
    return 0 if same else 1
