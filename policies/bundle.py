"""`onboard export`: a trained VLA checkpoint -> a bundle that runs with onnxruntime and no torch.

    <bundle>/vla.onnx           state, images (uint8, B x 3 x H x W), instruction embedding -> action chunk
    <bundle>/text/              the sentence encoder: text_encoder_int8.onnx (all-MiniLM-L6-v2, dynamic int8, ~23 MB)
                                + tokenizer.json (tokenizers library)
    <bundle>/bundle.json        format, model config, input names, the text encoder's file and quantisation, origin

The whole bundle is ~30 MB, small enough for git. The int8 encoder's embeddings have cosine >= 0.99 to the fp32 torch
encoder's (tests/policies/test_bundle.py; docs/design.md). Bundles from before quantisation (text/text_encoder.onnx,
fp32, no "text_encoder" entry) still load.

Exporting needs torch (``onboard[train]``); running the bundle needs only ``onboard[onnx]`` (``OnnxVLAPolicy``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

FORMAT = "onboard-vla-onnx/1"


def export_bundle(checkpoint: str | Path, out_dir: str | Path) -> Path:
    from policies.text import FP32_FILE, INT8_FILE, QUANTIZATION, export_text_onnx
    from policies.vla.checkpoint import load_checkpoint
    from policies.vla.export import export_onnx, input_names

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model, config, _stats = load_checkpoint(checkpoint)
    export_onnx(model, out / "vla.onnx")
    export_text_onnx(out / "text", quantize=True)
    stale = out / "text" / FP32_FILE  # an fp32 encoder from an older export into the same folder
    if stale.is_file():
        stale.unlink()
    manifest = {
        "format": FORMAT,
        "config": config.to_dict(),
        "inputs": input_names(model),
        "outputs": ["action"],
        "text_encoder": {"file": f"text/{INT8_FILE}", "quantization": QUANTIZATION},
        "checkpoint": str(checkpoint),  # as given (an absolute path would leak the exporting machine's layout)
    }
    training = _training_config(Path(checkpoint))
    if training is not None:
        trainer = Path(checkpoint) / "trainer.json"
        if trainer.is_file():
            training["step"] = json.loads(trainer.read_text()).get("step")
        manifest["training"] = training
    tmp = out / ".bundle.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, out / "bundle.json")  # written last: a bundle without it is incomplete
    return out


def _training_config(checkpoint: Path) -> dict | None:
    """The run's train_config.json (written by `onboard train` next to checkpoints/ and last/), if it is there."""
    for folder in (checkpoint.parent, checkpoint.parent.parent):
        path = folder / "train_config.json"
        if path.is_file():
            try:
                return json.loads(path.read_text())
            except ValueError:
                return None
    return None
