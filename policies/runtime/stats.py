"""What a runner did: ``RunnerStats`` (counters and latency samples) and ``percentiles`` (also the control loop's)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def percentiles(samples) -> dict[str, float]:
    """{"p50", "p99", "max", "mean", "n"} of a series (NaN when empty)."""
    a = np.asarray(list(samples), dtype=np.float64)
    if a.size == 0:
        return {"p50": math.nan, "p99": math.nan, "max": math.nan, "mean": math.nan, "n": 0}
    return {
        "p50": float(np.percentile(a, 50)),
        "p99": float(np.percentile(a, 99)),
        "max": float(a.max()),
        "mean": float(a.mean()),
        "n": int(a.size),
    }


@dataclass
class RunnerStats:
    """What a runner did. ``latency_s``: request to usable (on the runner's clock; emulated latency on the sim
    clock); ``infer_wall_s``: wall time of the ``infer`` calls themselves."""

    ticks: int = 0
    requests: int = 0
    chunks: int = 0  # chunks merged into the plan
    skipped_actions: int = 0  # actions whose time had passed when their chunk became usable
    stale_chunks: int = 0  # chunks that were wholly stale (every action skipped)
    warmup_ticks: int = 0  # ticks held before the first chunk arrived
    starved_ticks: int = 0  # ticks held after the first chunk because the plan was empty
    failures: int = 0  # infer raised, or returned something that is not a (T, 6) chunk
    nonfinite: int = 0  # chunks with NaN / inf actions
    stall_s: float = 0.0  # SyncRunner: clock time the control thread spent blocked in inference
    latency_s: list[float] = field(default_factory=list)
    infer_wall_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # the last few failure messages

    @property
    def holds(self) -> int:
        """Ticks served by holding (warm-up and starved)."""
        return self.warmup_ticks + self.starved_ticks

    def summary(self) -> dict[str, Any]:
        return {
            "ticks": self.ticks,
            "requests": self.requests,
            "chunks": self.chunks,
            "skipped_actions": self.skipped_actions,
            "stale_chunks": self.stale_chunks,
            "warmup_ticks": self.warmup_ticks,
            "starved_ticks": self.starved_ticks,
            "holds": self.holds,
            "failures": self.failures,
            "nonfinite": self.nonfinite,
            "stall_s": self.stall_s,
            "latency_s": percentiles(self.latency_s),
            "infer_wall_s": percentiles(self.infer_wall_s),
        }

    def _error(self, msg: str) -> None:
        self.errors = [*self.errors[-9:], msg]
