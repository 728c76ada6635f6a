"""`python -m sim.record_sim record|teleoperate|replay ...`: ``robot.record_cli`` with ``--robot.port=sim`` wired
to the simulated rig (``sim.teleop_rig``), for tests and until the `onboard` command carries it."""

from __future__ import annotations

import argparse
import sys

from robot import record_cli

from .teleop_rig import build_sim_rig_from_args


def main(argv: list[str] | None = None) -> int:
    import sim  # noqa: F401  (registers simbus://)

    parser = argparse.ArgumentParser(prog="python -m sim.record_sim")
    sub = parser.add_subparsers(dest="cmd", required=True)
    record_cli.add_parser(sub, "serial port, or sim", sim_rig=build_sim_rig_from_args)
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
