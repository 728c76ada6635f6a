"""Policies and runners by name for simulated episodes (`onboard eval`, `onboard demo`, `onboard train --eval_every`):

    policy_and_size(kind, path, threads=...) -> (policy, image_size)  # any kind of robot.policy_loader's registry
    make_runner(kind, policy, clock, rate_hz, latency) -> runner      # "async" (emulated latency) or "sync"

The episode code takes these two as parameters (``load_policy`` / ``make_runner``), so a test or a script can pass its
own. Both are top-level functions: they pickle by reference into the spawned workers of ``onboard eval --num_envs N``.
Backends are imported inside the functions: importing this module costs nothing.

``EXPERT`` is the scripted expert's entry in the one registry of policy kinds (``robot.policy_loader``): built on the
simulated env it reads (``load_policy(None, "expert", env=env, horizon=30)``), never from a folder, never on a robot.
``onboard.eval`` registers it on import.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from policies.base import Policy
from robot.policy_loader import PolicyKind, get_policy_kind, load_policy

RUNNER_KINDS = ("async", "sync")
SIM_CAMERAS = ("front", "wrist")
DEFAULT_IMAGE_SIZE = 96  # px, square: the cameras of a policy that declares no size (and the expert's env)
CAMERA_SIZE = 96  # px, square: the simulated cameras that `onboard record` and `scripts/make_model.sh` record


def _load_expert(path: str | Path | None, *, threads: int | None = None, env: Any = None, horizon: int = 30) -> Policy:
    """The scripted expert as a chunking policy on ``env`` (``onboard.eval.episodes.ExpertChunkPolicy``)."""
    if env is None:
        raise ValueError("--policy.type=expert is the scripted expert: it needs the simulated env (onboard eval only)")
    from onboard.eval.episodes import ExpertChunkPolicy

    return ExpertChunkPolicy(env, horizon=horizon)


EXPERT = PolicyKind(
    "expert",
    _load_expert,
    needs_path=False,
    on_robot=False,
    help="the scripted expert (reads the simulation's state: onboard eval only)",
)


def policy_and_size(kind: str, path: Any, *, threads: int | None = None) -> tuple[Any, int]:
    """(policy, camera size): the ``kind`` policy at ``path`` (loaded by ``robot.policy_loader.load_policy``) and the
    square size (px) to render the simulated cameras at: the size it takes, or for a policy trained on frames resized
    to another input (``exact_size``), the recorded cameras' ``CAMERA_SIZE`` with the policy behind
    ``policies.features.ResizedInputs``. ``threads``: intra-op threads for the torch and onnxruntime backends (None: the
    backend's own default). Kinds built on the env (``needs_path=False``: the expert) are not loaded here."""
    entry = get_policy_kind(kind)
    if not entry.needs_path:
        raise ValueError(f"policy kind {kind!r} is built on the simulated env, not loaded from a folder")
    loaded = load_policy(path, kind, threads=threads)
    if kind == "lerobot":  # our own backends take the simulation's cameras by construction
        missing = [c for c in loaded.cameras or () if c not in SIM_CAMERAS]
        if missing:
            raise ValueError(
                f"the LeRobot policy takes cameras {loaded.cameras}; the simulation has 'front' and 'wrist' "
                f"(no {missing})"
            )
    if loaded.exact_size and loaded.image_size and tuple(loaded.image_size) != (CAMERA_SIZE, CAMERA_SIZE):
        # trained on the recorded 96x96 frames resized to its input: shown the simulated cameras at their recorded
        # size through the same resize (as `onboard run` shows it a real camera), not rendered at its input size
        from policies.features import ResizedInputs

        return ResizedInputs(loaded.policy, loaded.image_size), CAMERA_SIZE
    # square cameras at the policy's height; the LeRobot backend resizes to a non-square input itself
    return loaded.policy, int(loaded.image_size[0]) if loaded.image_size else DEFAULT_IMAGE_SIZE


def make_runner(kind: str, policy: Any, clock: Any, rate_hz: float, latency: float | None, **kwargs: Any) -> Any:
    """The runtime around ``policy`` on ``clock`` at ``rate_hz``: "async" (``AsyncRunner``, emulated latency:
    ``latency`` seconds per chunk, None: the wall time ``infer`` takes) or "sync" (``SyncRunner``, blocking).
    ``kwargs`` go to the runner (blend, refill_at, ...)."""
    from policies.runtime import AsyncRunner, SyncRunner

    if kind == "async":
        return AsyncRunner(policy, clock, rate_hz, latency=latency, mode="emulated", **kwargs)
    if kind == "sync":
        return SyncRunner(policy, clock, rate_hz, latency=latency, **kwargs)
    raise ValueError(f"runner_kind must be 'async' or 'sync', got {kind!r}")
