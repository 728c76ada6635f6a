"""The trained VLA behind the policy seam: ``VLAPolicy(checkpoint).reset(task)`` / ``.infer(observation)``.

Torch backend (eager). The instruction is embedded once per ``reset`` (the frozen sentence encoder caches it too).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from policies.base import ActionChunk
from policies.vla.checkpoint import load_checkpoint


class VLAPolicy:
    def __init__(self, checkpoint: str | Path, *, threads: int | None = None):
        if threads is not None:
            torch.set_num_threads(threads)
        self.model, self.config, self.stats = load_checkpoint(checkpoint)
        self.model.eval()
        self._task: str | None = None
        self._embedding: np.ndarray | None = None

    def reset(self, task: str) -> None:
        from policies.text import default_encoder

        self._task = task
        self._embedding = np.array(default_encoder().embed(task), dtype=np.float32)  # a writable copy for torch

    @torch.inference_mode()
    def infer(self, observation: dict) -> ActionChunk:
        task = observation.get("task") or self._task
        if task != self._task or self._embedding is None:
            self.reset(str(task))
        obs = {k: v for k, v in observation.items() if k != "task"}
        obs["task_embedding"] = self._embedding
        actions = self.model.predict_chunk(obs)  # (T, 6) LeRobot units
        return ActionChunk(actions=actions, t_obs=observation.get("t_capture"))
