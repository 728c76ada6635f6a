"""The scripted expert through the full mirrored stack: its joint goals go into ``SO101Env`` (the Arm, the Feetech
driver, emulated STS3215 servos on MuJoCo joints), and it sees the joints as the servos report them.

``EnvExecutor`` has the executor interface of ``onboard.eval.expert`` (``reset(spec)``, ``observe()``, ``apply(goal)``,
``time``, ``model``, ``data``, ``control_hz``), so ``run_episode(spec, executor=EnvExecutor())`` and
``evaluate(..., executor=...)`` measure the expert exactly as a policy would be measured.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sim import tasks as T
from sim.envs.env import SO101Env
from sim.expert.script import ExpertState


class EnvExecutor:
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
