"""Checkpoints of the VLA: weights in safetensors, config and dataset stats in JSON. No pickle anywhere.

    <dir>/model.safetensors   all parameters and buffers (normalisation stats included)
    <dir>/config.json         {"type": "onboard_vla", "config": {...VLAConfig...}}
    <dir>/stats.json          dataset stats, LeRobot layout: {"observation.state": {"mean": [...], ...}, ...}

Each file is written to a temporary name and renamed into place, so a crash never leaves a half-written file.
A `lerobot-train --policy.type=onboard` checkpoint (the ``lerobot_policy_onboard`` plugin's ``pretrained_model/``)
loads the same way: ``policies.vla.lerobot_format`` reads its config.json and weights as these.

``load_checkpoint`` checks the folder first (``check_checkpoint``): a missing, damaged or mismatched file is a
``policies.errors.PolicyLoadError`` naming it. Both take any folder ``policies.checkpoints.resolve_policy_folder``
takes: a run's output dir, ``checkpoints/last``, ``checkpoints/000050`` or its ``pretrained_model/``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from policies.checkpoints import resolve_policy_folder
from policies.errors import POLICY_FOLDERS, PolicyFileMissingError, PolicyLoadError
from policies.text import first_line
from policies.vla import lerobot_format
from policies.vla.config import VLAConfig

CHECKPOINT_TYPE = "onboard_vla"


def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    if isinstance(x, np.ndarray | np.generic):
        return x.tolist()
    return x


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_checkpoint(path: str | Path, model, config: VLAConfig, stats: Mapping[str, Any] | None = None) -> Path:
    from safetensors.torch import save

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    _write_atomic(path / "model.safetensors", save(tensors, metadata={"format": "pt", "type": CHECKPOINT_TYPE}))
    meta = {"type": CHECKPOINT_TYPE, "config": config.to_dict()}
    _write_atomic(path / "config.json", json.dumps(meta, indent=2).encode())
    _write_atomic(path / "stats.json", json.dumps(_jsonable(stats or {}), indent=2).encode())
    return path


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise PolicyLoadError(f"{path} is not valid JSON ({first_line(exc)}): the checkpoint is damaged") from None


def check_checkpoint(path: str | Path) -> tuple[VLAConfig, dict[str, Any]]:
    """(config, raw stats) of the VLA checkpoint in ``path``, after checking its files (``PolicyLoadError``, naming
    the file, for a folder that is missing, not a checkpoint, or has a missing or damaged file)."""
    path = resolve_policy_folder(path)
    if not path.exists():
        raise PolicyFileMissingError(f"checkpoint {path} does not exist")
    if not path.is_dir():
        raise PolicyLoadError(f"{path} is a file, not a policy folder; pass {POLICY_FOLDERS}")
    if not (path / "config.json").is_file():
        raise PolicyFileMissingError(f"{path} is not a VLA checkpoint (no config.json); pass {POLICY_FOLDERS}")
    meta = _read_json(path / "config.json")
    kind = meta.get("type") if isinstance(meta, dict) else None
    if lerobot_format.is_lerobot_vla(meta):  # saved by `lerobot-train --policy.type=onboard` (the plugin)
        if not (path / "model.safetensors").is_file():
            raise PolicyFileMissingError(f"{path / 'model.safetensors'} is missing: the checkpoint has no weights")
        config = lerobot_format.vla_config(meta, path / "config.json")
        return config, lerobot_format.stats_from_weights(path / "model.safetensors")
    if kind != CHECKPOINT_TYPE:
        hint = " (a LeRobot checkpoint: use --policy.type=lerobot)" if isinstance(kind, str) else ""
        raise PolicyLoadError(f"{path / 'config.json'} has type {kind!r}, expected {CHECKPOINT_TYPE!r}{hint}")
    try:
        config = VLAConfig.from_dict(meta.get("config") or {})
    except (TypeError, ValueError) as exc:
        raise PolicyLoadError(f"{path / 'config.json'}: not a VLA config ({first_line(exc)})") from None
    if not (path / "model.safetensors").is_file():
        raise PolicyFileMissingError(f"{path / 'model.safetensors'} is missing: the checkpoint has no weights")
    stats_file = path / "stats.json"
    raw = _read_json(stats_file) if stats_file.is_file() else {}
    if not isinstance(raw, dict) or not all(isinstance(d, dict) for d in raw.values()):
        raise PolicyLoadError(f"{stats_file} is not a stats object ({{feature: {{stat: values}}}})")
    return config, raw


def load_checkpoint(path: str | Path, device: str = "cpu"):
    """-> (model in eval mode, config, stats as nested dicts of numpy arrays)."""
    from safetensors.torch import load_file

    from policies.vla.model import VLA

    path = resolve_policy_folder(path)
    config, raw = check_checkpoint(path)
    stats = {k: {s: np.asarray(v) for s, v in d.items()} for k, d in raw.items()}
    model = VLA(config)
    weights = path / "model.safetensors"
    try:
        tensors = load_file(weights, device=device)
    except Exception as exc:  # safetensors' SafetensorError on a truncated or garbage file
        raise PolicyLoadError(f"{weights} cannot be read ({first_line(exc)}): the checkpoint is damaged") from None
    if lerobot_format.is_lerobot_vla(_read_json(path / "config.json")):
        tensors = lerobot_format.model_tensors(tensors)
    try:
        model.load_state_dict(tensors)  # strict: every key must match
    except RuntimeError as exc:
        raise PolicyLoadError(
            f"{weights} does not fit {path / 'config.json'} ({first_line(exc)}): the files come from different runs"
        ) from None
    return model.to(device).eval(), config, stats
