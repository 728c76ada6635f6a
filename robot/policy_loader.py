"""A trained policy from its folder, for `onboard run`: which backend reads it, and what it needs from the robot.

    loaded = load_policy("policies/bundled/so101_vla")      # bundle.json -> OnnxVLAPolicy (onnxruntime, no torch)
    loaded.policy.reset("pick up the red cube"); loaded.cameras  # ("front", "wrist")

The folder decides (``policy_kind``): ``bundle.json`` -> our ONNX export (``policies.onnx_policy.OnnxVLAPolicy``,
torch-free); a LeRobot ``config.json`` with a ``"type"`` -> ``policies.lerobot_policy.LeRobotPolicy`` (torch and
lerobot); anything else -> our torch VLA checkpoint (``policies.vla.policy.VLAPolicy``). Backends are imported only
when chosen, so an install without torch runs a bundle.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from policies.base import Policy
from policies.lerobot_policy import is_lerobot_checkpoint
from robot.errors import RobotError

KINDS = ("onnx", "lerobot", "vla")


@dataclass(frozen=True)
class LoadedPolicy:
    """A policy and what it takes: ``cameras`` (names of ``observation.images.<name>``; None: not declared, every
    camera is passed), ``image_size`` (H, W) it was trained on (None: any), ``exact_size`` (True: frames of another
    size must be resized before ``infer``; the torch backends resize inside)."""

    policy: Policy
    kind: str = "custom"
    cameras: tuple[str, ...] | None = None
    image_size: tuple[int, int] | None = None
    exact_size: bool = False
    path: str | None = None


def policy_kind(path: str | Path) -> str:
    """ "onnx", "lerobot" or "vla" for a policy folder (module doc)."""
    folder = Path(path)
    if not folder.exists():
        raise FileNotFoundError(f"--policy.path {folder} does not exist")
    if (folder / "bundle.json").is_file():
        return "onnx"
    if is_lerobot_checkpoint(folder):
        return "lerobot"
    return "vla"


def describe(policy: Policy, kind: str = "custom", path: str | None = None) -> LoadedPolicy:
    """A ``LoadedPolicy`` of any policy object, from what it declares (``cameras``, ``image_size``, or a
    ``config`` with them)."""
    config = getattr(policy, "config", None)
    cameras = getattr(policy, "cameras", None) or getattr(config, "cameras", None)
    size = getattr(policy, "image_size", None) or getattr(config, "image_size", None)
    if isinstance(size, int | float):
        size = (int(size), int(size))
    elif size is not None:
        size = (int(size[0]), int(size[1]))
    return LoadedPolicy(
        policy=policy,
        kind=kind,
        cameras=tuple(str(c) for c in cameras) if cameras else None,
        image_size=size,
        exact_size=kind == "onnx",
        path=path,
    )


def load_policy(path: str | Path, kind: str | None = None, *, threads: int | None = None) -> LoadedPolicy:
    """Load the policy in ``path`` with the backend ``kind`` (None: ``policy_kind(path)``). ``threads``: intra-op
    threads of the torch and onnxruntime backends (None: the backend's own default)."""
    opts = {} if threads is None else {"threads": threads}
    kind = kind or policy_kind(path)
    if kind not in KINDS:
        raise RobotError(f"--policy.type must be one of {KINDS}, got {kind!r}")
    if kind == "onnx":
        from policies.onnx_policy import OnnxVLAPolicy

        policy: Policy = OnnxVLAPolicy(path, **opts)
    elif kind == "lerobot":
        from policies.lerobot_policy import LeRobotPolicy

        policy = LeRobotPolicy(path)
    else:
        try:
            from policies.vla.policy import VLAPolicy
        except ImportError as exc:
            raise ImportError(
                f"{path} is a torch VLA checkpoint (no bundle.json): running it needs torch (pip install "
                "'onboard[train]'), or export it to a torch-free bundle with `onboard export`"
            ) from exc
        policy = VLAPolicy(path, **opts)
    return describe(policy, kind, str(path))
