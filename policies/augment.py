"""Training-time augmentation of VLA batches (never at inference; the exported model does not contain it).

- ``random_shift``: each image is padded by ``pad`` pixels (edge pixels repeated) and cropped back to its size at a
  random offset, i.e. shifted by up to ``pad`` px in x and y (the DrQ / Diffusion Policy recipe against overfitting
  image features with a few hundred demonstrations).
- ``state_noise``: Gaussian noise (``std`` in LeRobot units: degrees, gripper 0-100) on ``observation.state``, so the
  policy cannot copy the current joint state into its actions (the "copycat" shortcut of behaviour cloning) and has to
  look at the images.
- ``paraphrases``: groups of interchangeable instructions ("pick up the red cube", "lift the red cube", ...); each
  sample's instruction is replaced by a member of its group drawn uniformly (itself included), so that every
  demonstration is seen under every phrasing of its task and no single phrasing's share of the episodes decides how
  the policy behaves when told it. Instructions in no group are kept.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from policies.train_config import AugmentConfig


def random_shift(images: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B,3,H,W) uint8 or float -> (B,3,H,W) float in [0,1] (uint8 is scaled by 1/255), each image shifted by a random
    integer offset in [-pad, pad] in x and y, edges repeated."""
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()  # (B,3,H,W)
    if pad <= 0:
        return x
    B, _, H, W = x.shape
    padded = F.pad(x, (pad, pad, pad, pad), mode="replicate")  # (B,3,H+2p,W+2p)
    off = torch.randint(0, 2 * pad + 1, (B, 2), generator=generator)  # (B,2) top-left corner of each crop
    return torch.stack(
        [padded[i, :, int(dy) : int(dy) + H, int(dx) : int(dx) + W] for i, (dy, dx) in enumerate(off)]
    )  # (B,3,H,W)


def paraphrase(
    tasks: Sequence[str], groups: Mapping[str, Sequence[str]], generator: torch.Generator | None = None
) -> list[str]:
    """Each instruction replaced by a member of its group (``groups[instruction]``) drawn uniformly; instructions
    without a group are kept."""
    out = []
    for text in tasks:
        group = groups.get(text)
        out.append(group[int(torch.randint(len(group), (1,), generator=generator))] if group else text)
    return out


def augment_batch(
    batch: dict[str, Any], cfg: AugmentConfig, image_keys: list[str], generator: torch.Generator | None = None
) -> dict[str, Any]:
    """A copy of ``batch`` with ``cfg``'s augmentation applied to ``image_keys``, ``observation.state`` and the
    instructions (``task``; the caller embeds them afterwards)."""
    if not cfg.enabled:
        return batch
    out = dict(batch)
    if cfg.paraphrases:
        out["task"] = paraphrase(batch["task"], cfg.paraphrase_table(), generator)
    if cfg.shift > 0:
        for key in image_keys:
            out[key] = random_shift(torch.as_tensor(batch[key]), cfg.shift, generator)
    if cfg.state_noise > 0:
        state = torch.as_tensor(batch["observation.state"]).float()  # (B,S)
        noise = torch.randn(state.shape, generator=generator) * cfg.state_noise
        out["observation.state"] = state + noise
    return out
