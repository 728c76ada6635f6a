"""`onboard train` (the small VLA on LeRobot v3.0 datasets) and `onboard export` (a checkpoint -> an ONNX bundle).

`train`'s options are policies.train_config.TrainConfig's fields, spelled as LeRobot's `lerobot-train` spells them
(``--dataset.repo_id``, ``--dataset.root``, ``--rename_map``, ``--steps``, ``--batch_size``, ``--save_freq``,
``--policy.device``, ...; ``--augment.shift``, ``--model.chunk_size`` are ours), plus what only the command does:
evaluate in simulation every ``--eval_freq`` steps (``--eval.*``), turn ``--augment.paraphrase`` into the training
phrasings, resume a run. The trainer logs its progress lines through ``logging``; the command shows them on stdout.
Every command that takes a checkpoint (``export --checkpoint``, ``--init_from``, run/eval/demo ``--policy.path``)
takes the run's folder, ``checkpoints/last``, ``checkpoints/000050`` or its ``pretrained_model/``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from onboard.cli.options import add_options, config_from
from policies.train_config import TrainConfig


@dataclass(frozen=True)
class TrainEval:
    """The periodic evaluation in simulation (every ``--eval_freq`` steps): the checkpoint on ``n`` simulated
    episodes of ``task`` (validation seeds from 50000), its success rate in the log."""

    n: int = field(default=10, metadata={"help": "episodes per evaluation", "aliases": ("--eval.n_episodes",)})
    task: str = field(default="pick", metadata={"help": "task to evaluate (touch, pick, place)"})


@dataclass(frozen=True)
class TrainCommand:
    """What `onboard train` adds to TrainConfig."""

    eval: TrainEval = field(default_factory=TrainEval)
    paraphrase: bool = field(
        default=False,
        metadata={
            "flag": "--augment.paraphrase",
            "help": "train each demonstration under every training phrasing of its task and colour, drawn at random",
        },
    )
    phrasings: Literal["train", "composed"] = field(
        default="train",
        metadata={
            "flag": "--augment.phrasings",
            "help": "with --augment.paraphrase: the tasks' training phrasings, or those plus a few dozen training-only "
            "rewordings each (sim/tasks/phrasings.py; never the held-out ones)",
        },
    )
    resume: bool = field(default=False, metadata={"help": "continue the run in --output_dir from its last checkpoint"})


@dataclass(frozen=True)
class ExportConfig:
    checkpoint: str = field(
        metadata={
            "help": "a training run's folder (its newest checkpoint), its checkpoints/last, checkpoints/<step> or "
            "pretrained_model/"
        }
    )
    output_dir: str = field(metadata={"help": "bundle folder"})
    recipe: str | None = field(
        default=None,
        metadata={
            "help": "a JSON file describing how the model was made (scripts/make_model.sh writes one: its command, "
            "settings, datasets and stage times); copied into bundle.json as 'recipe'"
        },
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train the small VLA on LeRobot v3.0 datasets (CPU or --policy.device=cuda; LeRobot's checkpoint layout, "
        "resume, periodic evaluation in sim)",
    )
    add_options(p, TrainConfig)
    add_options(p, TrainCommand)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("export", help="a trained checkpoint -> an ONNX bundle that runs with onnxruntime, no torch")
    add_options(p, ExportConfig)
    p.set_defaults(func=cmd_export)


@contextlib.contextmanager
def _progress_on_stdout(name: str) -> Iterator[None]:
    """The INFO lines of logger ``name`` on stdout, as plain lines, while the block runs."""
    logger = logging.getLogger(name)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(min(logging.INFO, logging.getLogger().getEffectiveLevel()))
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def cmd_train(args: argparse.Namespace) -> int:
    command, cfg = config_from(args, TrainCommand), config_from(args, TrainConfig)
    if command.paraphrase:
        from sim.tasks import paraphrase_groups

        groups = paraphrase_groups("train", composed=command.phrasings == "composed")
        cfg = replace(cfg, augment=replace(cfg.augment, paraphrases=groups))
    elif command.phrasings != "train":
        print("error: --augment.phrasings chooses what --augment.paraphrase draws from: pass both", file=sys.stderr)
        return 2
    if not cfg.output_dir:
        if command.resume:
            print("error: --resume continues the run in --output_dir: name it", file=sys.stderr)
            return 2
        cfg = replace(cfg, output_dir=str(cfg.default_output_dir()))
    evaluate = None
    if cfg.eval_freq:

        def evaluate(checkpoint, step):
            from onboard.eval.episodes import evaluate_checkpoint
            from onboard.eval.factories import make_runner, policy_and_size

            # validation seeds: neither the data generation's layouts nor `onboard eval`'s (from 100000)
            return evaluate_checkpoint(
                checkpoint,
                load_policy=policy_and_size,
                make_runner=make_runner,
                task=command.eval.task,
                n=command.eval.n,
                seed0=50_000,
            )

    from policies.checkpoints import LAST_LINK, PRETRAINED_DIR
    from policies.train import train

    try:
        with _progress_on_stdout("policies.train"):
            checkpoint = train(cfg, resume=command.resume, evaluate=evaluate)
    except (FileExistsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"policy: {checkpoint / PRETRAINED_DIR} (the newest is always {checkpoint.parent / LAST_LINK})")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from policies.bundle import export_bundle

    cfg = config_from(args, ExportConfig)
    recipe = None
    if cfg.recipe is not None:
        try:
            recipe = json.loads(Path(cfg.recipe).read_text())
        except (OSError, ValueError) as exc:
            print(f"error: --recipe {cfg.recipe}: {exc}", file=sys.stderr)
            return 2
    out = export_bundle(cfg.checkpoint, cfg.output_dir, recipe=recipe)  # resolves a run's folder or checkpoints/last
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e6
    print(f"bundle written to {out} ({size:.1f} MB); run it with policies.onnx_policy.OnnxVLAPolicy (no torch)")
    return 0
