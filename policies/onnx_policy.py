"""The VLA bundle behind the policy seam, with onnxruntime and no torch (``onboard[onnx]``).

policy = OnnxVLAPolicy("bundle/")
policy.reset("pick up the red cube")
chunk = policy.infer({"observation.state": ..., "observation.images.front": ..., "observation.images.wrist": ...})

The bundle is checked when the policy is built (``policies.bundle.check_bundle``: bundle.json, every file present,
sizes and sha256 as recorded), then both graphs and the tokenizer are loaded at once, so a damaged file is a
``policies.errors.PolicyLoadError`` naming it before the arm moves, never an onnxruntime traceback mid-run.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np

from policies.base import ActionChunk
from policies.bundle import POLICY_FILE, check_bundle, text_encoder_file
from policies.errors import PolicyLoadError
from policies.text import OnnxSentenceEncoder, onnx_session


class OnnxVLAPolicy:
    def __init__(self, bundle: str | Path, *, threads: int | None = 2):
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise ImportError("running an exported policy needs onnxruntime: pip install 'onboard[onnx]'") from exc
        folder = Path(bundle)
        self.manifest = check_bundle(folder)
        cfg = self.manifest["config"]
        self.cameras = tuple(cfg["cameras"])
        self.image_size = int(cfg["image_size"])
        self.chunk_size = int(cfg["chunk_size"])
        self.session = onnx_session(folder / POLICY_FILE, threads, ort=ort)
        self.inputs = list(self.manifest["inputs"])
        graph_inputs = [i.name for i in self.session.get_inputs()]
        if sorted(graph_inputs) != sorted(self.inputs):
            raise PolicyLoadError(
                f"{folder / POLICY_FILE} takes inputs {graph_inputs}, bundle.json records {self.inputs}: the files "
                "come from different exports; export the bundle again with `onboard export`"
            )
        text_file = PurePosixPath(text_encoder_file(self.manifest))
        self.text = OnnxSentenceEncoder(folder / text_file.parent, threads=threads, file=text_file.name).load()
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
