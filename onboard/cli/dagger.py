"""`onboard dagger`: DAgger data for a trained policy: the policy drives the simulated arm, the scripted expert takes
over from where it got to and finishes the task; the expert's part of each episode is recorded
(``onboard.eval.dagger``).

    onboard dagger --policy.path outputs/model/bundle --sim.task pick --n 200 --seed0 1000000 \\
        --dataset.root outputs/model/data/dagger_pick --num_workers 2

Train on it next to the demonstrations (`onboard train --dataset.root ... --dataset.root <this dataset>`).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field

from onboard.cli.options import add_options, config_from


@dataclass(frozen=True, kw_only=True)
class DaggerCommand:
    policy_path: str = field(
        metadata={"flag": "--policy.path", "help": "the policy that drives (a bundle or a checkpoint)"}
    )
    policy_type: str = field(default="onnx", metadata={"flag": "--policy.type", "help": "onnx (a bundle) or vla"})
    root: str = field(metadata={"flag": "--dataset.root", "help": "the new dataset's folder"})
    task: str = field(default="pick", metadata={"flag": "--sim.task", "help": "touch, pick or place"})
    n: int = field(default=100, metadata={"help": "episodes (layout seeds seed0 .. seed0 + n - 1)"})
    seed0: int = field(
        default=1_000_000,
        metadata={"help": "first layout seed (keep clear of the evaluation seeds, 50000+ and 100000+)"},
    )
    takeover: tuple[float, ...] = field(
        default=(0.1, 0.8),
        metadata={"help": "the expert takes over at a time drawn uniformly from LO..HI times the task's time limit"},
    )
    expert_s: float = field(default=8.0, metadata={"help": "the most seconds the expert acts after taking over"})
    num_workers: int = field(default=2, metadata={"help": "worker processes (one simulated arm each)"})

    def __post_init__(self) -> None:
        if len(self.takeover) != 2:
            raise ValueError(f"--takeover takes two fractions LO HI, got {list(self.takeover)}")
        if self.n < 1 or self.num_workers < 1 or self.expert_s <= 0:
            raise ValueError("--n and --num_workers must be >= 1 and --expert_s > 0")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dagger",
        help="DAgger data: a trained policy drives the simulated arm, the scripted expert takes over and finishes; "
        "the expert's part is recorded as demonstrations",
    )
    add_options(p, DaggerCommand)
    p.set_defaults(func=cmd_dagger)


def cmd_dagger(args: argparse.Namespace) -> int:
    from onboard.eval.dagger import collect

    cfg = config_from(args, DaggerCommand)
    try:
        collect(
            cfg.root,
            task=cfg.task,
            seeds=range(cfg.seed0, cfg.seed0 + cfg.n),
            policy_kind=cfg.policy_type,
            policy_path=cfg.policy_path,
            takeover=(float(cfg.takeover[0]), float(cfg.takeover[1])),
            expert_s=cfg.expert_s,
            workers=cfg.num_workers,
            log=lambda line: print(line, flush=True),
        )
    except (FileExistsError, ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
