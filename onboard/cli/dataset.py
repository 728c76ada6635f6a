"""`onboard dataset verify|info|repair|merge`: LeRobot v3.0 datasets on disk, of any layout LeRobot 0.4.4 writes.
``merge OUT SHARD...`` joins datasets (a fleet's shards) into a new one (``policies.dataset.merge``)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from onboard.cli.options import add_options, config_from


@dataclass(frozen=True)
class DatasetConfig:
    root: str = field(metadata={"help": "dataset folder (the one holding meta/, data/, videos/)", "positional": True})


@dataclass(frozen=True)
class VerifyConfig(DatasetConfig):
    full: bool = field(
        default=False,
        metadata={"help": "decode every frame of every video and name the first bad one (default: a few per episode)"},
    )


@dataclass(frozen=True)
class MergeConfig:
    out: str = field(metadata={"help": "the new dataset's folder (must not exist)", "positional": True})
    shards: tuple[str, ...] = field(
        default=(),
        metadata={"help": "the datasets to merge, in this order (same fps and features)", "positional": True},
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    dsp = sub.add_parser("dataset", help="LeRobot v3.0 datasets: verify, info, repair, merge")
    dsub = dsp.add_subparsers(dest="dataset_cmd", required=True)
    for name, text, config in (
        ("verify", "check structure, lengths, timestamps, video frames and stats (exit 1 on errors)", VerifyConfig),
        ("info", "summary: episodes, frames, fps, features, tasks", DatasetConfig),
        (
            "repair",
            "undo what a killed recording left behind (the episode in progress), fix tasks and stats",
            DatasetConfig,
        ),
    ):
        p = dsub.add_parser(name, help=text)
        add_options(p, config)
        p.set_defaults(func=cmd_dataset)
    p = dsub.add_parser("merge", help="merge datasets (e.g. a fleet's shards) into a new one, episodes renumbered")
    add_options(p, MergeConfig)
    p.set_defaults(func=cmd_merge)


def cmd_merge(args: argparse.Namespace) -> int:
    from policies.dataset import DatasetReadError
    from policies.dataset.merge import merge

    config = config_from(args, MergeConfig)
    if not config.shards:
        print(
            "error: give the datasets to merge after OUT: onboard dataset merge OUT SHARD [SHARD ...]", file=sys.stderr
        )
        return 2
    try:
        print(merge(config.out, list(config.shards)))
    except (FileExistsError, DatasetReadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_dataset(args: argparse.Namespace) -> int:
    from policies.dataset import DatasetReadError, info, repair, verify

    if args.dataset_cmd == "verify":
        config = config_from(args, VerifyConfig)
        if not Path(
            config.root
        ).is_dir():  # a wrong path is a setup error (2), not a dataset that failed its checks (1)
            print(
                f"error: {config.root}: no such folder (give the dataset's root: the folder holding meta/)",
                file=sys.stderr,
            )
            return 2
        report = verify(config.root, full=config.full)
        print(report)
        return 0 if report.ok else 1
    root = config_from(args, DatasetConfig).root
    try:
        if args.dataset_cmd == "info":
            print(info(root))
            return 0
        fixed = repair(root)
    except FileNotFoundError as exc:
        print(f"error: {exc.filename or exc} not found: {root} is not a LeRobot v3.0 dataset", file=sys.stderr)
        return 2
    except (DatasetReadError, ValueError, KeyError) as exc:
        print(f"error: {root}: {exc}", file=sys.stderr)
        return 2
    print(fixed)
    return 1 if fixed.problems else 0
