"""``AsyncRunner``: inference off the control thread ("thread" mode, the wall clock) or with emulated latency
("emulated" mode, the sim clock); chunks merged into the plan with latency compensation and blending, the next one
requested before the plan runs dry (``policies.runtime`` describes the timing)."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import numpy as np

from policies.base import ACTION_DIM, Policy
from policies.runtime.plan import BLENDS
from policies.runtime.runner import Clock, Latency, RunnerBase

MODES = ("thread", "emulated")


def _default_mode(clock: Clock) -> str:
    return "thread" if type(clock).__name__ == "WallClock" else "emulated"


class AsyncRunner(RunnerBase):
    """Inference off the control thread (module docstring). ``action_for(t, observation)`` once per control tick."""

    def __init__(
        self,
        policy: Policy,
        clock: Clock,
        rate_hz: float,
        *,
        latency: Latency = None,
        blend: str = "linear",
        blend_steps: int | None = 1,
        refill_at: int | None = None,
        mode: str | None = None,
        action_dim: int = ACTION_DIM,
    ):
        super().__init__(policy, clock, rate_hz, action_dim=action_dim)
        if blend not in BLENDS:
            raise ValueError(f"blend must be one of {BLENDS}, got {blend!r}")
        if refill_at is not None and refill_at < 0:
            raise ValueError(f"refill_at is a number of actions left (>= 0), got {refill_at}")
        if isinstance(latency, int | float) and not (latency >= 0 and math.isfinite(latency)):
            raise ValueError(f"latency must be >= 0 seconds, got {latency}")
        self.mode = mode or _default_mode(clock)
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES} or None, got {mode!r}")
        if self.mode == "thread" and latency is not None:
            raise ValueError(
                "a configured latency is emulated on the sim clock (mode='emulated'); in thread mode leave latency=None"
            )
        self.latency = latency
        self.blend = blend
        self.blend_steps = blend_steps
        self.refill_at = refill_at
        # emulated: (ready time, request time, request tick, result or exception)
        self._pending: tuple[float, float, int, Any] | None = None
        # thread mode
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._job: tuple[dict, float, int] | None = None
        self._done: tuple[float, float, int, Any] | None = None
        self._busy = False
        self._thread: threading.Thread | None = None
        self._stop = False

    # -- lifecycle ------------------------------------------------------------------------------------------------
    def start(self) -> AsyncRunner:
        if self.mode == "thread" and self._thread is None:
            self._stop = False
            self._thread = threading.Thread(target=self._worker, name="policy-infer", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout: float | None = 10.0) -> None:
        """Stop the worker thread (waits for an ``infer`` in progress, up to ``timeout``)."""
        if self._thread is not None:
            with self._lock:
                self._stop = True
                self._wake.notify_all()
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> AsyncRunner:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def reset(self, task: str) -> None:
        """New episode: waits for an inference in flight, drops the plan, calls ``policy.reset(task)``. Stats are kept
        (``self.stats = RunnerStats()`` to clear them)."""
        if self.mode == "thread":
            with self._lock:
                self._job = None
                while self._busy:
                    self._wake.wait(0.05)
                self._done = None
        self._pending = None
        self._reset_state()
        self.policy.reset(task)

    # -- the control tick -----------------------------------------------------------------------------------------
    def action_for(self, t: float, observation: dict) -> np.ndarray:
        """The action for the control tick at ``t`` (float32[action_dim]). Never blocks on inference."""
        if self.mode == "thread" and self._thread is None:
            self.start()
        n = self._start_tick(t)
        self._collect(t, n)
        if not self._in_flight() and self._plan.left(n) <= self._refill_threshold():
            self._request(t, n, observation)
            self._collect(t, n)  # zero latency: usable at once
        return self._serve(n, observation)

    def _refill_threshold(self) -> int:
        if self.refill_at is not None:
            return self.refill_at
        if isinstance(self.latency, int | float):  # fixed and known: exactly its ticks
            ticks = math.ceil(float(self.latency) * self.rate_hz - 1e-9)
        elif self.stats.latency_s:  # measured: its p99, plus a tick for the tail beyond it
            ticks = math.ceil(float(np.percentile(self.stats.latency_s[-200:], 99)) * self.rate_hz - 1e-9) + 1
        else:
            ticks = 0
        return max(2, ticks)

    def _in_flight(self) -> bool:
        if self.mode == "emulated":
            return self._pending is not None
        with self._lock:
            return self._job is not None or self._busy or self._done is not None

    def _latency_for(self, index: int, wall: float) -> float:
        if self.latency is None:
            return wall
        if callable(self.latency):
            lat = float(self.latency(index))
        else:
            lat = float(self.latency)
        if not (lat >= 0 and math.isfinite(lat)):
            raise ValueError(f"latency({index}) returned {lat}; want finite seconds >= 0")
        return lat

    def _request(self, t: float, n: int, observation: dict) -> None:
        index = self.stats.requests
        self.stats.requests += 1
        if self.mode == "thread":
            with self._lock:
                self._job = (observation, t, n)
                self._wake.notify_all()
            return
        w0 = time.perf_counter()
        try:
            result: Any = self.policy.infer(observation)
        except Exception as exc:  # any backend failure means: hold, count, go on
            result = exc
        wall = time.perf_counter() - w0
        self.stats.infer_wall_s.append(wall)
        self._pending = (t + self._latency_for(index, wall), t, n, result)

    def _collect(self, t: float, n: int) -> None:
        if self.mode == "emulated":
            if self._pending is None or t < self._pending[0] - 1e-9:
                return
            done, self._pending = self._pending, None
        else:
            with self._lock:
                done, self._done = self._done, None
            if done is None:
                return
        t_ready, t_req, n_req, result = done
        self.stats.latency_s.append(max(0.0, t_ready - t_req))
        self._merge(result, t_req, n_req, n)

    def _merge(self, result: Any, t_req: float, n_req: int, n: int) -> None:
        if isinstance(result, BaseException):
            self.stats.failures += 1
            self.stats._error(f"infer raised {type(result).__name__}: {result}")
            return
        chunk = self._check(result)
        if chunk is None:
            return
        base = n_req if chunk.t_obs is None else self.tick_of(chunk.t_obs)
        skipped = self._plan.merge(base, chunk.actions, n, self.blend, self.blend_steps)
        self.stats.skipped_actions += skipped
        if skipped >= len(chunk):
            self.stats.stale_chunks += 1
            return
        self.stats.chunks += 1
        self._had_chunk = True

    # -- thread mode ----------------------------------------------------------------------------------------------
    def _worker(self) -> None:
        while True:
            with self._lock:
                while self._job is None and not self._stop:
                    self._wake.wait()
                if self._stop:
                    return
                observation, t_req, n_req = self._job
                self._job = None
                self._busy = True
            w0 = time.perf_counter()
            try:
                result: Any = self.policy.infer(observation)
            except Exception as exc:
                result = exc
            wall = time.perf_counter() - w0
            t_done = self.clock.now()
            with self._lock:
                self.stats.infer_wall_s.append(wall)
                self._busy = False
                if not self._stop:
                    self._done = (t_done, t_req, n_req, result)
                self._wake.notify_all()
