"""The training run's configuration: what `onboard train` takes, with each option's default and help (the command
line is derived from these fields, see onboard/cli/options.py). No torch: the CLI builds its parser from these
without loading the trainer. ``AugmentConfig`` is used by policies/augment.py, ``TrainConfig`` by policies/train.py.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from dataclasses import MISSING, asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from policies.features import parse_rename_map
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
    """LeRobot's `lerobot-train` spellings where it has the option (``--dataset.repo_id``, ``--dataset.root``,
    ``--rename_map``, ``--steps``, ``--batch_size``, ``--save_freq``, ``--log_freq``, ``--eval_freq``,
    ``--policy.device``, ``--output_dir``, ``--job_name``); the older spellings (``--save_every``, ...) still work."""

    datasets: tuple[str, ...] = _opt(
        (),
        "a LeRobot v3.0 dataset folder (repeatable; with --dataset.repo_id, the folder of that dataset)",
        flag="--dataset.root",
        metavar="DIR",
    )
    repo_ids: tuple[str, ...] = _opt(
        (),
        "a dataset by its Hugging Face id, read from $HF_LEROBOT_HOME/<repo_id> (default ~/.cache/huggingface/lerobot) "
        "unless --dataset.root gives its folder (repeatable; not downloaded: fetch it first)",
        flag="--dataset.repo_id",
        metavar="REPO_ID",
    )
    max_episodes: int | None = _opt(
        None,
        "use only the first N episodes of each dataset (data-efficiency runs: how many demonstrations a task needs; "
        "default: all of them)",
        flag="--dataset.max_episodes",
        metavar="N",
    )
    rename_map: str | None = _opt(
        None,
        "JSON object renaming the datasets' features to the model's, e.g. "
        """'{"observation.images.top": "observation.images.front"}'""",
        metavar="JSON",
    )
    output_dir: str | None = _opt(
        None,
        "run folder: checkpoints/<step>/pretrained_model/, checkpoints/last, train_config.json "
        "(default: outputs/train/<date>/<time>_<job_name>)",
    )
    job_name: str = _opt("vla", "names the default --output_dir")
    steps: int = _opt(20_000, "optimizer steps")
    batch_size: int = _opt(64, "samples per step")
    lr: float = _opt(3e-4, "peak learning rate (warm-up, then cosine decay to a tenth)")
    weight_decay: float = _opt(1e-4, "AdamW weight decay")
    warmup_steps: int = _opt(500, "linear learning-rate warm-up")
    grad_clip: float = _opt(1.0, "gradient norm clip")
    ema_decay: float = _opt(
        0.0, "save a moving average of the weights, with this decay per step (e.g. 0.999), as the policy; 0: off"
    )
    save_freq: int = _opt(1000, "checkpoint every N steps (and after the last)", aliases=("--save_every",))
    eval_freq: int = _opt(
        0, "evaluate the checkpoint in simulation every N steps (--eval.*; 0: never)", aliases=("--eval_every",)
    )
    log_freq: int = _opt(50, "log the mean loss every N steps (without the progress bar)", aliases=("--log_every",))
    seed: int = _opt(0, "seed of the weights, the data order and the augmentation")
    device: str = _opt("cpu", "cpu, cuda or cuda:N: where the model trains", flag="--policy.device")
    threads: int = _opt(2, "torch threads")
    # bf16: oneDNN uses AMX/AVX-512 BF16 where the CPU has them
    amp: Literal["none", "bf16"] = _opt("none", "bf16: bfloat16 autocast (CPU or GPU)")
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # policies.augment: image shift, state noise
    init_from: str | None = _opt(
        None,
        "start from this checkpoint's weights and normalisation (fine-tuning; fresh optimizer and schedule): a "
        "checkpoint folder, its run's folder or checkpoints/last",
        metavar="CKPT",
        aliases=("--policy.path",),
    )
    model: VLAConfig = field(default_factory=VLAConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "datasets", tuple(str(d) for d in self.datasets))
        object.__setattr__(self, "repo_ids", tuple(self.repo_ids))
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"--ema_decay must be in [0, 1) (0: no weight average; e.g. 0.999), got {self.ema_decay}")
        if self.max_episodes is not None and self.max_episodes < 1:
            raise ValueError(f"--dataset.max_episodes must be >= 1, got {self.max_episodes}")
        if not self.datasets and not self.repo_ids:
            raise ValueError("give at least one dataset (--dataset.root=DIR or --dataset.repo_id=ID)")
        if self.datasets and self.repo_ids and len(self.datasets) != len(self.repo_ids):
            raise ValueError(
                f"{len(self.repo_ids)} --dataset.repo_id but {len(self.datasets)} --dataset.root: give one folder "
                "per id, or only the ids (read from $HF_LEROBOT_HOME/<repo_id>), or only the folders"
            )
        if self.rename_map is not None and not isinstance(self.rename_map, str):  # a mapping: kept as JSON text
            object.__setattr__(self, "rename_map", json.dumps(dict(self.rename_map)))
        self.renames  # noqa: B018  (a ValueError that shows the form if it is not a JSON object)
        for name in ("steps", "batch_size", "save_freq", "log_freq", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.eval_freq < 0:
            raise ValueError(f"eval_freq must be >= 0 (0: never), got {self.eval_freq}")
        if self.amp not in ("none", "bf16"):
            raise ValueError(f"amp must be 'none' or 'bf16', got {self.amp!r}")
        if not re.fullmatch(r"cpu|cuda(:\d+)?", self.device):
            raise ValueError(f"--policy.device must be cpu, cuda or cuda:N, got {self.device!r}")
        if not self.job_name or "/" in self.job_name:
            raise ValueError(f"--job_name must be a non-empty name without '/', got {self.job_name!r}")

    @property
    def renames(self) -> dict[str, str]:
        """``rename_map`` as a dict (dataset feature -> the model's name)."""
        return parse_rename_map(self.rename_map)

    def dataset_roots(self) -> tuple[Path, ...]:
        """The dataset folders, as LeRobot finds them: each ``--dataset.root``; with only ``--dataset.repo_id``,
        ``$HF_LEROBOT_HOME/<repo_id>``."""
        if self.datasets:
            return tuple(Path(d) for d in self.datasets)
        return tuple(lerobot_home() / r for r in self.repo_ids)

    def default_output_dir(self, now: dt.datetime | None = None) -> Path:
        """LeRobot's default run folder: ``outputs/train/<YYYY-MM-DD>/<HH-MM-SS>_<job_name>``."""
        now = now or dt.datetime.now()
        return Path("outputs/train") / f"{now:%Y-%m-%d}" / f"{now:%H-%M-%S}_{self.job_name}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        d["datasets"] = list(self.datasets)
        d["repo_ids"] = list(self.repo_ids)
        return d


def lerobot_home() -> Path:
    """Where LeRobot keeps datasets by repo id: ``$HF_LEROBOT_HOME``, else ``$HF_HOME/lerobot``, else
    ``$XDG_CACHE_HOME/huggingface/lerobot`` (default ``~/.cache/huggingface/lerobot``), as lerobot.utils.constants
    resolves it (read at each call, without importing LeRobot)."""
    if os.environ.get("HF_LEROBOT_HOME"):
        return Path(os.environ["HF_LEROBOT_HOME"]).expanduser()
    hf_home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(hf_home).expanduser() / "lerobot"
