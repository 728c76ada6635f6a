"""ONNX export of the VLA (vision + transformer; the instruction embedding is an input), so a robot runs it with
onnxruntime and no torch.

Inputs (batch dimension dynamic):
    observation.state          float32 (B, state_dim)    LeRobot units
    observation.images.<cam>   uint8   (B, 3, H, W)      RGB, one input per camera in config order
    task_embedding             float32 (B, 384)          from policies.text (or its ONNX export)
Output:
    action                     float32 (B, T, action_dim) LeRobot units

Traps (reference/measured-here.md): weights go inline (external_data=False), and the example batch is 2 because
exporting with batch 1 fixes the batch size to 1 even with dynamic axes.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from policies.vla.model import VLA


class _Exported(nn.Module):
    def __init__(self, model: VLA):
        super().__init__()
        self.model = model
        self.n_cameras = len(model.config.cameras)

    def forward(self, state: torch.Tensor, *rest: torch.Tensor) -> torch.Tensor:
        images = [img.float() / 255.0 for img in rest[: self.n_cameras]]  # K x (B,3,H,W) in [0,1]
        text = rest[self.n_cameras]  # (B,384)
        return self.model.unnormalize_action(self.model(state, images, text))  # (B,T,A)


def input_names(model: VLA) -> list[str]:
    return ["observation.state", *(f"observation.images.{c}" for c in model.config.cameras), "task_embedding"]


def example_inputs(model: VLA, batch_size: int = 2) -> tuple[torch.Tensor, ...]:
    cfg, H = model.config, model.config.image_size
    return (
        torch.zeros(batch_size, cfg.state_dim),  # (B,S)
        *(torch.zeros(batch_size, 3, H, H, dtype=torch.uint8) for _ in cfg.cameras),  # K x (B,3,H,W)
        torch.zeros(batch_size, cfg.text_dim),  # (B,384)
    )


def export_onnx(model: VLA, path: str | Path, opset: int = 17) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrapper = _Exported(model).eval()
    names = input_names(model)
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(
                wrapper,
                example_inputs(model, batch_size=2),
                str(path),
                input_names=names,
                output_names=["action"],
                dynamic_axes={n: {0: "batch"} for n in [*names, "action"]},
                opset_version=opset,
                dynamo=False,  # the dynamo exporter needs onnxscript, which the train extra does not install
                external_data=False,
            )
    finally:
        model.train(was_training)
    return path
