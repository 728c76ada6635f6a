"""Checkpoints of the VLA: weights in safetensors, config and dataset stats in JSON. No pickle anywhere.

    <dir>/model.safetensors   all parameters and buffers (normalisation stats included)
    <dir>/config.json         {"type": "onboard_vla", "config": {...VLAConfig...}}
    <dir>/stats.json          dataset stats, LeRobot layout: {"observation.state": {"mean": [...], ...}, ...}

Each file is written to a temporary name and renamed into place, so a crash never leaves a half-written file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

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


def load_checkpoint(path: str | Path, device: str = "cpu"):
    """-> (model in eval mode, config, stats as nested dicts of numpy arrays)."""
    from safetensors.torch import load_file

    from policies.vla.model import VLA

    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"{path} is not a VLA checkpoint (no config.json); save one with save_checkpoint()")
    meta = json.loads((path / "config.json").read_text())
    if meta.get("type") != CHECKPOINT_TYPE:
        raise ValueError(f"{path}/config.json has type {meta.get('type')!r}, expected {CHECKPOINT_TYPE!r}")
    config = VLAConfig.from_dict(meta["config"])
    stats_file = path / "stats.json"
    raw = json.loads(stats_file.read_text()) if stats_file.is_file() else {}
    stats = {k: {s: np.asarray(v) for s, v in d.items()} for k, d in raw.items()}
    model = VLA(config)
    model.load_state_dict(load_file(path / "model.safetensors", device=device))  # strict: every key must match
    return model.to(device).eval(), config, stats
