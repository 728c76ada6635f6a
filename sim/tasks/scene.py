"""The SO-101 tabletop scene as the tasks see it: names and sizes from scene.xml, world-state readings (cube poses,
contacts, the tray) and the instantaneous success predicates built on them (shared by the tasks, the scripted expert
and tests)."""

from __future__ import annotations

import mujoco
import numpy as np

COLORS = ("red", "green", "blue")
CUBE_HALF = 0.0125  # m (25 mm cubes, scene.xml)
TABLE_Z = 0.0  # the table top
PAN_AXIS_XY = (0.0388353, 0.0)  # the shoulder_pan axis (hardware.md §4.1): the workspace is laid out around it

# The tray (scene.xml body `box`): 90 x 90 mm outside, 3 mm walls 30 mm high, 3 mm floor.
BOX_HALF_OUTER = 0.045
BOX_HALF_INNER = 0.042
BOX_WALL_TOP = 0.030
BOX_FLOOR_TOP = 0.003

# Arm bodies that count as "the gripper" for touching, holding and releasing.
GRIPPER_BODIES = ("gripper", "moving_jaw_so101_v1")
FIXED_JAW_BODY = "gripper"
MOVING_JAW_BODY = "moving_jaw_so101_v1"

# Success thresholds.
LIFT_HEIGHT = 0.05  # pick: the cube's bottom at least this far above the table
REST_LIN_SPEED = 0.03  # m/s: place: "resting"
REST_ANG_SPEED = 1.0  # rad/s


def cube_body(color: str) -> str:
    """Body (and free-joint, and geom) name of the ``color`` cube in scene.xml."""
    if color not in COLORS:
        raise ValueError(f"unknown cube colour {color!r}; the scene has {COLORS}")
    return f"{color}_cube"


def cube_pose(model: mujoco.MjModel, data: mujoco.MjData, color: str) -> tuple[np.ndarray, np.ndarray]:
    """World position (m) and orientation quaternion (w, x, y, z) of the ``color`` cube, from ``data.qpos``."""
    adr = model.jnt_qposadr[model.joint(cube_body(color)).id]
    return data.qpos[adr : adr + 3].copy(), data.qpos[adr + 3 : adr + 7].copy()


def cube_velocity(model: mujoco.MjModel, data: mujoco.MjData, color: str) -> tuple[np.ndarray, np.ndarray]:
    """Linear (m/s, world frame) and angular (rad/s, body frame) velocity of the ``color`` cube."""
    adr = model.jnt_dofadr[model.joint(cube_body(color)).id]
    return data.qvel[adr : adr + 3].copy(), data.qvel[adr + 3 : adr + 6].copy()


def box_center(model: mujoco.MjModel, data: mujoco.MjData) -> np.ndarray:
    """World position of the tray's body origin (centre of its footprint, on the table)."""
    return data.xpos[model.body("box").id].copy()


def contact_bodies(model: mujoco.MjModel, data: mujoco.MjData, body: str) -> set[str]:
    """Names of the bodies touching ``body`` (any geom pair in ``data.contact``, as of the last forward pass)."""
    bid = model.body(body).id
    found: set[str] = set()
    for i in range(data.ncon):
        c = data.contact[i]
        b1, b2 = model.geom_bodyid[c.geom1], model.geom_bodyid[c.geom2]
        if b1 == bid and b2 != bid:
            found.add(model.body(b2).name)
        elif b2 == bid and b1 != bid:
            found.add(model.body(b1).name)
    return found


def is_touching(model: mujoco.MjModel, data: mujoco.MjData, color: str) -> bool:
    """The gripper (either jaw) touches the ``color`` cube."""
    return bool(contact_bodies(model, data, cube_body(color)) & set(GRIPPER_BODIES))


def is_held(model: mujoco.MjModel, data: mujoco.MjData, color: str) -> bool:
    """Both jaws touch the ``color`` cube (squeezed between them)."""
    touching = contact_bodies(model, data, cube_body(color))
    return FIXED_JAW_BODY in touching and MOVING_JAW_BODY in touching


def is_lifted(model: mujoco.MjModel, data: mujoco.MjData, color: str, height: float = LIFT_HEIGHT) -> bool:
    """The ``color`` cube's bottom is at least ``height`` above the table (its centre ``height + 12.5 mm``)."""
    pos, _ = cube_pose(model, data, color)
    return pos[2] >= TABLE_Z + CUBE_HALF + height


def is_in_box(model: mujoco.MjModel, data: mujoco.MjData, color: str) -> bool:
    """The ``color`` cube's centre is inside the tray's inner footprint and below the top of its walls."""
    pos, _ = cube_pose(model, data, color)
    c = box_center(model, data)
    inside = abs(pos[0] - c[0]) < BOX_HALF_INNER and abs(pos[1] - c[1]) < BOX_HALF_INNER
    return bool(inside and pos[2] < c[2] + BOX_WALL_TOP + CUBE_HALF)


def is_resting(model: mujoco.MjModel, data: mujoco.MjData, color: str) -> bool:
    lin, ang = cube_velocity(model, data, color)
    return bool(np.linalg.norm(lin) < REST_LIN_SPEED and np.linalg.norm(ang) < REST_ANG_SPEED)


def success_touch(model: mujoco.MjModel, data: mujoco.MjData, color: str) -> bool:
    return is_touching(model, data, color)


def success_pick(model: mujoco.MjModel, data: mujoco.MjData, color: str) -> bool:
    return is_lifted(model, data, color) and is_held(model, data, color)


def success_place(model: mujoco.MjModel, data: mujoco.MjData, color: str) -> bool:
    return is_in_box(model, data, color) and is_resting(model, data, color) and not is_touching(model, data, color)
