"""One way out for every session that energises servos: signals become an exception, so every ``finally`` and context
manager on the way out runs (``SafeArm``/``Arm``: torque off, then the port closed).

    restore = terminate_on_signals()      # SIGTERM, SIGHUP, SIGQUIT -> raise Terminated(signum) in the main thread
    die_with_parent()                     # Linux: SIGTERM when the parent process dies (the same path)
    with deferred_signals():              # torque off is not cut short by a second signal; delivered afterwards
        ...

SIGINT stays Python's ``KeyboardInterrupt`` (commands that take Ctrl-C as "stop" replace it, ``robot.controls``).
``Terminated`` is a ``BaseException``, like ``KeyboardInterrupt``: ``except Exception`` does not swallow it. A second
terminating signal while the first unwinds is logged and ignored (the unwinding is already the shutdown); SIGKILL
cannot be caught, so after it the servos keep the torque state they had (see the README's "Safety").

The handlers are the application's to install (``onboard.cli.main``); the library only raises and honours them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator

log = logging.getLogger(__name__)

TERMINATING = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP", "SIGQUIT") if hasattr(signal, name))
_PR_SET_PDEATHSIG = 1


class Terminated(BaseException):
    """The process was asked to end by a signal (SIGTERM, SIGHUP, SIGQUIT, or SIGTERM after the parent died)."""

    def __init__(self, signum: int):
        self.signum = int(signum)
        super().__init__(f"stopped by {signal_name(self.signum)}")

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal: 128 + its number."""
        return 128 + self.signum


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def terminate_on_signals(signals: tuple[int, ...] = TERMINATING) -> Callable[[], None]:
    """Make ``signals`` raise ``Terminated`` in the main thread (the first one; later ones while it unwinds are
    logged and ignored). Returns a function that puts the previous handlers back. Main thread only (a no-op
    elsewhere)."""
    if not _in_main_thread():
        return lambda: None
    raised: list[int] = []

    def handler(signum, frame) -> None:
        if raised:
            log.warning("%s while shutting down after %s: ignored", signal_name(signum), signal_name(raised[0]))
            return
        raised.append(signum)
        raise Terminated(signum)

    previous = {}
    for sig in signals:
        with contextlib.suppress(OSError, ValueError):
            previous[sig] = signal.signal(sig, handler)

    def restore() -> None:
        for sig, h in previous.items():
            with contextlib.suppress(OSError, ValueError, TypeError):
                signal.signal(sig, h)

    return restore


def die_with_parent(signum: int = signal.SIGTERM) -> bool:
    """Linux: ask the kernel to send ``signum`` to this process when its parent dies (``prctl(PR_SET_PDEATHSIG)``),
    so a session whose launcher was killed (a supervisor, a test, an SSH session's shell) still goes through its
    shutdown. True when set. If the parent is already gone, the signal is sent now."""
    if not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signum)
    return True


@contextlib.contextmanager
def deferred_signals(signals: tuple[int, ...] = (signal.SIGINT, *TERMINATING)) -> Iterator[None]:
    """Hold ``signals`` back for the length of the block (turning torque off must not be cut short by a second
    Ctrl-C or SIGTERM), then deliver the first one that came, to whatever handler is in place again. Main thread
    only; elsewhere the block runs as it is."""
    if not _in_main_thread():
        yield
        return
    pending: list[int] = []

    def hold(signum, frame) -> None:
        if not pending:
            log.warning("%s: finishing turning torque off first", signal_name(signum))
        pending.append(signum)

    previous = {}
    try:
        for sig in signals:
            with contextlib.suppress(OSError, ValueError):
                previous[sig] = signal.signal(sig, hold)
        yield
    finally:
        for sig, h in previous.items():
            with contextlib.suppress(OSError, ValueError, TypeError):
                signal.signal(sig, h)
        if pending:
            signal.raise_signal(pending[0])
