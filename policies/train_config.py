"""The training run's configuration: what `onboard train` takes, with each option's default and help (the command
line is derived from these fields, see onboard/cli/options.py). No torch: the CLI builds its parser from these
without loading the trainer. ``AugmentConfig`` is used by policies/augment.py, ``TrainConfig`` by policies/train.py.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field
from typing import Any, Literal

from policies.vla.config import VLAConfig


def _opt(default: Any = MISSING, help: str = "", **meta: Any) -> Any:
    """A config field with its help (the command line is derived from these, see onboard/cli/options.py)."""
    return field(default=default, metadata={"help": help, **meta})


@dataclass(frozen=True)
class AugmentConfig:
    shift: int = field(default=0, metadata={"help": "random image shift, px (0: off; try 4)"})
    state_noise: float = field(
        default=0.0, metadata={"help": "Gaussian noise on the input joint state, degrees (0: off; try 1)"}
    )
    # groups of interchangeable instructions (() = off); not an option: `onboard train --augment.paraphrase` fills it
    paraphrases: tuple[tuple[str, ...], ...] = field(default=(), metadata={"cli": False})

    def __post_init__(self) -> None:
        if self.shift < 0:
            raise ValueError(f"augment.shift must be >= 0 pixels, got {self.shift}")
        if not self.state_noise >= 0:
            raise ValueError(f"augment.state_noise must be >= 0, got {self.state_noise}")
        object.__setattr__(self, "paraphrases", tuple(tuple(g) for g in self.paraphrases))  # lists from JSON
        seen: set[str] = set()
        for group in self.paraphrases:
            for text in group:
                if text in seen:
                    raise ValueError(f"augment.paraphrases: {text!r} is in more than one group (or twice in one)")
                seen.add(text)

    @property
    def enabled(self) -> bool:
        return self.shift > 0 or self.state_noise > 0 or bool(self.paraphrases)

    def paraphrase_table(self) -> dict[str, tuple[str, ...]]:
        """instruction -> its group (every member of every group)."""
        return {text: group for group in self.paraphrases for text in group}


@dataclass(frozen=True)
class TrainConfig:
    datasets: tuple[str, ...] = _opt(
        help="a LeRobot v3.0 dataset folder (repeatable)", flag="--dataset.root", metavar="DIR"
    )
    output_dir: str = _opt(help="run folder: checkpoints/<step>/, last/, train_config.json")
    steps: int = _opt(20_000, "optimizer steps")
    batch_size: int = _opt(64, "samples per step")
    lr: float = _opt(3e-4, "peak learning rate (warm-up, then cosine decay to a tenth)")
    weight_decay: float = _opt(1e-4, "AdamW weight decay")
    warmup_steps: int = _opt(500, "linear learning-rate warm-up")
    grad_clip: float = _opt(1.0, "gradient norm clip")
    save_every: int = _opt(1000, "checkpoint every N steps")
    eval_every: int = _opt(0, "evaluate in simulation every N steps (0: never)")
    log_every: int = _opt(50, "log the mean loss every N steps (without the progress bar)")
    seed: int = _opt(0, "seed of the weights, the data order and the augmentation")
    threads: int = _opt(2, "torch threads")
    # bf16: oneDNN uses AMX/AVX-512 BF16 where the CPU has them
    amp: Literal["none", "bf16"] = _opt("none", "bf16: bfloat16 autocast on the CPU")
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # policies.augment: image shift, state noise
    init_from: str | None = _opt(
        None,
        "start from this checkpoint's weights and normalisation (fine-tuning; fresh optimizer and schedule)",
        metavar="CKPT",
    )
    model: VLAConfig = field(default_factory=VLAConfig)

    def __post_init__(self) -> None:
        if not self.datasets:
            raise ValueError("give at least one dataset (--dataset.root=...)")
        for name in ("steps", "batch_size", "save_every", "log_every", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.amp not in ("none", "bf16"):
            raise ValueError(f"amp must be 'none' or 'bf16', got {self.amp!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        d["datasets"] = list(self.datasets)
        return d
