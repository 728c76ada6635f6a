"""What a person (or a script) tells a running session: keys on a terminal or through pynput, signals, and a control
file, turned into the flags a loop polls.

    controls = RecordControls()
    controls.handle_signals()          # SIGINT/SIGTERM/SIGHUP: stop; SIGUSR1: next; SIGUSR2: re-record
    controls.watch_file("ctl")         # "next", "rerecord", "stop" or "estop" written into it; read and removed
    controls.watch_keyboard()          # right/n: next, left/r: re-record, Esc/q: stop, space/e: emergency stop
    ...
    controls.poll(); controls.exit_early, controls.rerecord, controls.stop, controls.estop
    controls.close()                   # the terminal mode and the signal handlers come back

``RunControls`` maps a terminal's keys for a policy run (Enter, ``q``, Esc: stop; space, ``e``: emergency stop).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


class RecordControls:
    """Flags the record loop polls: ``exit_early`` (end the episode/reset now), ``rerecord``, ``stop``. Thread-safe
    enough for flags set from a listener thread or a signal handler. ``poll()`` reads the non-threaded sources."""

    def __init__(self) -> None:
        self.exit_early = False
        self.rerecord = False
        self.stop = False
        self.estop = False
        self.signal: int | None = None  # the signal that asked to stop (None: a key, the control file, or none)
        self._sources: list[Callable[[], None]] = []
        self._closers: list[Callable[[], None]] = []

    def press(self, command: str) -> None:
        """``next``, ``rerecord`` or ``stop`` (what a key, a control file line or a signal means)."""
        command = command.strip().lower()
        if command in ("next", "n", "right"):
            self.exit_early = True
        elif command in ("rerecord", "r", "left"):
            self.rerecord = True
            self.exit_early = True
        elif command in ("stop", "q", "esc", "escape"):
            self.stop = True
            self.exit_early = True
        elif command in ("estop", "e", "space", " "):
            # emergency stop: torque off now, discard the episode in progress, end the session
            self.estop = True
            self.rerecord = True
            self.stop = True
            self.exit_early = True
        elif command:
            log.warning("unknown record control %r (use next, rerecord, stop or estop)", command)

    def poll(self) -> None:
        for source in self._sources:
            source()

    def clear_episode(self) -> None:
        self.exit_early = False
        self.rerecord = False

    def add_source(self, poll: Callable[[], None], close: Callable[[], None] | None = None) -> None:
        self._sources.append(poll)
        if close is not None:
            self._closers.append(close)

    def close(self) -> None:
        closers, self._closers = self._closers, []
        for close in reversed(closers):
            with contextlib.suppress(Exception):
                close()
        self._sources = []

    # sources ------------------------------------------------------------------------------------------------------
    def watch_file(self, path: str | Path) -> None:
        """Commands written into ``path`` (one a line) are read at the next poll, then the file is removed."""
        path = Path(path)

        def poll() -> None:
            try:
                text = path.read_text()
                path.unlink()
            except (FileNotFoundError, OSError):
                return
            for line in text.splitlines():
                self.press(line)

        self.add_source(poll)

    def handle_signals(self) -> None:
        """SIGINT/SIGTERM/SIGHUP (a terminal closed, an SSH session dropped): stop after saving the episode in
        progress (a second SIGINT raises KeyboardInterrupt); ``signal`` says which came first. SIGUSR1: next;
        SIGUSR2: re-record. Main thread only; the previous handlers come back on ``close()``."""
        if threading.current_thread() is not threading.main_thread():
            return

        def on_stop(signum, frame) -> None:
            if self.stop and signum == signal.SIGINT:
                raise KeyboardInterrupt
            if self.signal is None:
                self.signal = signum
            self.press("stop")

        handlers = {signal.SIGINT: on_stop, signal.SIGTERM: on_stop}
        if hasattr(signal, "SIGHUP"):
            handlers[signal.SIGHUP] = on_stop
        if hasattr(signal, "SIGUSR1"):
            handlers[signal.SIGUSR1] = lambda s, f: self.press("next")
            handlers[signal.SIGUSR2] = lambda s, f: self.press("rerecord")
        previous = {sig: signal.signal(sig, h) for sig, h in handlers.items()}

        def restore() -> None:
            for sig, h in previous.items():
                signal.signal(sig, h)

        self._closers.append(restore)

    def watch_keyboard(self) -> str | None:
        """Keys from a terminal on stdin (read without blocking, in cbreak mode), or else from pynput when a
        display is available. Returns which one is listening (None: no keyboard)."""
        if _stdin_is_tty():
            self._watch_tty()
            return "terminal"
        if os.environ.get("DISPLAY") or sys.platform in ("darwin", "win32"):
            try:
                from pynput import keyboard
            except Exception:  # pynput missing, or no usable backend
                return None

            def on_press(key) -> None:
                if key == keyboard.Key.right:
                    self.press("next")
                elif key == keyboard.Key.left:
                    self.press("rerecord")
                elif key == keyboard.Key.esc:
                    self.press("stop")
                elif key == keyboard.Key.space:
                    self.press("estop")
                elif getattr(key, "char", None) in ("n", "r", "q", "e"):
                    self.press(key.char)

            listener = keyboard.Listener(on_press=on_press)
            listener.start()
            self._closers.append(listener.stop)
            return "pynput"
        return None

    @staticmethod
    def parse_keys(data: bytes) -> list[str]:
        """Key bytes read from the terminal -> commands (subclasses map keys their own way)."""
        return parse_keys(data)

    def _watch_tty(self) -> None:
        import termios
        import tty

        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)

        def poll() -> None:
            data = b""
            while select.select([fd], [], [], 0)[0]:
                chunk = os.read(fd, 64)
                if not chunk:
                    break
                data += chunk
            for command in self.parse_keys(data):
                self.press(command)

        self.add_source(poll, lambda: termios.tcsetattr(fd, termios.TCSADRAIN, saved))


def _stdin_is_tty() -> bool:
    try:
        return sys.platform != "win32" and sys.stdin is not None and os.isatty(sys.stdin.fileno())
    except (AttributeError, ValueError, OSError):
        return False


def parse_keys(data: bytes) -> list[str]:
    """Terminal bytes -> commands: ESC [ C (right) / n: next; ESC [ D (left) / r: rerecord; a lone ESC / q: stop;
    space / e: emergency stop (torque off at once)."""
    out: list[str] = []
    i = 0
    while i < len(data):
        if data[i : i + 3] == b"\x1b[C" or data[i : i + 3] == b"\x1bOC":
            out.append("next")
            i += 3
        elif data[i : i + 3] == b"\x1b[D" or data[i : i + 3] == b"\x1bOD":
            out.append("rerecord")
            i += 3
        elif data[i : i + 1] == b"\x1b" and data[i + 1 : i + 2] in (b"[", b"O"):
            i += 3  # another escape sequence (up/down ...): ignored
        else:
            key = data[i : i + 1]
            command = {b"\x1b": "stop", b"q": "stop", b"n": "next", b"r": "rerecord", b" ": "estop", b"e": "estop"}.get(
                key.lower()
            )
            if command:
                out.append(command)
            i += 1
    return out


# --------------------------------------------------------------------------------------------------------- run keys
class RunControls(RecordControls):
    """``RecordControls`` for a policy run: any of next/stop ends the run; estop stops the arm. On a terminal,
    Enter, ``q`` and Esc stop; space and ``e`` are the emergency stop."""

    @staticmethod
    def parse_keys(data: bytes) -> list[str]:
        return parse_run_keys(data)


def parse_run_keys(data: bytes) -> list[str]:
    """Terminal bytes -> commands: Enter, ``q`` or a lone Esc: stop; space or ``e``: estop (escape sequences such
    as arrow keys are ignored)."""
    out: list[str] = []
    i = 0
    while i < len(data):
        if data[i : i + 1] == b"\x1b" and data[i + 1 : i + 2] in (b"[", b"O"):
            i += 3
            continue
        command = {b"\n": "stop", b"\r": "stop", b"q": "stop", b"\x1b": "stop", b" ": "estop", b"e": "estop"}.get(
            data[i : i + 1].lower()
        )
        if command:
            out.append(command)
        i += 1
    return out
