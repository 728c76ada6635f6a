"""Timing one operation many times: latencies, CPU time per call and failures (``measure``), nearest-rank percentiles.
Standard library only; used by `onboard bench bus`."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable


def measure(op: Callable[[], bool], n: int, warmup: int, pace_s: float = 0.0) -> tuple[list[int], float, int]:
    """Run ``op`` ``warmup`` times, then ``n`` timed times, starting one at most every ``pace_s`` seconds (the wait
    is a sleep, neither timed nor spinning). ``op`` returns False on a failed transaction.
    Returns (latencies in ns, CPU ns per op of this process, failures)."""
    perf = time.perf_counter_ns
    pace_ns = int(pace_s * 1e9)
    next_start = 0

    def wait_turn() -> None:
        if pace_ns:
            left = next_start - perf()
            if left > 0:
                time.sleep(left / 1e9)

    for _ in range(warmup):
        wait_turn()
        next_start = perf() + pace_ns
        op()
    gc.collect()
    lat = [0] * n
    errors = 0
    cpu0 = time.process_time_ns()
    for i in range(n):
        wait_turn()
        t0 = perf()
        next_start = t0 + pace_ns
        ok = op()
        lat[i] = perf() - t0
        if not ok:
            errors += 1
    cpu = (time.process_time_ns() - cpu0) / n
    return lat, cpu, errors


def percentile(sorted_values: list[int], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    k = max(0, min(len(sorted_values) - 1, round(q * (len(sorted_values) - 1))))
    return float(sorted_values[k])
