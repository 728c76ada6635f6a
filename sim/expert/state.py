"""What the scripted expert reads: the arm's measured joints and the true (privileged) cube and tray poses."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import mujoco
import numpy as np

from sim.tasks.scene import COLORS, box_center, cube_pose, is_touching
from sim.twin.world import joint_qpos_addresses, qpos_to_lerobot

STALL_TORQUE = 2.94  # N*m: the STS3215's stall torque, the scale of its Present_Load (hardware.md §4.2)


@dataclass
class ExpertState:
    """What the expert looks at: the arm's measured joints (LeRobot units) and the true cube and tray poses."""

    joints: np.ndarray  # float64[6]
    cubes: dict[str, tuple[np.ndarray, np.ndarray]]  # colour -> (position, quaternion w x y z)
    box: np.ndarray  # tray centre on the table
    touching: dict[str, bool] = field(default_factory=dict)  # colour -> the gripper touches that cube
    gripper_load: float | None = None  # gripper actuator torque / stall torque, signed (what Present_Load reports)

    @classmethod
    def from_mjdata(cls, model: mujoco.MjModel, data: mujoco.MjData, joints: np.ndarray | None = None) -> ExpertState:
        if joints is None:
            joints = qpos_to_lerobot(data.qpos[joint_qpos_addresses(model)])
        return cls(
            joints=np.asarray(joints, dtype=np.float64).copy(),
            cubes={c: cube_pose(model, data, c) for c in COLORS},
            box=box_center(model, data),
            touching={c: is_touching(model, data, c) for c in COLORS},
            gripper_load=float(data.actuator_force[model.actuator("gripper").id]) / STALL_TORQUE,
        )


def cube_face_yaw(quat: np.ndarray) -> float:
    """Heading of a face normal of a cube resting on any face: the cube axis most vertical is "up", the heading of
    another axis projected on the table is returned (faces repeat every 90 degrees)."""
    mat = np.zeros(9)
    mujoco.mju_quat2Mat(mat, np.asarray(quat, dtype=np.float64))
    rot = mat.reshape(3, 3)
    up = int(np.argmax(np.abs(rot[2])))
    side = rot[:, (up + 1) % 3]
    return math.atan2(side[1], side[0])
