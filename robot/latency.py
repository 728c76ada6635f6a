"""Inference latency as the command line writes it, one grammar for `onboard run`, `eval` and `demo`."""

from __future__ import annotations

import re

_LATENCY = re.compile(r"([0-9]*\.?[0-9]+(?:e-?[0-9]+)?)\s*(ms|s)?")


def parse_latency(text: str | float | None) -> float | None:
    """ "200ms", "0.2s", "0.2" or 0.2 (a bare number is seconds) -> seconds; "wall" / "measured" / "none" and None ->
    None (the wall time inference really takes)."""
    if text is None:
        return None
    if isinstance(text, int | float):
        return float(text)
    s = str(text).strip().lower()
    if s in ("wall", "none", "measured"):
        return None
    m = _LATENCY.fullmatch(s)
    if not m:
        raise ValueError(f"--latency must look like 200ms, 0.2s or 0.2 (seconds), or 'wall'; got {text!r}")
    value = float(m.group(1))
    return value / 1000.0 if m.group(2) == "ms" else value
