"""``make_onboard_pre_post_processors``: LeRobot's standard pipelines for `--policy.type=onboard`.

    preprocessor:  rename (LeRobot's --rename_map) -> add the batch dimension -> to the policy's device
                   -> normaliser (IDENTITY for every feature type: the model normalises, see configuration_onboard;
                   ``dataset_stats`` go to the model, not here)
    postprocessor: unnormaliser (IDENTITY) -> to the CPU

Only LeRobot's own registered steps, so a checkpoint's ``policy_preprocessor.json`` / ``policy_postprocessor.json``
load with ``make_pre_post_processors(cfg, pretrained_path=...)`` like any built-in policy's. The instruction
(``task``) goes through untouched; the model embeds it.
"""

from __future__ import annotations

from typing import Any

import torch
from lerobot.processor import (
    AddBatchDimensionProcessorStep,
    DeviceProcessorStep,
    NormalizerProcessorStep,
    PolicyAction,
    PolicyProcessorPipeline,
    RenameObservationsProcessorStep,
    UnnormalizerProcessorStep,
)
from lerobot.processor.converters import policy_action_to_transition, transition_to_policy_action
from lerobot.utils.constants import POLICY_POSTPROCESSOR_DEFAULT_NAME, POLICY_PREPROCESSOR_DEFAULT_NAME

from lerobot_policy_onboard.configuration_onboard import OnboardConfig


def make_onboard_pre_post_processors(
    config: OnboardConfig,
    dataset_stats: dict[str, dict[str, torch.Tensor]] | None = None,
) -> tuple[
    PolicyProcessorPipeline[dict[str, Any], dict[str, Any]],
    PolicyProcessorPipeline[PolicyAction, PolicyAction],
]:
    features = {**config.input_features, **config.output_features}
    pre = [
        RenameObservationsProcessorStep(rename_map={}),
        AddBatchDimensionProcessorStep(),
        DeviceProcessorStep(device=config.device),
        NormalizerProcessorStep(
            features=features, norm_map=config.normalization_mapping, stats=None, device=config.device
        ),
    ]
    post = [
        UnnormalizerProcessorStep(features=config.output_features, norm_map=config.normalization_mapping, stats=None),
        DeviceProcessorStep(device="cpu"),
    ]
    return (
        PolicyProcessorPipeline[dict[str, Any], dict[str, Any]](steps=pre, name=POLICY_PREPROCESSOR_DEFAULT_NAME),
        PolicyProcessorPipeline[PolicyAction, PolicyAction](
            steps=post,
            name=POLICY_POSTPROCESSOR_DEFAULT_NAME,
            to_transition=policy_action_to_transition,
            to_output=transition_to_policy_action,
        ),
    )
