"""The policy seam (DESIGN.md, seam 4): ``reset(task)`` / ``infer(observation) -> ActionChunk``.

Every backend (the project's VLA in torch, its ONNX export, LeRobot checkpoints, the scripted expert wrapped for tests)
implements these two methods; the runtime around them (``policies.runtime``: async chunk scheduling, latency
compensation, blending, holding on failure) is the same for all of them. This module imports numpy only.

Observation: a dict with LeRobot's feature names: ``observation.state`` float32[6] (joint positions, LeRobot SO-101
units), ``observation.images.<camera>`` uint8 (H, W, 3) RGB, ``task`` (the instruction). Action: float32[6] joint goals
in the same units, in the names order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

ACTION_DIM = 6
STATE_KEY = "observation.state"
TASK_KEY = "task"


@dataclass(frozen=True)
class ActionChunk:
    """``actions`` float32 (T, 6) at the control rate: action ``k`` is meant for ``t_obs + k / rate``.

    ``t_obs``: the capture time of the observation the chunk was computed from (None: the runtime stamps the time it
    requested the chunk). ``metadata``: anything the backend wants to report (e.g. per-stage times)."""

    actions: np.ndarray
    t_obs: float | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        a = np.asarray(self.actions, dtype=np.float32)
        if a.ndim != 2 or a.shape[0] < 1:
            raise ValueError(f"ActionChunk.actions must be (T, action_dim) with T >= 1, got shape {a.shape}")
        object.__setattr__(self, "actions", a)

    def __len__(self) -> int:
        return int(self.actions.shape[0])

    @property
    def finite(self) -> bool:
        return bool(np.isfinite(self.actions).all())


@runtime_checkable
class Policy(Protocol):
    def reset(self, task: str) -> None:
        """Start an episode with instruction ``task`` (clears any per-episode state)."""

    def infer(self, observation: dict) -> ActionChunk:
        """An action chunk for ``observation`` (may take long: the runtime calls it off the control thread)."""


def fake_observation(
    *,
    task: str = "pick up the red cube",
    state: np.ndarray | None = None,
    cameras: tuple[str, ...] = ("front", "wrist"),
    image_size: tuple[int, int] = (96, 96),
    seed: int = 0,
) -> dict:
    """An observation with the right keys, dtypes and shapes (random images) for smoke tests without a robot."""
    rng = np.random.default_rng(seed)
    obs: dict = {
        STATE_KEY: np.zeros(ACTION_DIM, np.float32) if state is None else np.asarray(state, np.float32).copy(),
    }
    h, w = image_size
    for name in cameras:
        obs[f"observation.images.{name}"] = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    obs[TASK_KEY] = task
    return obs
