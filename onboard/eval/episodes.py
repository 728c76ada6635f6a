"""Policies on the simulated SO-101 through the runtime (``policies.runtime``), and the scripted expert wrapped as a
chunking policy so the runtime can be tested without a trained model.

``ExpertChunkPolicy(env, horizon=30)`` predicts a chunk of ``horizon`` actions from an observation the way a
chunking policy does, by running a copy of the scripted expert forward open-loop:

- The expert is a closed-loop script (a generator with arrival and grasp checks), and generators cannot be copied,
  so the policy keeps the expert's input history instead and rebuilds the expert by replaying it (deterministic).
- History: one input per control tick since the episode start. At an ``infer`` at tick ``n`` the history keeps
  the inputs of ticks before ``n`` (those of the previous rollout: what the policy believed when it planned the
  actions now running, so the new chunk continues them), fills any gap with the present observation, and takes
  the observation for tick ``n``.
- Rollout: the replayed expert's output for tick ``n`` is action 0; actions 1..T-1 come from feeding it predicted
  inputs: the cube poses as observed; the arm joints held where they were observed (``predict_arm=False``: the
  expert then never believes a move arrived before an observation shows it, it waits) or at the previous goal
  (``predict_arm=True``: perfect one-tick tracking, optimistic); the gripper at the previous goal, except that it
  stops at ``JAW_ON_CUBE`` (measured: the jaw reading with a cube held) while the target cube is between the jaws
  (its centre within 3 cm of the tool point at the observed joints); while blocked on the cube, the gripper load as
  observed for three ticks and then in the middle of the expert's hold window (the load settles as the expert
  regulates its grip; held at its observed value the regulation would drift open over the whole rollout), else 0.

The expert reads privileged state (cube poses) from ``env`` at the moment ``infer`` is called, which on the sim clock
is the observation's capture time; the runtime's emulated latency then delays when the chunk becomes usable.

``run_episode_with_runner(env, policy, "async" | "sync", latency_s, spec, make_runner=...)`` runs one episode of
``SO101Env`` with the policy behind the runner that ``make_runner`` builds (``onboard.eval.factories.make_runner``:
the runtime's ``AsyncRunner`` or ``SyncRunner``) on the env's sim clock. After a blocking (sync) inference the episode
skips the control deadlines that passed meanwhile, as ``robot.loop.ControlLoop`` does after an overrun: the arm held
its last goal for that time.

Policies and runners come from factories the caller passes (``LoadPolicy``, ``MakeRunner`` below;
onboard/eval/factories.py implements them), so tests and scripts can hand in their own.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from hardware.feetech.errors import FeetechError
from policies.base import STATE_KEY, ActionChunk
from robot.errors import SafetyError
from sim import tasks as T
from sim.envs.env import SO101Env
from sim.expert import ARM, ExpertConfig, ExpertState, ScriptedExpert
from sim.twin.world import lerobot_to_qpos

JAW_ON_CUBE = 16.0  # gripper units: the jaw reading while the scripted expert holds a cube (~16.3 measured)


class Runner(Protocol):
    """What the episode loop needs of a runner (``policies.runtime.AsyncRunner`` / ``SyncRunner``)."""

    stats: Any  # .summary() -> dict

    def __enter__(self) -> Runner: ...

    def __exit__(self, *exc: Any) -> None: ...

    def reset(self, task: str) -> None: ...

    def action_for(self, t: float, observation: dict) -> np.ndarray: ...


class MakeRunner(Protocol):
    """``onboard.eval.factories.make_runner``: the "async" or "sync" runner around ``policy`` on ``clock``."""

    def __call__(
        self, kind: str, policy: Any, clock: Any, rate_hz: float, latency: float | None, **kwargs: Any
    ) -> Runner: ...


class LoadPolicy(Protocol):
    """``onboard.eval.factories.policy_and_size``: (policy, square camera size in px) of a backend kind and a path."""

    def __call__(self, kind: str, path: Any, *, threads: int | None = ...) -> tuple[Any, int]: ...


class ExpertChunkPolicy:
    """The scripted expert as a chunking ``Policy`` (module docstring). Privileged: it reads ``env``'s world."""

    def __init__(
        self, env: SO101Env, horizon: int = 30, config: ExpertConfig | None = None, *, predict_arm: bool = False
    ):
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        self.env = env.unwrapped if hasattr(env, "unwrapped") else env
        self.horizon = int(horizon)
        self.predict_arm = predict_arm
        self.config = config
        self.spec: T.TaskSpec | None = None
        self._t0 = 0.0
        self._inputs: list[ExpertState] = []  # committed: one per tick since the episode start
        self.task = ""
        self.expert: ScriptedExpert | None = None  # the last rollout's expert (for phase / attempts)

    def reset(self, task: str) -> None:
        """Call after ``env.reset``: the episode's spec and start time are taken from the env."""
        if self.env.spec_ is None:
            raise RuntimeError("reset the env before the policy")
        self.spec = self.env.spec_
        self.task = task
        self._t0 = self.env.clock.now()
        self._inputs = []
        self.expert = None

    def infer(self, observation: dict) -> ActionChunk:
        if self.spec is None:
            raise RuntimeError("call reset(task) before infer()")
        fps = self.env.fps
        t_obs = self.env.clock.now()
        n = max(0, math.floor((t_obs - self._t0) * fps + 0.5))
        world = self.env.world
        with world.lock:
            state = ExpertState.from_mjdata(world.model, world.data, joints=observation[STATE_KEY])
        # committed: what the expert saw up to tick n - 1 (the last rollout's inputs, so the new chunk continues the
        # actions already planned), held at the present observation over any gap, then the observation at tick n
        del self._inputs[n:]
        while len(self._inputs) < n:
            self._inputs.append(state)
        self._inputs.append(state)
        expert = ScriptedExpert(world.model, self.spec, self.config)
        expert.reset()
        out = None
        for k, s in enumerate(self._inputs):
            out = expert.act(_copy(s), k / fps)
        assert out is not None
        site, _ = expert.ik.fk(lerobot_to_qpos(state.joints))
        cube_between = float(np.linalg.norm(state.cubes[self.spec.color][0] - site)) < 0.03
        hold_load = 0.5 * sum(expert.config.hold_load)
        actions = [out]
        for k in range(1, self.horizon):
            joints = state.joints.copy()
            if self.predict_arm:
                joints[:ARM] = actions[-1][:ARM]
            jaw = float(actions[-1][5])
            joints[5] = max(jaw, min(JAW_ON_CUBE, float(state.joints[5]))) if cube_between else jaw
            blocked = cube_between and jaw < JAW_ON_CUBE
            load = state.gripper_load if (k <= 3 and state.gripper_load is not None) else hold_load
            predicted = dataclasses.replace(_copy(state, joints), gripper_load=load if blocked else 0.0)
            self._inputs.append(predicted)
            actions.append(expert.act(_copy(predicted), (n + k) / fps))
        self.expert = expert
        return ActionChunk(np.stack(actions).astype(np.float32), t_obs=t_obs, metadata={"phase": expert.phase})


def _copy(state: ExpertState, joints: np.ndarray | None = None) -> ExpertState:
    return dataclasses.replace(state, joints=(state.joints if joints is None else joints).copy())


@dataclass(frozen=True)
class RunnerEpisodeResult:
    spec: T.TaskSpec
    runner: str
    latency_s: float
    success: bool
    time_to_success: float | None  # s of episode time
    ticks: int  # control ticks run (actions sent)
    duration_s: float  # episode time at the end
    stats: dict[str, Any]  # the runner's RunnerStats.summary()
    fault: str | None = None  # a servo fault that ended the episode


def run_episode_with_runner(
    env: SO101Env,
    policy,
    runner_kind: str,
    latency_s: float | None,
    spec: T.TaskSpec,
    *,
    make_runner: MakeRunner,
    on_tick: Callable[[int], None] | None = None,
    **runner_kwargs,
) -> RunnerEpisodeResult:
    """One episode of ``spec`` on ``env`` with ``policy`` behind an "async" (``AsyncRunner``, emulated latency) or
    "sync" (``SyncRunner``) runner, built by ``make_runner``, at the env's control rate. ``latency_s``: emulated seconds
    per chunk (None: the wall time ``infer`` takes, for async; nothing for sync). ``on_tick(i)``: called before step
    ``i`` is sent (to look at the world, e.g. scripts/pick_roll.py). Ends on success or at the task's time limit."""
    base = env.unwrapped if hasattr(env, "unwrapped") else env
    clock = base.clock
    runner = make_runner(runner_kind, policy, clock, base.fps, latency_s, **runner_kwargs)
    obs, info = env.reset(seed=spec.seed, options={"spec": spec})
    ticks = 0
    success = False
    fault = None
    with runner:
        runner.reset(obs["task"])
        while True:
            action = runner.action_for(clock.now(), obs)
            if on_tick is not None:
                on_tick(ticks)
            _skip_missed_deadlines(base)
            try:
                obs, _, terminated, truncated, info = env.step(action)
            except (FeetechError, SafetyError) as exc:  # a servo protection or SafeArm stopped the arm: a failure
                fault = str(exc)
                _power_cycle(base)
                break
            ticks += 1
            if terminated or truncated:
                success = bool(info.get("is_success", False))
                break
    t_end = clock.now() - base._t0
    return RunnerEpisodeResult(
        spec=spec,
        runner=runner_kind,
        latency_s=float(latency_s or 0.0),
        success=success,
        time_to_success=t_end if success else None,
        ticks=ticks,
        duration_s=t_end,
        stats=runner.stats.summary(),
        fault=fault,
    )


def _power_cycle(env: SO101Env) -> None:
    """After a servo fault: switch the simulated arm off and on (clears the latched protection, as on the real arm)
    and reconnect, so the env can be reset for the next episode."""
    env.sim.bus.power_cycle()
    env.arm.disconnect()
    env.arm.connect()


def _skip_missed_deadlines(env: SO101Env) -> None:
    """After the control thread was blocked past the next step's deadline, resume on the schedule: the next step ends
    at the first deadline after now (no burst of zero-length steps to catch up)."""
    now = env.clock.now()
    if now > env._t0 + (env._steps + 1) / env.fps + 1e-9:
        env._steps = math.floor((now - env._t0) * env.fps + 1e-9)


def evaluate_checkpoint(
    checkpoint,
    *,
    load_policy: LoadPolicy,
    make_runner: MakeRunner,
    task: str = "pick",
    n: int = 10,
    seed0: int = 100_000,
    runner: str = "async",
    latency_s: float | None = 0.0,
) -> dict[str, Any]:
    """Success of a trained VLA checkpoint on ``n`` episodes of ``task`` (seeds from ``seed0``, never used by the
    data generation, which draws its layouts from small seeds), on the mirrored stack. For `onboard train`'s periodic
    evaluation. ``load_policy`` / ``make_runner``: ``onboard.eval.factories.policy_and_size`` / ``make_runner`` (the
    VLA is loaded as kind "vla")."""
    from sim.expert.harness import spec_for_seed

    policy, size = load_policy("vla", checkpoint)
    env = SO101Env(task=task, image_size=(size, size))
    try:
        results = [
            run_episode_with_runner(
                env, policy, runner, latency_s, spec_for_seed(task, seed0 + i), make_runner=make_runner
            )
            for i in range(n)
        ]
    finally:
        env.close()
    wins = sum(r.success for r in results)
    return {"task": task, "n": n, "success": wins, "success_rate": wins / max(1, n)}
