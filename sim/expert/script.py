"""A scripted expert for the tasks in ``sim/tasks.py``: privileged state in, joint goals in LeRobot units out.

``ScriptedExpert(model, spec).act(data, t)`` returns float32[6] goal positions in LeRobot's SO-101 units (5 joints in
degrees, 0 at mid-range; gripper 0 closed .. 100 open): the same action a policy emits, meant to be called at the
control rate (30 Hz). It reads the true cube poses from the simulation (privileged), and the arm's measured joint
positions (``data.qpos``, or what the caller passes as ``joints``: e.g. the observation.state read over the servo bus).
It assumes nothing about how its goals are executed: position actuators, emulated STS3215 servos or a real arm. It
never relies on exact tracking: motions are interpolated under a speed cap and no joint goal moves more than
``ExpertConfig.max_step_deg`` per call; phases end when the measured joints arrive near the goal or on a timeout; the
gripper closes to a goal below the cube's width (it squeezes) and the grasp is checked (the jaw held open by the cube,
the cube next to the tool point, the cube lifted) before going on, with a retry when a check fails. Once the cube is
in the hand the squeeze is eased until the gripper's load (``ExpertState.gripper_load``: actuator torque over stall
torque, what the servo's Present_Load reports) is a few percent of stall: an STS3215 held above its Overload_Torque
(LeRobot sets 25 % on the gripper) for its Protection_Time (2 s) turns its torque off. Touching stops at the first
contact instead of pressing on.

Scripts are generators: each phase (approach, turn, descend, close, lift, carry, lower, release, ...) yields one goal
per ``act`` call, and ``phase`` / ``attempts`` tell where the expert is (for logs and tests). The jaws turn to the
cube's faces only at the hover point above it, where the wrist camera shows the cube's yaw.

Inverse kinematics: damped least squares on a private ``MjData`` (``mj_jac`` at the ``gripperframe`` site or a point
fixed to it, e.g. the closed jaws' tips), for a tool point and a tool orientation: the jaws pointing down (tilted
outward, away from the base, only where the workspace needs it: pointing straight down, the SO-101's wrist_flex limit
caps the tool point at ~8 cm above the table), and the jaws' closing direction along a cube face normal (wrist_roll
aligned with the cube's yaw).
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass, field

import mujoco
import numpy as np

from sim import tasks as T
from sim.twin.world import (
    GRIPPER_SITE,
    JOINT_NAMES,
    joint_dof_addresses,
    joint_qpos_addresses,
    lerobot_to_qpos,
    qpos_to_lerobot,
)

ARM = 5  # arm joints before the gripper
STALL_TORQUE = 2.94  # N*m: the STS3215's stall torque, the scale of its Present_Load (hardware.md §4.2)


# ---------------------------------------------------------------------------------------------------------------------
# Inverse kinematics


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
    return math.atan2(pos[1] - T.PAN_AXIS_XY[1], pos[0] - T.PAN_AXIS_XY[0])


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


# ---------------------------------------------------------------------------------------------------------------------
# What the expert reads


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
            cubes={c: T.cube_pose(model, data, c) for c in T.COLORS},
            box=T.box_center(model, data),
            touching={c: T.is_touching(model, data, c) for c in T.COLORS},
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


# ---------------------------------------------------------------------------------------------------------------------
# The expert


@dataclass(frozen=True)
class ExpertConfig:
    """Tunables of the scripted expert (heights are of the ``gripperframe`` tool point above the table, m)."""

    max_step_deg: float = 4.5  # no joint goal moves more than this per call (the real arm is rate limited)
    max_step_gripper: float = 4.0  # gripper units (0..100) per call
    joint_speed: float = 100.0  # deg/s, joint-space moves (the fastest joint)
    turn_speed: float = 60.0  # deg/s, turning the jaws to the cube's faces at the hover point
    line_speed: float = 0.12  # m/s, straight-line moves
    slow_speed: float = 0.06  # m/s, the last few cm onto or off a cube
    gripper_speed: float = 120.0  # units/s
    arrive_tol: float = 3.0  # deg: a move has arrived when every measured arm joint is this close to its goal
    move_timeout: float = 2.5  # s after a move's interpolation ends, go on even without arriving
    gripper_open: float = 40.0  # approach opening (moving pad ~25 mm beside a cube centred between the jaws)
    gripper_release: float = 30.0  # opening to let go inside the tray (clear of its walls)
    gripper_squeeze: float = 0.0  # closing goal: below a cube's width, so the jaws squeeze
    grasped_min: float = 6.0  # measured gripper above this after closing: something is between the jaws
    hold_margin: float = 6.0  # once grasped, hold with the goal this far below the measured jaw (no load reading)
    # Holding with a load reading (ExpertState.gripper_load): keep the squeeze between these fractions of the stall
    # torque. A servo squeezing above its Overload_Torque (LeRobot sets 25 % on the gripper) for its Protection_Time
    # (2 s) turns its torque off; a few percent of stall (~0.3 N*m, ~5 N at the pads) holds a 15 g cube easily.
    hold_load: tuple[float, float] = (0.05, 0.16)
    hold_gain: float = 1.0  # gripper units opened per unit of load above the window, per call
    # s from squeezing to holding before lifting: min, max. The lift starts 0.2 s after the jaw stopped, whatever the
    # load (it is regulated on during the lift): a policy sees the jaw stop but not the load, so a wait that ends
    # on the load reading (up to 1.2 s before) left it stuck holding the cube on the table.
    hold_settle: tuple[float, float] = (0.2, 0.2)
    jaw_still: float = 0.25  # gripper units: the jaw reading moved less than this over three calls
    touch_gripper: float = 4.0  # jaws nearly closed, not pressing on each other
    hover_z: float = 0.06
    grasp_z: float = 0.0065  # the tool point 6 mm below a cube's centre: the pads hold its lower half
    lift_z: float = 0.085  # cube bottom ~7.5 cm up
    carry_z: float = 0.085
    release_drop: float = 0.010  # cube bottom above the tray floor when letting go
    touch_press: float = 0.003  # how far the jaw tips aim below the cube's top (the descent stops at contact)
    touch_offset: tuple[float, float, float] = (0.002, 0.0, -0.016)  # closed jaw tips in the site frame
    lift_radius: tuple[float, float] = (0.15, 0.26)  # lift/carry points stay in this band around the pan axis
    jaw_reach: tuple[float, float] = (0.032, 0.045)  # fixed-jaw / open moving-jaw extent along the closing axis
    # m along the closing direction from the cube's centre to the tool point, which sits by the fixed jaw: -8 mm puts
    # the cube midway between the open pads (gaps ~12 mm on each side at gripper_open 40, instead of 3.6 mm to the
    # fixed pad and 20 mm to the moving one), so an aim a few mm off still lands the jaws beside the cube, not on it.
    grasp_shift: float = -0.008
    clearance: float = 0.008  # wanted gap between the jaws' sweep and other cubes or the tray

    def __post_init__(self) -> None:
        for name in (
            "max_step_deg",
            "max_step_gripper",
            "joint_speed",
            "turn_speed",
            "line_speed",
            "slow_speed",
            "gripper_speed",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"ExpertConfig.{name} must be positive, got {getattr(self, name)}")
        for name in ("gripper_open", "gripper_release", "gripper_squeeze", "grasped_min"):
            if not 0 <= getattr(self, name) <= 100:
                raise ValueError(f"ExpertConfig.{name} is in gripper units, 0 (closed) .. 100 (open)")
        if self.gripper_squeeze >= self.grasped_min:
            raise ValueError("ExpertConfig.gripper_squeeze must be below grasped_min, or a miss reads as a grasp")


Goal = np.ndarray
Script = Generator[Goal, None, None]


class ScriptedExpert:
    """Solves ``spec`` (a ``sim.tasks.TaskSpec``) with privileged state. Call ``reset()`` at the start of every
    episode (after the world reset), then ``act(data, t)`` once per control period with the episode time ``t``."""

    def __init__(self, model: mujoco.MjModel, task_spec: T.TaskSpec, config: ExpertConfig | None = None) -> None:
        self.model = model
        self.spec = task_spec
        self.config = config or ExpertConfig()
        self.ik = ArmIK(model)
        self.phase = "start"
        self.attempts = 0
        self._script: Script | None = None
        self._state: ExpertState | None = None
        self._t = 0.0
        self._dt = 1.0 / 30.0
        self._out: np.ndarray | None = None
        self._goal = np.zeros(6)
        self._cmd_pos = np.zeros(3)
        self._cmd_tilt = 0.0
        self._grip_hold: float | None = None  # set while holding a cube: the regulated gripper goal
        self._jaw_history: list[float] = []

    # -- public ---------------------------------------------------------------------------------------------------
    def reset(self) -> None:
        self.phase = "start"
        self.attempts = 0
        self._script = None
        self._state = None
        self._out = None
        self._t = 0.0
        self._grip_hold = None
        self._jaw_history = []

    def act(self, data_or_state: mujoco.MjData | ExpertState, t: float, joints: np.ndarray | None = None) -> Goal:
        """Joint goals (float32[6], LeRobot units) for time ``t`` (s since the episode start)."""
        if isinstance(data_or_state, ExpertState):
            state = data_or_state
            if joints is not None:
                state.joints = np.asarray(joints, dtype=np.float64)
        else:
            state = ExpertState.from_mjdata(self.model, data_or_state, joints)
        if self._state is not None and t > self._t:
            self._dt = t - self._t
        self._t = t
        self._state = state
        self._jaw_history = [*self._jaw_history[-4:], float(state.joints[5])]
        if self._script is None:
            self._goal = state.joints.copy()
            self._out = state.joints.copy()
            self._script = self._main()
        goal = next(self._script)
        if self._grip_hold is not None:
            goal[5] = self._goal[5] = self._regulate_hold()
        assert self._out is not None
        c = self.config
        cap = np.array([c.max_step_deg] * ARM + [c.max_step_gripper])
        self._out = self._out + np.clip(goal - self._out, -cap, cap)
        return self._out.astype(np.float32)

    # -- state helpers ----------------------------------------------------------------------------------------------
    @property
    def state(self) -> ExpertState:
        assert self._state is not None
        return self._state

    def cube(self, color: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        return self.state.cubes[color or self.spec.color]

    def site_now(self) -> tuple[np.ndarray, np.ndarray]:
        """Tool point and frame at the measured joints."""
        return self.ik.fk(lerobot_to_qpos(self.state.joints))

    def arrived(self, tol: float | None = None) -> bool:
        tol = self.config.arrive_tol if tol is None else tol
        return bool(np.abs(self.state.joints[:ARM] - self._goal[:ARM]).max() < tol)

    def cube_in_hand(self) -> bool:
        pos, _ = self.cube()
        site, _ = self.site_now()
        return self.state.joints[5] > self.config.grasped_min and float(np.linalg.norm(pos - site)) < 0.03

    def cube_in_box(self) -> bool:
        pos, _ = self.cube()
        b = self.state.box
        inner = T.BOX_HALF_INNER
        return bool(abs(pos[0] - b[0]) < inner and abs(pos[1] - b[1]) < inner and pos[2] < T.BOX_WALL_TOP + 0.01)

    def _regulate_hold(self) -> float:
        """The gripper goal while holding: squeeze, but keep the load (when it is known) inside ``hold_load``.

        A load reading means something only once the jaw has stopped: a position servo lagging behind a moving goal
        reads a high load too. So the goal moves (a small step open when the load is above the window, a smaller one
        closed when below) only when the last goal has gone out (the output is rate limited) and the measured jaw
        has been still for two calls."""
        assert self._grip_hold is not None and self._out is not None
        load = self.state.gripper_load
        c = self.config
        jaws = self._jaw_history
        still = len(jaws) >= 3 and max(jaws[-3:]) - min(jaws[-3:]) < c.jaw_still
        if load is not None and still and abs(self._out[5] - self._grip_hold) < 1e-6:
            lo, hi = c.hold_load
            load = abs(load)
            if load > hi:
                self._grip_hold += min(0.3, c.hold_gain * (load - 0.5 * (lo + hi)))
            elif load < lo:
                self._grip_hold -= 0.05
            self._grip_hold = float(np.clip(self._grip_hold, c.gripper_squeeze, 100.0))
        return self._grip_hold

    def holding_gently(self) -> bool:
        """Holding, and the gripper load (if known) is inside the wanted window."""
        load = self.state.gripper_load
        return self._grip_hold is not None and (load is None or abs(load) <= self.config.hold_load[1])

    def _start_holding(self) -> Script:
        """From squeezing to holding: the gripper goal at the jaw's measured position, opened from there until the
        load is inside the window (load regulated), or ``hold_margin`` below it (no load reading)."""
        c = self.config
        jaw = float(self.state.joints[5])
        if self.state.gripper_load is None:
            self._grip_hold = max(c.gripper_squeeze, jaw - c.hold_margin)
        else:
            self._grip_hold = max(c.gripper_squeeze, jaw)
        self._goal[5] = self._grip_hold
        t0 = self._t
        while self._t - t0 < c.hold_settle[1] and (self._t - t0 < c.hold_settle[0] or not self.holding_gently()):
            yield self._goal.copy()

    # -- motion primitives (generators yielding one goal per call) ---------------------------------------------------
    def _wait_arrival(self, timeout: float, tol: float | None = None) -> Script:
        t_end = self._t + timeout
        while not self.arrived(tol) and self._t < t_end:
            yield self._goal.copy()

    def _move_joints(self, target: np.ndarray, speed: float | None = None, wait: bool = True) -> Script:
        """Straight line in joint space from the current goal to ``target`` (LeRobot units), fastest joint at
        ``speed`` deg/s; then wait for arrival."""
        speed = speed or self.config.joint_speed
        start = self._goal.copy()
        span = float(np.abs(target[:ARM] - start[:ARM]).max())
        duration = max(span / speed, abs(target[5] - start[5]) / self.config.gripper_speed, 1e-6)
        t0 = self._t
        while True:
            s = min(1.0, (self._t - t0 + self._dt) / duration)
            self._goal = start + s * (target - start)
            yield self._goal.copy()
            if s >= 1.0:
                break
        if wait:
            yield from self._wait_arrival(self.config.move_timeout)

    def _move_gripper(self, value: float, settle: float = 0.25, timeout: float = 1.5) -> Script:
        """Ramp the gripper goal to ``value``; then wait until the measured jaw stops moving (or ``timeout``)."""
        self._grip_hold = None
        target = self._goal.copy()
        target[5] = value
        yield from self._move_joints(target, wait=False)
        t0, last, still_since = self._t, self.state.joints[5], self._t
        while self._t - t0 < timeout:
            yield self._goal.copy()
            now = self.state.joints[5]
            if abs(now - last) > 0.3:
                still_since = self._t
            last = now
            if self._t - still_since >= settle:
                break

    def _solve(self, pos: np.ndarray, yaw: float | None, offset: np.ndarray | None = None) -> np.ndarray:
        """IK for a jaws-down pose; returns the arm goal (LeRobot units, gripper unchanged)."""
        q_init = lerobot_to_qpos(self._goal)[:ARM]
        res = self.ik.solve_down(pos, yaw, q_init, tilt_from=self._cmd_tilt, offset=offset)
        self._cmd_pos, self._cmd_tilt = np.array(pos, dtype=np.float64), res.tilt
        goal = self._goal.copy()
        q = np.zeros(6)
        q[:ARM] = res.q
        goal[:ARM] = qpos_to_lerobot(q)[:ARM]
        return goal

    def _move_line(
        self,
        pos: np.ndarray,
        yaw: float | None,
        speed: float | None = None,
        offset: np.ndarray | None = None,
        wait: bool = True,
    ) -> Script:
        """Straight line of the tool point (or ``offset`` point) from the last commanded point to ``pos``."""
        speed = speed or self.config.line_speed
        start = self._cmd_pos.copy()
        dist = float(np.linalg.norm(pos - start))
        duration = max(dist / speed, 1e-6)
        t0 = self._t
        while True:
            s = min(1.0, (self._t - t0 + self._dt) / duration)
            self._goal = self._solve(start + s * (pos - start), yaw, offset)
            yield self._goal.copy()
            if s >= 1.0:
                break
        if wait:
            yield from self._wait_arrival(self.config.move_timeout)

    def _move_to(
        self,
        pos: np.ndarray,
        yaw: float | None,
        gripper: float | None = None,
        offset: np.ndarray | None = None,
        speed: float | None = None,
    ) -> Script:
        """Joint-space move to a jaws-down pose (for transfers high above the table; ``yaw`` None keeps the
        wrist_roll)."""
        q_init = lerobot_to_qpos(self._goal)[:ARM]
        if yaw is None:  # wrist_roll kept where it is
            q_init = self.ik.seed(pos, float(q_init[4]))
        else:
            q_init = self.ik.seed(pos, self.ik.roll_for_yaw(pos, yaw, self.ik.seed(pos)) or 0.0)
        res = self.ik.solve_down(pos, yaw, q_init, offset=offset)
        self._cmd_pos, self._cmd_tilt = np.array(pos, dtype=np.float64), res.tilt
        target = self._goal.copy()
        q = np.zeros(6)
        q[:ARM] = res.q
        target[:ARM] = qpos_to_lerobot(q)[:ARM]
        if gripper is not None:
            target[5] = gripper
        yield from self._move_joints(target, speed)

    # -- planning -----------------------------------------------------------------------------------------------------
    def _lift_point(self, pos: np.ndarray, z: float) -> np.ndarray:
        az = azimuth_of(pos)
        r = math.hypot(pos[0] - T.PAN_AXIS_XY[0], pos[1] - T.PAN_AXIS_XY[1])
        r = float(np.clip(r, *self.config.lift_radius))
        return np.array([T.PAN_AXIS_XY[0] + r * math.cos(az), T.PAN_AXIS_XY[1] + r * math.sin(az), z])

    def grasp_yaw(self, pos: np.ndarray, quat: np.ndarray, offset: np.ndarray | None = None) -> float:
        """Closing direction for a top-down grasp (or touch, with ``offset``) of the cube at ``pos``: along a face
        normal, preferring (1) one the arm reaches (wrist_roll in range, hover and grasp heights solved), (2) jaws
        whose sweep keeps clear of the other cubes and the tray, (3) a direction across the arm (an outward tilt
        then keeps the pads vertical), (4) the smaller wrist_roll."""
        c = self.config
        face = cube_face_yaw(quat)
        az = azimuth_of(pos)
        others = [p[:2] for col, (p, _) in self.state.cubes.items() if col != self.spec.color]
        scored = []
        for k in range(4):
            yaw = wrap(face + k * math.pi / 2)
            d = np.array([math.cos(yaw), math.sin(yaw)])
            shift = c.grasp_shift if offset is None else 0.0  # a touch aims its offset point, unshifted
            pts = [pos[:2] + (shift + s) * d for s in np.linspace(-c.jaw_reach[0], c.jaw_reach[1], 9)]
            gap = min(
                [float(np.linalg.norm(p - o)) - T.CUBE_HALF * math.sqrt(2) for p in pts for o in others]
                + [self._box_gap(p) for p in pts]
            )
            across = abs(math.sin(yaw - az))
            roll = self.ik.roll_for_yaw(pos, yaw, self.ik.seed(pos))
            reachable = roll is not None and all(
                self.ik.solve_down(np.array([pos[0], pos[1], z]), yaw, self.ik.seed(pos, roll), offset=offset).ok
                for z in (c.hover_z, c.grasp_z)
            )
            scored.append(
                (reachable, gap >= c.clearance, across > 0.7, min(gap, 0.03), -abs(4.0 if roll is None else roll), yaw)
            )
        return max(scored)[-1]

    def _box_gap(self, p: np.ndarray) -> float:
        b = self.state.box
        dx = max(abs(p[0] - b[0]) - T.BOX_HALF_OUTER, 0.0)
        dy = max(abs(p[1] - b[1]) - T.BOX_HALF_OUTER, 0.0)
        return math.hypot(dx, dy)

    # -- scripts ------------------------------------------------------------------------------------------------------
    def _main(self) -> Script:
        task = self.spec.task
        if task == "touch":
            yield from self._touch()
        elif task == "pick":
            yield from self._pick()
        elif task == "place":
            yield from self._place()
        else:
            raise ValueError(f"ScriptedExpert has no script for task {task!r}")

    def _touch(self) -> Script:
        c = self.config
        offset = np.array(c.touch_offset)
        while True:
            self.attempts += 1
            pos, quat = self.cube()
            yaw = self.grasp_yaw(pos, quat, offset)
            top = pos + np.array([0.0, 0.0, T.CUBE_HALF - c.touch_press])
            self.phase = "approach"
            hover = np.array([top[0], top[1], c.hover_z])
            yield from self._move_to(hover, yaw, gripper=c.touch_gripper, offset=offset)
            self.phase = "descend"
            for goal in self._move_line(top, yaw, c.slow_speed, offset=offset, wait=False):
                if self.touching():
                    break
                yield goal
            t_end = self._t + 1.0
            while not self.touching() and self._t < t_end:
                yield self._goal.copy()
            self.phase = "hold"
            if self.touching():
                # Stay where the jaws are (measured), not pressing on toward a goal inside the cube.
                self._goal[:ARM] = self.state.joints[:ARM]
                self._cmd_pos = self.site_now()[0] + self.site_now()[1] @ offset
            # Hold while in contact or while the cube is where it was aimed at; else aim again.
            while self.touching() or float(np.linalg.norm(self.cube()[0][:2] - pos[:2])) < 0.01:
                yield self._goal.copy()
            self.phase = "back_off"
            yield from self._move_line(self._cmd_pos + np.array([0, 0, 0.04]), yaw, offset=offset)

    def touching(self) -> bool:
        return bool(self.state.touching.get(self.spec.color, False))

    def _grasp(self) -> Script:
        """Approach, descend, squeeze; retries until the jaws close on the cube. Ends with the cube between them."""
        c = self.config
        while True:
            self.attempts += 1
            pos, quat = self.cube()
            hover_z = max(c.hover_z, pos[2] + 0.045)
            # Above the cube with the wrist_roll as it is, and only there turn the jaws to the cube's faces: from
            # the hover point the wrist camera shows the cube's yaw, which the front camera barely resolves (a cube
            # ~4 px wide), so a policy can copy the turn from what it sees.
            self.phase = "approach"
            yield from self._move_to(np.array([pos[0], pos[1], hover_z]), None, gripper=c.gripper_open)
            pos, quat = self.cube()
            yaw = self.grasp_yaw(pos, quat)
            self.phase = "turn"
            hover = self._shifted(np.array([pos[0], pos[1], hover_z]), yaw)
            yield from self._move_to(hover, yaw, speed=c.turn_speed)
            # The cube may have been nudged meanwhile: aim at where it is now (same yaw family).
            pos, _ = self.cube()
            pos = self._shifted(pos, yaw)
            self.phase = "descend"
            grasp = np.array([pos[0], pos[1], max(c.grasp_z, pos[2] - T.CUBE_HALF + c.grasp_z)])
            yield from self._move_line(np.array([pos[0], pos[1], hover[2]]), yaw, c.slow_speed, wait=False)
            yield from self._move_line(grasp, yaw, c.slow_speed)
            self.phase = "close"
            yield from self._move_gripper(c.gripper_squeeze)
            if self.cube_in_hand():
                yield from self._start_holding()
                return
            self.phase = "regrasp"
            yield from self._move_gripper(c.gripper_open, settle=0.1, timeout=0.8)
            yield from self._move_line(np.array([*self._cmd_pos[:2], hover[2]]), yaw, c.slow_speed)

    def _shifted(self, pos: np.ndarray, yaw: float) -> np.ndarray:
        """``pos`` moved ``grasp_shift`` along the closing direction ``yaw`` (the tool point for a cube at ``pos``)."""
        return pos + self.config.grasp_shift * np.array([math.cos(yaw), math.sin(yaw), 0.0])

    def _lift(self) -> Script:
        c = self.config
        self.phase = "lift"
        up = np.array([*self._cmd_pos[:2], self._cmd_pos[2] + 0.03])
        yield from self._move_line(up, None, c.slow_speed, wait=False)
        yield from self._move_line(self._lift_point(self._cmd_pos, c.lift_z), None)

    def _pick(self) -> Script:
        c = self.config
        while True:
            yield from self._grasp()
            yield from self._lift()
            self.phase = "hold"
            while self.cube_in_hand():
                yield self._goal.copy()
            self.phase = "dropped"
            yield from self._move_gripper(c.gripper_open, settle=0.1, timeout=0.8)

    def _place(self) -> Script:
        c = self.config
        while True:
            if not self.cube_in_box():
                yield from self._grasp()
                yield from self._lift()
                if not self.cube_in_hand():
                    self.phase = "dropped"
                    yield from self._move_gripper(c.gripper_open, settle=0.1, timeout=0.8)
                    continue
                # Where the cube sits in the hand (site frame), to aim the cube - not the tool point - at the tray.
                site, rot = self.site_now()
                held = rot.T @ (self.cube()[0] - site)
                self.phase = "carry"
                box = self.state.box
                above = self._aim(np.array([box[0], box[1], c.carry_z]), held)
                yield from self._move_line(above, None, wait=False)
                if not self.cube_in_hand():
                    continue
                self.phase = "lower"
                cube_z = box[2] + T.BOX_FLOOR_TOP + T.CUBE_HALF + c.release_drop
                release = self._aim(np.array([box[0], box[1], cube_z]), held, site_z=True)
                yield from self._move_line(release, None, c.slow_speed)
                self.phase = "release"
                yield from self._move_gripper(c.gripper_release, settle=0.15, timeout=1.0)
                self.phase = "retreat"
                yield from self._move_line(np.array([*self._cmd_pos[:2], c.carry_z]), None, c.slow_speed)
            self.phase = "done"
            while self.cube_in_box():
                yield self._goal.copy()

    def _aim(self, cube_target: np.ndarray, held: np.ndarray, site_z: bool = False) -> np.ndarray:
        """Tool point that puts a cube held at ``held`` (site frame) at ``cube_target``'s x, y (and z if
        ``site_z``; else the tool point goes to ``cube_target``'s z)."""
        q_init = lerobot_to_qpos(self._goal)[:ARM]
        target = cube_target.copy()
        for _ in range(3):
            res = self.ik.solve_down(target, None, q_init, tilt_from=self._cmd_tilt)
            site, rot = self.ik.fk(res.q)
            cube = site + rot @ held
            correction = cube_target - cube
            if not site_z:
                correction[2] = 0.0
            target = target + correction
            if float(np.linalg.norm(correction)) < 5e-4:
                break
        return target
