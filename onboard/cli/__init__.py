"""The `onboard` command line: the composition root (the one place that wires hardware/, policies/, robot/ and sim/
together, parses options, prints and configures logging).

One module per command group registers its subcommands (``add_parser``): bus, calibrate (calibrate, calibration),
find, record (record, teleoperate, replay), run, sim, train (train, export), dataset, bench, demo, eval; rigs.py
builds the rigs they drive (a real arm's ports and cameras, or the simulated twin). A command's options are derived
from its config dataclasses (onboard/cli/options.py); this module keeps the root parser, ``main`` and the mapping of
errors to exit codes.
"""

from __future__ import annotations

import argparse
import logging
import sys

from hardware.feetech import FeetechError
from onboard.cli import bench as bench_cli
from onboard.cli import bus as bus_cli
from onboard.cli import calibrate as calibrate_cli
from onboard.cli import dataset as dataset_cli
from onboard.cli import demo as demo_cli
from onboard.cli import eval as eval_cli
from onboard.cli import find as find_cli
from onboard.cli import record as record_cli
from onboard.cli import run as run_cli
from onboard.cli import sim as sim_cli
from onboard.cli import train as train_cli
from onboard.cli.bus import resolve_port
from onboard.cli.options import OptionError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="onboard", description="On-device policy runtime for low-cost robot arms.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging (retries, timeouts)")
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
    return parser


def main(argv: list[str] | None = None) -> int:
    import sim  # noqa: F401  (registers the simbus:// pyserial URL handler)

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if hasattr(args, "port"):
        args.port = resolve_port(args.port)
    try:
        return int(args.func(args) or 0)
    except (FeetechError, OptionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
