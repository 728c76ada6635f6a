"""A simulated leader arm moved by the scripted expert: the person at the leader, in simulation.

    leader = ExpertLeader(follower)            # a second SimulatedSO101 (arm-only world) on its own bus
    Arm(ArmConfig("so101_leader", leader.url, ...)).connect()   # read like a real leader
    leader.start(spec)                         # the expert solves `spec` in the FOLLOWER's world
    follower.clock.sleep_until(t)              # the leader's joints follow the expert as the follower's time runs

The leader is a ``SimulatedSO101`` in its own ``World("so101")`` (the arm alone) with its own emulated bus; its
torque stays off (``Arm.configure`` for a leader) and its joints are moved kinematically by its ``hand``. The expert
watches the follower's world (privileged: cube poses, and the follower's joints) and its goals, in LeRobot units,
become the leader's joint angles (``lerobot_to_qpos``), updated at ``rate_hz`` of the follower's simulated time (a
post-step hook of the follower's world); ``play(actions, fps)`` replays a recorded leader's actions instead.
``threaded=True`` (a leader served in real time) computes the goals in a thread of their own, on a snapshot of the
follower's world, so that the expert's occasional long plans (~0.3 s of IK) neither hold the world's lock nor run at
the physics thread's raised priority, where they would starve the kernel's tty workers. The leader's world time is
kept with the follower's, so its servos' clocks agree. Without an episode (``stop()``), the
hand keeps the leader where it is (``home()`` moves it to the calibration pose).
"""

from __future__ import annotations

import threading

import numpy as np

from sim import tasks as T
from sim.expert.script import ScriptedExpert
from sim.expert.state import ExpertState
from sim.twin.physics import World
from sim.twin.so101 import SimulatedSO101
from sim.twin.world import JOINT_NAMES, lerobot_to_qpos, qpos_to_lerobot


class ExpertLeader:
    def __init__(
        self,
        follower: SimulatedSO101,
        *,
        seed: int = 0,
        name: str | None = None,
        rate_hz: float = 30.0,
        uncalibrated: bool = True,
        threaded: bool = False,
    ):
        if not rate_hz > 0:
            raise ValueError(f"rate_hz must be positive, got {rate_hz!r}")
        self.follower = follower
        self.sim = SimulatedSO101(World("so101"), seed=seed, name=name, uncalibrated=uncalibrated)
        self.rate_hz = float(rate_hz)
        self.expert: ScriptedExpert | None = None
        self.spec: T.TaskSpec | None = None
        self._t0 = 0.0
        self._next = follower.world.time
        self._ranges = [self.sim.joint_range(j) for j in JOINT_NAMES]
        self.home()
        self._sync_time()
        self.threaded = bool(threaded)
        self._tick = threading.Event()
        self._closed = False
        self._worker: threading.Thread | None = None
        if self.threaded:
            self._worker = threading.Thread(target=self._work, name="ExpertLeader", daemon=True)
            self._worker.start()
        follower.world.add_post_step(self._on_step)

    @property
    def url(self) -> str:
        return self.sim.url

    def goal_to_angles(self, goal: np.ndarray) -> np.ndarray:
        q = lerobot_to_qpos(np.asarray(goal, dtype=np.float64))
        return np.array([min(hi, max(lo, float(a))) for a, (lo, hi) in zip(q, self._ranges, strict=True)])

    def hold_angles(self, angles: np.ndarray) -> None:
        for joint, a in zip(JOINT_NAMES, angles, strict=True):
            self.sim.hand.hold(joint, float(a))

    def home(self) -> None:
        """Hold the leader at the calibration pose (where a laid-out scene puts the follower)."""
        self.hold_angles(self.sim.calibration_pose)

    def start(self, spec: T.TaskSpec) -> None:
        """Start the expert on ``spec`` (the follower's scene must be laid out for it)."""
        self.spec = spec
        self.expert = ScriptedExpert(self.follower.world.model, spec)
        self.expert.reset()
        self._t0 = self.follower.world.time
        self._next = self._t0
        self._on_step(0.0)

    def play(self, actions: np.ndarray, fps: float) -> None:
        """Replay recorded actions (LeRobot units, (N, 6)) at ``fps`` instead of the expert: the leader's joints go
        where the recorded leader's were, from now on; the last action is held at the end."""
        self.spec = None
        self.expert = _Replay(actions, fps)
        self._t0 = self.follower.world.time
        self._next = self._t0
        self._on_step(0.0)

    def stop(self) -> None:
        with self.sim.world.lock:
            self.expert = None

    def joints_lerobot(self) -> np.ndarray:
        return qpos_to_lerobot(self.sim.joint_angles())

    def _sync_time(self) -> None:
        t = self.follower.world.time
        if t > self.sim.world.time:
            self.sim.world.step_until(t)
        else:
            self.sim.world.data.time = t

    def _on_step(self, dt: float) -> None:
        world = self.follower.world
        t = world.time
        if t < self._next - 1e-9:
            return
        self._next += 1.0 / self.rate_hz
        if self._next <= t:
            self._next = t + 1.0 / self.rate_hz
        expert = self.expert
        if expert is not None:
            if self.threaded:
                self._tick.set()
            else:
                self._act(expert, world.data, t, qpos_to_lerobot(self.follower.joint_angles()))
        self._sync_time()

    def _act(self, expert: ScriptedExpert | _Replay, data: object, t: float, joints: np.ndarray) -> None:
        goal = expert.act(data, t - self._t0, joints)
        with self.sim.world.lock:  # stop() from another thread (a served calibration) wins over this goal
            if self.expert is expert:
                self.hold_angles(self.goal_to_angles(goal))

    def _work(self) -> None:
        """``threaded``: the expert thinks here, at normal priority and outside the follower world's lock, on a
        snapshot of the world taken at each tick; the physics thread only says when a tick is due."""
        world = self.follower.world
        while True:
            self._tick.wait()
            self._tick.clear()
            if self._closed:
                return
            expert = self.expert
            if expert is None:
                continue
            with world.lock:
                t = world.time
                joints = qpos_to_lerobot(self.follower.joint_angles())
                state = (
                    ExpertState.from_mjdata(world.model, world.data, joints)
                    if not isinstance(expert, _Replay)
                    else None
                )
            self._act(expert, state, t, joints)

    def close(self) -> None:
        self.stop()
        self.follower.world.remove_post_step(self._on_step)
        if self._worker is not None:
            self._closed = True
            self._tick.set()
            self._worker.join()
            self._worker = None
        self.sim.close()


class _Replay:
    """Recorded actions in the expert's place (``act`` at time ``t`` of the episode: the action of frame
    ``t * fps``)."""

    def __init__(self, actions: np.ndarray, fps: float):
        actions = np.asarray(actions, dtype=np.float64)
        if actions.ndim != 2 or actions.shape[1] != len(JOINT_NAMES) or len(actions) == 0:
            raise ValueError(f"actions must be (N, {len(JOINT_NAMES)}) with N >= 1, got shape {actions.shape}")
        if not fps > 0:
            raise ValueError(f"fps must be positive, got {fps!r}")
        self.actions, self.fps = actions, float(fps)

    def act(self, data: object, t: float, joints: np.ndarray) -> np.ndarray:
        return self.actions[min(len(self.actions) - 1, max(0, int(t * self.fps + 1e-9)))]
