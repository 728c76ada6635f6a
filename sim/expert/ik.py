"""Inverse kinematics of the SO-101's five arm joints for the scripted expert.

Damped least squares on a private ``MjData`` (``mj_jac`` at the ``gripperframe`` site or a point fixed to it, e.g. the
closed jaws' tips), for a tool point and a tool orientation: the jaws pointing down (tilted outward, away from the
base, only where the workspace needs it: pointing straight down, the SO-101's wrist_flex limit caps the tool point at
~8 cm above the table), and the jaws' closing direction along a cube face normal (wrist_roll aligned with the cube's
yaw).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import numpy as np

from sim.tasks.scene import PAN_AXIS_XY
from sim.twin.world import GRIPPER_SITE, JOINT_NAMES, joint_dof_addresses, joint_qpos_addresses

ARM = 5  # arm joints before the gripper


@dataclass(frozen=True)
class IKResult:
    q: np.ndarray  # float64[5] arm joint angles (rad)
    pos_err: float  # m
    rot_err: float  # rad (norm of the orientation error vector)
    tilt: float = 0.0  # rad, the tool tilt it was solved for

    @property
    def ok(self) -> bool:
        return self.pos_err < 1.5e-3 and self.rot_err < 0.03


def tool_rotation(yaw: float, tilt: float, azimuth: float) -> np.ndarray:
    """Target rotation matrix of the ``gripperframe`` site: its x axis (where the jaws point) straight down, tipped
    ``tilt`` rad outward (away from the base, in the vertical plane at ``azimuth``); its z axis (from the fixed to the
    moving jaw: the closing direction) horizontal at heading ``yaw``, before the tilt."""
    x = np.array([0.0, 0.0, -1.0])
    z = np.array([math.cos(yaw), math.sin(yaw), 0.0])
    rot = np.column_stack([x, np.cross(z, x), z])
    return _axis_rotation(np.array([-math.sin(azimuth), math.cos(azimuth), 0.0]), -tilt) @ rot


def _axis_rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * (k @ k)


def azimuth_of(pos: np.ndarray) -> float:
    """Heading of ``pos`` seen from the shoulder_pan axis."""
    return math.atan2(pos[1] - PAN_AXIS_XY[1], pos[0] - PAN_AXIS_XY[0])


def wrap(angle: float) -> float:
    return (angle + math.pi) % (2 * math.pi) - math.pi


class ArmIK:
    """Damped-least-squares IK of the five arm joints for the ``gripperframe`` site, on a private ``MjData``."""

    TILTS = tuple(math.radians(a) for a in (0, 6, 12, 18, 24, 30, 36, 42))

    def __init__(self, model: mujoco.MjModel, margin: float = 0.02) -> None:
        self.model = model
        self.data = mujoco.MjData(model)
        self._qadr = joint_qpos_addresses(model)[:ARM]
        self._dadr = joint_dof_addresses(model)[:ARM]
        ranges = np.array([model.jnt_range[model.joint(n).id] for n in JOINT_NAMES[:ARM]])
        self.lo, self.hi = ranges[:, 0] + margin, ranges[:, 1] - margin
        self._site = model.site(GRIPPER_SITE).id
        self._body = model.site_bodyid[self._site]
        self._roll_joint = model.joint("wrist_roll").id
        self._jacp = np.zeros((3, model.nv))
        self._jacr = np.zeros((3, model.nv))

    def _forward(self, q: np.ndarray) -> None:
        self.data.qpos[self._qadr] = q
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)

    def fk(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Site position and rotation matrix for arm joints ``q`` (rad, 5 or 6 values)."""
        self._forward(np.asarray(q, dtype=np.float64)[:ARM])
        return self.data.site_xpos[self._site].copy(), self.data.site_xmat[self._site].reshape(3, 3).copy()

    def roll_axis_z(self, q: np.ndarray) -> float:
        """World z component of the wrist_roll axis at ``q`` (+-1 when the jaws point straight down)."""
        self._forward(np.asarray(q, dtype=np.float64)[:ARM])
        return float(self.data.xaxis[self._roll_joint][2])

    def solve(
        self,
        pos: np.ndarray,
        q_init: np.ndarray,
        *,
        rot: np.ndarray | None = None,
        axis: np.ndarray | None = None,
        fix_roll: bool = False,
        offset: np.ndarray | None = None,
        iters: int = 100,
        rot_weight: float = 0.1,
    ) -> IKResult:
        """Joint angles that put the point ``offset`` (site frame; default the site) at ``pos`` and the site frame
        at ``rot`` (all three axes), or only its x axis along ``axis``; ``fix_roll`` keeps wrist_roll at its
        ``q_init`` value. Starts from ``q_init`` (5 values, rad)."""
        q = np.clip(np.asarray(q_init, dtype=np.float64)[:ARM].copy(), self.lo, self.hi)
        off = np.zeros(3) if offset is None else np.asarray(offset, dtype=np.float64)
        active = np.ones(ARM, dtype=bool)
        if fix_roll:
            active[4] = False
        e = np.zeros(6)
        pos_err = rot_err = float("inf")
        for _ in range(iters):
            self._forward(q)
            r_cur = self.data.site_xmat[self._site].reshape(3, 3)
            point = self.data.site_xpos[self._site] + r_cur @ off
            e[:3] = pos - point
            if rot is not None:
                e[3:] = 0.5 * (
                    np.cross(r_cur[:, 0], rot[:, 0])
                    + np.cross(r_cur[:, 1], rot[:, 1])
                    + np.cross(r_cur[:, 2], rot[:, 2])
                )
            elif axis is not None:
                e[3:] = np.cross(r_cur[:, 0], axis)
            else:
                e[3:] = 0.0
            pos_err, rot_err = float(np.linalg.norm(e[:3])), float(np.linalg.norm(e[3:]))
            if pos_err < 2e-4 and rot_err < 2e-3:
                break
            mujoco.mj_jac(self.model, self.data, self._jacp, self._jacr, point, self._body)
            jac = np.vstack([self._jacp[:, self._dadr], rot_weight * self._jacr[:, self._dadr]])
            jac[:, ~active] = 0.0
            # Joints pinned at a limit and pushed further out drop out of this step.
            err = np.concatenate([e[:3], rot_weight * e[3:]])
            dq = self._dls(jac, err)
            pinned = ((q <= self.lo + 1e-9) & (dq < 0)) | ((q >= self.hi - 1e-9) & (dq > 0))
            if pinned.any():
                jac[:, pinned] = 0.0
                dq = self._dls(jac, err)
            step = float(np.abs(dq).max())
            if step > 0.3:
                dq *= 0.3 / step
            q = np.clip(q + dq, self.lo, self.hi)
        return IKResult(q=q, pos_err=pos_err, rot_err=rot_err)

    @staticmethod
    def _dls(jac: np.ndarray, err: np.ndarray, damping: float = 1e-3) -> np.ndarray:
        return jac.T @ np.linalg.solve(jac @ jac.T + damping**2 * np.eye(jac.shape[0]), err)

    def seed(self, pos: np.ndarray, roll: float = 0.0) -> np.ndarray:
        """A starting configuration reaching toward ``pos`` with the jaws down (positive pan turns toward -y)."""
        return np.array([-azimuth_of(pos), 0.0, 0.6, 1.2, roll])

    def solve_down(
        self,
        pos: np.ndarray,
        yaw: float | None,
        q_init: np.ndarray,
        *,
        tilt_from: float = 0.0,
        offset: np.ndarray | None = None,
    ) -> IKResult:
        """Tool point at ``pos``, jaws pointing down with the closing direction at ``yaw`` (None: wrist_roll kept
        at ``q_init``'s value); the smallest outward tilt (from ``tilt_from`` up, then down) that reaches."""
        az = azimuth_of(pos)
        tilts = sorted(self.TILTS, key=lambda a: (a < tilt_from - 1e-9, abs(a - tilt_from)))
        best: IKResult | None = None
        for tilt in tilts:
            if yaw is None:
                rot = tool_rotation(0.0, tilt, az)
                res = self.solve(pos, q_init, axis=rot[:, 0], fix_roll=True, offset=offset)
            else:
                res = self.solve(pos, q_init, rot=tool_rotation(yaw, tilt, az), offset=offset)
            res = IKResult(q=res.q, pos_err=res.pos_err, rot_err=res.rot_err, tilt=tilt)
            if res.ok:
                return res
            if best is None or res.pos_err + 0.05 * res.rot_err < best.pos_err + 0.05 * best.rot_err:
                best = res
        assert best is not None
        return best

    def roll_for_yaw(self, pos: np.ndarray, yaw: float, q_init: np.ndarray) -> float | None:
        """The wrist_roll angle that turns the closing direction to ``yaw`` with the jaws down at ``pos`` (found from
        a solve with the roll fixed, corrected by the yaw difference); None when it is outside the roll's range."""
        az = azimuth_of(pos)
        res = self.solve(pos, q_init, axis=tool_rotation(0.0, 0.0, az)[:, 0], fix_roll=True)
        _, rot = self.fk(res.q)
        yaw_now = math.atan2(rot[1, 2], rot[0, 2])
        sign = 1.0 if self.roll_axis_z(res.q) >= 0 else -1.0
        roll = res.q[4] + sign * wrap(yaw - yaw_now)
        inside = [c for c in (roll - 2 * math.pi, roll, roll + 2 * math.pi) if self.lo[4] <= c <= self.hi[4]]
        return min(inside, key=abs) if inside else None
