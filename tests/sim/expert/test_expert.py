"""The scripted expert (sim/expert/): inverse kinematics, the expert's actions, and the expert solving a few seeds of
every task through the harness's executors."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported

import math

import numpy as np
import pytest

from tests.conftest import require

mujoco = require("mujoco", "sim")  # skipped without MuJoCo; a failure in CI (ONBOARD_REQUIRE_INTEROP=1)

from sim import tasks as T  # noqa: E402
from sim.expert import (  # noqa: E402
    ArmIK,
    ExpertConfig,
    ScriptedExpert,
    harness,
)
from sim.expert.ik import tool_rotation  # noqa: E402
from sim.twin import world  # noqa: E402
from tests.sim.tasks.test_tasks import put_cube  # noqa: E402


@pytest.fixture(scope="module")
def model() -> mujoco.MjModel:
    return world.load_model()


# Inverse kinematics ---------------------------------------------------------------------------------------------
def test_ik_reaches_jaws_down_poses_with_the_asked_yaw(model):
    ik = ArmIK(model)
    for pos, yaw in (((0.22, 0.0, 0.01), 0.3), ((0.15, -0.15, 0.05), -1.0), ((0.28, 0.1, 0.02), 1.2)):
        pos = np.array(pos)
        roll = ik.roll_for_yaw(pos, yaw, ik.seed(pos))
        assert roll is not None
        res = ik.solve_down(pos, yaw, ik.seed(pos, roll))
        assert res.ok, res
        site, rot = ik.fk(res.q)
        assert np.linalg.norm(site - pos) < 1.5e-3
        want = tool_rotation(yaw, res.tilt, math.atan2(pos[1] - T.PAN_AXIS_XY[1], pos[0] - T.PAN_AXIS_XY[0]))
        assert float(rot[:, 0] @ want[:, 0]) > math.cos(math.radians(2))  # jaws point where asked
        assert abs(math.sin(math.atan2(rot[1, 2], rot[0, 2]) - yaw)) < 0.05  # closing direction along yaw


# The expert -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("task", ["touch", "pick", "place"])
def test_expert_solves_a_few_seeds(task):
    executor = harness.DirectExecutor()
    for seed in range(5):
        spec = harness.spec_for_seed(task, 500 + seed)
        result = harness.run_episode(spec, executor=executor)
        assert result.success, (spec, result.phase, result.attempts)
        assert result.time_to_success <= spec.max_duration_s
        assert result.max_goal_step <= 4.5 + 1e-4  # rate limited: no jumps


def test_expert_action_is_a_float32_goal_in_lerobot_units(model):
    data = mujoco.MjData(model)
    spec = T.make_spec("pick", "green", seed=3)
    spec.reset(model, data)
    expert = ScriptedExpert(model, spec)
    expert.reset()
    goal = expert.act(data, 0.0)
    assert goal.dtype == np.float32 and goal.shape == (6,)
    # The first goal starts from the measured pose (home: all joints 0, gripper half open = 50), rate limited.
    assert np.abs(goal[:5]).max() <= expert.config.max_step_deg + 1e-4
    assert abs(goal[5] - 50) <= expert.config.max_step_gripper + 1e-4


def test_expert_retries_when_the_cube_is_gone_at_the_grasp():
    # Snatch the cube away as the jaws start closing: the grasp misses, the expert notices and goes again.
    spec = harness.spec_for_seed("pick", 11)
    moved = []

    def snatch(exe, expert, goal):
        if expert.phase == "close" and not moved:
            pos, _ = T.cube_pose(exe.model, exe.data, spec.color)
            put_cube(exe.model, exe.data, spec.color, pos + np.array([-0.04, 0.0, 0.0]) * np.sign(pos[0] - 0.2 or 1))
            moved.append(True)

    result = harness.run_episode(spec, on_tick=snatch)
    assert moved and result.success and result.attempts >= 2, result


def test_expert_turns_the_jaws_only_at_the_hover_point():
    # The wrist_roll holds still on the way to the cube and turns to the cube's faces only above it (the wrist camera
    # then shows the cube's yaw, what a policy copying the expert can see), before the descent.
    spec = harness.spec_for_seed("pick", 7)
    seen = []

    def log(exe, expert, goal):
        seen.append((expert.phase, float(goal[4]), float(expert.site_now()[0][2])))

    result = harness.run_episode(spec, on_tick=log)
    assert result.success, result
    approach = [roll for phase, roll, _ in seen if phase == "approach"]
    turn = [(roll, z) for phase, roll, z in seen if phase == "turn"]
    assert approach and turn
    assert max(approach) - min(approach) < 0.5  # deg: the roll goal stays where it was
    assert abs(turn[-1][0] - approach[-1]) > 1.0  # this layout needs a turn
    assert all(z > ExpertConfig().hover_z - 0.015 for _, z in turn)  # the turn happens up at the hover point
    descend = [roll for phase, roll, _ in seen if phase == "descend"]
    assert descend and max(abs(r - turn[-1][0]) for r in descend) < 1.0


def test_expert_copes_with_a_degraded_executor():
    # Softer gains, half gripper force, quantised / noisy / delayed readings, slewed goals, and the STS3215's overload
    # protection (LeRobot's 25 % on the gripper): whole episodes, holding on after success, nothing trips.
    executor = harness.DegradedExecutor()
    for task in ("pick", "place"):
        result = harness.run_episode(harness.spec_for_seed(task, 42), executor=executor, stop_on_success=False)
        assert result.success and not result.faults, (task, result)


def test_expert_holds_a_cube_without_overloading_the_gripper():
    # Squeeze to grasp, then hold with the gripper load (torque / stall) inside the window: a servo squeezing above
    # its Overload_Torque for 2 s turns its torque off.
    loads = []

    def record(exe, expert, goal):
        if expert.phase in ("lift", "hold"):
            loads.append(abs(expert.state.gripper_load))

    result = harness.run_episode(harness.spec_for_seed("pick", 5), on_tick=record, stop_on_success=False)
    assert result.success and loads
    hi = ExpertConfig().hold_load[1]
    # the lift starts 0.2 s after the jaw stopped and the load is regulated on the way up: inside the window within
    # 0.5 s (15 ticks), far inside the servo's 2 s overload protection time, and holding all along
    assert max(loads[15:]) <= hi + 0.05 and min(loads) > 0.01, (min(loads), max(loads[15:]))
    assert sum(load > 0.25 for load in loads) < 15  # above LeRobot's Overload_Torque for < 0.5 s in all
