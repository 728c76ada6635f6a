"""gymnasium's vector API on our environments: ``gym.make_vec(<our id>, vectorization_mode="async")`` runs each env in
its own process and gives, per env, what the same env gives on its own for the same seed and actions.

Two settings matter (README, "Fleets"): ``context="spawn"`` (MuJoCo's EGL context does not survive ``fork``) and
``shared_memory=False``: gymnasium 1.x reads shared-memory observations once, so a ``Text`` space (our ``task``) would
keep its first value (Farama-Foundation/Gymnasium#1164); through the pipes every step's instruction arrives."""

import numpy as np

from tests.conftest import require

gym = require("gymnasium", "sim")
require("mujoco", "sim")

ENV_ID = "sim.envs:onboard/SO101Touch-v0"  # "module:id" imports sim.envs (which registers the ids) first
SEEDS = [3, 4]
STEPS = 4


def _actions(state: np.ndarray, k: int) -> np.ndarray:
    """Step k's goals: a small move of every joint away from where the arm is."""
    return (state + np.float32(2.0 * (k + 1))).astype(np.float32)


def test_async_vector_env_matches_single_envs():
    envs = gym.make_vec(
        ENV_ID, num_envs=2, vectorization_mode="async", vector_kwargs={"context": "spawn", "shared_memory": False}
    )
    try:
        assert envs.num_envs == 2
        assert envs.single_observation_space["observation.images.front"].shape == (96, 96, 3)
        obs, _ = envs.reset(seed=SEEDS)
        vec = [obs]
        for k in range(STEPS):
            obs, reward, terminated, truncated, _ = envs.step(_actions(vec[0]["observation.state"], k))
            assert reward.shape == terminated.shape == truncated.shape == (2,)
            vec.append(obs)
    finally:
        envs.close()
    assert vec[0]["observation.state"].shape == (2, 6) and vec[0]["observation.images.wrist"].shape == (2, 96, 96, 3)
    assert not np.array_equal(vec[0]["observation.state"], vec[-1]["observation.state"])  # the arms moved

    from sim.envs.env import SO101Env

    for i, seed in enumerate(SEEDS):
        env = gym.make("onboard/SO101Touch-v0").unwrapped
        assert isinstance(env, SO101Env)
        try:
            obs, _ = env.reset(seed=seed)
            single = [obs]
            for k in range(STEPS):
                single.append(env.step(_actions(vec[0]["observation.state"], k)[i])[0])
        finally:
            env.close()
        for k, (a, b) in enumerate(zip(single, vec, strict=True)):
            assert a["task"] == b["task"][i], f"step {k}"
            np.testing.assert_array_equal(a["observation.state"], b["observation.state"][i], err_msg=f"step {k}")
            np.testing.assert_array_equal(
                a["observation.images.front"], b["observation.images.front"][i], err_msg=f"step {k}"
            )
