"""Where a training run keeps its checkpoints: LeRobot's layout (``lerobot-train``), and finding a policy in it.

    <output_dir>/train_config.json
    <output_dir>/checkpoints/000050/pretrained_model/   the policy: config.json, model.safetensors, stats.json,
                                                        train_config.json (what --policy.path loads)
    <output_dir>/checkpoints/000050/training_state/     training_step.json, optimizer_state.safetensors (--resume)
    <output_dir>/checkpoints/last -> 000050             a relative symlink to the newest checkpoint

Step folders have six digits, more when ``--steps`` needs them (LeRobot's ``get_step_identifier``). A checkpoint is
written whole into ``checkpoints/.000050.tmp/``, renamed into place, and only then is ``last`` moved to it (a new
link renamed over the old one), so a run killed at any point leaves ``last`` on a complete checkpoint.

``resolve_policy_folder`` turns any of the folders a user may name (the run's output dir, ``checkpoints/``,
``checkpoints/last``, ``checkpoints/000050``, ``.../pretrained_model``, or a run of the layout before this one,
whose ``last/`` was a folder) into the folder that holds the policy's files. Pure pathlib: no torch.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

CHECKPOINTS_DIR = "checkpoints"
LAST_LINK = "last"
PRETRAINED_DIR = "pretrained_model"
TRAINING_STATE_DIR = "training_state"
TRAINING_STEP = "training_step.json"
OPTIMIZER_STATE = "optimizer_state.safetensors"
TRAINED_WEIGHTS = "trained_weights.safetensors"  # training_state/: the weights under a --ema_decay average
TRAIN_CONFIG = "train_config.json"
_POLICY_FILES = ("config.json", "bundle.json")


def step_name(step: int, total_steps: int) -> str:
    """``000050``: the folder name of the checkpoint at ``step`` of a ``total_steps`` run (LeRobot's)."""
    return f"{step:0{max(6, len(str(total_steps)))}d}"


def _is_policy(folder: Path) -> bool:
    return any((folder / name).is_file() for name in _POLICY_FILES)


def _numbered(checkpoints: Path) -> list[Path]:
    """The step folders under ``checkpoints/`` that hold a policy, oldest first."""
    found = [p for p in checkpoints.iterdir() if p.name.isdigit() and _is_policy(p / PRETRAINED_DIR)]
    return sorted(found, key=lambda p: int(p.name))


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest checkpoint folder of a run (``checkpoints/<step>``, the one holding ``pretrained_model/``):
    where ``checkpoints/last`` points, else the highest step; for a run of the older layout its ``last/`` folder
    (which holds the files itself). None if the run has none."""
    out = Path(output_dir)
    checkpoints = out / CHECKPOINTS_DIR
    last = checkpoints / LAST_LINK
    if _is_policy(last / PRETRAINED_DIR):
        return checkpoints / os.readlink(last) if last.is_symlink() else last
    if checkpoints.is_dir():
        numbered = _numbered(checkpoints)
        if numbered:
            return numbered[-1]
    if _is_policy(out / LAST_LINK):  # the layout before LeRobot's: <out>/last/ was a copy of the newest checkpoint
        return out / LAST_LINK
    return None


def resolve_policy_folder(path: str | Path) -> Path:
    """The folder holding the policy's files (config.json or bundle.json) for any folder a user may name: itself,
    its ``pretrained_model/``, or a run's (or a ``checkpoints/`` folder's) newest checkpoint. A folder where none is
    found comes back as given, for the loader to say what is missing."""
    folder = Path(path)
    if not folder.is_dir() or _is_policy(folder):
        return folder
    if _is_policy(folder / PRETRAINED_DIR):  # checkpoints/000050, checkpoints/last
        return folder / PRETRAINED_DIR
    if folder.name == CHECKPOINTS_DIR:
        folder = folder.parent
    latest = latest_checkpoint(folder)
    if latest is None:
        return Path(path)
    return latest / PRETRAINED_DIR if _is_policy(latest / PRETRAINED_DIR) else latest


def training_step(checkpoint: str | Path) -> int | None:
    """The step a checkpoint was saved at: ``training_state/training_step.json`` beside its ``pretrained_model/``
    (or the older layout's ``trainer.json``); None if neither is there. ``checkpoint``: any folder
    ``resolve_policy_folder`` takes."""
    policy = resolve_policy_folder(checkpoint)
    for path in (policy.parent / TRAINING_STATE_DIR / TRAINING_STEP, policy / "trainer.json"):
        if path.is_file():
            try:
                return int(json.loads(path.read_text())["step"])
            except (OSError, ValueError, KeyError, TypeError):
                return None
    return None


def write_synced(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` and flush it to the disk (before the folder holding it is renamed into place)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not every OS opens folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def staging_folder(output_dir: str | Path, name: str) -> Path:
    """An empty ``checkpoints/.<name>.tmp/`` to write a checkpoint into before ``publish`` (a leftover of a killed
    run is removed)."""
    tmp = Path(output_dir) / CHECKPOINTS_DIR / f".{name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


def publish(staged: Path, name: str) -> Path:
    """Rename the complete checkpoint ``staged`` (from ``staging_folder``) to ``checkpoints/<name>`` and point
    ``checkpoints/last`` at it; returns the checkpoint folder. A checkpoint of the same step already there (a run
    resumed and saved again) is replaced."""
    checkpoints = staged.parent
    final = checkpoints / name
    if final.exists():
        old = checkpoints / f".{name}.old"
        if old.exists():
            shutil.rmtree(old)
        os.replace(final, old)
        os.replace(staged, final)
        shutil.rmtree(old)
    else:
        os.replace(staged, final)
    _fsync_dir(checkpoints)
    link_to(checkpoints, name)
    return final


def link_to(checkpoints: Path, name: str) -> None:
    """Point ``checkpoints/last`` at ``checkpoints/<name>`` atomically: a relative symlink made beside it and renamed
    over it (where the OS has no symlinks, ``last`` becomes a copy, replaced the same way)."""
    tmp = checkpoints / ".last.tmp"
    if tmp.is_symlink() or tmp.is_file():
        tmp.unlink()
    elif tmp.exists():
        shutil.rmtree(tmp)
    try:
        os.symlink(name, tmp, target_is_directory=True)
    except OSError:
        shutil.copytree(checkpoints / name, tmp)
    last = checkpoints / LAST_LINK
    if last.is_dir() and not last.is_symlink():  # a copy from a run without symlinks: os.replace cannot overwrite it
        shutil.rmtree(last)
    os.replace(tmp, last)
    _fsync_dir(checkpoints)
