"""The person next to a served arm: notices a calibration starting on the bus and does what it asks.

A driver in another process (``lerobot-calibrate``, ``onboard calibrate``) calibrates the arm served on a pty, and
its prompts ("move to the middle", "move every joint through its range") appear in its own terminal, not here. The
serving process sees only the driver's packets, and they tell enough: ``BusTap`` is the arm's bus as the pty server
sees it, with every instruction packet shown to listeners before the servos execute it, and ``ServedPerson``
follows the flow that LeRobot's ``calibrate()`` and onboard's ``Calibrator`` share:

1. The calibration registers are reset (Max_Position_Limit = 4095 written to a servo whose range is recorded:
   LeRobot's ``reset_calibration``, onboard's ``Calibrator.start``). The person puts every joint at the middle of
   its range (the calibration pose) and holds it there, so that the half-turn homing that follows reads the middle
   whether it comes before the person's ENTER (onboard) or right after it (LeRobot).
2. A homing offset is written while the arm is held at the middle (a non-zero Homing_Offset, or Torque_Enable = 128,
   the servo's own half-turn homing): the ranges are about to be recorded. The person sweeps every recorded joint
   (all but wrist_roll) to its lower stop, pauses, to its upper stop, pauses, and back to the middle, all joints
   together, on the world's clock (``sweep_s``), then holds the middle and says so through ``out``: that is when a
   person at the keyboard presses ENTER.
3. The calibration is written (a Min_Position_Limit other than 0 or a Max_Position_Limit other than 4095 for a
   recorded joint): the person lets go (``on_done``; by default the hand releases the joints).

Writes of a finished calibration (LeRobot's "ENTER to use the calibration file", ``is_calibrated`` checks) never
match step 1, so a calibrated arm's connections leave the person idle.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator

import numpy as np

from hardware.feetech.protocol import Instruction, InstructionPacket, PacketDecoder
from hardware.feetech.tables import REGISTERS
from sim.feetech.bus import SimBus
from sim.twin.so101 import FULL_TURN_JOINTS, SimulatedSO101
from sim.twin.world import JOINT_NAMES

log = logging.getLogger(__name__)

SWEEP_S = 3.0  # the whole sweep: to the lower stops, pause, to the upper stops, pause, back to the middle
PAUSE_S = 0.3  # the pause at each end (a driver reading every few tens of ms sees the stop)
HALF_TURN_COMMAND = 128  # Torque_Enable = 128: the servo sets its Homing_Offset so that the pose reads 2048


def register_writes(packet: InstructionPacket) -> Iterator[tuple[int, int, bytes]]:
    """(servo id, address, data) of each write a WRITE or SYNC_WRITE instruction packet makes."""
    p = packet.params
    if packet.instruction == Instruction.WRITE and p:
        yield packet.id, p[0], bytes(p[1:])
    elif packet.instruction == Instruction.SYNC_WRITE and len(p) >= 2:
        address, length = p[0], p[1]
        stride = length + 1
        for k in range(2, len(p) - stride + 1, stride):
            yield p[k], address, bytes(p[k + 1 : k + stride])


def written_value(address: int, data: bytes, name: str) -> int | None:
    """The value a write of ``data`` at ``address`` puts in register ``name`` (None if it does not cover it)."""
    reg = REGISTERS[name]
    start = reg.address - address
    if start < 0 or start + reg.size > len(data):
        return None
    return reg.decode(data[start : start + reg.size])


class BusTap:
    """``bus`` as a pty server uses it (``clock()``, ``transact()``, ...), showing each complete instruction packet
    the client wrote to every listener before the servos execute it. Listeners run in the server's thread: keep them
    short."""

    def __init__(self, bus: SimBus):
        self.bus = bus
        self.listeners: list[Callable[[InstructionPacket], object]] = []
        self._decoder = PacketDecoder("instruction")

    def __getattr__(self, name: str):
        return getattr(self.bus, name)

    def transact(self, data: bytes, t: float, line_baud: int):
        for item in self._decoder.feed(data):
            if isinstance(item, InstructionPacket):
                for listener in self.listeners:
                    listener(item)
        return self.bus.transact(data, t, line_baud)


class ServedPerson:
    """Answers a calibration of ``arm`` run by a driver on ``tap`` (the module docstring's three steps).

    ``out``: where what the person says goes (default: the log, INFO). ``on_start``: called when a calibration
    starts (e.g. a leader's expert lets go of the arm). ``on_done``: called when it is written (default: release the
    joints). ``swept`` is set once a sweep has ended; ``calibrations`` counts the calibrations written.
    """

    def __init__(
        self,
        arm: SimulatedSO101,
        tap: BusTap,
        *,
        name: str = "arm",
        sweep_s: float = SWEEP_S,
        out: Callable[[str], object] | None = None,
        on_start: Callable[[], object] | None = None,
        on_done: Callable[[], object] | None = None,
    ):
        if not sweep_s > 2 * PAUSE_S:
            raise ValueError(f"sweep_s must be more than {2 * PAUSE_S} s (two pauses), got {sweep_s!r}")
        self.arm, self.tap, self.name = arm, tap, name
        self.sweep_s = float(sweep_s)
        self.out = out if out is not None else _log
        self.on_start, self.on_done = on_start, on_done
        self.state = "idle"  # idle -> middle -> sweeping -> swept -> idle
        self.swept = threading.Event()
        self.calibrations = 0
        ids = {servo_id: joint for joint, servo_id in arm.ids.items()}
        self._recorded = {i: j for i, j in ids.items() if j not in FULL_TURN_JOINTS}
        self._ids = ids
        self._t0 = 0.0
        self._middle = np.asarray(arm.calibration_pose, dtype=np.float64)
        self._lo = np.array([arm.joint_range(j)[0] for j in JOINT_NAMES])
        self._hi = np.array([arm.joint_range(j)[1] for j in JOINT_NAMES])
        self._swept_mask = np.array([j not in FULL_TURN_JOINTS for j in JOINT_NAMES])
        tap.listeners.append(self._on_packet)
        arm.world.add_post_step(self._on_step)

    def close(self) -> None:
        if self._on_packet in self.tap.listeners:
            self.tap.listeners.remove(self._on_packet)
        self.arm.world.remove_post_step(self._on_step)

    # --- what the driver does --------------------------------------------------------------------------------------
    def _on_packet(self, packet: InstructionPacket) -> None:
        for servo_id, address, data in register_writes(packet):
            if servo_id not in self._ids:
                continue
            top = written_value(address, data, "Max_Position_Limit")
            low = written_value(address, data, "Min_Position_Limit")
            homing = written_value(address, data, "Homing_Offset")
            torque = written_value(address, data, "Torque_Enable")
            recorded = servo_id in self._recorded
            if recorded and top == 4095 and self.state != "sweeping":
                if self.state in ("idle", "swept"):
                    self._start()
            elif self.state == "middle" and ((homing is not None and homing != 0) or torque == HALF_TURN_COMMAND):
                self._sweep()
            elif (
                recorded
                and self.state in ("sweeping", "swept")
                and ((top is not None and top != 4095) or (low is not None and low != 0))
            ):
                self._done()

    def _start(self) -> None:
        self.state = "middle"
        self.swept.clear()
        if self.on_start is not None:
            self.on_start()
        self.arm.hand.to_middle()
        self.out(f"simulated person: calibration of the {self.name} started: holding it at the middle of its range")

    def _sweep(self) -> None:
        with self.arm.world.lock:
            self._t0 = self.arm.world.time
            self.state = "sweeping"
        self.out(f"simulated person: moving every joint of the {self.name} but wrist_roll through its range")

    def _done(self) -> None:
        self.state = "idle"
        self.calibrations += 1
        if self.on_done is not None:
            self.on_done()
        else:
            self.arm.hand.release()
        self.out(f"simulated person: the {self.name}'s calibration was written; letting go")

    # --- the sweep, on the world's clock ---------------------------------------------------------------------------
    def sweep_angles(self, s: float) -> np.ndarray:
        """The held angles ``s`` seconds into the sweep (JOINT_NAMES order; wrist_roll stays at the middle)."""
        move = (self.sweep_s - 2 * PAUSE_S) / 4  # middle -> lo, lo -> hi (twice as long), hi -> middle
        marks = np.cumsum([0.0, move, PAUSE_S, 2 * move, PAUSE_S, move])
        points = (self._middle, self._lo, self._lo, self._hi, self._hi, self._middle)
        s = min(max(s, 0.0), marks[-1])
        k = min(int(np.searchsorted(marks, s, side="right")) - 1, len(marks) - 2)
        u = (s - marks[k]) / (marks[k + 1] - marks[k])
        angles = points[k] + (points[k + 1] - points[k]) * u
        return np.where(self._swept_mask, angles, self._middle)

    def _on_step(self, dt: float) -> None:
        if self.state != "sweeping":
            return
        s = self.arm.world.time - self._t0
        angles = self.sweep_angles(s)
        hand = self.arm.hand
        for joint, a, lo, hi in zip(JOINT_NAMES, angles, self._lo, self._hi, strict=True):
            hand.hold(joint, float(min(hi, max(lo, a))))
        if s >= self.sweep_s:
            self.state = "swept"
            self.swept.set()
            self.out(
                f"simulated person: every joint of the {self.name} went through its range and is back at the "
                "middle: press ENTER in the calibration"
            )


def _log(text: str) -> None:
    log.info("%s", text)
