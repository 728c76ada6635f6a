"""Tasks (sim/tasks/): success checks, resets, phrasings, the registry."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported

import itertools
import math

import numpy as np
import pytest

from tests.conftest import require

mujoco = require("mujoco", "sim")  # skipped without MuJoCo; a failure in CI (ONBOARD_REQUIRE_INTEROP=1)

from sim import tasks as T  # noqa: E402
from sim.twin import world  # noqa: E402


@pytest.fixture(scope="module")
def model() -> mujoco.MjModel:
    return world.load_model()


def fresh(model: mujoco.MjModel, seed: int = 0) -> mujoco.MjData:
    data = mujoco.MjData(model)
    T.reset_scene(model, data, np.random.default_rng(seed))
    return data


def put_cube(model, data, color, pos, yaw=0.0) -> None:
    jid = model.joint(T.cube_body(color)).id
    adr, dof = model.jnt_qposadr[jid], model.jnt_dofadr[jid]
    data.qpos[adr : adr + 3] = pos
    data.qpos[adr + 3 : adr + 7] = (math.cos(yaw / 2), 0, 0, math.sin(yaw / 2))
    data.qvel[dof : dof + 6] = 0
    mujoco.mj_forward(model, data)


def settle(model, data, seconds=0.5) -> None:
    mujoco.mj_step(model, data, nstep=round(seconds / model.opt.timestep))


# Success checks ---------------------------------------------------------------------------------------------------
def test_nothing_is_solved_right_after_a_reset(model):
    for seed in range(5):
        data = fresh(model, seed)
        for task, color in itertools.product(T.TASKS, T.COLORS):
            assert not T.get_task(task).success(model, data, color), (seed, task, color)


def test_place_success_cube_in_the_box_counts_on_the_table_does_not(model):
    data = fresh(model, 1)
    box = T.box_center(model, data)
    put_cube(model, data, "green", (box[0] + 0.01, box[1] - 0.01, 0.05), yaw=0.3)  # dropped into the tray
    settle(model, data, 1.0)
    assert T.is_in_box(model, data, "green") and T.is_resting(model, data, "green")
    assert T.success_place(model, data, "green")
    assert not T.success_place(model, data, "red")  # the others are on the table
    assert not T.success_pick(model, data, "green")  # in the box is not lifted

    # next to the tray, on the table: no
    put_cube(model, data, "green", (box[0], box[1] - 0.075, T.CUBE_HALF))
    settle(model, data)
    assert not T.success_place(model, data, "green")
    # over the tray but falling: not resting yet
    put_cube(model, data, "green", (box[0], box[1], 0.06))
    settle(model, data, 0.05)
    assert T.is_in_box(model, data, "green") is False or not T.is_resting(model, data, "green")
    assert not T.success_place(model, data, "green")


def test_place_success_needs_the_gripper_to_let_go(model):
    data = fresh(model, 2)
    box = T.box_center(model, data)
    put_cube(model, data, "blue", (box[0], box[1], T.BOX_FLOOR_TOP + T.CUBE_HALF))
    settle(model, data, 0.3)
    assert T.success_place(model, data, "blue")
    # Move the fixed jaw pad into the cube: now the gripper touches it.
    pad = model.geom("fixed_jaw_pad").id
    put_cube(model, data, "blue", data.geom_xpos[pad] + np.array([0, 0, 0.0]))
    assert T.is_touching(model, data, "blue")
    assert not T.success_place(model, data, "blue")


def test_touch_success_is_gripper_contact(model):
    data = fresh(model, 3)
    assert not T.success_touch(model, data, "red")
    pad = model.geom("fixed_jaw_pad").id
    put_cube(model, data, "red", data.geom_xpos[pad])  # overlapping the fixed jaw
    assert T.success_touch(model, data, "red")
    assert not T.success_touch(model, data, "green")


def test_pick_success_needs_height_and_both_jaws(model):
    data = fresh(model, 4)
    put_cube(model, data, "red", (0.25, -0.05, 0.12))  # floating high, nobody holds it
    assert T.is_lifted(model, data, "red") and not T.is_held(model, data, "red")
    assert not T.success_pick(model, data, "red")
    put_cube(model, data, "red", (0.25, -0.05, T.CUBE_HALF + 0.049))
    assert not T.is_lifted(model, data, "red")
    put_cube(model, data, "red", (0.25, -0.05, T.CUBE_HALF + 0.051))
    assert T.is_lifted(model, data, "red")


# Resets -----------------------------------------------------------------------------------------------------------
def test_reset_is_deterministic_per_seed_and_differs_between_seeds(model):
    a, b, c = mujoco.MjData(model), mujoco.MjData(model), mujoco.MjData(model)
    spec = T.make_spec("pick", "red", seed=7)
    la = spec.reset(model, a)
    lb = spec.reset(model, b)
    T.make_spec("pick", "red", seed=8).reset(model, c)
    np.testing.assert_array_equal(a.qpos, b.qpos)
    assert la == lb
    assert not np.array_equal(a.qpos, c.qpos)
    # the arm is at home, commanding home
    qa = world.joint_qpos_addresses(model)
    home = model.key("home")
    np.testing.assert_allclose(a.qpos[qa], home.qpos[:6])
    np.testing.assert_allclose(a.ctrl, home.ctrl)


@pytest.mark.parametrize("randomize_box", [False, True])
def test_resets_are_collision_free_and_in_the_workspace(randomize_box):
    model = world.load_model()  # randomize_box moves the tray in the model: use our own
    config = T.LayoutConfig(randomize_box=randomize_box)
    table = model.geom("table").id
    boxes = set()
    for seed in range(40):
        data = mujoco.MjData(model)
        layout = T.reset_scene(model, data, np.random.default_rng(seed), config)
        boxes.add(layout.box_xy)
        # The only contacts: each cube on the table.
        for i in range(data.ncon):
            con = data.contact[i]
            pair = {con.geom1, con.geom2}
            assert table in pair and any(model.geom(g).name.endswith("_cube") for g in pair), (
                seed,
                model.geom(con.geom1).name,
                model.geom(con.geom2).name,
            )
        xy = {c: np.array(p[:2]) for c, p in layout.cubes.items()}
        for c1, c2 in itertools.combinations(T.COLORS, 2):
            assert np.linalg.norm(xy[c1] - xy[c2]) >= config.min_cube_distance
        box = np.array(layout.box_xy)
        np.testing.assert_allclose(T.box_center(model, data)[:2], box)
        reach = T.BOX_HALF_OUTER + config.box_clearance
        for c, p in xy.items():
            assert np.abs(p - box).min() >= reach - 1e-12 or np.abs(p - box).max() >= reach, (seed, c)
            r = np.hypot(p[0] - T.PAN_AXIS_XY[0], p[1] - T.PAN_AXIS_XY[1])
            assert config.r_range[0] - 1e-9 <= r <= config.r_range[1] + 1e-9
        # Nothing moves when the world runs (cubes rest flat, the arm holds home).
        before = {c: T.cube_pose(model, data, c)[0] for c in T.COLORS}
        settle(model, data, 0.3)
        for c in T.COLORS:
            assert np.linalg.norm(T.cube_pose(model, data, c)[0] - before[c]) < 1e-3
    assert (len(boxes) > 1) == randomize_box


# Phrasings and specs ----------------------------------------------------------------------------------------------
def test_phrasings_are_distinct_and_split():
    every = []
    for task in T.TASKS.values():
        assert len(task.train_templates) >= 4 and len(task.held_out_templates) >= 1
        assert not set(task.train_templates) & set(task.held_out_templates)
        every += task.train_templates + task.held_out_templates
        for color in T.COLORS:
            for text in task.instructions(color) + task.instructions(color, "held_out"):
                assert color in text and "{" not in text
    assert len(every) == len(set(every)), "a phrasing is used twice"
    assert {"touch", "pick", "place"} <= set(T.TASKS)
    assert T.get_task("touch").max_duration_s < T.get_task("pick").max_duration_s < T.get_task("place").max_duration_s


def test_paraphrase_groups_are_one_task_and_colour_and_leave_held_out_phrasings_unseen():
    groups = T.paraphrase_groups()
    assert len(groups) == len(T.TASKS) * len(T.COLORS)
    held_out = {t for task in T.TASKS.values() for c in T.COLORS for t in task.instructions(c, "held_out")}
    for group in groups:
        owners = {(task.name, c) for task in T.TASKS.values() for c in T.COLORS if group[0] in task.instructions(c)}
        ((name, color),) = owners
        assert list(group) == T.get_task(name).instructions(color)
        assert not set(group) & held_out


def test_sample_task_and_registry():
    specs = [T.sample_task(np.random.default_rng(s)) for s in range(60)]
    assert specs == [T.sample_task(np.random.default_rng(s)) for s in range(60)]
    assert {s.task for s in specs} == set(T.TASKS) and {s.color for s in specs} == set(T.COLORS)
    for s in specs:
        assert s.instruction in T.get_task(s.task).instructions(s.color, "train")
    held = T.sample_task(np.random.default_rng(0), tasks=("place",), colors=("blue",), split="held_out")
    assert held.instruction in T.get_task("place").instructions("blue", "held_out") and held.split == "held_out"
    with pytest.raises(KeyError, match="registered tasks"):
        T.get_task("juggle")
    with pytest.raises(ValueError, match="colour"):
        T.TaskSpec(task="pick", color="purple", instruction="pick up the purple cube", seed=0)
