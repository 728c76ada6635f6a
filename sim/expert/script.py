"""A scripted expert for the tasks in ``sim/tasks/``: privileged state in, joint goals in LeRobot units out.

``ScriptedExpert(model, spec).act(data, t)`` returns float32[6] goal positions in LeRobot's SO-101 units (5 joints in
degrees, 0 at mid-range; gripper 0 closed .. 100 open): the same action a policy emits, meant to be called at the
control rate (30 Hz). It reads the true cube poses from the simulation (privileged), and the arm's measured joint
positions (``data.qpos``, or what the caller passes as ``joints``: e.g. the observation.state read over the servo bus).
It assumes nothing about how its goals are executed: position actuators, emulated STS3215 servos or a real arm. It
never relies on exact tracking (``sim.expert.motion``: speed-capped, rate-limited moves that end on arrival or a
timeout); the gripper closes to a goal below the cube's width (it squeezes) and the grasp is checked (the jaw held
open by the cube, the cube next to the tool point, the cube lifted) before going on, with a retry when a check fails.
Once the cube is in the hand the squeeze is eased until the gripper's load (``ExpertState.gripper_load``: actuator
torque over stall torque, what the servo's Present_Load reports) is a few percent of stall: an STS3215 held above its
Overload_Torque (LeRobot sets 25 % on the gripper) for its Protection_Time (2 s) turns its torque off. Touching stops
at the first contact instead of pressing on.

An expert can also start mid-episode, from whatever state a policy left (DAgger: ``onboard.eval.dagger``): its
moves start from the measured pose, and a cube already held between the jaws is held on, not dropped and regrasped.

Scripts are generators: each phase (approach, turn, descend, close, lift, carry, lower, release, ...) yields one goal
per ``act`` call, and ``phase`` / ``attempts`` tell where the expert is (for logs and tests). The jaws turn to the
cube's faces only at the hover point above it, where the wrist camera shows the cube's yaw. The poses come from
``sim.expert.ik``.
"""

from __future__ import annotations

import math

import numpy as np

from sim.expert.ik import ARM, azimuth_of, wrap
from sim.expert.motion import ExpertMotion, Script
from sim.expert.state import cube_face_yaw
from sim.tasks.scene import BOX_FLOOR_TOP, BOX_HALF_OUTER, CUBE_HALF, PAN_AXIS_XY
from sim.twin.world import lerobot_to_qpos


class ScriptedExpert(ExpertMotion):
    """Solves ``spec`` (a ``sim.tasks.TaskSpec``) with privileged state. Call ``reset()`` at the start of every
    episode (after the world reset), then ``act(data, t)`` once per control period with the episode time ``t``."""

    # -- planning -----------------------------------------------------------------------------------------------------
    def _lift_point(self, pos: np.ndarray, z: float) -> np.ndarray:
        az = azimuth_of(pos)
        r = math.hypot(pos[0] - PAN_AXIS_XY[0], pos[1] - PAN_AXIS_XY[1])
        r = float(np.clip(r, *self.config.lift_radius))
        return np.array([PAN_AXIS_XY[0] + r * math.cos(az), PAN_AXIS_XY[1] + r * math.sin(az), z])

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
                [float(np.linalg.norm(p - o)) - CUBE_HALF * math.sqrt(2) for p in pts for o in others]
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
        dx = max(abs(p[0] - b[0]) - BOX_HALF_OUTER, 0.0)
        dy = max(abs(p[1] - b[1]) - BOX_HALF_OUTER, 0.0)
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
            top = pos + np.array([0.0, 0.0, CUBE_HALF - c.touch_press])
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
            grasp = np.array([pos[0], pos[1], max(c.grasp_z, pos[2] - CUBE_HALF + c.grasp_z)])
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

    def _take_hold(self) -> Script:
        """Grasp the cube; or, when it is already between the closed jaws (an expert started mid-episode, taking over
        from a policy: DAgger), hold it as it is."""
        if self.cube_in_hand():
            yield from self._start_holding()
        else:
            yield from self._grasp()

    def _pick(self) -> Script:
        c = self.config
        while True:
            yield from self._take_hold()
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
                yield from self._take_hold()
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
                cube_z = box[2] + BOX_FLOOR_TOP + CUBE_HALF + c.release_drop
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
