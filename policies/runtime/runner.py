"""What the async and the sync runner share: the clock they run on, control tick numbering, checking a chunk, and
holding when there is no planned action."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from policies.base import ACTION_DIM, STATE_KEY, ActionChunk, Policy
from policies.runtime.plan import Plan
from policies.runtime.stats import RunnerStats

Latency = float | Callable[[int], float] | None


class Clock(Protocol):
    def now(self) -> float: ...

    def sleep_until(self, t: float) -> None: ...


class RunnerBase:
    def __init__(self, policy: Policy, clock: Clock, rate_hz: float, *, action_dim: int = ACTION_DIM):
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be positive, got {rate_hz}")
        self.policy = policy
        self.clock = clock
        self.rate_hz = float(rate_hz)
        self.action_dim = action_dim
        self.stats = RunnerStats()
        self._plan = Plan()
        self._t_first: float | None = None
        self._last: np.ndarray | None = None
        self._had_chunk = False

    # -- time ---------------------------------------------------------------------------------------------------
    def tick_of(self, t: float) -> int:
        """The control tick index of time ``t`` (ticks counted from the first ``action_for`` call)."""
        assert self._t_first is not None
        return math.floor((t - self._t_first) * self.rate_hz + 0.5)

    def _start_tick(self, t: float) -> int:
        if self._t_first is None:
            self._t_first = t
        return self.tick_of(t)

    # -- chunks ---------------------------------------------------------------------------------------------------
    def _check(self, result: Any) -> ActionChunk | None:
        """The chunk if it is usable, else None (counted)."""
        if not isinstance(result, ActionChunk):
            self.stats.failures += 1
            self.stats._error(f"infer returned {type(result).__name__}, not an ActionChunk")
            return None
        if result.actions.shape[1] != self.action_dim:
            self.stats.failures += 1
            self.stats._error(f"chunk actions have shape {result.actions.shape}, want (T, {self.action_dim})")
            return None
        if not result.finite:
            self.stats.nonfinite += 1
            self.stats._error("chunk has non-finite actions")
            return None
        return result

    def _hold(self, observation: dict | None) -> np.ndarray:
        if self._last is not None:
            return self._last.copy()
        state = None if observation is None else observation.get(STATE_KEY)
        if state is None:
            raise ValueError(
                f"nothing to hold: no action has been returned yet and the observation has no {STATE_KEY!r}"
            )
        return np.asarray(state, np.float32).reshape(self.action_dim).copy()

    def _serve(self, n: int, observation: dict | None) -> np.ndarray:
        self.stats.ticks += 1
        action = self._plan.actions[0].copy() if self._plan.left(n) else self._starved(observation)
        self._last = action
        return action.copy()

    def _starved(self, observation: dict | None) -> np.ndarray:
        """No planned action this tick: count it (warm-up before the first chunk, starved after) and hold."""
        if self._had_chunk:
            self.stats.starved_ticks += 1
        else:
            self.stats.warmup_ticks += 1
        return self._hold(observation)

    def _reset_state(self) -> None:
        self._plan = Plan()
        self._t_first = None
        self._last = None
        self._had_chunk = False

    def planned(self) -> int:
        """Actions left in the plan (from the last tick served)."""
        return len(self._plan.actions)
