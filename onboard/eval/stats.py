"""The numbers of an evaluation report: success rates with their 95 % Wilson interval (overall, per colour, per
instruction), time to success, and the runner's counters summed over episodes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95 % by default); (0, 1) when n == 0."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    lo = 0.0 if successes <= 0 else max(0.0, centre - half)
    hi = 1.0 if successes >= n else min(1.0, centre + half)
    return lo, hi


def _rate(results: list[dict]) -> dict[str, Any]:
    k = sum(r["success"] for r in results)
    n = len(results)
    lo, hi = wilson_interval(k, n)
    return {"n": n, "successes": k, "success_rate": k / n if n else 0.0, "ci95": [lo, hi]}


def summarize(episodes: list[dict]) -> dict[str, Any]:
    """Success rate with its 95 % Wilson interval (overall, per colour, per instruction) and time to success."""
    times = [e["time_to_success"] for e in episodes if e["success"] and e["time_to_success"] is not None]
    summary = _rate(episodes)
    summary["time_to_success"] = {
        "n": len(times),
        "median": float(np.median(times)) if times else None,
        "p90": float(np.percentile(times, 90)) if times else None,
    }
    summary["faults"] = sum(e["fault"] is not None for e in episodes)
    for key, name in (("color", "per_color"), ("instruction", "per_instruction")):
        groups: dict[str, list[dict]] = {}
        for e in episodes:
            groups.setdefault(e[key], []).append(e)
        summary[name] = {g: _rate(rs) for g, rs in sorted(groups.items())}
    return summary


def runner_totals(episodes: list[dict]) -> dict[str, Any]:
    """The runner's counters summed over episodes, and latency / infer wall time percentiles of the per-episode
    medians."""
    totals: dict[str, Any] = {}
    for e in episodes:
        for k, v in e["runner_stats"].items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                totals[k] = totals.get(k, 0) + v
    for k in ("latency_s", "infer_wall_s"):
        medians = [e["runner_stats"].get(k, {}).get("p50") for e in episodes]
        medians = [m for m in medians if m is not None and math.isfinite(m)]
        totals[f"{k}_p50_median"] = float(np.median(medians)) if medians else None
        totals[f"{k}_p50_max"] = float(np.max(medians)) if medians else None
    return totals
