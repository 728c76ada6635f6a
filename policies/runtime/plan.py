"""The plan: the actions for the coming control ticks, and how a new chunk is merged into it (latency compensation
and blending, described in ``policies.runtime``)."""

from __future__ import annotations

import numpy as np

from policies.base import ACTION_DIM

BLENDS = ("linear", "exponential", "replace")


def blend_weights(n: int, kind: str, steps: int | None = None) -> np.ndarray:
    """Weights (n,) of the new chunk over an overlap of ``n`` ticks (the old plan gets ``1 - w``). The new chunk's
    weight ramps up over the first ``steps`` ticks of the overlap (None: the whole overlap), then is 1."""
    if n <= 0:
        return np.zeros(0)
    r = n if steps is None else max(0, min(int(steps), n))
    j = np.arange(1, n + 1, dtype=np.float64)
    if kind == "replace" or r == 0:
        return np.ones(n)
    if kind == "linear":
        return np.minimum(1.0, j / (r + 1))
    if kind == "exponential":
        w = 1.0 - np.exp(-3.0 * j / (r + 1))
        w[r:] = 1.0
        return w
    raise ValueError(f"blend must be one of {BLENDS}, got {kind!r}")


class Plan:
    """The actions for ticks ``start``, ``start + 1``, ... (float32 rows)."""

    def __init__(self) -> None:
        self.start = 0
        self.actions = np.zeros((0, ACTION_DIM), np.float32)

    def trim(self, n: int) -> None:
        """Drop the actions of ticks before ``n``."""
        drop = min(max(0, n - self.start), len(self.actions))
        self.actions = self.actions[drop:]
        self.start = max(self.start, n) if len(self.actions) else n

    def left(self, n: int) -> int:
        self.trim(n)
        return len(self.actions)

    def merge(self, base: int, actions: np.ndarray, n: int, blend: str, blend_steps: int | None = None) -> int:
        """Merge a chunk whose first action is for tick ``base``, at tick ``n``; return how many actions were
        skipped as stale."""
        self.trim(n)
        stale = min(max(0, n - base), len(actions))
        new = actions[stale:]
        if len(new) == 0:
            return stale
        first = base + stale  # == n: a chunk is never for the future
        if len(self.actions) == 0 or self.start > first:
            self.start, self.actions = first, new.copy()
            return stale
        old = self.actions[first - self.start :]
        head = self.actions[: first - self.start]
        m = min(len(old), len(new))
        w = blend_weights(m, blend, blend_steps)[:, None]
        mixed = ((1.0 - w) * old[:m] + w * new[:m]).astype(np.float32)
        tail = new[m:] if len(new) >= len(old) else old[m:]
        self.actions = np.concatenate([head, mixed, tail]).astype(np.float32)
        return stale
