"""The `onboard` command line: the composition root (the one place that wires hardware/, policies/, robot/ and sim/
together, parses options, prints and configures logging).

One module per command group registers its subcommands (``add_parser``): bus, calibrate (calibrate, calibration),
find, record (record, teleoperate, replay), run, sim, train (train, export), dataset, bench, demo, eval, generate,
serve-policy; rigs.py builds the rigs they drive (a real arm's ports and cameras, or the simulated twin). A
command's options are derived from its config dataclasses (onboard/cli/options.py); this module keeps the root
parser, ``main`` and the mapping of errors to exit codes (``onboard.cli.errors``: one line per error, never a
traceback unless ``--debug``).

Signals: SIGTERM, SIGHUP and SIGQUIT raise ``robot.shutdown.Terminated`` in the main thread, so every command ends
through its ``finally`` blocks (torque off, port closed) with exit code 128 + the signal; SIGINT is Python's
``KeyboardInterrupt`` (130) unless the command takes Ctrl-C as its stop (run, record). The commands that energise
servos also get SIGTERM when their parent process dies (Linux).
"""

from __future__ import annotations

import argparse
import logging
import sys

from onboard.cli import bench as bench_cli
from onboard.cli import bus as bus_cli
from onboard.cli import calibrate as calibrate_cli
from onboard.cli import dagger as dagger_cli
from onboard.cli import dataset as dataset_cli
from onboard.cli import demo as demo_cli
from onboard.cli import eval as eval_cli
from onboard.cli import find as find_cli
from onboard.cli import generate as generate_cli
from onboard.cli import record as record_cli
from onboard.cli import run as run_cli
from onboard.cli import serve_policy as serve_policy_cli
from onboard.cli import sim as sim_cli
from onboard.cli import train as train_cli
from onboard.cli.bus import resolve_port
from onboard.cli.errors import SERVO_COMMANDS, exit_even_if_stuck, report
from robot.shutdown import Terminated, die_with_parent, terminate_on_signals


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="onboard", description="On-device policy runtime for low-cost robot arms.")
    for flags, text in (
        (("-v", "--verbose"), "debug logging (retries, timeouts)"),
        (("--debug",), "on an error, also print its traceback"),
    ):
        parser.add_argument(*flags, action="store_true", help=text)
    sub = parser.add_subparsers(dest="cmd", required=True)

    bus_cli.add_parser(sub)
    calibrate_cli.add_parser(sub)
    find_cli.add_parser(sub)
    record_cli.add_parser(sub)
    run_cli.add_parser(sub)
    sim_cli.add_parser(sub)
    train_cli.add_parser(sub)
    dataset_cli.add_parser(sub)
    bench_cli.add_parser(sub)
    demo_cli.add_parser(sub)
    eval_cli.add_parser(sub)
    generate_cli.add_parser(sub)
    dagger_cli.add_parser(sub)
    serve_policy_cli.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit code (``onboard.cli.errors``). ``argv`` None: this process is the
    command (its parent's death stops a servo command; a thread left behind after a signal cannot keep it alive)."""
    import sim  # noqa: F401  (registers the simbus:// pyserial URL handler)

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    restore = terminate_on_signals()
    try:
        if argv is None and args.cmd in SERVO_COMMANDS:
            die_with_parent()
        if hasattr(args, "port"):
            args.port = resolve_port(args.port)
        code = int(args.func(args) or 0)
        if argv is None and code >= 128:  # the command stopped on a signal (run, record): nothing may hold it up
            exit_even_if_stuck(code)
        return code
    except Exception as exc:
        return report(exc, args.debug)
    except (KeyboardInterrupt, Terminated) as exc:
        code = report(exc, args.debug)
        if argv is None:
            exit_even_if_stuck(code)
        return code
    finally:
        restore()


if __name__ == "__main__":
    sys.exit(main())
