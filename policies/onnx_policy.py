"""The VLA bundle behind the policy seam, with onnxruntime and no torch (``onboard[onnx]``).

policy = OnnxVLAPolicy("bundle/")
policy.reset("pick up the red cube")
chunk = policy.infer({"observation.state": ..., "observation.images.front": ..., "observation.images.wrist": ...})
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from policies.base import ActionChunk
from policies.bundle import FORMAT
from policies.text import FP32_FILE, OnnxSentenceEncoder


class OnnxVLAPolicy:
    def __init__(self, bundle: str | Path, *, threads: int | None = 2):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ImportError("running an exported policy needs onnxruntime: pip install 'onboard[onnx]'") from exc
        folder = Path(bundle)
        manifest_path = folder / "bundle.json"
        if not manifest_path.is_file():
            raise FileNotFoundError(f"{folder} is not a complete policy bundle (no bundle.json): run `onboard export`")
        self.manifest = json.loads(manifest_path.read_text())
        if self.manifest.get("format") != FORMAT:
            raise ValueError(f"{folder}: bundle format {self.manifest.get('format')!r}, this version reads {FORMAT!r}")
        cfg = self.manifest["config"]
        self.cameras = tuple(cfg["cameras"])
        self.image_size = int(cfg["image_size"])
        self.chunk_size = int(cfg["chunk_size"])
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(folder / "vla.onnx"), opts, providers=["CPUExecutionProvider"])
        self.inputs = list(self.manifest["inputs"])
        text = self.manifest.get("text_encoder")  # absent in bundles from before quantisation: text/text_encoder.onnx
        text_file = Path(text["file"]) if text else Path("text") / FP32_FILE
        self.text = OnnxSentenceEncoder(folder / text_file.parent, threads=threads, file=text_file.name)
        self._task: str | None = None
        self._embedding: np.ndarray | None = None

    def reset(self, task: str) -> None:
        self._task = task
        self._embedding = np.asarray(self.text.embed(task), dtype=np.float32)

    def infer(self, observation: dict) -> ActionChunk:
        task = observation.get("task") or self._task
        if task != self._task or self._embedding is None:
            self.reset(str(task))
        feeds = {"observation.state": np.asarray(observation["observation.state"], np.float32).reshape(1, -1)}
        for cam in self.cameras:
            img = np.asarray(observation[f"observation.images.{cam}"])
            if img.shape[-1] == 3:  # HWC -> CHW
                img = img.transpose(2, 0, 1)
            if img.shape[1:] != (self.image_size, self.image_size):
                raise ValueError(
                    f"camera {cam!r}: the bundle takes {self.image_size}x{self.image_size} images, got "
                    f"{img.shape[1]}x{img.shape[2]}; set the camera to that size"
                )
            feeds[f"observation.images.{cam}"] = np.ascontiguousarray(img, dtype=np.uint8)[None]
        feeds["task_embedding"] = self._embedding[None]
        (actions,) = self.session.run(None, {k: feeds[k] for k in self.inputs})  # (1,T,A)
        return ActionChunk(actions=actions[0], t_obs=observation.get("t_capture"))
