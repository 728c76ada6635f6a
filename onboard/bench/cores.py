"""Which cores a benchmark's processes run on (Linux ``sched_setaffinity``; standard library only)."""

from __future__ import annotations

import os


def usable_cores() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def split_cores(n: int) -> tuple[list[int], list[int]]:
    """(this process's cores, the rest's): the first ``n`` usable cores, and the others (all of them if none is
    left)."""
    usable = usable_cores()
    if n > len(usable):
        raise ValueError(f"--cpus {n}: only {len(usable)} cores are usable here ({usable})")
    return usable[:n], usable[n:] or usable


def pin_this_process(cpus: list[int]) -> None:
    """Every thread of this process onto ``cpus``; threads and child processes started later inherit the mask."""
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except ProcessLookupError:  # a thread that has just ended
            pass
