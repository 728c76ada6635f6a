"""Success rates of the scripted expert: episodes ``seed0 .. seed0 + n - 1`` of a task, aggregated and tabulated.

```bash
onboard sim expert --task pick --n 100 --seed0 0
```

The episodes run in ``sim.expert.harness`` (``run_episode`` on an executor: scene.xml's position actuators,
``DirectExecutor``; the degraded stand-in, ``DegradedExecutor``; or the full mirrored stack, ``EnvExecutor``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from sim import tasks as T
from sim.expert.config import ExpertConfig
from sim.expert.harness import DirectExecutor, EpisodeResult, Executor, run_episode, spec_for_seed

__all__ = ["EvalReport", "evaluate", "format_table"]


@dataclass(frozen=True)
class EvalReport:
    task: str
    results: tuple[EpisodeResult, ...]

    @property
    def n(self) -> int:
        return len(self.results)

    @property
    def success_rate(self) -> float:
        return sum(r.success for r in self.results) / max(1, self.n)

    def by_color(self) -> dict[str, tuple[int, int]]:
        """colour -> (successes, episodes)."""
        out: dict[str, tuple[int, int]] = {}
        for r in self.results:
            s, n = out.get(r.spec.color, (0, 0))
            out[r.spec.color] = (s + r.success, n + 1)
        return out

    @property
    def failures(self) -> list[EpisodeResult]:
        return [r for r in self.results if not r.success]

    @property
    def median_time_to_success(self) -> float | None:
        times = [r.time_to_success for r in self.results if r.time_to_success is not None]
        return float(np.median(times)) if times else None


def evaluate(
    task: str,
    n: int = 100,
    seed0: int = 0,
    *,
    colors: Sequence[str] = T.COLORS,
    executor: str | Executor = "direct",
    expert_config: ExpertConfig | None = None,
) -> EvalReport:
    """Run episodes ``seed0 .. seed0 + n - 1`` of ``task`` (colours and phrasings drawn per seed)."""
    exe = DirectExecutor() if executor == "direct" else executor
    results = tuple(
        run_episode(spec_for_seed(task, seed0 + i, colors), executor=exe, expert_config=expert_config) for i in range(n)
    )
    return EvalReport(task=task, results=results)


def format_table(reports: Iterable[EvalReport]) -> str:
    reports = list(reports)
    lines = [
        f"{'task':8s} {'n':>4s} {'success':>8s} {'red':>9s} {'green':>9s} {'blue':>9s} {'median s':>9s}  failed seeds",
    ]
    for rep in reports:
        cols = rep.by_color()
        cells = []
        for c in T.COLORS:
            s, k = cols.get(c, (0, 0))
            cells.append(f"{s}/{k}".rjust(9))
        med = rep.median_time_to_success
        failed = " ".join(str(r.spec.seed) for r in rep.failures[:20]) + (" ..." if len(rep.failures) > 20 else "")
        faults = sum(bool(r.faults) for r in rep.results)
        if faults:
            failed += f"  ({faults} episodes with servo overload trips)"
        lines.append(
            f"{rep.task:8s} {rep.n:4d} {100 * rep.success_rate:7.1f}% {' '.join(cells)} "
            f"{(f'{med:.2f}' if med is not None else '-'):>9s}  {failed}"
        )
    return "\n".join(lines)
