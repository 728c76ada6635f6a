"""Pushes on the simulated follower (sim/twin/disturbance.py) for demonstrations that show recovery (DART-style)."""

import argparse

import numpy as np
import pytest

import onboard.cli as cli
from onboard.cli.rigs import build_sim_rig_from_args
from sim.envs.env import SO101Env
from sim.rigs.teleop import build_sim_rig
from sim.twin.disturbance import JointDisturbance

NO_FADE = (-1.0, -0.5)  # the tool point is always above this: full strength everywhere


@pytest.fixture
def env():
    e = SO101Env(task="pick", cameras=())
    yield e
    e.close()


def hold(env, action, ticks):
    """Hold ``action`` for ``ticks`` control periods; the per-tick |state - action| (degrees, gripper units)."""
    out = []
    for _ in range(ticks):
        obs, *_ = env.step(action)
        out.append(np.abs(obs["observation.state"] - action))
    return np.array(out)


def test_pushes_move_the_arm_off_its_goal_and_it_returns_when_they_stop(env):
    obs, _ = env.reset(seed=1)
    action = obs["observation.state"].copy()
    assert hold(env, action, 15)[:, :5].max() < 0.3  # undisturbed, the servos hold their goals
    goals = {n: s.read_register("Goal_Position") for n, s in env.sim.servos.items()}
    dist = JointDisturbance(env.sim, std_deg=2.0, seed=0, fade_z=NO_FADE)
    err = hold(env, action, 90)
    arm = err[30:, :5]  # after the first second
    assert 0.5 < arm.mean() < 5.0, arm.mean(0)
    assert err[:, 5].max() < 0.5  # the gripper is not pushed
    assert goals == {n: s.read_register("Goal_Position") for n, s in env.sim.servos.items()}  # registers: the goals
    dist.close()
    assert all(p.disturbance == 0.0 for p in env.sim.plants.values())
    assert hold(env, action, 30)[-5:, :5].max() < 0.3  # back on the goals


def test_pushes_fade_out_near_the_table(env):
    obs, _ = env.reset(seed=1)
    action = obs["observation.state"].copy()
    dist = JointDisturbance(env.sim, std_deg=2.0, seed=0, fade_z=(10.0, 11.0))  # the tool is always "low"
    assert dist.scale() == 0.0
    assert hold(env, action, 30)[:, :5].max() < 0.3
    dist.close()


def test_same_seed_same_pushes(env):
    runs = []
    for _ in range(2):
        obs, _ = env.reset(seed=4)
        dist = JointDisturbance(env.sim, std_deg=1.5, seed=[7, 3], fade_z=NO_FADE)
        action = obs["observation.state"].copy()
        states = [env.step(action)[0]["observation.state"] for _ in range(20)]
        runs.append((np.array(states), dist.offsets_deg))
        dist.close()
    assert np.array_equal(runs[0][0], runs[1][0]) and np.array_equal(runs[0][1], runs[1][1])


def test_bad_parameters_are_refused(env):
    with pytest.raises(ValueError, match="std_deg"):
        JointDisturbance(env.sim, std_deg=-1.0)
    with pytest.raises(ValueError, match="unknown joints"):
        JointDisturbance(env.sim, std_deg=1.0, joints=("elbow",))
    with pytest.raises(ValueError, match="fade_z"):
        JointDisturbance(env.sim, std_deg=1.0, fade_z=(0.1, 0.05))


def test_the_recording_rig_pushes_only_during_episodes():
    rig = build_sim_rig(disturbance_deg=1.0)
    try:
        hooks, plants = rig.hooks, rig.sim.plants
        hooks.begin_episode(0)
        assert hooks._disturbance is not None and hooks._disturbance.std_deg == 1.0
        assert hooks._disturbance.fade_z == (0.03, 0.06)  # the default: no pushes while the jaws are at a cube
        rig.sim.world.step(50)
        hooks.end_episode()
        assert hooks._disturbance is None and all(p.disturbance == 0.0 for p in plants.values())
    finally:
        rig.close()
    with pytest.raises(ValueError, match="disturbance_deg"):
        build_sim_rig(disturbance_deg=-2.0)
    with pytest.raises(ValueError, match="disturbance_floor"):
        build_sim_rig(disturbance_deg=1.0, disturbance_floor=-0.01)


def test_record_flags_reach_the_rig():
    args = argparse.Namespace(sim_disturbance=1.5, sim_seed=3, sim_task="pick", dataset_fps=30)
    rig = build_sim_rig_from_args(args)
    try:
        assert rig.hooks.disturbance_deg == 1.5 and rig.hooks._disturbance is None
        assert rig.hooks.disturbance_fade == (0.03, 0.06)
    finally:
        rig.close()
    args = cli.build_parser().parse_args(
        "record --robot.port=sim --robot.id=f --teleop.port=sim --teleop.id=l --dataset.root=unused --sim.task=pick "
        "--sim.disturbance=1.5 --sim.disturbance_floor=0".split()
    )
    assert args.sim_disturbance_floor == 0.0  # pushes all the way down to the table (0 is a height, not "unset")
    rig = build_sim_rig_from_args(args)
    try:
        rig.hooks.begin_episode(0)
        assert rig.hooks._disturbance.fade_z == (0.0, 0.03)
        rig.hooks.end_episode()
    finally:
        rig.close()


def test_a_lower_floor_keeps_pushes_on_closer_to_the_table(env):
    env.reset(seed=1)
    default = JointDisturbance(env.sim, std_deg=1.0, seed=0)
    z = float(default._site[2])
    default.close()
    # the same height: faded out with the floor at the tool point, full strength with the floor 3 cm below it
    for fade_z, scale in (((z, z + 0.03), 0.0), ((z - 0.03, z), 1.0)):
        dist = JointDisturbance(env.sim, std_deg=1.0, seed=0, fade_z=fade_z)
        assert dist.scale() == scale
        dist.close()
