"""The person at the keyboard during `onboard calibrate`: a ``Console`` asks a question, tells whether ENTER was
pressed and shows text, so that a test or a simulated person can answer instead; ``TerminalConsole`` is the real
terminal, and ``range_table`` LeRobot's live min/pos/max table."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Protocol, TextIO

from robot.calibration import RangeSample


class Console(Protocol):
    """The person calibrating the arm, as the flow sees them."""

    def ask(self, prompt: str) -> str:
        """Show ``prompt`` and wait for a line (ENTER): the answer without its newline."""

    def enter_pressed(self) -> bool:
        """Without waiting: has the person pressed ENTER since the last call?"""

    def show(self, text: str, *, live: bool = False) -> None:
        """Show ``text``. ``live``: a refreshing block (the range table) that the next ``show`` replaces."""


class TerminalConsole:
    """A terminal: ``input()``, ENTER polled without blocking (like LeRobot's ``enter_pressed``), live blocks
    redrawn in place with ANSI cursor movement when stdout is a terminal (otherwise only the last one is written,
    before the next output)."""

    def __init__(self, stdin: TextIO | None = None, stdout: TextIO | None = None):
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self._live_lines = 0
        self._pending_live: str | None = None

    def ask(self, prompt: str) -> str:
        self._flush_live()
        self._live_lines = 0
        self.stdout.write(prompt)
        self.stdout.flush()
        line = self.stdin.readline()
        if not line:
            raise EOFError("no more input (stdin closed) while waiting for an answer")
        return line.rstrip("\r\n")

    def enter_pressed(self) -> bool:
        if sys.platform == "win32":
            import msvcrt

            pressed = bool(msvcrt.kbhit()) and msvcrt.getch() in (b"\r", b"\n")
        else:
            import select

            pressed = bool(select.select([self.stdin], [], [], 0)[0]) and self.stdin.readline().strip() == ""
        if pressed:
            self._live_lines = 0  # the echoed newline moved the cursor: do not overwrite the last table
        return pressed

    def show(self, text: str, *, live: bool = False) -> None:
        tty = self.stdout.isatty()
        if live and not tty:
            self._pending_live = text  # a log, not a screen: only the last table, once it is final
            return
        self._flush_live()
        if self._live_lines and tty:
            self.stdout.write(f"\033[{self._live_lines}A")
        lines = text.split("\n")
        self.stdout.write("".join(f"{line}\033[K\n" if tty else f"{line}\n" for line in lines))
        self.stdout.flush()
        self._live_lines = len(lines) if live else 0

    def _flush_live(self) -> None:
        pending, self._pending_live = self._pending_live, None
        if pending is not None:
            self.stdout.write(pending + "\n")


def range_table(table: Mapping[str, RangeSample]) -> str:
    """LeRobot's live min/pos/max table."""
    lines = ["-------------------------------------------", f"{'NAME':<15} | {'MIN':>6} | {'POS':>6} | {'MAX':>6}"]
    lines += [f"{name:<15} | {s.min:>6} | {s.pos:>6} | {s.max:>6}" for name, s in table.items()]
    return "\n".join(lines)
