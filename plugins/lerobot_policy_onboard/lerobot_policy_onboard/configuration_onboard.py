"""`--policy.type=onboard`: our small VLA's settings as a LeRobot policy config.

LeRobot's factory finds a third-party policy by its config class: ``OnboardConfig`` (registered as "onboard") ->
``OnboardPolicy`` in ``modeling_onboard`` -> ``make_onboard_pre_post_processors`` in ``processor_onboard``.

The model fields are ``policies.vla.config.VLAConfig``'s, under the same names and with its defaults
(``policies.vla.lerobot_format.model_fields``), so ``--policy.image_size=64`` means what ``--model.image_size=64``
means to `onboard train`; the cameras and the state and action sizes come from the dataset's features. The optimiser
and schedule are `onboard train`'s: AdamW (lr 3e-4, weight decay 1e-4, gradient norm clip 1), linear warm-up, then
cosine decay to a tenth.

Normalisation happens inside the model, from the dataset's mean/std (floored at ``std_min``) held as buffers, as in
`onboard train`: so ``normalization_mapping`` is IDENTITY for every feature type and LeRobot's normaliser steps pass
values through (they are in the pipelines so that LeRobot's overrides, e.g. when fine-tuning with --policy.path,
find them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lerobot.configs.policies import PreTrainedConfig
from lerobot.configs.types import NormalizationMode
from lerobot.optim.optimizers import AdamWConfig
from lerobot.optim.schedulers import CosineDecayWithWarmupSchedulerConfig
from lerobot.utils.constants import ACTION, OBS_IMAGES, OBS_STATE

from policies.vla.config import VLAConfig
from policies.vla.lerobot_format import LEROBOT_TYPE, model_fields

_VLA = VLAConfig()  # the defaults


def _identity() -> dict[str, NormalizationMode]:
    return {kind: NormalizationMode.IDENTITY for kind in ("VISUAL", "STATE", "ACTION")}


@PreTrainedConfig.register_subclass(LEROBOT_TYPE)
@dataclass
class OnboardConfig(PreTrainedConfig):
    """Our VLA (policies/vla/model.py): cameras + joint state + instruction -> a chunk of ``chunk_size`` actions,
    of which ``select_action`` runs the first ``n_action_steps`` (default: all)."""

    n_obs_steps: int = 1
    chunk_size: int = _VLA.chunk_size
    n_action_steps: int | None = None  # None: the whole chunk
    image_size: int = _VLA.image_size
    text_dim: int = _VLA.text_dim
    conv_channels: tuple[int, ...] = _VLA.conv_channels
    plain_stages: int = _VLA.plain_stages
    d_model: int = _VLA.d_model
    n_heads: int = _VLA.n_heads
    n_encoder_layers: int = _VLA.n_encoder_layers
    n_decoder_layers: int = _VLA.n_decoder_layers
    ffn_mult: int = _VLA.ffn_mult
    dropout: float = _VLA.dropout
    # onboard train's auxiliary subgoal loss needs batch["subgoal.state"] (policies.data.ChunkDataset); LeRobot's
    # loader has none, so under lerobot-train it stays 0. A checkpoint trained with it loads with its value.
    subgoal_weight: float = _VLA.subgoal_weight
    std_min: float = _VLA.std_min
    normalization_mapping: dict[str, NormalizationMode] = field(default_factory=_identity)

    optimizer_lr: float = 3e-4
    optimizer_weight_decay: float = 1e-4
    optimizer_grad_clip_norm: float = 1.0
    scheduler_warmup_steps: int = 500
    scheduler_decay_steps: int = 30_000
    scheduler_decay_lr: float = 3e-5

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.conv_channels, list):
            self.conv_channels = tuple(self.conv_channels)
        if self.n_obs_steps != 1:
            raise ValueError(f"the onboard VLA looks at one observation: n_obs_steps must be 1, got {self.n_obs_steps}")
        if self.n_action_steps is None:
            self.n_action_steps = self.chunk_size
        if not 1 <= self.n_action_steps <= self.chunk_size:
            raise ValueError(
                f"n_action_steps ({self.n_action_steps}) must be between 1 and chunk_size ({self.chunk_size})"
            )
        not_identity = {k: str(v) for k, v in self.normalization_mapping.items() if v != NormalizationMode.IDENTITY}
        if not_identity:
            raise ValueError(
                f"normalization_mapping {not_identity}: the onboard VLA normalises state and action inside the model "
                "(dataset mean/std, as `onboard train` does); leave every feature type IDENTITY"
            )
        self.vla_config(("front",), 1, 1)  # VLAConfig's own checks, with a message that names the field

    def vla_config(self, cameras: tuple[str, ...], state_dim: int, action_dim: int) -> VLAConfig:
        """The model's VLAConfig for these cameras and sizes."""
        return VLAConfig(
            cameras=cameras,
            state_dim=state_dim,
            action_dim=action_dim,
            **{name: getattr(self, name) for name in model_fields()},
        )

    def model_config(self) -> VLAConfig:
        """The model's VLAConfig from the features LeRobot set (cameras in the order of the image features)."""
        self.validate_features()
        cameras = tuple(key.removeprefix(f"{OBS_IMAGES}.") for key in self.image_features)
        return self.vla_config(cameras, self.robot_state_feature.shape[0], self.action_feature.shape[0])

    def validate_features(self) -> None:
        if not self.image_features:
            raise ValueError(f"the onboard VLA needs at least one camera ({OBS_IMAGES}.<name>) among its inputs")
        if self.robot_state_feature is None or len(self.robot_state_feature.shape) != 1:
            raise ValueError(f"the onboard VLA needs a 1-d {OBS_STATE} input (the joint positions)")
        if self.action_feature is None or len(self.action_feature.shape) != 1:
            raise ValueError(f"the onboard VLA needs a 1-d {ACTION} output")

    def get_optimizer_preset(self) -> AdamWConfig:
        return AdamWConfig(
            lr=self.optimizer_lr,
            weight_decay=self.optimizer_weight_decay,
            grad_clip_norm=self.optimizer_grad_clip_norm,
        )

    def get_scheduler_preset(self) -> CosineDecayWithWarmupSchedulerConfig:
        return CosineDecayWithWarmupSchedulerConfig(
            num_warmup_steps=self.scheduler_warmup_steps,
            num_decay_steps=self.scheduler_decay_steps,
            peak_lr=self.optimizer_lr,
            decay_lr=self.scheduler_decay_lr,
        )

    @property
    def observation_delta_indices(self) -> None:
        return None

    @property
    def action_delta_indices(self) -> list[int]:
        return list(range(self.chunk_size))

    @property
    def reward_delta_indices(self) -> None:
        return None
