"""Gymnasium environments on the full mirrored stack.

An ``SO101Env`` step is what a control tick on the real robot is: the action (joint goals in LeRobot 0.4.4 SO-101
units: five joints in degrees, gripper 0..100) goes through the real ``Arm`` (safety clipping to the calibrated
range), the real ``FeetechBus`` driver and the emulated STS3215 servos, whose shafts are the MuJoCo joints; the sim
clock advances the world one control period; the observation is read back the same way (SYNC_READ of
Present_Position through the calibration) plus the rendered cameras. Nothing here talks to MuJoCo's actuators
directly.

Registered ids (``import sim.envs`` registers them; ``gymnasium.make("sim.envs:onboard/SO101Pick-v0")`` imports and
makes in one call):

- ``onboard/SO101-v0``: a random task and colour per episode
- ``onboard/SO101Touch-v0``, ``onboard/SO101Pick-v0``, ``onboard/SO101Place-v0``: one task, random colour

Observation (a ``Dict`` space with LeRobot's feature names): ``observation.state`` float32[6],
``observation.images.front`` and ``observation.images.wrist`` uint8 (H, W, 3), ``task`` (the instruction). Reward 1.0
on the step the task counts as solved (its success predicate held for the task's hold time), which also terminates
the episode; ``info["is_success"]``. Episodes are truncated at the task's maximum duration.

``safety=True`` (or a ``robot.safety.SafetyConfig``) puts ``SafeArm`` between the action and the arm, as
``onboard run`` does on a real follower: goals clamped in step and velocity, stalls stopped, a stalled gripper (a
grasp) derated below the servo's overload threshold; a safety stop raises its ``SafetyError`` from ``step()``.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import ClassVar

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from robot.arm import Arm
from robot.arm_config import ArmConfig
from robot.calibration import MotorCalibration, save_calibration
from robot.safety import SafeArm
from robot.safety_config import SafetyConfig
from sim import tasks as T
from sim.twin.cameras import RenderedCamera
from sim.twin.so101 import SimulatedSO101
from sim.twin.world import JOINT_NAMES, qpos_to_lerobot

CAMERAS = ("front", "wrist")
INSTRUCTION_CHARSET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ,.'!?-"


class SO101Env(gym.Env):
    """The simulated SO-101 on the table with three cubes and a tray (module docstring).

    ``task``/``color``: fix them, or None to sample per episode. ``split``: which instruction phrasings to sample
    ("train" or "held_out"). ``fps``: control rate. ``image_size``: (height, width) of the observation cameras.
    ``render_size``: of ``render()`` (the front camera). ``arm_seed``: the simulated arm's horn offsets.
    ``reset(options={"spec": TaskSpec})`` runs a given episode; ``options={"instruction": "..."}`` rewords it.
    """

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"], "render_fps": 30}

    def __init__(
        self,
        task: str | None = None,
        color: str | None = None,
        *,
        split: str = "train",
        fps: float = 30.0,
        image_size: tuple[int, int] = (96, 96),
        cameras: tuple[str, ...] = CAMERAS,
        render_mode: str | None = None,
        render_size: tuple[int, int] = (240, 320),
        arm_seed: int = 0,
        safety: bool | SafetyConfig = False,
    ):
        if task is not None:
            T.get_task(task)
        if color is not None:
            T.cube_body(color)
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be None or 'rgb_array', got {render_mode!r}")
        self.task, self.color, self.split = task, color, split
        self.fps = float(fps)
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": self.fps}

        # The mirrored arm: world + emulated servos (calibrated, as after `onboard calibrate`) + the real Arm stack.
        self.sim = SimulatedSO101(seed=arm_seed, uncalibrated=False)
        self.world = self.sim.world
        self.clock = self.sim.clock
        self._tmp = tempfile.TemporaryDirectory(prefix="onboard-env-")
        cal = {name: MotorCalibration(**values) for name, values in self.sim.factory_calibration().items()}
        save_calibration(Path(self._tmp.name) / "sim.json", cal)
        self.arm = Arm(ArmConfig(type="so101_follower", port=self.sim.url, id="sim", calibration_dir=self._tmp.name))
        # An arm in use has been configured before and powered since: the EEPROM settings written by configure()
        # (the gripper's Max_Torque_Limit 50 %, ...) are in force, as they are only copied to RAM at power-on.
        self.arm.connect()
        self.arm.disconnect()
        self.sim.bus.power_cycle()
        self.arm.connect()
        self.safe: SafeArm | None = None
        if safety:
            self.safe = SafeArm(self.arm, self.clock, safety if isinstance(safety, SafetyConfig) else None)
        h, w = image_size
        self.cameras = {name: RenderedCamera(self.world, name, height=h, width=w, fps=self.fps) for name in cameras}
        for cam in self.cameras.values():
            cam.connect()
        self._render_cam: RenderedCamera | None = None
        self._render_size = render_size

        low, high = self.arm.units.limits()
        self.action_space = spaces.Box(np.asarray(low, np.float32), np.asarray(high, np.float32), dtype=np.float32)
        obs = {"observation.state": spaces.Box(-360.0, 360.0, (len(JOINT_NAMES),), np.float32)}
        for name in cameras:
            obs[f"observation.images.{name}"] = spaces.Box(0, 255, (h, w, 3), np.uint8)
        obs["task"] = spaces.Text(max_length=128, charset=INSTRUCTION_CHARSET)
        self.observation_space = spaces.Dict(obs)

        self._phase = _common_period(self.world.timestep, 1.0 / self.fps)
        self.spec_: T.TaskSpec | None = None
        self._t0 = 0.0
        self._held_since: float | None = None
        self._steps = 0

    # ------------------------------------------------------------------------------------------------------------
    def _sample_spec(self, options: dict | None) -> T.TaskSpec:
        options = options or {}
        if "spec" in options:
            spec = options["spec"]
        else:
            tasks = (self.task,) if self.task else None
            colors = (self.color,) if self.color else T.COLORS
            spec = T.sample_task(self.np_random, tasks=tasks, colors=colors, split=self.split)
        if options.get("instruction"):
            spec = T.TaskSpec(spec.task, spec.color, str(options["instruction"]), spec.seed, spec.split)
        return spec

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.spec_ = self._sample_spec(options)
        model, data = self.world.model, self.world.data
        # Torque off while the scene is laid out, then on again: the servos hold the new pose (a real reset is a
        # person putting things back; the servos then hold where the arm is).
        # Episodes start on a common phase of the physics step, the control period and the camera period (time jumps
        # forward to it; nothing is simulated in between), so the same seed and actions give the same rollout
        # whatever ran before. That phase is also past the bytes still on the emulated servo wire (the last
        # episode's, and the torque-off write's), so the first transactions of every episode meet a quiet wire.
        self.arm.disable_torque()
        with self.world.lock:
            t = math.ceil(max(data.time, self.sim.bus._wire_free) / self._phase - 1e-9) * self._phase
            self.spec_.reset(model, data)  # arm at `home`, cubes from the spec's seed (resets data.time)
            data.time = t
            mujoco.mj_forward(model, data)
        self.arm.enable_torque()
        self.arm.send_action(self.arm.read_positions())
        if self.safe is not None:
            self.safe.start()  # a fresh reference (and no grasp, no stop) for the new episode
        self._t0 = self.clock.now()
        self._held_since = None
        self._steps = 0
        return self._observe(), self._info(False)

    def step(self, action):
        if self.spec_ is None:
            raise RuntimeError("call reset() before step()")
        action = np.asarray(action, dtype=np.float32)
        if self.safe is not None:
            self.safe.check()  # may raise a SafetyError (the arm stopped)
            self.safe.send_action(action)
        else:
            self.arm.send_action(action)
        self._steps += 1
        self.clock.sleep_until(self._t0 + self._steps / self.fps)
        obs = self._observe()
        now = self.clock.now()
        if self.spec_.success(self.world.model, self.world.data):
            if self._held_since is None:
                self._held_since = now
        else:
            self._held_since = None
        success = self._held_since is not None and now - self._held_since >= self.spec_.success_hold_s - 1e-9
        truncated = not success and now - self._t0 >= self.spec_.max_duration_s - 1e-9
        return obs, float(success), bool(success), bool(truncated), self._info(success)

    def _observe(self) -> dict:
        obs: dict = {"observation.state": self.arm.read_positions().astype(np.float32)}
        for name, cam in self.cameras.items():
            obs[f"observation.images.{name}"] = cam.read_latest().rgb.copy()
        obs["task"] = self.spec_.instruction if self.spec_ else ""
        return obs

    def _info(self, success: bool) -> dict:
        return {
            "is_success": bool(success),
            "t": self.clock.now() - self._t0,
            "task": self.spec_.task if self.spec_ else None,
            "color": self.spec_.color if self.spec_ else None,
            "seed": self.spec_.seed if self.spec_ else None,
        }

    def joint_state_lerobot(self) -> np.ndarray:
        """The true joint angles in LeRobot units (for experts and tests; the policy sees observation.state)."""
        return qpos_to_lerobot(self.sim.joint_angles())

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        if self._render_cam is None:
            h, w = self._render_size
            self._render_cam = RenderedCamera(self.world, "front", name="render", height=h, width=w, fps=self.fps)
            self._render_cam.connect()
        return self._render_cam.read_latest().rgb.copy()

    def close(self):
        for cam in [*self.cameras.values(), *([self._render_cam] if self._render_cam else [])]:
            cam.disconnect()
        if getattr(self, "arm", None) is not None and self.arm.is_connected:
            self.arm.disconnect()
        if getattr(self, "sim", None) is not None:
            self.sim.close()
        if getattr(self, "_tmp", None) is not None:
            self._tmp.cleanup()
            self._tmp = None


def _common_period(dt: float, period: float) -> float:
    """The shortest whole number of control periods that is also a whole number of physics steps (0.1 s for 30 Hz
    control and 500 Hz physics)."""
    for k in range(1, 1001):
        steps = k * period / dt
        if abs(steps - round(steps)) < 1e-6:
            return k * period
    return period


def _register() -> None:
    ids = {
        "onboard/SO101-v0": {},
        "onboard/SO101Touch-v0": {"task": "touch"},
        "onboard/SO101Pick-v0": {"task": "pick"},
        "onboard/SO101Place-v0": {"task": "place"},
    }
    for env_id, kwargs in ids.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point="sim.envs.env:SO101Env", kwargs=kwargs, disable_env_checker=False)


_register()
