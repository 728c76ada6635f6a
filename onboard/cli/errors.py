"""How a command ends: every exception becomes one ``error: ...`` line on stderr and an exit code, never a traceback
(``onboard --debug ...`` prints it too).

Exit codes:

- 0: done; 1: the command ran and failed (a safety stop, an emergency stop, repeated policy failures, a demo whose
  task failed, a scan that found nothing) or an internal error (a bug: the line says so and how to see more);
- 2: it cannot run as asked (setup): a typed error of the driver, the robot, a camera, a port, a policy or bundle, a
  dataset, an option, the demo, or a file the user named that is missing or not readable;
- 128 + N: ended by signal N (130 Ctrl-C, 129 SIGHUP, 131 SIGQUIT, 143 SIGTERM) after the shutdown path ran (torque
  off, port closed).

``report(exc, debug)`` prints and returns the code; ``SERVO_COMMANDS`` are the commands that energise servos (they
also stop when their parent process dies, ``robot.shutdown.die_with_parent``).
"""

from __future__ import annotations

import sys
import threading
import traceback
from typing import TextIO

from robot.shutdown import Terminated, signal_name

SERVO_COMMANDS = frozenset({"run", "teleoperate", "record", "replay", "calibrate", "bus"})

# Typed errors a user can act on (exit code 2), by dotted name: a module that was never imported cannot have raised
# its error, so nothing here imports the recorder, the demo or the policies' heavy modules.
SETUP_ERRORS = (
    "hardware.feetech.errors.FeetechError",
    "robot.errors.RobotError",
    "hardware.camera.CameraError",
    "hardware.discovery.PortError",
    "policies.errors.PolicyError",
    "policies.dataset.reader.DatasetReadError",
    "onboard.cli.options.OptionError",
    "onboard.demo.policy.DemoError",
)
SAFETY_STOPS = ("robot.errors.SafetyError",)  # the session stopped the arm: exit code 1, as the docs define
PATH_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)


def _is(exc: BaseException, names: tuple[str, ...]) -> bool:
    for dotted in names:
        module, name = dotted.rsplit(".", 1)
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return True
    return False


def classify(exc: BaseException) -> tuple[int, str]:
    """(exit code, the line to print) for an exception that ended a command."""
    if isinstance(exc, Terminated):
        return exc.exit_code, f"stopped by {signal_name(exc.signum)}"
    if isinstance(exc, KeyboardInterrupt):
        return 130, "interrupted"
    if _is(exc, SAFETY_STOPS):
        return 1, f"error: {exc}"
    if _is(exc, SETUP_ERRORS):
        return 2, f"error: {exc}"
    if isinstance(exc, PATH_ERRORS) and getattr(exc, "filename", None):
        return 2, f"error: {exc.strerror or type(exc).__name__}: {exc.filename}"
    if isinstance(exc, ModuleNotFoundError):
        return 2, f"error: {exc} (an optional dependency is missing: the README's install section names the extra)"
    text = str(exc).strip() or "(no message)"
    return 1, f"error: internal error: {type(exc).__name__}: {text} (run with --debug for the traceback)"


def report(exc: BaseException, debug: bool = False, out: TextIO | None = None) -> int:
    """Print how the command ended (the traceback first with ``debug``); return its exit code."""
    out = out or sys.stderr
    code, line = classify(exc)
    if debug:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=out)
    print(line, file=out, flush=True)
    return code


def exit_even_if_stuck(code: int, after_s: float = 10.0) -> None:
    """After a signal, a thread that never ends must not keep the process alive: exit with ``code`` after
    ``after_s`` if the interpreter has not exited by then (the shutdown path has run: torque is off)."""
    import os

    def force() -> None:
        sys.stderr.flush()
        os._exit(code)

    timer = threading.Timer(after_s, force)
    timer.daemon = True
    timer.start()
