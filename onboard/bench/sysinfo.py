"""The machine a benchmark ran on: CPU, load, Python and package versions (``machine_info``), and the two lines every
benchmark prints about it (``machine_lines``). Standard library only; used by `onboard bench` (onboard/bench/policy.py
and sim/'s bus, loop and sim benchmarks)."""

from __future__ import annotations

import importlib.metadata
import os
import platform
from pathlib import Path


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, object]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "nproc": usable,
        "cpu_count": os.cpu_count(),
        "cpu": cpu,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "loadavg": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "versions": {
            d: _version(d) for d in ("onboard", "pyserial", "numpy", "lerobot", "feetech-servo-sdk", "mujoco")
        },
    }


def machine_lines(m: dict) -> list[str]:
    """The `machine:` and `python:` lines every benchmark prints (from ``machine_info()`` plus its "versions")."""
    versions = ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items() if v)
    after = f" (after: {m['loadavg_after']})" if m.get("loadavg_after") is not None else ""
    return [
        f"machine: {m['nproc']} CPUs usable ({m['cpu_count']} total), {m['cpu']}; {m['platform']}; "
        f"load average {m['loadavg']}{after}",
        f"python:  {m['implementation']} {m['python']}; {versions}",
    ]
