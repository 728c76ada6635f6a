"""Running a thread of the simulated device ahead of the host's other work, as a real device's firmware is.

A real servo answers whatever its host is doing; the processes that serve the twin (`onboard sim serve`,
`onboard sim serve-bus`) share the machine with the user's driver and whatever else runs. ``raise_thread_priority``
puts the calling thread ahead of ordinary threads and processes where the OS allows it, and
``SWITCH_INTERVAL_S`` is the interpreter's GIL switch interval a serving process uses, so that a woken server thread
gets the GIL from a busy thread of the same process within about that (Python's default is 5 ms).

A raised server thread is not enough on its own. The kernel moves bytes between a pty's two ends (and from a USB
serial adapter to its reader) in its unbound workqueue workers, threads named ``kworker/uN:M`` that run at nice 0:
with processes spinning on every core they wait their turn, and a reply written on time reaches the client tens of
milliseconds late (measured here: a real-time client and server, 6 spinning processes on 2 cores, 20 s of 6-servo
SYNC_READs every 10 ms: 6 of 1755 got no reply within 50 ms, max 50 ms; with those workers at nice -20: 0 of 1804,
max 11 ms). ``KernelTtyPriority`` raises them for as long as a serving process runs, where permitted, and puts back
what it changed. It is the same tuning that keeps LeRobot on a busy computer from losing a real arm's replies (the
README's "Serving under load").

``CpuWakeLatency`` keeps the CPUs out of slow idle states while a serving process runs (Linux's PM QoS request, as
``cyclictest`` makes): on a virtual machine a sleeping server thread otherwise takes ~90 us to wake for a request.
"""

from __future__ import annotations

import fcntl
import glob
import logging
import os
import sys
import threading

log = logging.getLogger(__name__)

SWITCH_INTERVAL_S = 0.0005


def raise_thread_priority() -> str:
    """Run the calling thread ahead of ordinary threads: real-time round-robin at the lowest real-time priority where
    permitted (root or CAP_SYS_NICE; the kernel's real-time throttling still leaves others 5 % of each second), else
    nice -10 for this thread only, else nothing. Returns what it got: "SCHED_RR 1", "nice -10" or "normal"."""
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(1))  # 0: the calling thread (Linux schedules threads)
        return "SCHED_RR 1"
    except (AttributeError, OSError):
        pass
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), -10)
        return "nice -10"
    except (AttributeError, OSError):
        return "normal"


def shorten_switch_interval() -> None:
    """Lower this interpreter's GIL switch interval to ``SWITCH_INTERVAL_S`` (never raise it)."""
    sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))


KWORKER_NICE = -20  # what the kernel's own high-priority workqueue workers (kworker/uN:M with nice -20) already run at
_RECHECK_S = 1.0  # the kernel starts new workers as it needs them (at nice 0): look for them this often


def _unbound_workers() -> dict[int, int]:
    """{pid: nice} of the kernel's unbound workqueue workers (``kworker/u*``)."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/comm") as f:
                if not f.read().startswith("kworker/u"):
                    continue
            found[int(entry.name)] = os.getpriority(os.PRIO_PROCESS, int(entry.name))
        except OSError:  # gone meanwhile
            continue
    return found


class KernelTtyPriority:
    """While entered, the kernel's unbound workqueue workers at nice 0 run at ``KWORKER_NICE`` (module doc), new ones
    included (checked every second from a daemon thread). The last serving process to exit puts every worker that any
    of them raised back to nice 0 (several may serve at once: a follower and a leader): each holds a shared lock on
    ``LOCK_PATH`` and lists what it raised in ``LOCK_PATH.<pid>``; whoever gets the lock exclusively on exit restores.

    ``state`` says what it got: "kworkers at nice -20", or "not permitted" (not root and no CAP_SYS_NICE: nothing
    changes), or "not Linux".
    """

    LOCK_PATH = "/dev/shm/onboard-kworker-priority"

    def __init__(self) -> None:
        self.changed: set[int] = set()
        self.state = "off"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock_fd = -1

    def __enter__(self) -> KernelTtyPriority:
        if not os.path.isdir("/proc") or not hasattr(os, "setpriority"):
            self.state = "not Linux"
            return self
        self._lock_fd = os.open(self.LOCK_PATH, os.O_RDWR | os.O_CREAT, 0o666)
        fcntl.flock(self._lock_fd, fcntl.LOCK_SH)
        if not self._raise():
            self.state = "not permitted"
            return self
        self.state = f"kworkers at nice {KWORKER_NICE}"
        self._thread = threading.Thread(target=self._watch, name="kworker-priority", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._lock_fd < 0:
            return
        try:
            if self._thread is None:  # not permitted: nothing of ours to put back
                return
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # nobody else serving: restore for all
            except BlockingIOError:
                return  # another serving process still runs; the last one restores
            for record in glob.glob(self.LOCK_PATH + ".*"):
                with open(record) as f:
                    pids = [int(p) for p in f.read().split()]
                for pid in pids:
                    _set_nice(pid, 0, only_if=KWORKER_NICE)
                os.unlink(record)
        finally:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def _raise(self) -> bool:
        """Raise every worker still at nice 0 and record it; False if that is not permitted."""
        raised = []
        for pid, nice in _unbound_workers().items():
            if nice != 0:
                continue
            try:
                os.setpriority(os.PRIO_PROCESS, pid, KWORKER_NICE)
            except PermissionError:
                return False
            except OSError:  # gone meanwhile
                continue
            raised.append(pid)
        if raised:
            self.changed.update(raised)
            with open(f"{self.LOCK_PATH}.{os.getpid()}", "w") as f:
                f.write(" ".join(map(str, sorted(self.changed))))
        return True

    def _watch(self) -> None:
        while not self._stop.wait(_RECHECK_S):
            self._raise()


def _set_nice(pid: int, nice: int, *, only_if: int) -> None:
    try:
        if os.getpriority(os.PRIO_PROCESS, pid) == only_if:
            os.setpriority(os.PRIO_PROCESS, pid, nice)
    except OSError:  # the worker exited (and its pid may be reused: only_if keeps us off a stranger at another nice)
        pass


CPU_LATENCY_PATH = "/dev/cpu_dma_latency"


class CpuWakeLatency:
    """While entered, asks the kernel to keep every CPU out of idle states slower to leave than ``max_us``
    (Linux's PM QoS CPU latency request, the one ``cyclictest`` and real-time tuning profiles make: an int32 written to
    ``/dev/cpu_dma_latency``, in force for as long as the file stays open; the kernel drops it when this process
    closes it or dies, so nothing is left to restore after a crash).

    Why a served twin wants it: a device answers at once, while a process sleeping on an idle CPU of a virtual
    machine is woken only when the hypervisor resumes that CPU. Measured on the 2-core VM this project runs on
    (guest halt-polling off, ``guest_halt_poll_ns`` 0): a request written to the emulator's pty reached its sleeping
    server thread 85-97 us after the write; holding this request at 0, 11-13 us. On a Raspberry Pi the same request
    keeps the cores out of their deeper idle states for the same reason.

    ``state``: "held at N us", "not permitted" (not root: nothing changes) or "not available" (no such file).
    """

    def __init__(self, max_us: int = 0):
        self.max_us = int(max_us)
        self.state = "off"
        self._fd = -1

    def __enter__(self) -> CpuWakeLatency:
        try:
            self._fd = os.open(CPU_LATENCY_PATH, os.O_WRONLY)
        except FileNotFoundError:
            self.state = "not available"
            return self
        except PermissionError:
            self.state = "not permitted"
            return self
        try:
            os.write(self._fd, self.max_us.to_bytes(4, sys.byteorder, signed=True))
        except OSError as exc:
            log.debug("PM QoS request refused: %s", exc)
            os.close(self._fd)
            self._fd = -1
            self.state = "not permitted"
            return self
        self.state = f"held at {self.max_us} us"
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
