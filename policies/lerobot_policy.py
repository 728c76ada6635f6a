"""LeRobot checkpoints (ACT, Diffusion; SmolVLA where its backbone files are local; our VLA trained by `lerobot-train
--policy.type=onboard`, through its plugin) behind the policy seam.

policy = LeRobotPolicy("outputs/train/act/checkpoints/last/pretrained_model")
policy.reset("pick up the red cube")
chunk = policy.infer({"observation.state": ..., "observation.images.front": ..., "observation.images.wrist": ...})

The folder is what LeRobot's ``save_pretrained`` writes (``lerobot-train``'s ``pretrained_model/``): ``config.json``
(with ``"type"``), ``model.safetensors`` and the processor pipelines ``policy_preprocessor.json`` /
``policy_postprocessor.json`` with their ``*.safetensors`` statistics. Everything is loaded with LeRobot's own
classes (``get_policy_class(type).from_pretrained``, ``make_pre_post_processors(cfg, pretrained_path=...)``), fully
offline: the weights come from ``model.safetensors``, so ACT's ``pretrained_backbone_weights`` (an ImageNet download
torchvision would attempt while building the model) is overridden to None.

``infer`` turns our observation into LeRobot's batch (state float32 (6,); images uint8 HWC -> float32 CHW in
[0, 1], resized to the config's input shape if the camera gives another size), runs the preprocessor (batching,
normalisation), ``predict_action_chunk`` and the postprocessor (un-normalisation) on the whole chunk, and returns it
(T, 6) in the dataset's units. Policies that look at ``n_obs_steps > 1`` observations (Diffusion) get the history
of the observations passed to ``infer`` since ``reset`` (LeRobot's ``populate_queues``: the first one repeated until
the history is full). With a runner, ``infer`` sees the observations of the ticks it refills on, not of every tick,
so that history is spaced by the refill period rather than the control period.

A third-party type (``PLUGIN_TYPES``: "onboard", plugins/lerobot_policy_onboard) is loaded the same way once
LeRobot's ``register_third_party_plugins`` has imported the installed plugins. `onboard eval` / `run` do not come
here for it by default: ``is_lerobot_checkpoint`` leaves such a folder to our torch VLA backend, which reads the same
weights without LeRobot (policies.vla.lerobot_format); ``--policy.type=lerobot`` runs it through LeRobot's classes.

torch and lerobot are imported in the constructor only (``import policies`` stays light).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from policies.base import STATE_KEY, TASK_KEY, ActionChunk
from policies.errors import PolicyFileMissingError, PolicyLoadError
from policies.text import first_line
from policies.vla.lerobot_format import LEROBOT_TYPE

BUILT_IN_TYPES = ("act", "diffusion", "smolvla")
# our VLA as a LeRobot plugin (plugins/lerobot_policy_onboard): LeRobot's classes load it once the plugin is imported
PLUGIN_TYPES = (LEROBOT_TYPE,)
SUPPORTED_TYPES = (*BUILT_IN_TYPES, *PLUGIN_TYPES)
IMAGE_PREFIX = "observation.images."
PREPROCESSOR = "policy_preprocessor.json"
POSTPROCESSOR = "policy_postprocessor.json"
# our own VLA checkpoints also have a config.json with a "type" (policies/vla/checkpoint.py): not LeRobot
ONBOARD_VLA_TYPE = "onboard_vla"
# Folders our torch VLA backend reads itself (policies.vla.checkpoint): its own checkpoints and `lerobot-train
# --policy.type=onboard` ones (the same model and weights, no LeRobot needed); so they are not detected as LeRobot's
OURS = (ONBOARD_VLA_TYPE, LEROBOT_TYPE)


def is_lerobot_checkpoint(path: str | Path) -> bool:
    """True when ``path`` is a folder whose ``config.json`` has a policy ``"type"`` (and is no bundle or VLA
    checkpoint of ours, ``OURS``)."""
    folder = Path(path)
    config = folder / "config.json"
    if not config.is_file() or (folder / "bundle.json").is_file():
        return False
    try:
        kind = json.loads(config.read_text()).get("type")
    except (OSError, ValueError, AttributeError):
        return False
    return kind is not None and kind not in OURS


def _read_config(folder: Path) -> dict:
    if not folder.is_dir():
        raise PolicyFileMissingError(
            f"{folder} is not a folder: pass a LeRobot checkpoint folder (a `pretrained_model/`)"
        )
    config = folder / "config.json"
    if not config.is_file():
        raise PolicyFileMissingError(
            f"{folder} is not a LeRobot checkpoint (no config.json): pass the `pretrained_model/` folder "
            "that LeRobot's save_pretrained / lerobot-train writes"
        )
    try:
        raw = json.loads(config.read_text())
    except ValueError as exc:
        raise PolicyLoadError(f"{config} is not valid JSON: {first_line(exc)}") from None
    if not isinstance(raw, dict) or "type" not in raw:
        raise PolicyLoadError(f'{config} has no policy "type": {folder} is not a LeRobot policy checkpoint')
    if (folder / "bundle.json").is_file():
        raise PolicyLoadError(f"{folder} is an onboard ONNX bundle, not a LeRobot checkpoint: use --policy.type=onnx")
    return raw


def _check_files(folder: Path) -> None:
    if not (folder / "model.safetensors").is_file():
        raise PolicyFileMissingError(f"{folder} has no model.safetensors: the LeRobot checkpoint is incomplete")
    missing = [name for name in (PREPROCESSOR, POSTPROCESSOR) if not (folder / name).is_file()]
    if missing:
        raise PolicyFileMissingError(
            f"{folder} has no {' / '.join(missing)}: LeRobot >= 0.4 keeps normalisation in processor pipelines "
            "saved next to the model. Save them with `preprocessor.save_pretrained(folder)` and "
            "`postprocessor.save_pretrained(folder)` (lerobot-train does), or convert an older checkpoint with "
            "`python -m lerobot.processor.migrate_policy_normalization`"
        )


def _check_local_backbone(raw: dict, folder: Path) -> None:
    """SmolVLA builds its VLM from ``vlm_model_name`` (config, processor, tokenizer) before loading the weights: that
    must be a local folder (or already in the Hugging Face cache), since nothing is downloaded here."""
    name = raw.get("vlm_model_name")
    if not name or Path(name).is_dir():
        return
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(name, "config.json")
    except Exception:  # any failure means "not available locally"
        cached = None
    if not isinstance(cached, str):
        raise PolicyFileMissingError(
            f"{folder}: this SmolVLA checkpoint builds its backbone from {name!r}, which is not a local folder and "
            "not in the Hugging Face cache; download it once (`huggingface-cli download "
            f'{name}`) or set "vlm_model_name" in config.json to a local copy'
        )


def _register_plugin(kind: str, folder: Path) -> None:
    """Import the installed LeRobot plugins, as LeRobot's own scripts do first, so that ``kind`` is registered."""
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.utils.import_utils import register_third_party_plugins

    register_third_party_plugins()
    if kind not in PreTrainedConfig.get_known_choices():
        raise PolicyLoadError(
            f"{folder}: policy type {kind!r} comes from the LeRobot plugin lerobot_policy_{kind}, which is not "
            f"installed: pip install -e plugins/lerobot_policy_{kind} (scripts/setup.sh dev does)"
        )


class LeRobotPolicy:
    """A LeRobot ``save_pretrained`` folder behind ``reset(task)`` / ``infer(observation)`` (module docstring)."""

    def __init__(self, path: str | Path, device: str = "cpu"):
        folder = Path(path)
        raw = _read_config(folder)
        kind = raw["type"]
        if kind not in SUPPORTED_TYPES:
            raise PolicyLoadError(
                f"{folder}: LeRobot policy type {kind!r} is not supported here; supported: {SUPPORTED_TYPES}"
            )
        _check_files(folder)
        if kind == "smolvla":
            _check_local_backbone(raw, folder)
        try:
            import torch
            from lerobot.configs.policies import PreTrainedConfig
            from lerobot.policies.factory import get_policy_class, make_pre_post_processors
        except ImportError as exc:
            raise ImportError("running a LeRobot checkpoint needs lerobot: pip install 'onboard[interop]'") from exc
        if kind in PLUGIN_TYPES:
            _register_plugin(kind, folder)

        overrides = [f"--device={device}"]
        if "pretrained_backbone_weights" in raw:  # the weights come from model.safetensors: no torchvision download
            overrides.append("--pretrained_backbone_weights=null")
        try:  # LeRobot's loaders raise anything (draccus, safetensors, KeyError...) on a damaged file
            cfg = PreTrainedConfig.from_pretrained(folder, cli_overrides=overrides)
            cfg.pretrained_path = folder
            self.policy = get_policy_class(kind).from_pretrained(folder, config=cfg)
            self.preprocessor, self.postprocessor = make_pre_post_processors(
                cfg,
                pretrained_path=str(folder),
                preprocessor_overrides={"device_processor": {"device": device}},
                postprocessor_overrides={"device_processor": {"device": "cpu"}},
            )
        except (ImportError, PolicyLoadError):
            raise
        except Exception as exc:
            raise PolicyLoadError(
                f"{folder}: LeRobot cannot load this {kind} checkpoint ({type(exc).__name__}: {first_line(exc)}); "
                "a file in it is damaged or from another LeRobot version: save it again with lerobot-train"
            ) from exc
        self._torch = torch
        self.type = kind
        self.device = device
        self.config = cfg
        features = cfg.input_features
        self.image_keys = tuple(k for k in features if k.startswith(IMAGE_PREFIX))
        self.cameras = tuple(k[len(IMAGE_PREFIX) :] for k in self.image_keys)
        shapes = {tuple(features[k].shape[-2:]) for k in self.image_keys}
        if len(shapes) > 1:
            raise PolicyLoadError(f"{folder}: cameras of different sizes {sorted(shapes)} are not supported")
        self.image_size: tuple[int, int] | None = tuple(int(s) for s in shapes.pop()) if shapes else None  # (H, W)
        self.state_dim = int(features[STATE_KEY].shape[0]) if STATE_KEY in features else None
        self.action_dim = int(cfg.output_features["action"].shape[0])
        self.chunk_size = self._chunk_length(cfg)
        self.n_obs_steps = int(getattr(cfg, "n_obs_steps", 1) or 1)
        self._task = ""

    @staticmethod
    def _chunk_length(cfg: Any) -> int:
        if cfg.type == "diffusion":  # generate_actions keeps n_action_steps actions from the current step
            return int(cfg.n_action_steps)
        return int(cfg.chunk_size)

    def reset(self, task: str) -> None:
        """New episode: forget the observation history (and any queue) of the LeRobot policy and processors."""
        self._task = task
        self.policy.reset()
        self.preprocessor.reset()
        self.postprocessor.reset()

    def _batch(self, observation: dict) -> dict:
        torch = self._torch
        batch: dict[str, Any] = {}
        state = np.asarray(observation[STATE_KEY], dtype=np.float32).reshape(-1)
        if self.state_dim is not None:
            if state.shape[0] != self.state_dim:
                raise ValueError(f"observation.state has {state.shape[0]} values, the policy takes {self.state_dim}")
            batch[STATE_KEY] = torch.from_numpy(state.copy())
        for key, cam in zip(self.image_keys, self.cameras, strict=True):
            if key not in observation:
                raise KeyError(f"the policy needs camera {cam!r} ({key}); the observation has {sorted(observation)}")
            img = np.asarray(observation[key])
            if img.ndim != 3 or img.shape[-1] != 3:
                raise ValueError(f"{key}: expected an (H, W, 3) RGB image, got shape {img.shape}")
            t = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).to(torch.float32).div_(255.0)
            if self.image_size is not None and tuple(t.shape[-2:]) != self.image_size:
                t = torch.nn.functional.interpolate(
                    t[None], size=self.image_size, mode="bilinear", align_corners=False
                )[0].clamp_(0.0, 1.0)
            batch[key] = t
        batch[TASK_KEY] = str(observation.get(TASK_KEY) or self._task)
        return batch

    def infer(self, observation: dict) -> ActionChunk:
        torch = self._torch
        batch = self.preprocessor(self._batch(observation))
        with torch.inference_mode():
            if self.type == "diffusion":
                actions = self._diffusion_chunk(batch)
            else:
                actions = self.policy.predict_action_chunk(batch)  # (1, T, A), normalised
            actions = self.postprocessor(actions)  # un-normalised (the statistics broadcast over the chunk axis)
        chunk = actions[0].to("cpu", torch.float32).numpy()
        return ActionChunk(actions=chunk, t_obs=observation.get("t_capture"), metadata={"type": self.type})

    def _diffusion_chunk(self, batch: dict):
        """Diffusion's ``predict_action_chunk`` reads the last ``n_obs_steps`` observations from the policy's queues:
        fill them the way its ``select_action`` does (images stacked under ``observation.images``)."""
        torch = self._torch
        from lerobot.policies.utils import populate_queues
        from lerobot.utils.constants import ACTION, OBS_IMAGES

        batch = {k: v for k, v in batch.items() if k != ACTION}
        if self.image_keys:
            batch[OBS_IMAGES] = torch.stack([batch[k] for k in self.image_keys], dim=-4)
        self.policy._queues = populate_queues(self.policy._queues, batch)
        return self.policy.predict_action_chunk(batch)
