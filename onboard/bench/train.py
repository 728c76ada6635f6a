"""`onboard bench train`: how fast `onboard train` steps on this machine, for the model and precision choices the
recipe (scripts/make_model.sh) weighs.

    onboard bench train                          # batch 32, 2 threads, every variant below
    onboard bench train --batch_size 64 --json train.json

Each variant builds the VLA with its config, then times ``--steps`` calls of ``policies.train.optimizer_step`` (forward
with the L1 loss, backward, gradient clipping, the fused AdamW update: `onboard train`'s step) on one fixed synthetic
batch after ``--warmup`` untimed ones; the median step is reported, with samples per second. No dataset: decoding and
augmentation are not in it (`onboard train` prints its own steps/s). Variants (``VARIANTS``): the bundled model's
config in float32 and in bfloat16 autocast (the earlier recipe's ``--amp bf16``), without dropout, and without dropout
and without the first stage's residual conv (``--model.plain_stages 1``), that with half the channels in the
first three conv stages (``--model.conv_channels 16 32 64 128``), that with the subgoal query (the second recipe
run's model), its step with the images and conv weights channels-last (NHWC), and that model on 64x64 frames
(``--model.image_size 64``: half the step time, but the run that used it failed on unseen layouts, model card);
with ``--compile``, also the second run's model under ``torch.compile`` (its first step, the compile, is reported
apart).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from onboard.bench.sysinfo import machine_info, machine_lines

RECIPE = {"dropout": 0.0, "plain_stages": 1, "conv_channels": (16, 32, 64, 128)}
# name -> (VLAConfig overrides, bf16 autocast, how the step runs: "eager", "channels_last" (the model's conv weights
# and the images in NHWC) or "compile" (torch.compile of the loss: forward and backward through inductor))
VARIANTS: dict[str, tuple[dict[str, Any], bool, str]] = {
    "bundled config, bf16 autocast (earlier recipe)": ({}, True, "eager"),
    "bundled config, float32": ({}, False, "eager"),
    "dropout 0, float32": ({"dropout": 0.0}, False, "eager"),
    "dropout 0, plain_stages 1, float32 (1st run)": ({"dropout": 0.0, "plain_stages": 1}, False, "eager"),
    "dropout 0, plain_stages 1, bf16 autocast": ({"dropout": 0.0, "plain_stages": 1}, True, "eager"),
    "+ conv_channels 16 32 64 128": (RECIPE, False, "eager"),
    "+ subgoal_weight 1 (2nd run)": ({**RECIPE, "subgoal_weight": 1.0}, False, "eager"),
    "2nd run, channels_last": ({**RECIPE, "subgoal_weight": 1.0}, False, "channels_last"),
    "+ image_size 64 (r4: fails closed-loop)": ({**RECIPE, "subgoal_weight": 1.0, "image_size": 64}, False, "eager"),
}
COMPILED = {"2nd run, torch.compile": ({**RECIPE, "subgoal_weight": 1.0}, False, "compile")}  # with --compile


@dataclass(frozen=True)
class TrainBenchConfig:
    """`onboard bench train`."""

    batch_size: int = field(default=32, metadata={"help": "samples per step"})
    steps: int = field(default=20, metadata={"help": "timed steps per variant"})
    warmup: int = field(default=4, metadata={"help": "untimed steps first"})
    threads: int = field(default=2, metadata={"help": "torch threads (onboard train's --threads)"})
    json: str | None = field(default=None, metadata={"help": "also write the results to this JSON file"})
    compile: bool = field(
        default=False,
        metadata={"help": "also time the recipe under torch.compile (needs a C++ compiler; its first step compiles)"},
    )

    def __post_init__(self) -> None:
        if min(self.batch_size, self.steps, self.threads) < 1 or self.warmup < 0:
            raise ValueError("--batch_size, --steps and --threads must be >= 1, --warmup >= 0")


def time_variant(overrides: dict[str, Any], bf16: bool, cfg: TrainBenchConfig, how: str = "eager") -> dict[str, float]:
    """Median wall time of one training step (ms) of the VLA built with ``overrides``, run as ``how`` says
    (``VARIANTS``); the compiling variant also reports its first step (the compile) in seconds."""
    import numpy as np
    import torch

    from policies.train import optimizer_step
    from policies.train_config import TrainConfig
    from policies.vla.config import VLAConfig
    from policies.vla.model import VLA, fake_batch

    torch.manual_seed(0)
    model_cfg = VLAConfig(**overrides)
    model = VLA(model_cfg).train()
    batch = fake_batch(model_cfg, cfg.batch_size)
    if how == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        for cam in model_cfg.cameras:
            key = f"observation.images.{cam}"
            batch[key] = batch[key].contiguous(memory_format=torch.channels_last)
    elif how == "compile":
        model.compute_loss = torch.compile(model.compute_loss)
    elif how != "eager":
        raise ValueError(f"unknown way to run a step: {how!r}")
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    warmup = max(cfg.warmup, 1) if how == "compile" else cfg.warmup  # compiling is not a step
    times, first = [], 0.0
    for i in range(warmup + cfg.steps):
        t0 = time.perf_counter()
        optimizer_step(model, opt, batch, bf16=bf16, grad_clip=TrainConfig.grad_clip)
        took = time.perf_counter() - t0
        if i == 0:
            first = took
        if i >= warmup:
            times.append(took)
    step = float(np.median(times))
    row = {
        "ms_per_step": 1000 * step,
        "samples_per_s": cfg.batch_size / step,
        "parameters_m": model.num_parameters() / 1e6,
    }
    if how == "compile":
        row["first_step_s"] = first
    return row


def main(cfg: TrainBenchConfig) -> int:
    import torch

    from onboard.cli.options import command_line

    torch.set_num_threads(cfg.threads)
    machine = machine_info()
    print(f"$ {command_line('onboard bench train', cfg)}")
    for line in machine_lines(machine):
        print(line)
    print(f"batch {cfg.batch_size}, {cfg.threads} torch threads, median of {cfg.steps} steps after {cfg.warmup}")
    rows = {}
    base = None
    for name, (overrides, bf16, how) in {**VARIANTS, **(COMPILED if cfg.compile else {})}.items():
        row = time_variant(overrides, bf16, cfg, how)
        base = base or row["ms_per_step"]
        row["speedup"] = base / row["ms_per_step"]
        rows[name] = row
        compiled = f"; first step {row['first_step_s']:.0f} s (compiling)" if "first_step_s" in row else ""
        print(
            f"  {name:48s} {row['ms_per_step']:6.0f} ms/step  {row['samples_per_s']:5.0f} samples/s  "
            f"x{row['speedup']:.2f}  ({row['parameters_m']:.2f} M parameters{compiled})",
            flush=True,
        )
    if cfg.json:
        Path(cfg.json).write_text(json.dumps({"config": cfg.__dict__, "machine": machine, "variants": rows}, indent=2))
    return 0
