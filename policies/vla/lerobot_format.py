"""Our VLA as `lerobot-train` saves it (the ``lerobot_policy_onboard`` plugin), read as one of our checkpoints.

    <pretrained_model>/config.json          LeRobot's draccus dump: {"type": "onboard", "input_features": {...},
                                            "output_features": {...}, "image_size": 96, "chunk_size": 20, ...}
    <pretrained_model>/model.safetensors    the plugin policy's state dict: our VLA's under "model." (its
                                            normalisation buffers included: the plugin normalises inside the model,
                                            as `onboard train` does)
    <pretrained_model>/policy_*processor*   LeRobot's processor pipelines (identity normalisers; not needed here)

So a `lerobot-train --policy.type=onboard` checkpoint runs in `onboard eval` / `onboard run` (the "vla" kind, torch)
and exports with `onboard export` exactly as an `onboard train` one: ``policies.vla.checkpoint`` reads it through
the functions below. The VLAConfig comes from config.json: the cameras are the ``observation.images.*`` input
features in order (the order the model embeds them in), the state and action sizes are their features' shapes, and
every other VLAConfig field is the same-named field of the plugin's config. Pure JSON and safetensors: no LeRobot.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

from policies.errors import PolicyLoadError
from policies.text import first_line
from policies.vla.config import VLAConfig

LEROBOT_TYPE = "onboard"  # the plugin's policy type: `lerobot-train --policy.type=onboard`
WEIGHTS_PREFIX = "model."  # the plugin policy keeps our VLA as its `model` attribute
IMAGE_PREFIX = "observation.images."
STATE_KEY = "observation.state"
ACTION_KEY = "action"
DERIVED = ("cameras", "state_dim", "action_dim")  # VLAConfig fields that come from the features, not the config


def model_fields() -> tuple[str, ...]:
    """The VLAConfig fields the plugin's config carries under the same name (all but ``DERIVED``)."""
    return tuple(f.name for f in fields(VLAConfig) if f.name not in DERIVED)


def is_lerobot_vla(meta: Any) -> bool:
    """Whether a parsed config.json is the plugin's (a LeRobot checkpoint of our VLA)."""
    return isinstance(meta, dict) and meta.get("type") == LEROBOT_TYPE


def _size(features: dict, key: str, where: Path) -> int:
    shape = (features.get(key) or {}).get("shape")
    if not shape or len(shape) != 1:
        raise PolicyLoadError(f'{where}: the VLA needs a 1-d "{key}" feature, config.json has {features.get(key)}')
    return int(shape[0])


def vla_config(meta: dict, where: Path) -> VLAConfig:
    """The VLAConfig of a plugin config.json (``where``: its path, for messages)."""
    inputs = meta.get("input_features") or {}
    outputs = meta.get("output_features") or {}
    cameras = tuple(key[len(IMAGE_PREFIX) :] for key in inputs if key.startswith(IMAGE_PREFIX))
    if not cameras:
        raise PolicyLoadError(f"{where}: no observation.images.* input feature; this checkpoint was never trained")
    values = {name: meta[name] for name in model_fields() if name in meta}
    try:
        return VLAConfig(
            cameras=cameras,
            state_dim=_size(inputs, STATE_KEY, where),
            action_dim=_size(outputs, ACTION_KEY, where),
            **values,
        )
    except (TypeError, ValueError) as exc:
        raise PolicyLoadError(f"{where}: not a VLA config ({first_line(exc)})") from None


def model_tensors(tensors: dict[str, Any]) -> dict[str, Any]:
    """The plugin policy's state dict -> our VLA's (the ``model.`` prefix dropped)."""
    return {k[len(WEIGHTS_PREFIX) :]: v for k, v in tensors.items() if k.startswith(WEIGHTS_PREFIX)}


def stats_from_weights(weights: Path) -> dict[str, dict[str, list[float]]]:
    """The normalisation statistics the model holds (``state_mean`` ...), in LeRobot's stats layout (stats.json's)."""
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="numpy") as f:
            names = set(f.keys())
            out: dict[str, dict[str, list[float]]] = {}
            for key, prefix in ((STATE_KEY, "state"), (ACTION_KEY, "action")):
                out[key] = {}
                for stat in ("mean", "std"):
                    name = f"{WEIGHTS_PREFIX}{prefix}_{stat}"
                    if name not in names:
                        raise PolicyLoadError(f"{weights} has no {name}: not a checkpoint of the onboard VLA plugin")
                    out[key][stat] = f.get_tensor(name).astype(float).tolist()
    except PolicyLoadError:
        raise
    except Exception as exc:  # safetensors' SafetensorError on a truncated or garbage file
        raise PolicyLoadError(f"{weights} cannot be read ({first_line(exc)}): the checkpoint is damaged") from None
    return out
