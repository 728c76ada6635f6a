"""The emulated bus on a pseudo-terminal, for drivers that open a device path (Feetech's SDK, LeRobot, pyserial).

    with PtyBusServer(SimBus(ids=range(1, 7))) as server:
        port = serial.Serial(server.path, 1_000_000, timeout=0.1)   # /dev/pts/N

A server thread waits (``select``) on the pty master, feeds what the client wrote to ``SimBus.transact`` and writes
each reply at its ready time: with ``wire_time=True`` (default) the wire-time model's 10 bits per byte at the line
baud plus return delays, since a pty itself moves bytes in microseconds whatever the baud; with ``wire_time=False``
at once (late replies still late). A wire's time runs from the client's write, which the server sees only when the
kernel has carried the bytes across and woken it: the wire-time model counts from that moment minus the pty's
delivery latency, measured when the server starts (``measure_delivery``, kept in ``delivery_s``: ~10 us with the CPUs
held out of deep idle states, sim.realtime.CpuWakeLatency; at most 100 us), so a reply leaves when the wire would
have delivered it. Each reply leaves within microseconds of that time: 1 us of timer slack on the server thread and
a spin over the last 30 us.

The line baud is what the client configured on the pty, read from the slave's termios at each request with the
``TCGETS2`` ioctl (``struct termios2`` carries numeric speeds, so non-standard rates such as 128000 work), falling
back to ``tcgetattr``'s speed constants. A client scanning baud rates therefore finds each servo only at its own rate.

``realtime=True`` serves from a thread that does nothing else, ahead of ordinary threads and processes where the OS
allows it (``sim.realtime.raise_thread_priority``: real-time round-robin at the lowest real-time priority with root or
CAP_SYS_NICE, else nice -10 for that thread, else as it was), and lowers the interpreter's switch interval to 0.5 ms so
that the woken server thread gets the GIL from a busy thread of the same process within about that: a real servo answers
whatever its host is doing, and LeRobot's driver gives up on a reply after ~50 ms (``onboard bench serve`` measures the
reply latency with the machine saturated). ``reply_lateness_s`` keeps how late each reply left against its due time.

Pty facts this relies on (reference/measured-here.md): the master is put in raw mode right after ``openpty()``
(a new pty is in cooked mode and mangles binary traffic); the server keeps a slave fd open so the master never reads
EIO while no client is connected; pyserial's ``open()`` flushes input, so nothing written before a client opens
reaches it.
"""

from __future__ import annotations

import errno
import fcntl
import heapq
import os
import select
import struct
import termios
import threading
import time
import tty
from collections import deque

from hardware.feetech.replies import fine_timer_slack
from sim.feetech.bus import SimBus
from sim.realtime import raise_thread_priority, shorten_switch_interval

# struct termios2 (Linux asm-generic: x86, arm, arm64, riscv): 4 x tcflag_t, c_line, c_cc[19], c_ispeed, c_ospeed
_TERMIOS2 = struct.Struct("4IB19s2I")
_TCGETS2 = 0x80000000 | (_TERMIOS2.size << 16) | (ord("T") << 8) | 0x2A  # _IOR('T', 0x2A, struct termios2)
_CBAUD, _BOTHER = 0o010017, 0o010000
# wire timing: select() until this long before a reply is due, then spin to its due time (a longer spin, 100 us, held
# back the kernel worker delivering the previous reply to the client)
SPIN_S = 30e-6
_SPEEDS = {getattr(termios, n): int(n[1:]) for n in dir(termios) if n[:1] == "B" and n[1:].isdigit()}


def line_baud(fd: int) -> int:
    """The baud rate configured on a terminal fd (0 if unknown)."""
    try:
        buf = fcntl.ioctl(fd, _TCGETS2, bytes(_TERMIOS2.size))
        _, _, cflag, _, _, _, ispeed, ospeed = _TERMIOS2.unpack(buf)
        if ospeed:
            return ospeed
        if cflag & _CBAUD == _BOTHER:
            return ispeed
    except OSError:
        pass
    try:
        return _SPEEDS.get(termios.tcgetattr(fd)[5], 0)
    except termios.error:
        return 0


def read_master(master: int) -> bytes:
    """What the client wrote, from the pty master (non-blocking). EIO (no client side open: cannot happen while the
    server holds the slave, but be safe) reads as nothing."""
    try:
        return os.read(master, 4096)
    except BlockingIOError:
        return b""
    except OSError as exc:
        if exc.errno != errno.EIO:
            raise
        time.sleep(0.01)
        return b""


MAX_DELIVERY_S = 100e-6  # a delivery latency measured on a loaded machine is not taken beyond this


def measure_delivery(master: int, slave: int, n: int = 32) -> float:
    """The shortest time from a write on the pty's slave end (where a client writes) to ``select`` on the master
    returning in the calling thread (the server's wait), over ``n`` one-byte writes 0.5 ms apart from another thread:
    how much later than its client's write the server sees a request at the least (the shortest, not a median, so
    that a loaded machine's delays are never taken for the pty's). Called before any client can open the pty."""
    stamps: list[float] = []

    def writer() -> None:
        for _ in range(n):
            time.sleep(0.0005)
            stamps.append(time.monotonic())
            os.write(slave, b"\0")

    thread = threading.Thread(target=writer, name="pty-delivery-probe", daemon=True)
    thread.start()
    latencies = []
    for i in range(n):
        ready, _, _ = select.select([master], [], [], 0.1)
        seen = time.monotonic()
        if not ready:
            break
        got = len(read_master(master))
        if got == 1 and i < len(stamps):
            latencies.append(seen - stamps[i])
        elif got > 1:  # two probes read as one: the pairing is lost, stop here
            break
    thread.join()
    while read_master(master):  # nothing of the probes is left for a client
        pass
    return min(latencies) if latencies else 0.0


class PtyBusServer:
    """Serve ``bus`` on a fresh pseudo-terminal; ``path`` is the device a client opens (``start``/``stop``/``with``)."""

    def __init__(self, bus: SimBus, *, wire_time: bool = True, realtime: bool = False):
        self.bus = bus
        self.wire_time = wire_time
        self.realtime = realtime
        self.priority = "normal"  # what the server thread got (raise_thread_priority), once started
        self.thread_id: int | None = None  # the server thread's native (kernel) id, once started
        self.path: str | None = None
        self.dropped_bytes = 0  # reply bytes the client's full input buffer refused
        self.reply_lateness_s: deque[float] = deque(maxlen=100_000)  # sent minus due time of the latest replies
        self.delivery_s = 0.0  # the pty's measured delivery latency, subtracted from the wire-time due times
        self._started = threading.Event()
        self._master = self._slave = self._wake_r = self._wake_w = -1
        self._thread: threading.Thread | None = None
        self._stopping = False

    def __enter__(self) -> PtyBusServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def line_baud(self) -> int:
        """The baud rate the client has configured on the pty (0 when not running)."""
        return line_baud(self._slave) if self._slave >= 0 else 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> str:
        if self._thread is not None:
            raise RuntimeError("PtyBusServer already started")
        master, slave = os.openpty()
        try:
            tty.setraw(master)
            os.set_blocking(master, False)
            self._wake_r, self._wake_w = os.pipe()
        except BaseException:
            os.close(master)
            os.close(slave)
            raise
        self._master, self._slave = master, slave
        self.path = os.ttyname(slave)
        self._stopping = False
        if self.realtime:
            shorten_switch_interval()
        self._started.clear()
        self._thread = threading.Thread(target=self._serve, name=f"PtyBusServer({self.path})", daemon=True)
        self._thread.start()
        self._started.wait()
        return self.path

    def stop(self) -> None:
        thread = self._thread
        if thread is None:
            return
        self._stopping = True
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        thread.join()
        self._thread = None
        for fd in (self._master, self._slave, self._wake_r, self._wake_w):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._master = self._slave = self._wake_r = self._wake_w = -1

    # --- the server thread ------------------------------------------------------------------------------------------
    def _serve(self) -> None:
        self.thread_id = threading.get_native_id()
        if self.realtime:
            self.priority = raise_thread_priority()
        master, wake = self._master, self._wake_r
        if self.wire_time:
            fine_timer_slack()  # select's timeouts then end within microseconds, not up to 50 us late
            self.delivery_s = min(MAX_DELIVERY_S, measure_delivery(master, self._slave))
        self._started.set()
        delivery = self.delivery_s
        outbox: list[tuple[float, int, bytes]] = []  # (monotonic due time, sequence, bytes)
        seq = 0
        spin_s = SPIN_S if self.wire_time else 0.0
        while not self._stopping:
            # wake a little before the next reply is due (a wake-up takes tens of microseconds on a VM), then spin
            timeout = None if not outbox else max(0.0, outbox[0][0] - spin_s - time.monotonic())
            try:
                ready, _, _ = select.select([master, wake], [], [], timeout)
            except InterruptedError:
                continue
            if wake in ready:
                os.read(wake, 64)
                if self._stopping:
                    break
            if master in ready:
                data = read_master(master)
                if data:
                    t = self.bus.clock()
                    now = time.monotonic()
                    delay = 0.0
                    for r in self.bus.transact(data, t, self.line_baud):
                        delay += r.late_s
                        due = now - delivery + (r.ready_at - t) if self.wire_time else now + delay
                        heapq.heappush(outbox, (due, seq, r.data))
                        seq += 1
            now = time.monotonic()
            if outbox and not ready and now < outbox[0][0] <= now + spin_s:
                while time.monotonic() < outbox[0][0]:
                    pass
                now = time.monotonic()
            while outbox and outbox[0][0] <= now:
                due, _, data = heapq.heappop(outbox)
                self.reply_lateness_s.append(time.monotonic() - due)  # before the send: a client that has its
                self._send(data)  # reply finds it counted

    def _send(self, data: bytes) -> None:
        try:
            n = os.write(self._master, data)
        except BlockingIOError:
            n = 0
        except OSError as exc:
            if exc.errno != errno.EIO:
                raise
            n = 0
        self.dropped_bytes += len(data) - n
