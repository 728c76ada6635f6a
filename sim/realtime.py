"""Running a thread of the simulated device ahead of the host's other work, as a real device's firmware is.

A real servo answers whatever its host is doing; the processes that serve the twin (`onboard sim serve`,
`onboard sim serve-bus`) share the machine with the user's driver and whatever else runs. ``raise_thread_priority``
puts the calling thread ahead of ordinary threads and processes where the OS allows it, and
``SWITCH_INTERVAL_S`` is the interpreter's GIL switch interval a serving process uses, so that a woken server thread
gets the GIL from a busy thread of the same process within about that (Python's default is 5 ms).
"""

from __future__ import annotations

import os
import sys
import threading

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
