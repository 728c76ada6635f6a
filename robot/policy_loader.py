"""The one registry of policy kinds: which backend reads a policy folder, how it is loaded, what it needs.

    loaded = load_policy("policies/bundled/so101_vla")      # bundle.json -> OnnxVLAPolicy (onnxruntime, no torch)
    loaded.policy.reset("pick up the red cube"); loaded.cameras  # ("front", "wrist")

Each kind is a ``PolicyKind`` in one table (``register_policy_kind``); `onboard run` and `onboard eval` take their
``--policy.type`` choices from it (``policy_kinds``). The built-in kinds load from a folder, which decides the kind
(``policy_kind``): ``bundle.json`` -> "onnx", our ONNX export (``policies.onnx_policy.OnnxVLAPolicy``, torch-free); a
LeRobot ``config.json`` with a ``"type"`` -> "lerobot" (``policies.lerobot_policy.LeRobotPolicy``: torch and lerobot);
anything else -> "vla", our torch VLA checkpoint (``policies.vla.policy.VLAPolicy``), which includes `lerobot-train
--policy.type=onboard` checkpoints (our VLA through the LeRobot plugin in plugins/: the same model and weights, read
without LeRobot; ``--policy.type=lerobot`` loads them through LeRobot's classes instead). Backends are imported only
when chosen, so an install without torch runs a bundle. A ``ws://host:port`` address instead of a folder is "remote":
the policy served by `onboard serve-policy` (``policies.remote.RemotePolicy``; its cameras and image size come from the
server's handshake; token: ``ONBOARD_POLICY_TOKEN``). The app registers kinds that robot/ cannot build itself:
onboard/eval registers "expert", the scripted expert, which needs the simulation (``on_robot=False``, no folder).

A folder is first resolved as LeRobot's training layout says (``policies.checkpoints.resolve_policy_folder``): a
training run's folder (ours or `lerobot-train`'s), its ``checkpoints/last``, ``checkpoints/000050`` and
``.../pretrained_model`` all load the policy in the ``pretrained_model/`` they stand for.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policies.base import Policy
from policies.checkpoints import resolve_policy_folder
from policies.errors import POLICY_FOLDERS, PolicyFileMissingError, PolicyLoadError
from policies.lerobot_policy import is_lerobot_checkpoint
from policies.remote.client import is_policy_url
from robot.errors import RobotError


@dataclass(frozen=True)
class PolicyKind:
    """A kind of policy (``--policy.type``). ``load(path, threads=..., **options) -> Policy`` builds one (``threads``:
    intra-op threads, None: the backend's default; ``options``: what a kind built by the app needs, e.g. the
    simulated env). ``detect(folder)``: True for a folder of this kind (None: never detected; the folder of no
    detected kind is ``DEFAULT_KIND``; a ``ws://`` address is "remote"). ``needs_path``: loaded from a folder.
    ``on_robot``: runs on a real arm (`onboard run`); False for kinds that read the simulation. ``exact_size``:
    frames must have the trained size."""

    name: str
    load: Callable[..., Policy]
    detect: Callable[[Path], bool] | None = None
    needs_path: bool = True
    on_robot: bool = True
    exact_size: bool = False
    help: str = ""


class UnknownPolicyKindError(RobotError, ValueError):
    """A ``--policy.type`` that is not registered."""


_KINDS: dict[str, PolicyKind] = {}
DEFAULT_KIND = "vla"  # a folder with neither bundle.json nor a LeRobot config.json


def register_policy_kind(kind: PolicyKind) -> PolicyKind:
    """Add ``kind`` to the registry (registering the same entry again is a no-op; another under a taken name is an
    error). Returns it."""
    known = _KINDS.get(kind.name)
    if known is not None and known != kind:
        raise ValueError(f"policy kind {kind.name!r} is already registered ({known})")
    _KINDS[kind.name] = kind
    return kind


def policy_kinds(*, on_robot: bool = False) -> tuple[str, ...]:
    """The registered kind names, in registration order (``on_robot``: only those that run on a real arm)."""
    return tuple(name for name, kind in _KINDS.items() if kind.on_robot or not on_robot)


def get_policy_kind(name: str) -> PolicyKind:
    """The registered kind ``name``; a ``RobotError`` (also a ``ValueError``) naming the choices otherwise."""
    try:
        return _KINDS[name]
    except KeyError:
        raise UnknownPolicyKindError(f"--policy.type must be one of {policy_kinds()}, got {name!r}") from None


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
    """The kind of a policy folder (after ``resolve_policy_folder``): the first registered kind whose ``detect``
    accepts it, else ``DEFAULT_KIND`` (module doc)."""
    if is_policy_url(path):
        return "remote"
    given = Path(path)
    if not given.exists():
        raise PolicyFileMissingError(f"--policy.path {given} does not exist")
    if not given.is_dir():
        raise PolicyLoadError(f"--policy.path {given} is a file, not a policy folder; pass {POLICY_FOLDERS}")
    folder = resolve_policy_folder(given)
    for kind in _KINDS.values():
        if kind.detect is not None and kind.detect(folder):
            return kind.name
    if not (folder / "config.json").is_file():
        raise PolicyFileMissingError(f"--policy.path {folder} has no bundle.json or config.json; pass {POLICY_FOLDERS}")
    return DEFAULT_KIND


def detect_policy_type(path: str | Path | None) -> str:
    """What ``--policy.type`` defaults to in `onboard eval`: ``policy_kind(path)``, or ``DEFAULT_KIND`` with no path or
    no such folder (its loader then says what is wrong)."""
    if is_policy_url(path):
        return "remote"
    if not path or not Path(path).is_dir():
        return DEFAULT_KIND
    return policy_kind(path)


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
    registered = _KINDS.get(kind)
    return LoadedPolicy(
        policy=policy,
        kind=kind,
        cameras=tuple(str(c) for c in cameras) if cameras else None,
        image_size=size,
        exact_size=bool(getattr(policy, "exact_size", None) or (registered is not None and registered.exact_size)),
        path=path,
    )


def load_policy(
    path: str | Path | None, kind: str | None = None, *, threads: int | None = None, **options: Any
) -> LoadedPolicy:
    """Load the policy in ``path`` with the backend ``kind`` (None: ``policy_kind(path)``). ``threads``: intra-op
    threads of the torch and onnxruntime backends (None: the backend's own default). ``options``: passed to the kind's
    loader (for kinds the app registers)."""
    if not kind:
        if path is None:
            raise ValueError("load_policy needs a policy folder or a kind")
        kind = policy_kind(path)
    if path is not None and not is_policy_url(path):
        path = resolve_policy_folder(path)
    entry = get_policy_kind(kind)
    policy = entry.load(path, threads=threads, **options)
    return describe(policy, kind, None if path is None else str(path))


# ---------------------------------------------------------------------------------------------------------------------
# The built-in kinds (registration order = detection order)


def _threads(threads: int | None) -> dict[str, int]:
    return {} if threads is None else {"threads": threads}


def _load_onnx(path: str | Path, *, threads: int | None = None) -> Policy:
    from policies.onnx_policy import OnnxVLAPolicy

    return OnnxVLAPolicy(path, **_threads(threads))


def _load_lerobot(path: str | Path, *, threads: int | None = None) -> Policy:
    from policies.lerobot_policy import LeRobotPolicy

    return LeRobotPolicy(path)


def _load_vla(path: str | Path, *, threads: int | None = None) -> Policy:
    try:
        from policies.vla.policy import VLAPolicy
    except ImportError as exc:
        raise ImportError(
            f"{path} is a torch VLA checkpoint (no bundle.json): running it needs torch (pip install "
            "'onboard[train]'), or export it to a torch-free bundle with `onboard export`"
        ) from exc
    return VLAPolicy(path, **_threads(threads))


register_policy_kind(
    PolicyKind(
        "onnx",
        _load_onnx,
        detect=lambda folder: (folder / "bundle.json").is_file(),
        exact_size=True,
        help="our ONNX bundle (onnxruntime, no torch): a folder with bundle.json",
    )
)
register_policy_kind(
    PolicyKind(
        "lerobot",
        _load_lerobot,
        detect=is_lerobot_checkpoint,
        help="a LeRobot checkpoint (ACT, Diffusion, SmolVLA, ...): a config.json with a policy type",
    )
)


def _load_remote(path: str, *, threads: int | None = None, token: str | None = None) -> Policy:
    from policies.remote.client import RemotePolicy

    # the token from the environment, never from the URL or a flag (they end up in logs and shell history)
    token = token if token is not None else os.environ.get("ONBOARD_POLICY_TOKEN") or None
    return RemotePolicy(str(path), token=token).connect()


# exact_size: `onboard run` resizes a camera frame for it as training resized the dataset's (policies.features)
register_policy_kind(
    PolicyKind(
        "vla",
        _load_vla,
        exact_size=True,
        help="our torch VLA checkpoint (torch): a run's folder or a checkpoint, of `onboard train` or of "
        "`lerobot-train --policy.type=onboard`",
    )
)
register_policy_kind(
    PolicyKind(
        "remote",
        _load_remote,
        help="a policy served by `onboard serve-policy`: --policy.url=ws://host:port (token: ONBOARD_POLICY_TOKEN)",
    )
)
