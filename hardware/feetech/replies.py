"""Collecting a transaction's status packets, and when to look for them.

A reply cannot be complete before the wire has carried the request and the replies (10 bits per byte at the baud)
plus each servo's return delay, counted from when the request was written: the driver knows both. Waiting with a
blocking read from the start wakes the caller once per status packet (six times for a six-servo SYNC_READ), each
time a scheduler wake-up late; polling from the start, as LeRobot's bus and Feetech's SDK do, sees the last byte at
once but keeps a core busy for the whole round trip. ``ReplyReader`` does neither:

1. it looks once (an instant emulator has answered already, inside ``write``);
2. it sleeps until the replies are due (``ReplyWait.wake_at``), with the thread's timer slack at 1 us
   (``fine_timer_slack``: Linux otherwise ends a sleep up to 50 us late); with several replies it first wakes the
   last reply's wire time earlier, reads and decodes the others, and sleeps again, so that only the last is left to
   decode when it arrives (interleaved A/B on the pty twin, six servos: 644 instead of 648-651 us, for 88-94
   instead of 60-67 us of CPU per read);
3. it polls the port (non-blocking reads) for at most ``poll_s`` (50 us): short, because a tty's bytes reach its reader
   through a kernel worker (the flip buffer) that a reader spinning on the worker's core holds back (measured on the
   2-core machine under load: a 300 us poll saw the replies only when it gave up; ``yield_cpu`` yields between looks);
4. then it falls back to a blocking read until the transaction's deadline, which is the same as ever
   (``FeetechBus.timeout_for``: wire time + the longest return delays + ``latency_s``).

When the replies really arrive differs from the wire-time prediction by the sleep's own overshoot, a USB-serial
adapter's latency, an emulator's scheduling, or (an instant emulator) by arriving early. ``ReplyWait.offset_s``
learns that difference from the transactions themselves, as a running quantile: when the replies were complete at the
first look after the sleep (it slept too long) the wake-up moves earlier by (1 - q) steps, otherwise later by q steps,
so that about a fraction q (``oversleep``, default 1/4) of the transactions find their replies complete on waking and
the others poll briefly. A step is 5 % of the due time plus 5 us (36 us for a six-servo SYNC_READ at 1 Mbaud): an
instant emulator is learned in a few dozen transactions, a USB adapter's millisecond in a few thousand, and one late
reply moves it by a step only. It is bounded: never before the write, never later than ``latency_s`` after the due
time. Failed transactions teach it nothing. A transaction's lesson is booked at the start of the next one, while
that one's bytes are on the wire: what is done after the last reply arrives counts in the round trip.
"""

from __future__ import annotations

import ctypes
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import serial

try:  # POSIX: the fast path's input flush
    from termios import TCIFLUSH, tcflush
except ImportError:  # Windows: pyserial's reset_input_buffer (no descriptor there)
    TCIFLUSH, tcflush = 0, None

from hardware.feetech.errors import BusTimeoutError, ChecksumError, MalformedPacketError, ProtocolError
from hardware.feetech.protocol import PacketDecoder, StatusPacket

PR_SET_TIMERSLACK = 29  # prctl(2)


@dataclass
class BusStats:
    """Counters over the bus's lifetime (``reset()`` to start over)."""

    transactions: int = 0
    retries: int = 0
    timeouts: int = 0
    checksum_errors: int = 0
    malformed: int = 0
    stray_packets: int = 0
    servo_errors: int = 0

    def reset(self) -> None:
        for key in asdict(self):
            setattr(self, key, 0)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


_fine = threading.local()


def fine_timer_slack() -> None:
    """Ask Linux for 1 us of timer slack on the calling thread (once per thread; elsewhere nothing): its sleeps then
    end within microseconds of when they were asked to, instead of up to the default 50 us later."""
    if getattr(_fine, "done", False):
        return
    _fine.done = True
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_TIMERSLACK, ctypes.c_ulong(1000), 0, 0, 0)
        except (OSError, AttributeError):
            pass


# where ReplyReader.collect is: the look right after the write, sleeping, an early look for all replies but the last,
# the first look after the sleep, polling
FIRST, SLEEP, EARLY, WOKEN, POLL = "first", "sleep", "early", "woken", "poll"
EARLY_LOOK_MIN_S = 40e-6  # an early look costs a wake-up: only where the last reply takes at least this long


class ReplyWait:
    """When to look for replies: at their wire-time due time plus a learned offset (see the module docstring).

    ``poll_s``: how long to poll after waking before falling back to a blocking read. ``oversleep``: the fraction of
    transactions meant to find their replies complete on waking (the rest poll). ``adapt=False`` keeps ``offset_s``.
    ``yield_cpu``: yield the core between polls. ``fine_timers``: 1 us timer slack on the waiting thread.
    """

    def __init__(
        self,
        *,
        poll_s: float = 50e-6,
        oversleep: float = 0.25,
        adapt: bool = True,
        yield_cpu: bool = False,
        fine_timers: bool = True,
    ):
        if poll_s < 0 or not 0 < oversleep < 1:
            raise ValueError(f"poll_s must be >= 0 and oversleep in (0, 1), got {poll_s} and {oversleep}")
        self.poll_s = float(poll_s)
        self.oversleep = float(oversleep)
        self.adapt = adapt
        self.yield_cpu = yield_cpu
        self.fine_timers = fine_timers
        self.offset_s = 0.0
        self.max_offset_s = 0.02  # FeetechBus sets its latency_s here

    def wake_at(self, sent_at: float, due: float) -> float:
        return max(sent_at, due + self.offset_s)

    def learn(self, sent_at: float, due: float, overslept: bool) -> None:
        """One successful transaction, written at ``sent_at`` and due at ``due``, that slept before looking;
        ``overslept``: its replies were complete at the first look after the sleep."""
        if not self.adapt:
            return
        step = 0.05 * (due - sent_at) + 5e-6
        offset = self.offset_s - (1 - self.oversleep) * step if overslept else self.offset_s + self.oversleep * step
        self.offset_s = min(self.max_offset_s, max(sent_at - due, offset))


class ReplyReader:
    """Collects the status packets a transaction asks for, in order (the driver's half of a transaction)."""

    def __init__(self, stats: BusStats, wait: ReplyWait):
        self.stats = stats
        self.wait = wait
        self._timeout_set: float | None = None
        self._fd_of: tuple[serial.SerialBase | None, bool] = (None, False)
        # the last transaction's lesson for ``wait``, learned at the next one while its bytes are on the wire: the
        # caller gets its replies without waiting for the bookkeeping
        self._lesson: tuple[float, float, bool] | None = None

    def forget_port(self) -> None:
        """A (re)opened port has its own timeout setting (and file descriptor)."""
        self._timeout_set = None
        self._fd_of = (None, False)

    def fd(self, port: serial.SerialBase) -> int | None:
        """The OS file descriptor of a POSIX ``serial.Serial`` (pyserial opens it non-blocking), else None: the fast
        path writes and reads it directly, one system call each instead of pyserial's two (select, then write/read)."""
        if self._fd_of[0] is not port:
            self._fd_of = (port, os.name == "posix" and isinstance(port, serial.Serial))
        fd = getattr(port, "fd", None) if self._fd_of[1] else None
        return fd if isinstance(fd, int) and fd >= 0 else None

    def send(self, port: serial.SerialBase, data: bytes, *, flush: bool) -> None:
        """Write a request, after dropping unread input where ``flush`` (stale bytes, such as a late reply to an earlier
        request, must not be taken for this one's): one ``tcflush`` and one ``os.write`` where the port has a
        descriptor (``port.reset_input_buffer()`` and ``port.write`` elsewhere). The caller's clock starts before
        this, so it is kept short: the descriptor is looked up once."""
        fd = self.fd(port)
        if fd is None:
            if flush:
                port.reset_input_buffer()
            port.write(data)
            return
        if flush:
            tcflush(fd, TCIFLUSH)
        try:
            n = os.write(fd, data)
        except BlockingIOError:
            n = 0
        if n != len(data):
            port.write(data[n:])

    def set_timeout(self, port: serial.SerialBase, timeout: float) -> None:
        timeout = round(timeout, 4)
        if self._timeout_set != timeout:  # reconfiguring a real port costs syscalls: only when it changes
            port.timeout = timeout
            self._timeout_set = timeout

    def collect(
        self,
        port: serial.SerialBase,
        expect: Sequence[tuple[int, int]],
        what: str,
        *,
        sent_at: float,
        due: float,
        timeout: float,
        last_s: float = 0.0,
        on_reply: Callable[[StatusPacket], None] | None = None,
    ) -> tuple[dict[int, StatusPacket], ProtocolError | None]:
        """Read the replies to a request written at ``sent_at`` (complete on the wire at ``due`` at the earliest).
        ``last_s``: how long the last reply takes on the wire (with its return delay); with several replies, the
        others are read and decoded in an early look that much before the wake-up, so that only the last is left to
        decode when it arrives. ``on_reply``: called with each reply as it is taken, so that a caller's own decoding
        of the early ones is done while the last is still on the wire. Returns (the replies that arrived in order, the
        error that stopped collection or None)."""
        if self._lesson is not None:
            self.wait.learn(*self._lesson)
            self._lesson = None
        decoder = PacketDecoder("status")
        pending = [servo_id for servo_id, _ in expect]
        sizes = dict(expect)
        reply_bytes = sum(6 + n for _, n in expect)
        replies: dict[int, StatusPacket] = {}
        received = bytearray()
        deadline = sent_at + timeout
        monotonic = time.monotonic
        poll_end = 0.0
        phase = FIRST
        fd = self.fd(port)
        early_look = len(expect) > 1 and last_s >= EARLY_LOOK_MIN_S
        while pending:
            if phase is SLEEP:  # until the replies are due (or the deadline), then look again and poll briefly
                wake = min(self.wait.wake_at(sent_at, due), deadline)
                now = monotonic()
                if early_look and len(pending) > 1 and wake - last_s - now >= EARLY_LOOK_MIN_S:
                    wake, phase = wake - last_s, EARLY  # all but the last reply are in by then: decode them
                else:
                    phase = WOKEN
                early_look = False
                if wake > now:
                    if self.wait.fine_timers:
                        fine_timer_slack()
                    time.sleep(wake - now)
                poll_end = monotonic() + self.wait.poll_s
            if fd is not None:  # one non-blocking read: what has arrived, or nothing (EAGAIN, or b"" on a tty
                try:  # set to return at once; a device that went away is found by the blocking read below)
                    chunk = os.read(fd, 4096)
                except BlockingIOError:
                    chunk = b""
            else:
                available = port.in_waiting
                chunk = port.read(available) if available else b""
            if not chunk and (phase is FIRST or phase is EARLY):
                phase = SLEEP
                continue
            if not chunk:
                phase = POLL
                now = monotonic()
                if now >= deadline:
                    return replies, BusTimeoutError(pending[0], what, timeout, bytes(received))
                if now < poll_end:
                    if self.wait.yield_cpu:
                        os.sched_yield()  # let a kernel worker on this core deliver the tty's bytes
                    continue
                # the replies are late: block until they come or the deadline passes (whole milliseconds, so
                # that a real port's timeout setting rarely changes)
                self.set_timeout(port, math.ceil((deadline - now) * 1e3) / 1e3)
                chunk = port.read(max(1, reply_bytes - len(received)))
                if not chunk:
                    continue  # the deadline check above answers
            received += chunk
            for item in decoder.feed(chunk):
                if isinstance(item, StatusPacket):
                    if item.id not in pending:
                        self.stats.stray_packets += 1
                        continue
                    if item.id != pending[0]:
                        # replies come in request order: an earlier servo's reply was lost
                        return replies, BusTimeoutError(pending[0], what, timeout, bytes(received))
                    if len(item.params) != sizes[item.id]:
                        return replies, MalformedPacketError(
                            f"servo {item.id} answered {what} with {len(item.params)} data bytes, "
                            f"{sizes[item.id]} expected",
                            item.encode(),
                        )
                    replies[item.id] = item
                    pending.pop(0)
                    if on_reply is not None:
                        on_reply(item)
                elif isinstance(item, ChecksumError):
                    return replies, item
                # MalformedPacketError: garbage between packets (noise, an echo); the decoder has resynchronised
            if pending:  # part of the replies: the rest is still on the wire
                phase = SLEEP if phase is FIRST or phase is EARLY else POLL
                if monotonic() >= deadline:
                    return replies, BusTimeoutError(pending[0], what, timeout, bytes(received))
        if phase is not FIRST:  # complete at a look after a sleep: it slept too long (learned at the next collect)
            self._lesson = (sent_at, due, phase is WOKEN or phase is EARLY)
        return replies, None
