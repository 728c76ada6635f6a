"""``SyncRunner``: the synchronous baseline, inference on the control thread when the plan is empty."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from policies.base import ACTION_DIM, Policy
from policies.runtime.runner import Clock, Latency, RunnerBase


class SyncRunner(RunnerBase):
    """The synchronous baseline: infer on the control thread when the plan is empty, blocking; run the chunk from its
    first action. ``latency`` (seconds or ``latency(i)``) is spent on the clock (``sleep_until``) after each
    ``infer``: on the sim clock the world advances while the arm holds its last goal. ``latency=None``: only the time
    ``infer`` takes (nothing on the sim clock)."""

    def __init__(
        self,
        policy: Policy,
        clock: Clock,
        rate_hz: float,
        *,
        latency: Latency = None,
        action_dim: int = ACTION_DIM,
    ):
        super().__init__(policy, clock, rate_hz, action_dim=action_dim)
        self.latency = latency
        self._queue: list[np.ndarray] = []

    def reset(self, task: str) -> None:
        self._reset_state()
        self._queue = []
        self.policy.reset(task)

    def start(self) -> SyncRunner:
        return self

    def close(self) -> None:
        pass

    def __enter__(self) -> SyncRunner:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def action_for(self, t: float, observation: dict) -> np.ndarray:
        """The next queued action; when none is left, infer first (blocking)."""
        self._start_tick(t)
        if not self._queue:
            index = self.stats.requests
            self.stats.requests += 1
            c0, w0 = self.clock.now(), time.perf_counter()
            try:
                result: Any = self.policy.infer(observation)
            except Exception as exc:
                result = exc
            self.stats.infer_wall_s.append(time.perf_counter() - w0)
            if self.latency is not None:
                lat = float(self.latency(index) if callable(self.latency) else self.latency)
                self.clock.sleep_until(c0 + lat)
            c1 = self.clock.now()
            self.stats.latency_s.append(c1 - c0)
            self.stats.stall_s += c1 - c0
            if isinstance(result, BaseException):
                self.stats.failures += 1
                self.stats._error(f"infer raised {type(result).__name__}: {result}")
            else:
                chunk = self._check(result)
                if chunk is not None:
                    # no latency compensation: the chunk runs from its first action, one per call
                    self._queue = list(chunk.actions)
                    self.stats.chunks += 1
                    self._had_chunk = True
        self.stats.ticks += 1
        action = np.array(self._queue.pop(0), np.float32) if self._queue else self._starved(observation)
        self._last = action
        return action.copy()

    def planned(self) -> int:
        return len(self._queue)
