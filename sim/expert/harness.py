"""Runs the scripted expert's episodes: an executor turns its joint goals into motion, ``run_episode`` scores one.

An executor has a small interface (``reset(spec)``, ``observe()``, ``apply(goal)``, ``time``, ``model``, ``data``,
``control_hz``; ``Executor``), and ``ScriptedExpert.act`` never learns which one runs it:

- ``DirectExecutor`` applies the goals to the position actuators of scene.xml (``ctrl = lerobot_to_qpos(goal)``, held
  between control ticks, 500 Hz physics);
- ``DegradedExecutor`` makes that worse in the ways servos are (soft gains, quantised noisy delayed readings,
  overload protection), to check that the expert does not depend on exact tracking;
- ``EnvExecutor`` runs the full mirrored stack: the goals go into ``SO101Env`` (the Arm, the Feetech driver, emulated
  STS3215 servos on MuJoCo joints), and the expert sees the joints as the servos report them, so the expert is
  measured exactly as a policy would be.

``spec_for_seed`` names evaluation episode ``seed`` of a task; ``run_episode(spec, executor=...)`` runs the expert on
it until success has held for the task's ``success_hold_s`` or the time limit. ``onboard.eval.expert`` aggregates
episodes into success rates.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import mujoco
import numpy as np

from sim import tasks as T
from sim.envs.env import SO101Env
from sim.expert.config import ExpertConfig
from sim.expert.script import ScriptedExpert
from sim.expert.state import STALL_TORQUE, ExpertState
from sim.twin import world


class Executor(Protocol):
    """Executes joint goals (LeRobot units) on a simulated world, one control period per ``apply``."""

    model: mujoco.MjModel
    data: mujoco.MjData
    control_hz: float

    def reset(self, spec: T.TaskSpec) -> None: ...

    def observe(self) -> mujoco.MjData | ExpertState: ...

    def apply(self, goal: np.ndarray) -> None: ...

    @property
    def time(self) -> float: ...


class DirectExecutor:
    """Goals straight to scene.xml's position actuators: ``ctrl = lerobot_to_qpos(goal)`` held for one control
    period (``control_hz``), the physics stepping at the model's timestep in between."""

    def __init__(
        self, model: mujoco.MjModel | None = None, control_hz: float = 30.0, layout: T.LayoutConfig = T.DEFAULT_LAYOUT
    ) -> None:
        self.model = model if model is not None else world.load_model()
        self.data = mujoco.MjData(self.model)
        self.control_hz = control_hz
        self.layout = layout
        self._tick = 0
        self._lo = self.model.actuator_ctrlrange[:, 0].copy()
        self._hi = self.model.actuator_ctrlrange[:, 1].copy()

    def reset(self, spec: T.TaskSpec) -> None:
        spec.reset(self.model, self.data, self.layout)
        self._tick = 0

    def observe(self) -> mujoco.MjData:
        return self.data

    def apply(self, goal: np.ndarray) -> None:
        self.data.ctrl[:6] = np.clip(world.lerobot_to_qpos(goal), self._lo[:6], self._hi[:6])
        dt = self.model.opt.timestep
        n = round((self._tick + 1) / self.control_hz / dt) - round(self._tick / self.control_hz / dt)
        mujoco.mj_step(self.model, self.data, nstep=n)
        self._tick += 1

    @property
    def time(self) -> float:
        return self._tick / self.control_hz


class DegradedExecutor(DirectExecutor):
    """``DirectExecutor`` made worse in the ways servos are, to check that the expert does not depend on exact
    tracking (a crude stand-in for the emulated STS3215 stack, not a model of it): softer position gains
    (``kp_scale``), the gripper's force limit cut to ``gripper_torque`` of the XML's, goals quantised to
    ``steps_per_rev`` and slewed at ``max_speed`` deg/s, and joint readings quantised, noisy by +-``noise_steps``
    and ``obs_delay`` ticks old (noise drawn from ``seed`` and the episode's seed). Overload protection as the
    STS3215 has it: a joint whose load (actuator torque / 2.94 N*m stall) stays above ``overload`` (LeRobot: 25 % on
    the gripper; factory 80 %) for ``protection_time`` s goes limp for the rest of the episode (``faults()``)."""

    def __init__(
        self,
        model: mujoco.MjModel | None = None,
        control_hz: float = 30.0,
        layout: T.LayoutConfig = T.DEFAULT_LAYOUT,
        *,
        kp_scale: float = 0.5,
        gripper_torque: float = 0.5,
        max_speed: float = 200.0,
        steps_per_rev: int = 4096,
        noise_steps: int = 1,
        obs_delay: int = 1,
        overload: Sequence[float] = (0.8, 0.8, 0.8, 0.8, 0.8, 0.25),
        protection_time: float = 2.0,
        seed: int = 0,
    ) -> None:
        model = model if model is not None else world.load_model()
        super().__init__(model, control_hz, layout)
        m = self.model
        m.actuator_gainprm[:6, 0] *= kp_scale
        m.actuator_biasprm[:6, 1] *= kp_scale
        grip = m.actuator("gripper").id
        m.actuator_forcerange[grip] *= gripper_torque
        self._step = 2 * math.pi / steps_per_rev
        self._max_speed = math.radians(max_speed)
        self._noise = noise_steps
        self._delay = obs_delay
        self._seed = seed
        self._rng = np.random.default_rng(seed)
        self._qadr = world.joint_qpos_addresses(m)
        self._readings: list[np.ndarray] = []
        self._overload = np.asarray(overload, dtype=np.float64)
        self._protection_time = protection_time
        self._gains = (m.actuator_gainprm[:6].copy(), m.actuator_biasprm[:6].copy())
        self._over_since: list[float | None] = [None] * 6
        self._tripped: list[str] = []

    def faults(self) -> tuple[str, ...]:
        """Joints whose overload protection tripped this episode."""
        return tuple(self._tripped)

    def reset(self, spec: T.TaskSpec) -> None:
        self.model.actuator_gainprm[:6], self.model.actuator_biasprm[:6] = self._gains
        self._over_since = [None] * 6
        self._tripped = []
        super().reset(spec)
        self._rng = np.random.default_rng([self._seed, spec.seed])  # reading noise: reproducible per episode
        self._readings = [self._read()] * (self._delay + 1)

    def _read(self) -> np.ndarray:
        steps = np.round(self.data.qpos[self._qadr] / self._step)
        steps += self._rng.integers(-self._noise, self._noise + 1, size=6)
        return world.qpos_to_lerobot(steps * self._step)

    def observe(self) -> ExpertState:
        return ExpertState.from_mjdata(self.model, self.data, joints=self._readings[0])

    def apply(self, goal: np.ndarray) -> None:
        target = np.round(world.lerobot_to_qpos(goal) / self._step) * self._step
        target = np.clip(target, self._lo[:6], self._hi[:6])
        dt = self.model.opt.timestep
        n = round((self._tick + 1) / self.control_hz / dt) - round(self._tick / self.control_hz / dt)
        for _ in range(n):
            ctrl = self.data.ctrl[:6]
            self.data.ctrl[:6] = ctrl + np.clip(target - ctrl, -self._max_speed * dt, self._max_speed * dt)
            mujoco.mj_step(self.model, self.data)
        self._tick += 1
        self._readings = [*self._readings[1:], self._read()]
        self._protect()

    def _protect(self) -> None:
        load = np.abs(self.data.actuator_force[:6]) / STALL_TORQUE
        for i, name in enumerate(world.JOINT_NAMES):
            if name in self._tripped:
                continue
            if load[i] > self._overload[i]:
                since = self._over_since[i]
                self._over_since[i] = since = self.time if since is None else since
                if self.time - since >= self._protection_time - 1e-9:
                    self._tripped.append(name)
                    self.model.actuator_gainprm[i, 0] = 0.0  # torque off: the joint goes limp
                    self.model.actuator_biasprm[i, 1:3] = 0.0
            else:
                self._over_since[i] = None


@dataclass(frozen=True)
class EpisodeResult:
    spec: T.TaskSpec
    success: bool
    time_to_success: float | None  # s: when success had held for the task's success_hold_s
    steps: int  # control ticks run
    attempts: int  # grasp / touch attempts the expert made
    phase: str  # the expert's phase at the end
    max_goal_step: float  # largest change of any joint goal between two ticks (deg / gripper units)
    faults: tuple[str, ...] = ()  # from executors that emulate servo protections: joints that tripped


def spec_for_seed(task: str, seed: int, colors: Sequence[str] = T.COLORS, split: str = "train") -> T.TaskSpec:
    """The evaluation episode ``seed`` of ``task``: colour and phrasing drawn from ``seed``, layout from ``seed``."""
    spec = T.sample_task(np.random.default_rng(seed), tasks=(task,), colors=colors, split=split)
    return dataclasses.replace(spec, seed=int(seed))


def run_episode(
    spec: T.TaskSpec,
    *,
    executor: str | Executor = "direct",
    expert_config: ExpertConfig | None = None,
    max_duration_s: float | None = None,
    stop_on_success: bool = True,
    on_tick=None,
) -> EpisodeResult:
    """Reset the world for ``spec``, run the scripted expert until success (held for ``success_hold_s``) or the
    task's time limit. ``on_tick(executor, expert, goal)`` is called after every tick (for debugging / recording)."""
    exe: Executor = DirectExecutor() if executor == "direct" else executor  # type: ignore[assignment]
    if isinstance(exe, str):
        raise ValueError(f"unknown executor {executor!r}; use 'direct' or an Executor object")
    exe.reset(spec)
    expert = ScriptedExpert(exe.model, spec, expert_config)
    expert.reset()
    limit = spec.max_duration_s if max_duration_s is None else max_duration_s
    n_ticks = math.ceil(limit * exe.control_hz - 1e-9)
    hold = spec.success_hold_s
    since: float | None = None
    solved_at: float | None = None
    prev: np.ndarray | None = None
    max_step = 0.0
    steps = 0
    for _ in range(n_ticks):
        goal = expert.act(exe.observe(), exe.time)
        if prev is not None:
            max_step = max(max_step, float(np.abs(goal - prev).max()))
        prev = goal
        exe.apply(goal)
        steps += 1
        if on_tick is not None:
            on_tick(exe, expert, goal)
        if spec.success(exe.model, exe.data):
            since = exe.time if since is None else since
            if solved_at is None and exe.time - since >= hold - 1e-9:
                solved_at = exe.time
                if stop_on_success:
                    break
        else:
            since = None
    return EpisodeResult(
        spec=spec,
        success=solved_at is not None,
        time_to_success=solved_at,
        steps=steps,
        attempts=expert.attempts,
        phase=expert.phase,
        max_goal_step=max_step,
        faults=tuple(exe.faults()) if hasattr(exe, "faults") else (),
    )


class EnvExecutor:
    """Goals into ``SO101Env``: the full mirrored stack (see the module docstring)."""

    def __init__(self, env: SO101Env | None = None, **env_kwargs):
        self.env = env if env is not None else SO101Env(**env_kwargs)
        self.model = self.env.world.model
        self.data = self.env.world.data
        self.control_hz = self.env.fps
        self.obs: dict | None = None
        self.info: dict = {}
        self.on_step: Callable[[dict], object] | None = None

    def reset(self, spec: T.TaskSpec) -> None:
        self.obs, self.info = self.env.reset(seed=spec.seed, options={"spec": spec})

    def observe(self) -> ExpertState:
        assert self.obs is not None, "reset() first"
        # privileged scene state for the expert, but the joints as the servos report them (what a policy sees)
        return ExpertState.from_mjdata(self.model, self.data, joints=self.obs["observation.state"])

    def apply(self, goal: np.ndarray) -> None:
        self.obs, _, _, _, self.info = self.env.step(goal)
        if self.on_step is not None:
            self.on_step(self.obs)

    @property
    def time(self) -> float:
        return float(self.info.get("t", 0.0))

    def faults(self) -> list[str]:
        out = []
        for name, servo in self.env.sim.servos.items():
            status = servo.read_register("Status")
            if status:
                out.append(f"{name}: status 0x{status:02X}")
        return out

    def close(self) -> None:
        self.env.close()
