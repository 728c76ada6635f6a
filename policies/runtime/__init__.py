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

Where things are: ``async_runner`` (``AsyncRunner``), ``sync_runner`` (``SyncRunner``), ``runner`` (what both share:
tick numbering, checking a chunk, holding), ``plan`` (the plan of actions per tick and the blending of a new chunk into
it), ``stats`` (``RunnerStats``, ``percentiles``).

This package imports numpy and the standard library only (no torch).
"""

from policies.runtime.async_runner import MODES, AsyncRunner
from policies.runtime.plan import BLENDS, blend_weights
from policies.runtime.runner import Latency
from policies.runtime.stats import RunnerStats, percentiles
from policies.runtime.sync_runner import SyncRunner

__all__ = ["BLENDS", "MODES", "AsyncRunner", "Latency", "RunnerStats", "SyncRunner", "blend_weights", "percentiles"]
