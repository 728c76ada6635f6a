"""The machinery under the scripted expert's task scripts: running a script, the grip it holds, its motion primitives.

A script is a generator that yields one joint goal (LeRobot units) per ``act`` call. ``ExpertMotion.act`` feeds it
the latest ``ExpertState``, caps how far any joint goal moves per call (``ExpertConfig.max_step_deg``: the real arm
is rate limited) and, while a cube is held, regulates the gripper goal on the gripper's load. The primitives never
rely on exact tracking: motions are interpolated under a speed cap (joint-space moves, straight lines of the tool
point solved by ``ArmIK``, gripper ramps) and end when the measured joints arrive near the goal or on a timeout.
``sim.expert.script.ScriptedExpert`` writes the task scripts on top of these.
"""

from __future__ import annotations

from collections.abc import Generator

import mujoco
import numpy as np

from sim.expert.config import ExpertConfig
from sim.expert.ik import ARM, ArmIK
from sim.expert.state import ExpertState
from sim.tasks.registry import TaskSpec
from sim.tasks.scene import BOX_HALF_INNER, BOX_WALL_TOP
from sim.twin.world import lerobot_to_qpos, qpos_to_lerobot

Goal = np.ndarray
Script = Generator[Goal, None, None]


class ExpertMotion:
    """Runs a generator script (``_main``, written by a subclass) at the control rate with privileged state. Call
    ``reset()`` at the start of every episode (after the world reset), then ``act(data, t)`` once per control period
    with the episode time ``t``."""

    def __init__(self, model: mujoco.MjModel, task_spec: TaskSpec, config: ExpertConfig | None = None) -> None:
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
            self._cmd_pos = self.site_now()[0]  # straight-line moves start where the tool point is
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
        inner = BOX_HALF_INNER
        return bool(abs(pos[0] - b[0]) < inner and abs(pos[1] - b[1]) < inner and pos[2] < BOX_WALL_TOP + 0.01)

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

    def _main(self) -> Script:
        """The episode's script: one goal per ``act`` call."""
        raise NotImplementedError
