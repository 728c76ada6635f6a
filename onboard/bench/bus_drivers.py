"""The driver stacks `onboard bench bus` compares, each as a context manager that connects it to a port and yields
its two timed operations: a 6-servo SYNC_READ of Present_Position and a SYNC_WRITE of Goal_Position.

- ``onboard_ops``: our ``FeetechBus`` (any pyserial port or path);
- ``lerobot_ops``: LeRobot 0.4.4's ``FeetechMotorsBus.sync_read/sync_write(..., normalize=False)``, unmodified;
- ``sdk_ops``: Feetech's SDK ``GroupSyncRead``/``GroupSyncWrite``, unmodified;
- ``raw_ops``: no driver at all: the request's bytes out, a spin until the replies' bytes are in (no decoding, no
  checks): the floor of the transport that every driver's round trip sits on.

Each operation returns False for a failed transaction (a timeout, a bad reply). Several stacks may be connected to
the same pty at once (each has its own file descriptor on the one terminal): only the one being measured reads.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import serial

from hardware.feetech import protocol as proto
from hardware.feetech.bus import FeetechBus

IDS = [1, 2, 3, 4, 5, 6]
NAMES = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
BAUD = 1_000_000
PRESENT_POSITION, GOAL_POSITION, SIZE = 56, 42, 2
GOAL = 2048  # written to every servo (torque is off: nothing moves, the bus traffic is the same)
READ_REPLIES = len(IDS) * (6 + SIZE)  # 6 status packets of 8 bytes


@dataclass(frozen=True)
class Ops:
    read: Callable[[], bool]
    write: Callable[[], bool]


@contextlib.contextmanager
def onboard_ops(port: str | serial.SerialBase) -> Iterator[Ops]:
    goals = dict.fromkeys(IDS, GOAL)
    with FeetechBus(port, BAUD, retries=0) as bus:

        def read() -> bool:
            try:
                bus.sync_read("Present_Position", IDS)
                return True
            except Exception:
                return False

        def write() -> bool:
            bus.sync_write("Goal_Position", goals)
            return True

        yield Ops(read, write)


@contextlib.contextmanager
def lerobot_ops(path: str) -> Iterator[Ops]:
    from lerobot.motors import Motor, MotorNormMode
    from lerobot.motors.feetech import FeetechMotorsBus

    motors = {name: Motor(i, "sts3215", MotorNormMode.DEGREES) for name, i in zip(NAMES, IDS, strict=True)}
    bus = FeetechMotorsBus(port=path, motors=motors)
    bus.connect()  # its handshake: ping every id, model numbers, firmware versions
    goals = dict.fromkeys(NAMES, GOAL)
    try:

        def read() -> bool:
            try:
                bus.sync_read("Present_Position", normalize=False)
                return True
            except ConnectionError:
                return False

        def write() -> bool:
            bus.sync_write("Goal_Position", goals, normalize=False)
            return True

        yield Ops(read, write)
    finally:
        bus.disconnect(disable_torque=False)


@contextlib.contextmanager
def sdk_ops(path: str) -> Iterator[Ops]:
    import scservo_sdk as scs

    port = scs.PortHandler(path)
    if not port.openPort() or not port.setBaudRate(BAUD):
        raise RuntimeError(f"Feetech SDK could not open {path}")
    ph = scs.PacketHandler(0)
    reader = scs.GroupSyncRead(port, ph, PRESENT_POSITION, SIZE)
    writer = scs.GroupSyncWrite(port, ph, GOAL_POSITION, SIZE)
    for i in IDS:
        reader.addParam(i)
        writer.addParam(i, [scs.SCS_LOBYTE(GOAL), scs.SCS_HIBYTE(GOAL)])
    try:

        def read() -> bool:
            if reader.txRxPacket() != scs.COMM_SUCCESS:
                return False
            return all(reader.isAvailable(i, PRESENT_POSITION, SIZE) for i in IDS)

        def write() -> bool:
            return writer.txPacket() == scs.COMM_SUCCESS

        yield Ops(read, write)
    finally:
        port.closePort()


@contextlib.contextmanager
def raw_ops(path: str) -> Iterator[Ops]:
    read_request = proto.sync_read(IDS, PRESENT_POSITION, SIZE)
    write_request = proto.sync_write(GOAL_POSITION, SIZE, {i: GOAL.to_bytes(2, "little") for i in IDS})
    with serial.Serial(path, BAUD, timeout=0) as port:  # pyserial sets raw mode and the baud the emulator reads
        fd = port.fd

        def read() -> bool:
            termios_flush(fd)  # as every driver does: nothing stale is taken for a reply
            os.write(fd, read_request)
            got, deadline = 0, time.monotonic() + 0.05
            while got < READ_REPLIES:
                try:
                    got += len(os.read(fd, READ_REPLIES))
                except BlockingIOError:
                    pass
                if time.monotonic() > deadline:
                    return False
            return True

        def write() -> bool:
            return os.write(fd, write_request) == len(write_request)

        yield Ops(read, write)


def termios_flush(fd: int) -> None:
    import termios

    termios.tcflush(fd, termios.TCIFLUSH)
