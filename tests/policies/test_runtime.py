"""The policy runtime (policies/runtime/): timing on a fake sim clock (exact), one wall-clock thread smoke test, and
the scripted expert as a chunking policy on SO101Env."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from policies.base import ActionChunk, Policy, fake_observation
from policies.runtime import AsyncRunner, SyncRunner, blend_weights

RATE = 30.0
DT = 1.0 / RATE


class FakeClock:
    """A sim clock: ``sleep_until`` jumps."""

    def __init__(self, t: float = 100.0):
        self.t = t

    def now(self) -> float:
        return self.t

    def sleep_until(self, t: float) -> None:
        self.t = max(self.t, t)


class RampPolicy:
    """Chunks whose action k is ``value(tick of the observation + k)`` on every joint: the time an action was meant
    for can be read off it. ``offset`` shifts each new chunk (to see blending); ``fail`` / ``nan``: request indices
    that raise or return NaN."""

    def __init__(self, clock, horizon=20, offset=0.0, fail=(), nan=(), t0=100.0, delay_s=0.0):
        self.clock, self.horizon, self.offset, self.t0 = clock, horizon, offset, t0
        self.fail, self.nan, self.delay_s = set(fail), set(nan), delay_s
        self.calls: list[float] = []
        self.tasks: list[str] = []

    def reset(self, task: str) -> None:
        self.tasks.append(task)

    def infer(self, observation: dict) -> ActionChunk:
        i = len(self.calls)
        t = self.clock.now()
        self.calls.append(t)
        if self.delay_s:
            time.sleep(self.delay_s)
        if i in self.fail:
            raise RuntimeError("backend exploded")
        n = round((t - self.t0) * RATE)
        a = np.repeat((n + np.arange(self.horizon, dtype=np.float32))[:, None], 6, axis=1) + self.offset * i
        if i in self.nan:
            a[3, 2] = np.nan
        return ActionChunk(a, t_obs=t)


def run(runner, clock, ticks, obs=None):
    obs = obs or fake_observation(state=np.full(6, -1.0))
    out = []
    for i in range(ticks):
        t = 100.0 + i * DT
        clock.sleep_until(t)
        out.append(runner.action_for(clock.now(), obs))
    return np.array(out)


def test_policy_protocol_and_fake_observation():
    obs = fake_observation()
    assert obs["observation.state"].dtype == np.float32 and obs["observation.state"].shape == (6,)
    assert obs["observation.images.front"].dtype == np.uint8 and obs["observation.images.front"].shape == (96, 96, 3)
    assert isinstance(obs["task"], str)
    assert isinstance(RampPolicy(FakeClock()), Policy)
    chunk = ActionChunk(np.zeros((4, 6), np.float64), t_obs=1.0)
    assert chunk.actions.dtype == np.float32 and len(chunk) == 4 and chunk.finite
    with pytest.raises(ValueError):
        ActionChunk(np.zeros(6))


def test_zero_latency_runs_every_action_in_order():
    clock = FakeClock()
    runner = AsyncRunner(RampPolicy(clock), clock, RATE, latency=0.0, mode="emulated")
    runner.reset("t")
    out = run(runner, clock, 60)
    np.testing.assert_array_equal(out[:, 0], np.arange(60))  # action for tick n is the one meant for tick n
    s = runner.stats
    assert s.skipped_actions == 0 and s.holds == 0 and s.failures == 0


@pytest.mark.parametrize(("latency_s", "left"), [(0.0, 2), (0.2, 6)])
def test_default_refill_runs_a_chunk_until_only_the_latency_is_left(latency_s, left):
    """The next chunk is requested when the actions left just cover the latency (at least 2): a chunk is executed to
    its end (as LeRobot's ACT runs its whole chunk), not replanned early, which kept a model trained on whole
    demonstrations hesitating (measured on the bundled model: docs/design.md, "Chunk execution")."""
    clock = FakeClock()
    policy = RampPolicy(clock, horizon=20)
    runner = AsyncRunner(policy, clock, RATE, latency=latency_s, mode="emulated")
    runner.reset("t")
    out = run(runner, clock, 120)
    ticks = [round((t - 100.0) * RATE) for t in policy.calls]
    lat = round(latency_s * RATE)
    assert ticks[:4] == [k * (20 - left) for k in range(4)]  # each chunk planned 20 ticks from its request
    assert runner.stats.starved_ticks == 0
    np.testing.assert_array_equal(out[lat:, 0], np.arange(lat, 120))


def test_default_refill_with_a_varying_latency_adds_a_tick_to_its_p99():
    """A latency that is measured (or varies per request) may run past its p99: the next chunk is asked for one
    tick earlier than the p99 alone would say, and the plan still does not run dry."""
    clock = FakeClock()
    policy = RampPolicy(clock, horizon=20)
    runner = AsyncRunner(policy, clock, RATE, latency=lambda i: 0.2, mode="emulated")
    runner.reset("t")
    run(runner, clock, 120)
    ticks = [round((t - 100.0) * RATE) for t in policy.calls]
    assert np.diff(ticks)[1:5].tolist() == [20 - 7] * 4  # 6 ticks of latency + 1: requested with 7 actions left
    assert runner.stats.starved_ticks == 0


@pytest.mark.parametrize("latency_ticks", [1, 3, 6])
def test_latency_compensation_skips_exactly_the_stale_actions(latency_ticks):
    clock = FakeClock()
    policy = RampPolicy(clock, horizon=20)
    runner = AsyncRunner(policy, clock, RATE, latency=latency_ticks * DT, mode="emulated", refill_at=8)
    runner.reset("t")
    out = run(runner, clock, 90)
    s = runner.stats
    # before the first chunk arrives: hold the observed state
    assert s.warmup_ticks == latency_ticks
    np.testing.assert_array_equal(out[:latency_ticks, 0], -1.0)
    # from then on, the action at tick n is the one meant for tick n: stale ones were skipped, never replayed late
    np.testing.assert_array_equal(out[latency_ticks:, 0], np.arange(latency_ticks, 90))
    assert s.skipped_actions == latency_ticks * s.chunks
    assert s.starved_ticks == 0
    assert s.summary()["latency_s"]["p50"] == pytest.approx(latency_ticks * DT)


def test_next_chunk_is_requested_before_the_queue_runs_dry():
    clock = FakeClock()
    policy = RampPolicy(clock, horizon=20)
    runner = AsyncRunner(policy, clock, RATE, latency=0.1, mode="emulated", refill_at=7)
    runner.reset("t")
    left_at_request = []
    obs = fake_observation()
    for i in range(120):
        clock.sleep_until(100.0 + i * DT)
        before = len(policy.calls)
        runner._plan.trim(round((clock.now() - 100.0) * RATE))
        left = runner.planned()
        runner.action_for(clock.now(), obs)
        if len(policy.calls) > before and i > 0:
            left_at_request.append(left)
    assert left_at_request and all(0 < left <= 7 for left in left_at_request)
    assert runner.stats.starved_ticks == 0


def test_default_refill_covers_the_latency_at_200ms():
    """No control period goes without an action at 200 ms emulated latency with the default refill threshold."""
    clock = FakeClock()
    policy = RampPolicy(clock, horizon=12)  # a chunk (400 ms) barely longer than two latencies
    runner = AsyncRunner(policy, clock, RATE, latency=0.2, mode="emulated")
    runner.reset("t")
    out = run(runner, clock, 300)
    s = runner.stats
    assert out.shape == (300, 6) and np.isfinite(out).all()
    assert s.ticks == 300 and s.starved_ticks == 0 and s.warmup_ticks == 6
    np.testing.assert_array_equal(out[6:, 0], np.arange(6, 300))


@pytest.mark.parametrize("blend", ["linear", "exponential"])
def test_blending_is_continuous_across_chunk_boundaries(blend):
    clock = FakeClock()
    offset = 10.0  # each new chunk disagrees with the previous one by 10 units
    policy = RampPolicy(clock, horizon=30, offset=offset)
    runner = AsyncRunner(policy, clock, RATE, latency=0.1, mode="emulated", refill_at=15, blend=blend, blend_steps=9)
    runner.reset("t")
    out = run(runner, clock, 150)[3:, 0]  # after warm-up
    steps = np.diff(out)
    # without blending each boundary jumps by 1 + offset; blended, the offset is spread over the ramp
    assert steps.max() <= 1.0 + offset * 0.55
    assert steps.min() >= 0.99
    # and the new chunk has fully taken over after the ramp: the plan follows the latest chunk's values
    assert runner.stats.chunks >= 5
    replace = AsyncRunner(RampPolicy(clock := FakeClock(), 30, offset), clock, RATE, latency=0.1, mode="emulated")
    replace.blend, replace.refill_at = "replace", 15
    replace.reset("t")
    assert np.diff(run(replace, clock, 150)[3:, 0]).max() == pytest.approx(1.0 + offset)


def test_blend_weights():
    w = blend_weights(4, "linear", None)
    np.testing.assert_allclose(w, [0.2, 0.4, 0.6, 0.8])
    np.testing.assert_allclose(blend_weights(6, "linear", 2), [1 / 3, 2 / 3, 1, 1, 1, 1])
    e = blend_weights(10, "exponential", 5)
    assert (np.diff(e) >= 0).all() and e[5:].min() == 1.0 and e[0] > 0
    np.testing.assert_array_equal(blend_weights(3, "replace"), 1.0)


def test_failure_and_nan_hold_and_are_counted():
    clock = FakeClock()
    policy = RampPolicy(clock, horizon=6, fail={1, 2}, nan={4})
    runner = AsyncRunner(policy, clock, RATE, latency=2 * DT, mode="emulated", refill_at=2)
    runner.reset("t")
    out = run(runner, clock, 40)
    s = runner.stats
    assert s.failures == 2 and s.nonfinite == 1 and len(s.errors) == 3
    assert np.isfinite(out).all() and out.shape == (40, 6)
    assert s.starved_ticks > 0  # the plan ran dry while the failing requests were retried: held
    # a held tick repeats the last action (the arm stays where it was sent)
    held = np.flatnonzero(np.all(np.diff(out, axis=0) == 0, axis=1))
    assert len(held) >= s.starved_ticks - 1
    assert s.chunks >= 3  # it recovered


def test_exception_from_policy_never_reaches_the_control_loop_without_state():
    clock = FakeClock()
    policy = RampPolicy(clock, fail=set(range(100)))
    runner = AsyncRunner(policy, clock, RATE, latency=0.0, mode="emulated")
    runner.reset("t")
    out = run(runner, clock, 10, obs=fake_observation(state=np.arange(6)))
    np.testing.assert_array_equal(out, np.tile(np.arange(6, dtype=np.float32), (10, 1)))  # held the observed state
    assert runner.stats.failures == 10 and runner.stats.warmup_ticks == 10


def test_sync_runner_stalls_the_clock_and_runs_chunks_from_the_start():
    clock = FakeClock()
    policy = RampPolicy(clock, horizon=10)
    runner = SyncRunner(policy, clock, RATE, latency=0.2)
    runner.reset("t")
    obs = fake_observation()
    out = []
    for _ in range(25):
        clock.sleep_until(clock.now() + DT)
        out.append(runner.action_for(clock.now(), obs)[0])
    s = runner.stats
    assert s.chunks == 3 and s.stall_s == pytest.approx(0.6)
    assert s.summary()["latency_s"]["p50"] == pytest.approx(0.2)
    # each chunk runs from its first action (meant for the observation's tick: no compensation)
    assert out[0] == round((policy.calls[0] - 100.0) * RATE) and out[10] == round((policy.calls[1] - 100.0) * RATE)
    assert s.holds == 0 and s.skipped_actions == 0


def test_thread_mode_with_a_slow_policy_never_blocks():
    """Wall clock: behaviour only (no speed asserts)."""

    class WallClock:  # the name picks thread mode, as for robot.clock.WallClock
        def now(self):
            return time.monotonic()

        def sleep_until(self, t):
            time.sleep(max(0.0, t - time.monotonic()))

    clock = WallClock()
    gate = threading.Event()

    class Slow:
        def __init__(self):
            self.calls = 0

        def reset(self, task):
            pass

        def infer(self, observation):
            self.calls += 1
            gate.wait(5.0)
            if self.calls == 2:
                raise RuntimeError("flaky")
            return ActionChunk(np.full((8, 6), float(self.calls), np.float32))

    policy = Slow()
    with AsyncRunner(policy, clock, 100.0, refill_at=4) as runner:
        assert runner.mode == "thread"
        runner.reset("t")
        obs = fake_observation(state=np.full(6, 7.0))
        # while the first inference is stuck, every tick still gets an action: the held observed state
        for _ in range(5):
            np.testing.assert_array_equal(runner.action_for(clock.now(), obs), 7.0)
        gate.set()
        deadline = time.monotonic() + 10.0
        seen = set()
        while time.monotonic() < deadline and policy.calls < 4:
            a = runner.action_for(clock.now(), obs)
            seen.add(float(a[0]))
            time.sleep(0.002)
        stats = runner.stats
    assert policy.calls >= 4 and stats.chunks >= 2 and stats.failures == 1
    assert 1.0 in seen and stats.warmup_ticks >= 5
    assert stats.summary()["latency_s"]["n"] >= 3
    assert runner._thread is None  # closed


def test_runtime_does_not_import_torch():
    code = "import sys, policies.runtime, policies.base; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ----------------------------------------------------------------------------------------------------------------------
# The scripted expert as a chunking policy on the simulated arm


@pytest.fixture(scope="module")
def pick_env():
    from sim.envs.env import SO101Env

    env = SO101Env(task="pick")
    yield env
    env.close()


def test_expert_chunk_policy_at_200ms_succeeds_async_and_runs_out_of_time_sync(pick_env):
    """The runtime's reason to exist, on the sim clock (exact, so the outcomes are known values on these seeds): at
    200 ms per chunk the async runner hides the latency and the expert picks the cube every time; the sync runner
    stops the arm for each inference (6 control ticks per chunk) and the expert runs out of time on every seed. At
    100 ms the sync runner still gets there."""
    from onboard.eval.episodes import ExpertChunkPolicy, run_episode_with_runner
    from onboard.eval.factories import make_runner
    from sim.expert.harness import spec_for_seed

    policy = ExpertChunkPolicy(pick_env, horizon=30)

    def episode(kind, latency_s, seed):
        return run_episode_with_runner(
            pick_env, policy, kind, latency_s, spec_for_seed("pick", seed), make_runner=make_runner
        )

    for seed in range(3):
        r = episode("async", 0.2, seed)
        assert r.success, (r.spec, r.stats, r.fault)
        assert r.stats["starved_ticks"] == 0 and r.stats["warmup_ticks"] == 6
        assert r.stats["skipped_actions"] == 6 * r.stats["chunks"]
    for seed in range(3):
        r = episode("sync", 0.2, seed)
        assert not r.success and r.fault is None, (r.spec, r.stats, r.fault)
        assert r.duration_s == pytest.approx(r.spec.max_duration_s, abs=1e-6)  # to the time limit
        assert r.stats["requests"] == r.stats["chunks"] == 9
        assert r.stats["stall_s"] == pytest.approx(0.2 * 9)
        # the episode's time is its control ticks plus the stalls: 6 ticks stopped per inference
        assert r.ticks + 6 * r.stats["requests"] == round(r.spec.max_duration_s * RATE)
        assert r.stats["skipped_actions"] == 0 and r.stats["warmup_ticks"] == 0  # chunks run from their start
    r = episode("sync", 0.1, 1)
    assert r.success and r.fault is None, (r.spec, r.stats)
    assert r.stats["stall_s"] == pytest.approx(0.1 * r.stats["requests"])
