"""A simulated SO-101 follower: six emulated STS3215 servos on a bus, driving the joints of a MuJoCo world.

    arm = SimulatedSO101(seed=0)                  # a fresh World (scene with table, cubes, cameras)
    bus = FeetechBus(arm.url).connect()           # our driver, in process (simbus://NAME)
    server = arm.serve_pty()                      # or any third-party driver on server.path (/dev/pts/N)
    arm.clock.sleep_until(arm.clock.now() + 1.0)  # simulated time moves only when someone steps it

Servo ids 1..6 follow LeRobot's motor order (``sim.twin.world.JOINT_NAMES``). Each servo's plant is a ``JointPlant``.

A freshly built arm is uncalibrated like a freshly assembled real one: every servo horn sits at an arbitrary offset
(drawn from ``seed``), so Present_Position at q = 0 is anywhere in 2048 +- 1000 and the homing offsets are 0, until a
calibration writes them. ``factory_calibration()`` is the calibration LeRobot's guided procedure would produce for
this arm (homing at the calibration pose, ranges = the joint limits; wrist_roll 0..4095); ``uncalibrated=False``
writes it into the servos' EEPROM at construction, as if the arm had been calibrated before.

``arm.hand`` is the scripted person who moves joints while torque is off: calibration pose, range sweeps (``Hand``).

Time: in process, ``arm.clock`` (``SimClock``) steps the world; for a driver on the pty that waits in wall time, run
the world with ``sim.twin.physics.RealTimeRunner(arm.world)``, or run the whole arm in a child process
(``sim.process.so101.SO101Process``, what third-party drivers should get). Bus transactions do not step the world: a
reading is the state at the world's current time.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence

import numpy as np

from sim.feetech.bus import SimBus, get_bus, register_bus, unregister_bus
from sim.feetech.servo import EmulatedServo
from sim.transport.pty_server import PtyBusServer
from sim.twin.joint_plant import JointPlant
from sim.twin.physics import SimClock, World
from sim.twin.world import JOINT_NAMES

HORN_SPREAD_STEPS = 1000.0  # horn offsets are drawn uniformly in +-this (present position at q = 0: 2048 +- 1000)
HALF_TURN = 2047  # LeRobot: Homing_Offset = present - int(4095 / 2), so the calibration pose reads 2047
FULL_TURN_JOINTS = ("wrist_roll",)  # LeRobot does not record their range: 0..4095
SWEEP_STEP_DEG = 2.0

_names = itertools.count()


def _present(raw: float, homing: int) -> int:
    """Present_Position the servo reports for plant position ``raw`` (single-turn, as the emulator rounds it)."""
    return round((raw - homing) % 4096) % 4096


class Hand:
    """The scripted person next to the arm, for calibration with torque off.

    The hand is kinematic: a held joint's angle is set (and its velocity zeroed) at once and again before and after
    every physics step, so that readings show exactly the held angle and gravity cannot pull the joint away while a
    real-time driver is slow to read it. Holding a joint does not push other bodies (contacts do not move it); with
    torque on, the servo fights the hand (and overloads after Protection_Time, as it would against a real hand).
    ``release()`` lets go: the joint is free again (it falls under gravity with torque off).
    """

    def __init__(self, arm: SimulatedSO101):
        self._arm = arm
        world = arm.world
        model = world.model
        self._qpos, self._qvel = world.data.qpos, world.data.qvel
        self._addr = {
            n: (int(model.jnt_qposadr[model.joint(n).id]), int(model.jnt_dofadr[model.joint(n).id]))
            for n in JOINT_NAMES
        }
        self._held: dict[str, float] = {}
        self._hold: tuple[tuple[int, int, float], ...] = ()
        world.add_pre_step(self._pin)  # forces and contacts are computed at the held pose
        world.add_post_step(self._pin)  # and the step's integration does not move it

    @property
    def holding(self) -> dict[str, float]:
        """Held joints and their angles (rad)."""
        return dict(self._held)

    def hold(self, joint: str, angle: float) -> None:
        """Move ``joint`` to ``angle`` (rad, within its range) and hold it there."""
        lo, hi = self._arm.joint_range(joint)
        if not lo - 1e-9 <= angle <= hi + 1e-9:
            raise ValueError(f"{joint} angle {angle:.4f} rad is outside its range [{lo:.4f}, {hi:.4f}]")
        with self._arm.world.lock:
            self._held[joint] = float(angle)
            self._update()
            qadr, dadr = self._addr[joint]
            self._qpos[qadr] = angle
            self._qvel[dadr] = 0.0

    move = hold

    def release(self, *joints: str) -> None:
        """Let go of ``joints`` (all of them if none given)."""
        with self._arm.world.lock:
            for joint in joints or list(self._held):
                self._held.pop(joint, None)
            self._update()

    def to_middle(self) -> None:
        """Hold every joint at the calibration pose: the middle of each range (``sim.twin.world`` ``home`` keyframe:
        q = 0, gripper half open), what LeRobot asks for before it sets homing offsets."""
        for joint, angle in zip(JOINT_NAMES, self._arm.calibration_pose):
            self.hold(joint, float(angle))

    def sweep(self, joint: str, *, step_deg: float = SWEEP_STEP_DEG) -> Iterator[float]:
        """Move ``joint`` through its whole range: from where it is to the lower stop, to the upper stop, and back,
        ``step_deg`` at a time, stopping exactly at both limits. A generator: each ``next()`` moves one step and
        yields the angle held, so the caller samples the bus in between (and, in real time, waits). The joint stays
        held where it started."""
        if step_deg <= 0:
            raise ValueError("step_deg must be positive")
        lo, hi = self._arm.joint_range(joint)
        start = self._held.get(joint, self._arm.joint_angle(joint))
        start = min(hi, max(lo, start))
        step = math.radians(step_deg)
        for a, b in ((start, lo), (lo, hi), (hi, start)):
            n = max(1, math.ceil(abs(b - a) / step))
            for k in range(1, n + 1):
                angle = b if k == n else a + (b - a) * k / n
                self.hold(joint, angle)
                yield angle

    def _update(self) -> None:
        self._hold = tuple((*self._addr[j], q) for j, q in self._held.items())

    def _pin(self, dt: float) -> None:
        for qadr, dadr, q in self._hold:
            self._qpos[qadr] = q
            self._qvel[dadr] = 0.0


class SimulatedSO101:
    """Six emulated STS3215 servos (ids 1..6) on one ``SimBus``, driving the SO-101 joints of ``world``.

    ``world``: a ``World`` to build the arm in (default: a new ``World(seed=seed)`` with the table scene).
    ``seed``: draws the horn offsets (``horn_offsets`` gives them explicitly, in steps, JOINT_NAMES order).
    ``name``: the bus name, reachable as ``simbus://NAME`` (``arm.url``) while the arm is open.
    ``uncalibrated``: True (default) leaves the servos as a fresh arm's (homing 0, limits 0..4095); False writes
    ``factory_calibration()`` into their EEPROM.
    """

    def __init__(
        self,
        world: World | None = None,
        *,
        seed: int = 0,
        name: str | None = None,
        uncalibrated: bool = True,
        horn_offsets: Sequence[float] | None = None,
    ):
        self.world = world if world is not None else World(seed=seed)
        self.seed = seed
        if horn_offsets is None:
            horn_offsets = np.random.default_rng(seed).uniform(-HORN_SPREAD_STEPS, HORN_SPREAD_STEPS, len(JOINT_NAMES))
        if len(horn_offsets) != len(JOINT_NAMES):
            raise ValueError(
                f"horn_offsets needs {len(JOINT_NAMES)} values (JOINT_NAMES order), got {len(horn_offsets)}"
            )
        model = self.world.model
        key = model.key("home").id if "home" in {model.key(i).name for i in range(model.nkey)} else None
        qadr = [int(model.jnt_qposadr[model.joint(n).id]) for n in JOINT_NAMES]
        self._qadr = np.array(qadr, dtype=np.intp)
        self.calibration_pose = (
            np.array([model.key_qpos[key][a] for a in qadr]) if key is not None else np.zeros(len(JOINT_NAMES))
        )
        self.plants: dict[str, JointPlant] = {
            joint: JointPlant(self.world, joint, horn_offset_steps=float(h))
            for joint, h in zip(JOINT_NAMES, horn_offsets)
        }
        self._check_offsets()
        self.servos: dict[str, EmulatedServo] = {
            joint: EmulatedServo(i, plant=self.plants[joint]) for i, joint in enumerate(JOINT_NAMES, start=1)
        }
        self.ids: dict[str, int] = {joint: s.id for joint, s in self.servos.items()}
        self.bus = SimBus(self.servos.values(), clock=self._now)
        self.name = name or f"so101-sim-{next(_names)}"
        register_bus(self.name, self.bus)
        self.clock = SimClock(self.world)
        self.hand = Hand(self)
        self._servers: list[PtyBusServer] = []
        if not uncalibrated:
            self.install_calibration()

    def _now(self) -> float:
        return self.world.data.time

    # --- connections --------------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """``simbus://NAME``: open it with pyserial (``serial.serial_for_url``) or give it to ``FeetechBus``."""
        return f"simbus://{self.name}"

    def serve_pty(self, wire_time: bool = True, realtime: bool = False) -> PtyBusServer:
        """Serve the bus on a new pseudo-terminal (started; ``server.path`` is the device). Stopped by ``close()``.

        The server is a thread of this process; with a ``RealTimeRunner`` the arm runs in wall time. A driver that
        busy-polls in this same process (Feetech's SDK, LeRobot) competes with both threads for the GIL and can miss
        its reply deadline on a loaded machine: give such drivers the arm in its own process
        (``sim.process.so101.SO101Process``). ``realtime``: the server thread runs ahead of the others
        (``PtyBusServer``)."""
        server = PtyBusServer(self.bus, wire_time=wire_time, realtime=realtime)
        server.start()
        self._servers.append(server)
        return server

    def close(self) -> None:
        """Stop the pty servers and unregister ``simbus://NAME``. The world stays usable."""
        servers, self._servers = self._servers, []
        for server in servers:
            server.stop()
        if get_bus(self.name) is self.bus:
            unregister_bus(self.name)

    def __enter__(self) -> SimulatedSO101:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- joints -------------------------------------------------------------------------------------------------
    def joint_angles(self) -> np.ndarray:
        """The six joint angles (rad, JOINT_NAMES order), float64 (6,)."""
        return self.world.data.qpos[self._qadr].copy()

    def joint_angle(self, joint: str) -> float:
        return self.plants[joint].angle

    def joint_range(self, joint: str) -> tuple[float, float]:
        return self.plants[joint].range

    def reading_at(self, joint: str, angle: float, *, homing_offset: int | None = None) -> int:
        """Present_Position the servo of ``joint`` reports at ``angle`` (rad), with its current Homing_Offset (or
        ``homing_offset``); single-turn feedback."""
        if homing_offset is None:
            homing_offset = self.servos[joint].read_register("Homing_Offset")
        return _present(self.plants[joint].angle_to_steps(angle), homing_offset)

    # --- calibration --------------------------------------------------------------------------------------------
    def factory_calibration(self) -> dict[str, dict[str, int]]:
        """The LeRobot-format calibration the guided procedure produces for this arm: per motor ``id``,
        ``drive_mode`` 0, ``homing_offset`` (the calibration pose reads 2047), ``range_min``/``range_max`` (the
        readings at the joint limits; wrist_roll 0..4095, as LeRobot records no range for it)."""
        out: dict[str, dict[str, int]] = {}
        for joint, pose in zip(JOINT_NAMES, self.calibration_pose):
            plant = self.plants[joint]
            homing = _present(plant.angle_to_steps(float(pose)), 0) - HALF_TURN
            if joint in FULL_TURN_JOINTS:
                rmin, rmax = 0, 4095
            else:
                a, b = (_present(plant.angle_to_steps(q), homing) for q in plant.range)
                rmin, rmax = min(a, b), max(a, b)
            out[joint] = {
                "id": self.ids[joint],
                "drive_mode": 0,
                "homing_offset": int(homing),
                "range_min": int(rmin),
                "range_max": int(rmax),
            }
        return out

    def install_calibration(self, calibration: dict[str, dict[str, int]] | None = None) -> None:
        """Write a calibration (default ``factory_calibration()``) into the servos' EEPROM (and flash), as if the
        arm had been calibrated before: Homing_Offset, Min_Position_Limit, Max_Position_Limit. Call it while no
        driver is talking to the bus."""
        calibration = calibration if calibration is not None else self.factory_calibration()
        for joint, servo in self.servos.items():
            cal = calibration[joint]
            servo.write_register("Homing_Offset", int(cal["homing_offset"]), persist=True)
            servo.write_register("Min_Position_Limit", int(cal["range_min"]), persist=True)
            servo.write_register("Max_Position_Limit", int(cal["range_max"]), persist=True)

    def _check_offsets(self) -> None:
        """Every horn offset must leave room for LeRobot's mid-range homing: the calibration pose reads without
        wrapping before homing (|Homing_Offset| <= 2047) and every joint's whole range stays in 0..4095 after."""
        for joint, pose in zip(JOINT_NAMES, self.calibration_pose):
            plant = self.plants[joint]
            raw = plant.angle_to_steps(float(pose))
            ends = [plant.angle_to_steps(q) - (raw - HALF_TURN) for q in plant.range]
            if not (0.5 <= raw <= 4094.5 and all(0 <= e <= 4095 for e in ends)):
                raise ValueError(
                    f"horn offset {plant.horn_offset_steps:.0f} of {joint} puts its calibration pose at {raw:.0f} "
                    f"steps: after mid-range homing its range would read {min(ends):.0f}..{max(ends):.0f}, "
                    "outside 0..4095"
                )

    def __repr__(self) -> str:
        offsets = ", ".join(f"{j}={p.horn_offset_steps:+.0f}" for j, p in self.plants.items())
        return f"SimulatedSO101({self.url}, t={self.world.time:.3f}s, horns: {offsets})"
