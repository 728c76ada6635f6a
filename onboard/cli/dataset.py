"""`onboard dataset verify|info|repair`: LeRobot v3.0 datasets on disk."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from onboard.cli.options import add_options, config_from


@dataclass(frozen=True)
class DatasetConfig:
    root: str = field(metadata={"help": "dataset folder (the one holding meta/, data/, videos/)", "positional": True})


def add_parser(sub: argparse._SubParsersAction) -> None:
    dsp = sub.add_parser("dataset", help="LeRobot v3.0 datasets: verify, info, repair")
    dsub = dsp.add_subparsers(dest="dataset_cmd", required=True)
    for name, text in (
        ("verify", "check structure, lengths, timestamps, video frames and stats (exit 1 on errors)"),
        ("info", "summary: episodes, frames, fps, features, tasks"),
        ("repair", "remove what a killed recording left behind (the episode in progress) and fix stats"),
    ):
        p = dsub.add_parser(name, help=text)
        add_options(p, DatasetConfig)
        p.set_defaults(func=cmd_dataset)


def cmd_dataset(args: argparse.Namespace) -> int:
    from policies.dataset import info, repair, verify

    root = config_from(args, DatasetConfig).root
    if args.dataset_cmd == "info":
        print(info(root))
        return 0
    if args.dataset_cmd == "repair":
        print(repair(root))
        return 0
    report = verify(root)
    print(report)
    return 0 if report.ok else 1
