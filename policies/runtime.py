"""The runtime around a policy: chunk scheduling, latency compensation, blending, holding on failure.

    runner = AsyncRunner(policy, clock, rate_hz=30, latency=0.2)     # latency: None (measured), seconds, or a callable
    runner.reset("pick up the red cube")
    for each control tick at time t:
        action = runner.action_for(t, observation)                  # never blocks, always returns float32[6]
    runner.stats.summary()  # chunks, latency p50/p99, skipped actions, starved ticks, holds, failures

Time. Action ``k`` of a chunk computed from an observation captured at ``t_obs`` is meant for ``t_obs + k / rate``.
The runner numbers control ticks from the first ``action_for`` call (tick ``n`` at ``t_first + n / rate``) and keeps
one plan: the actions for tick ``n``, ``n + 1``, ... When a chunk becomes usable at tick ``n``, its actions for ticks
before ``n`` (their time passed while it was computed) are skipped and counted (latency compensation); where the rest
overlaps the actions still planned, old and new are blended: the new chunk's weight ramps up over the first
``blend_steps`` ticks of the overlap (None: the whole overlap), "linear"ly or "exponential"ly (1 - exp(-3 j / (steps
+ 1))), and is 1 after that ("replace": at once); beyond the overlap the new chunk's actions are appended. A
disagreement D between the chunks thus moves the executed actions by about D / (blend_steps + 1) per tick instead
of D at once, while new information takes over within ``blend_steps`` ticks. Default 1: the first overlapping tick
is the mean of old and new, the new chunk alone after that. The old plan was made from an older observation; a
longer ramp keeps the arm on it for longer, which cost pick success under latency (docs/design.md, "Chunk execution").

Refill. The next chunk is requested, with the observation of the present tick, as soon as no request is in flight and
at most ``refill_at`` actions are left in the plan, so the plan does not run dry while the policy works. Default:
the ticks that cover the configured latency, or the p99 latency seen so far plus one tick, and at least 2: the new
chunk arrives as the old one ends, so a chunk runs to its end (less the actions its own latency made stale), as
LeRobot's ACT runs its whole chunk (``n_action_steps = chunk_size``). Each replanning is a chance for this policy to
hesitate: replanning every half chunk (LeRobot's async ``chunk_size_threshold=0.5``) was measured at 5/50 pick
episodes against 25/50, and at 200 ms a margin of two more ticks cost 8 points (docs/design.md, "Chunk
execution"); pass ``refill_at`` for more frequent replanning.

Two ways to run inference (``mode``):

- "thread" (the wall clock): ``infer`` runs on a worker thread; ``action_for`` only hands it observations and picks up
  finished chunks. Latency is measured on the clock.
- "emulated" (the sim clock): ``infer`` is called at the request (it takes no sim time) and its chunk becomes usable
  at the first tick at or after ``t_request + latency``, where latency is the configured seconds, ``latency(i)`` for
  request ``i``, or (``latency=None``) the wall time ``infer`` took. With a configured latency the outcome is exactly
  reproducible. "will this policy still work on a device that takes 200 ms per chunk?" is answered here.

``mode=None`` picks "thread" for ``robot.clock.WallClock`` (by class name: policies/ imports nothing of robot/) and
"emulated" for any other clock.

Holding. When the plan is empty (before the first chunk, or when inference is late, fails, raises, or returns
non-finite or mis-shaped actions) the runner returns the last action it returned, or the observed joint state before
there is one: the arm holds still. A failed or non-finite chunk is dropped and counted; the planned actions that are
left still run, and the next request goes out on the next tick.

``SyncRunner`` is the synchronous baseline: when its plan is empty it calls ``infer`` on the control thread and
blocks, then runs the chunk from its first action (no compensation). On the sim clock a configured latency is spent
with ``clock.sleep_until(now + latency)``: the world moves on while the arm holds its last goal, as on a slow device.

This module imports numpy and the standard library only (no torch).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from policies.base import ACTION_DIM, STATE_KEY, ActionChunk, Policy

BLENDS = ("linear", "exponential", "replace")
MODES = ("thread", "emulated")
Latency = float | Callable[[int], float] | None


class _Clock(Protocol):
    def now(self) -> float: ...

    def sleep_until(self, t: float) -> None: ...


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


def _default_mode(clock: _Clock) -> str:
    return "thread" if type(clock).__name__ == "WallClock" else "emulated"


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


class _Plan:
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


class _RunnerBase:
    def __init__(self, policy: Policy, clock: _Clock, rate_hz: float, *, action_dim: int = ACTION_DIM):
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be positive, got {rate_hz}")
        self.policy = policy
        self.clock = clock
        self.rate_hz = float(rate_hz)
        self.action_dim = action_dim
        self.stats = RunnerStats()
        self._plan = _Plan()
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
        self._plan = _Plan()
        self._t_first = None
        self._last = None
        self._had_chunk = False

    def planned(self) -> int:
        """Actions left in the plan (from the last tick served)."""
        return len(self._plan.actions)


class AsyncRunner(_RunnerBase):
    """Inference off the control thread (module docstring). ``action_for(t, observation)`` once per control tick."""

    def __init__(
        self,
        policy: Policy,
        clock: _Clock,
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


class SyncRunner(_RunnerBase):
    """The synchronous baseline: infer on the control thread when the plan is empty, blocking; run the chunk from its
    first action. ``latency`` (seconds or ``latency(i)``) is spent on the clock (``sleep_until``) after each
    ``infer``: on the sim clock the world advances while the arm holds its last goal. ``latency=None``: only the time
    ``infer`` takes (nothing on the sim clock)."""

    def __init__(
        self,
        policy: Policy,
        clock: _Clock,
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
