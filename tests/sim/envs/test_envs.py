"""Gymnasium environments on the full mirrored stack (world + emulated servos + driver + Arm + cameras)."""

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sim.envs  # noqa: F401  (registers onboard/*)
from sim import tasks as T

ENV_IDS = ["onboard/SO101-v0", "onboard/SO101Touch-v0", "onboard/SO101Pick-v0", "onboard/SO101Place-v0"]


# The one checker warning we accept, and why: gymnasium recommends a Box action space normalised to [-1, 1] or [0, 1]
# (an RL convention). Our actions are goal positions in LeRobot's joint units (degrees, gripper 0-100), the units of
# the datasets, the policies and the real arm, on purpose; normalising is a policy's job. Any other warning fails.
BOX_NOT_NORMALIZED = r".*For Box action spaces, we recommend using a symmetric and normalized space"


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env_passes(env_id):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a checker warning is a failure, not a line in the log
        warnings.filterwarnings("ignore", message=BOX_NOT_NORMALIZED, category=UserWarning)
        env = gym.make(env_id, render_mode="rgb_array")
        try:
            check_env(env.unwrapped)
        finally:
            env.close()


def rollout(seed: int, n: int = 20) -> list[np.ndarray]:
    env = gym.make("onboard/SO101Pick-v0")
    try:
        obs, _ = env.reset(seed=seed)
        rng = np.random.default_rng(0)
        out = [obs["observation.state"], obs["observation.images.front"]]
        for _ in range(n):
            action = obs["observation.state"] + rng.normal(0, 3, 6).astype(np.float32)
            obs, *_ = env.step(action)
            out += [obs["observation.state"], obs["observation.images.wrist"]]
        return out
    finally:
        env.close()


def test_same_seed_gives_identical_rollouts():
    a, b = rollout(3), rollout(3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    c = rollout(4)
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_observation_and_action_go_through_the_servos():
    env = gym.make("onboard/SO101Touch-v0", render_mode="rgb_array")
    try:
        obs, info = env.reset(seed=0, options={"spec": T.make_spec("touch", "blue", seed=11)})
        assert obs["task"] == "touch the blue cube" and info["color"] == "blue"
        u = env.unwrapped
        # the observed state is the servos' reading of the MuJoCo joints, through the calibration
        assert np.allclose(obs["observation.state"][:5], u.joint_state_lerobot()[:5], atol=0.5)
        goal = obs["observation.state"].copy()
        goal[0] += 20.0  # pan 20 degrees
        for _ in range(30):
            obs, _, _, _, info = env.step(goal)
        assert abs(u.joint_state_lerobot()[0] - goal[0]) < 1.5
        assert abs(obs["observation.state"][0] - goal[0]) < 1.5
        assert info["t"] == pytest.approx(1.0, abs=1e-6)  # 30 steps at 30 Hz on the sim clock
        frame = env.render()
        assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8 and frame.std() > 5
    finally:
        env.close()


def test_rewording_and_held_out_split():
    env = gym.make("onboard/SO101Pick-v0", split="held_out")
    try:
        obs, _ = env.reset(seed=2)
        held_out = {t.format(color=c) for t in T.get_task("pick").held_out_templates for c in T.COLORS}
        assert obs["task"] in held_out
        obs, _ = env.reset(seed=2, options={"instruction": "please lift the red one"})
        assert obs["task"] == "please lift the red one"
    finally:
        env.close()


def test_vector_api():
    envs = gym.vector.SyncVectorEnv([lambda: gym.make("onboard/SO101Touch-v0") for _ in range(2)])
    try:
        obs, info = envs.reset(seed=[1, 2])
        assert obs["observation.state"].shape == (2, 6)
        assert obs["observation.images.front"].shape == (2, 96, 96, 3)
        obs, reward, _, _, info = envs.step(obs["observation.state"])
        assert reward.shape == (2,) and "is_success" in info
    finally:
        envs.close()


def test_safety_puts_safearm_between_the_action_and_the_arm():
    from robot.errors import StallError
    from sim.envs.env import SO101Env

    env = SO101Env(task="pick", cameras=(), safety=True)
    try:
        obs, _ = env.reset(seed=2)
        assert env.safe is not None and not env.safe.stopped
        action = obs["observation.state"].copy()
        action[0] += 30.0  # one tick: SafeArm's step/velocity clamp lets only part of it through
        env.step(action)
        assert env.safe.last_readings is not None and 0 < env.safe._goal[0] - obs["observation.state"][0] < 30.0
        # a blocked joint: SafeArm stops the arm (torque off) and step() raises, as `onboard run` would
        env.sim.hand.hold("elbow_flex", env.sim.joint_angle("elbow_flex"))
        blocked = env.step(obs["observation.state"])[0]["observation.state"].copy()
        blocked[2] += 20.0
        with pytest.raises(StallError, match="elbow_flex stalled"):
            for _ in range(60):
                env.step(blocked)
        env.sim.hand.release()
        env.reset(seed=2)  # the next episode starts with the arm accepting goals again
        assert not env.safe.stopped
        env.step(env.reset(seed=2)[0]["observation.state"])
    finally:
        env.close()
