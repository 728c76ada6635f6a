"""`onboard eval`: a policy on N simulated episodes with seeds no training data used, and a report.

```bash
onboard eval --policy.path=runs/vla/last --task=pick --n=50 --output_dir=outputs/eval/pick
onboard eval --policy.type=expert --task=touch --n=3 --videos=1 --output_dir=outputs/eval/expert
```

Episodes run on the mirrored stack (``SO101Env``) with the policy behind the runtime's async or sync runner
(``onboard.eval.episodes.run_episode_with_runner``), where ``--backend`` says (``onboard.eval.backends``: this
process, worker processes, or Ray actors; the same report for the same seeds); the policy and the runner come from
the factories the caller passes (``onboard.eval.factories.policy_and_size`` / ``make_runner``, the defaults). Seeds
``seed0 .. seed0 + n - 1`` (default 100000: the data generation draws its layouts from small seeds) pick the colour,
the phrasing and the layout. Written to ``output_dir``:

- ``report.json``: the command, the config, one record per episode, the summary (success rate with a 95 % Wilson
  interval, overall and per colour and per instruction; time to success median and p90) and the runner stats;
- ``summary.png``: success rate with its interval per colour and instruction, and a histogram of times to success;
- ``videos/episode_NNN.mp4`` for the first ``videos`` episodes: front and wrist views side by side, rendered by extra
  cameras on every env step at a readable size (not the policy's small input images).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from onboard.eval.backends import episode_backend
from onboard.eval.config import EvalConfig, specs_for
from onboard.eval.episodes import LoadPolicy, MakeRunner
from onboard.eval.factories import make_runner as _make_runner
from onboard.eval.factories import policy_and_size
from onboard.eval.plot import draw_summary
from onboard.eval.stats import runner_totals, summarize
from robot.latency import parse_latency


def evaluate(
    cfg: EvalConfig,
    *,
    load_policy: LoadPolicy = policy_and_size,
    make_runner: MakeRunner = _make_runner,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the evaluation of ``cfg`` (module docstring); returns the report (also written to report.json).
    ``load_policy`` / ``make_runner``: the factories (default ``onboard.eval.factories``'s ``policy_and_size`` /
    ``make_runner``); top-level functions, as ``--num_envs`` pickles them into its worker processes or Ray actors.
    ``log``: the progress lines and the summary."""
    cfg.resolved_policy_type()
    latency_s = parse_latency(cfg.latency)
    specs = specs_for(cfg)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)

    t_start = time.monotonic()
    run = episode_backend(cfg)
    episodes = run(cfg, specs, latency_s, out, log=log, load_policy=load_policy, make_runner=make_runner)

    summary = summarize(episodes)
    report = {
        "command": cfg.command(),
        "config": {**dataclasses.asdict(cfg), "policy_type": cfg.resolved_policy_type(), "latency_s": latency_s},
        "episodes": episodes,
        "summary": summary,
        "runner_stats": runner_totals(episodes),
        "wall_s": time.monotonic() - t_start,
    }
    report = _clean(report)
    (out / "report.json").write_text(json.dumps(report, indent=2, allow_nan=False) + "\n")
    draw_summary(report, out / "summary.png")
    log(format_summary(report))
    return report


def format_summary(report: dict[str, Any]) -> str:
    s = report["summary"]
    cfg = report["config"]
    lo, hi = s["ci95"]
    lines = [
        f"{cfg['policy_type']} on {cfg['task']} ({cfg['split']} phrasings), {s['n']} episodes "
        f"from seed {cfg['seed0']}, "
        f"{cfg['runner']} runner, latency {cfg['latency']}",
        f"success: {s['successes']}/{s['n']} = {100 * s['success_rate']:.1f}% (95% CI {100 * lo:.1f}-{100 * hi:.1f}%)",
    ]
    tts = s["time_to_success"]
    if tts["n"]:
        lines.append(f"time to success: median {tts['median']:.2f} s, p90 {tts['p90']:.2f} s")
    if s["faults"]:
        lines.append(f"servo faults: {s['faults']}")
    for name, rate in s["per_color"].items():
        lines.append(f"  {name:<6} {rate['successes']}/{rate['n']} = {100 * rate['success_rate']:.1f}%")
    for name, rate in s["per_instruction"].items():
        lines.append(f"  {name!r}: {rate['successes']}/{rate['n']} = {100 * rate['success_rate']:.1f}%")
    lines.append(f"report: {Path(cfg['output_dir']) / 'report.json'}")
    return "\n".join(lines)


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python numbers."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
