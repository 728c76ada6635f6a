"""What every bad-input case asserts: the exit code, exactly one ``error:`` line on stderr (a message may continue on
indented lines, as a calibration's list of problems does), and no traceback. In-process through ``onboard.cli.main``
(fast), or as a real process (``run_onboard``) to prove that nothing reaches the terminal."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from onboard.cli import main

ROOT = Path(__file__).resolve().parents[3]


def error_line(err: str) -> str:
    """The one ``error:`` line of ``err`` (argparse's ``onboard x: error: ...`` counts); fails on a traceback or on
    zero or several of them."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error: ") or ": error: " in line]
    assert len(lines) == 1, err
    return lines[0]


def error_message(err: str) -> str:
    """The error line and the indented lines that continue it (a list of problems)."""
    line = error_line(err)
    lines = err.splitlines()
    message = [line]
    for more in lines[lines.index(line) + 1 :]:
        if not more.startswith("  "):
            break
        message.append(more)
    return "\n".join(message)


def bad_input(capsys, argv: list[str], code: int = 2, *needles: str) -> str:
    """Run ``onboard argv`` in-process; assert the exit code, one error message holding every needle; return it."""
    try:
        got = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse: a usage error
        got = exc.code
    err = capsys.readouterr().err
    message = error_message(err)
    assert got == code, err
    for needle in needles:
        assert needle in message, message
    return message


def run_onboard(argv: list[str], code: int = 2, *needles: str, timeout: float = 180) -> str:
    """The same, as a real `onboard` process (``python -m onboard.cli``)."""
    proc = subprocess.run(
        [sys.executable, "-m", "onboard.cli", *map(str, argv)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    message = error_message(proc.stderr)
    assert proc.returncode == code, proc.stdout + proc.stderr
    for needle in needles:
        assert needle in message, message
    return message
