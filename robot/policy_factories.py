"""Policies and runners by name: the factories that sim/'s evaluation and demo take as parameters.

sim/ never imports policies/ (DESIGN.md, "Imports flow one way"). Where sim/ runs a policy (``onboard eval``,
``onboard demo``, ``onboard train --eval_every``) the composition root (onboard/cli) hands it these functions:

    policy_and_size(kind, path, threads=...) -> (policy, image_size)  # "vla" (torch), "onnx" (no torch), "lerobot"
    make_runner(kind, policy, clock, rate_hz, latency) -> runner      # "async" (emulated latency) or "sync"
    detect_policy_type(path) -> "onnx" | "lerobot" | "vla"            # what ``--policy.type`` defaults to

(``robot.policy_loader`` is `onboard run`'s: a policy folder -> ``LoadedPolicy`` with the cameras it takes.)

Both factories are top-level functions, so they pickle by reference into the spawned workers of
``onboard eval --num_envs N``. Backends are imported inside the functions: importing this module costs nothing.

``make_runner`` also accepts policies that return a plain chunk (any object with the ``ActionChunk`` fields
``actions``, ``t_obs`` and ``metadata``, such as sim/'s scripted expert, which cannot name ``ActionChunk``): it turns
such a result into an ``ActionChunk`` before the runtime checks it. An ``ActionChunk`` and anything else pass through
unchanged (the runtime counts what is no chunk as a failure, as before).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

POLICY_KINDS = ("vla", "onnx", "lerobot")
RUNNER_KINDS = ("async", "sync")
SIM_CAMERAS = ("front", "wrist")


def detect_policy_type(path: str | Path | None) -> str:
    """The backend of a policy folder (``robot.policy_loader.policy_kind``: "onnx" with a bundle.json, "lerobot" with
    a LeRobot config.json, else "vla"); "vla" with no path or no such folder (the VLA loader says what is wrong)."""
    if not path or not Path(path).exists():
        return "vla"
    from robot.policy_loader import policy_kind

    return policy_kind(path)


def policy_and_size(kind: str, path: Any, *, threads: int | None = None) -> tuple[Any, int]:
    """(policy, image_size): the ``kind`` policy at ``path`` (loaded by ``robot.policy_loader.load_policy``) and the
    square camera size (px) it takes. ``threads``: intra-op threads for the torch and onnxruntime backends (None: the
    backend's own default)."""
    if kind not in POLICY_KINDS:
        raise ValueError(f"policy kind must be one of {POLICY_KINDS}, got {kind!r}")
    from robot.policy_loader import load_policy

    loaded = load_policy(path, kind, threads=threads)
    if kind == "lerobot":
        missing = [c for c in loaded.cameras or () if c not in SIM_CAMERAS]
        if missing:
            raise ValueError(
                f"the LeRobot policy takes cameras {loaded.cameras}; the simulation has 'front' and 'wrist' "
                f"(no {missing})"
            )
    # square cameras at the policy's height; the LeRobot backend resizes to a non-square input itself
    return loaded.policy, int(loaded.image_size[0]) if loaded.image_size else 96


class _PlainChunks:
    """``policy`` with plain chunks (the ``ActionChunk`` fields on any object) turned into ``ActionChunk``s."""

    def __init__(self, policy: Any):
        self.policy = policy

    def reset(self, task: str) -> None:
        self.policy.reset(task)

    def infer(self, observation: dict) -> Any:
        from policies.base import ActionChunk

        result = self.policy.infer(observation)
        if isinstance(result, ActionChunk) or not (hasattr(result, "actions") and hasattr(result, "t_obs")):
            return result
        return ActionChunk(result.actions, t_obs=result.t_obs, metadata=getattr(result, "metadata", None) or {})


def make_runner(kind: str, policy: Any, clock: Any, rate_hz: float, latency: float | None, **kwargs: Any) -> Any:
    """The runtime around ``policy`` on ``clock`` at ``rate_hz``: "async" (``AsyncRunner``, emulated latency:
    ``latency`` seconds per chunk, None: the wall time ``infer`` takes) or "sync" (``SyncRunner``, blocking).
    ``kwargs`` go to the runner (blend, refill_at, ...)."""
    from policies.runtime import AsyncRunner, SyncRunner

    if kind == "async":
        return AsyncRunner(_PlainChunks(policy), clock, rate_hz, latency=latency, mode="emulated", **kwargs)
    if kind == "sync":
        return SyncRunner(_PlainChunks(policy), clock, rate_hz, latency=latency, **kwargs)
    raise ValueError(f"runner_kind must be 'async' or 'sync', got {kind!r}")
