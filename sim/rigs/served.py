"""The twin served as devices for drivers in other processes (`onboard sim serve`): the follower's bus on a pty and,
optionally, a leader arm on a second pty, each with a scripted person who answers a calibration.

    with SimulatedSO101(seed=0) as arm, ServedRig(arm, leader=True, spec=spec, out=say) as rig:
        rig.follower_path, rig.leader_path        # /dev/pts/N, /dev/pts/M: --robot.port, --teleop.port
        with RealTimeRunner(arm.world):           # the world (and the leader with it) in wall-clock time
            ...

The follower: the arm's bus through a ``BusTap`` on a ``PtyBusServer``, with a ``ServedPerson``
(``sim.twin.served_person``) who moves the joints when a driver calibrates it (``lerobot-calibrate``,
``onboard calibrate``).

The leader (``leader=True``): a second simulated SO-101 (``ExpertLeader``: the arm alone in its own world, its own
bus, horns drawn from ``leader_seed``) on a second pty, with its own ``ServedPerson``. Its torque stays off, as a
leader driver leaves it; its joints are moved by the hand, whatever a client does: at rest at the calibration pose,
and while a client teleoperates (goal positions written to the follower; a pause of more than ``session_gap_s``
seconds ends a teleoperation session) by the scripted expert solving ``spec`` in the follower's world, or by
``replay`` (recorded actions, LeRobot units, at ``replay_fps``). Each session starts with the person laying the scene
out (the follower at home, the cubes where ``spec``'s seed says, the leader at home), as before an episode, so that
every `lerobot-record` or `lerobot-teleoperate` run against a served rig starts from the same scene, whatever the arm
did before (a calibration leaves it where it fell with torque off). A calibration of the leader stops the expert (the
person holds it); it starts again at the next session.

Everything that changes a world happens in the follower world's physics steps (post-step hooks, under its lock), so
the pty server threads only notice and note; the expert thinks in a thread of its own (``threaded``, the default:
``ExpertLeader(threaded=True)``), so that its long plans do not run at the physics thread's raised priority.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from hardware.feetech.protocol import InstructionPacket
from sim import tasks as T
from sim.transport.pty_server import PtyBusServer
from sim.twin.leader import ExpertLeader
from sim.twin.served_person import SWEEP_S, BusTap, ServedPerson, register_writes, written_value
from sim.twin.so101 import SimulatedSO101

log = logging.getLogger(__name__)

SESSION_GAP_S = 1.0  # goal writes this far apart (simulated s) belong to two teleoperation sessions


class ServedRig:
    """The follower ``arm`` (and a leader) served on ptys (module docstring); ``start()``/``close()`` or ``with``."""

    def __init__(
        self,
        arm: SimulatedSO101,
        *,
        leader: bool = False,
        spec: T.TaskSpec | None = None,
        leader_seed: int | None = None,
        leader_calibrated: bool = False,
        replay: np.ndarray | None = None,
        replay_fps: float = 30.0,
        rate_hz: float = 30.0,
        session_gap_s: float = SESSION_GAP_S,
        sweep_s: float = SWEEP_S,
        threaded: bool = True,
        wire_time: bool = True,
        realtime: bool = False,
        out: Callable[[str], object] | None = None,
    ):
        if leader and spec is None and replay is None:
            raise ValueError("a served leader needs a task spec (the expert solves it) or actions to replay")
        self.arm = arm
        self.spec = spec
        self.replay = None if replay is None else np.asarray(replay, dtype=np.float64)
        self.replay_fps = float(replay_fps)
        self.session_gap_s = float(session_gap_s)
        self.wire_time, self.realtime = wire_time, realtime
        self.out = out if out is not None else _log
        self.sessions = 0
        self._last_goal: float | None = None
        self._pending = False
        self._servers: list[PtyBusServer] = []
        self.follower_tap = BusTap(arm.bus)
        self.follower_person = ServedPerson(arm, self.follower_tap, name="follower", sweep_s=sweep_s, out=self.out)
        self.leader: ExpertLeader | None = None
        self.leader_tap: BusTap | None = None
        self.leader_person: ServedPerson | None = None
        if leader:
            seed = arm.seed + 1 if leader_seed is None else leader_seed
            self.leader = ExpertLeader(
                arm, seed=seed, rate_hz=rate_hz, uncalibrated=not leader_calibrated, threaded=threaded
            )
            self.leader_tap = BusTap(self.leader.sim.bus)
            self.leader_person = ServedPerson(
                self.leader.sim,
                self.leader_tap,
                name="leader",
                sweep_s=sweep_s,
                out=self.out,
                on_start=self.leader.stop,
                on_done=self.leader.home,
            )
            self.follower_tap.listeners.append(self._on_follower_packet)
            arm.world.add_post_step(self._on_step)

    # --- lifecycle --------------------------------------------------------------------------------------------------
    @property
    def follower_path(self) -> str | None:
        return self._servers[0].path if self._servers else None

    @property
    def leader_path(self) -> str | None:
        return self._servers[1].path if len(self._servers) > 1 else None

    def start(self) -> ServedRig:
        taps = [self.follower_tap] + ([self.leader_tap] if self.leader_tap is not None else [])
        try:
            for tap in taps:
                server = PtyBusServer(tap, wire_time=self.wire_time, realtime=self.realtime)
                server.start()
                self._servers.append(server)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        servers, self._servers = self._servers, []
        for server in servers:
            server.stop()
        self.follower_person.close()
        if self.leader is not None:
            self.arm.world.remove_post_step(self._on_step)
            if self.leader_person is not None:
                self.leader_person.close()
            self.leader.close()
            self.leader = None

    def __enter__(self) -> ServedRig:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- teleoperation sessions -------------------------------------------------------------------------------------
    def _on_follower_packet(self, packet: InstructionPacket) -> None:
        """A pty server thread: goal positions written to the follower mean a client teleoperates."""
        if not any(written_value(a, d, "Goal_Position") is not None for _, a, d in register_writes(packet)):
            return
        now = self.arm.world.time
        if self._last_goal is None or now - self._last_goal > self.session_gap_s:
            self._pending = True
        self._last_goal = now

    def _on_step(self, dt: float) -> None:
        """The follower's physics step: start a pending session (under the world's lock)."""
        if not self._pending or self.leader is None:
            return
        self._pending = False
        if self.leader_person is not None and self.leader_person.state != "idle":
            return  # the leader is being calibrated: the person holds it
        leader = self.leader
        if self.spec is not None:
            self._lay_out(self.spec)
        self.sessions += 1
        if self.replay is not None:
            leader.play(self.replay, self.replay_fps)
            what = f"replaying {len(self.replay)} recorded actions at {self.replay_fps:g} fps"
        else:
            leader.start(self.spec)
            what = f"the scripted expert: {self.spec.instruction!r}"
        self.out(f"teleoperation session {self.sessions}: the leader's joints follow {what}")

    def _lay_out(self, spec: T.TaskSpec) -> None:
        world = self.arm.world
        spec.lay_out(world.model, world.data)
        self.leader.stop()
        self.leader.home()


def _log(text: str) -> None:
    log.info("%s", text)
