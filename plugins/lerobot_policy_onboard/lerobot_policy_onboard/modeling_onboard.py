"""``OnboardPolicy``: our VLA (policies/vla/model.py) behind LeRobot's ``PreTrainedPolicy``, so that `lerobot-train`
(and with it accelerate's multi-GPU path) trains it and `lerobot-record --policy.path` runs it.

The model is ``policies.vla.model.VLA`` itself, held as ``self.model``; nothing is re-implemented here:

    batch (LeRobot's, after the preprocessor):
        observation.state         (B, S)        float, dataset units
        observation.images.<cam>  (B, 3, H, W)  float in [0, 1] (any size: the model resizes to image_size)
        task                      list of B str (embedded by the frozen sentence encoder, policies.text)
        action, action_is_pad     (B, T, A), (B, T)   training only
    forward -> (L1 loss on normalised actions, {"l1": float})          VLA.compute_loss
    predict_action_chunk -> (B, T, A) actions in dataset units          VLA.predict
    select_action -> (B, A): the first n_action_steps of a chunk, one per call

The dataset's state and action mean/std (``dataset_stats``, which LeRobot's ``make_policy`` passes) go into the
model's buffers, as `onboard train` does; a checkpoint's weights then carry them. ``save_pretrained`` writes the
state dict with our VLA under ``model.``, which ``policies.vla.lerobot_format`` reads back as one of our checkpoints
(`onboard eval`, `onboard export`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

import torch
from lerobot.policies.pretrained import PreTrainedPolicy
from lerobot.utils.constants import ACTION, OBS_STATE

from lerobot_policy_onboard.configuration_onboard import OnboardConfig
from policies.vla.lerobot_format import LEROBOT_TYPE
from policies.vla.model import VLA


def _model_stats(stats: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Mapping[str, Any]] | None:
    """The state and action mean/std of LeRobot's dataset stats, or None when it has not both."""
    if not stats or OBS_STATE not in stats or ACTION not in stats:
        return None
    return {key: {s: stats[key][s] for s in ("mean", "std")} for key in (OBS_STATE, ACTION)}


class OnboardPolicy(PreTrainedPolicy):
    config_class = OnboardConfig
    name = LEROBOT_TYPE

    def __init__(
        self,
        config: OnboardConfig,
        dataset_stats: Mapping[str, Mapping[str, Any]] | None = None,
        **kwargs: Any,  # make_policy also passes dataset_meta
    ):
        super().__init__(config)
        self.model = VLA(config.model_config(), stats=_model_stats(dataset_stats))
        self._queue: deque[torch.Tensor] = deque(maxlen=config.n_action_steps)

    def get_optim_params(self):
        return self.parameters()

    def reset(self) -> None:
        self._queue.clear()

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict]:
        loss, info = self.model.compute_loss(batch)
        return loss, info

    @torch.no_grad()
    def predict_action_chunk(self, batch: dict[str, Any], **kwargs: Any) -> torch.Tensor:
        return self.model.predict(batch)  # (B, T, A) dataset units

    @torch.no_grad()
    def select_action(self, batch: dict[str, Any], **kwargs: Any) -> torch.Tensor:
        if not self._queue:
            chunk = self.predict_action_chunk(batch)[:, : self.config.n_action_steps]  # (B, n, A)
            self._queue.extend(chunk.transpose(0, 1))  # n x (B, A)
        return self._queue.popleft()  # (B, A)
