"""What a dataset must hold for a model, read from its meta/info.json alone (no torch, no decoding): the folder
check, LeRobot's ``--rename_map`` (dataset feature -> the name the model takes), the check that the renamed dataset
has the state, the action and the cameras the model needs (a ``DatasetFeaturesError`` listing the dataset's cameras
and suggesting a rename map otherwise), and the frame resize shared with `onboard run`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from policies.errors import DatasetFeaturesError, DatasetFolderError

STATE = "observation.state"
ACTION = "action"
IMAGES = "observation.images."
DATASET_HOLDS = (
    "a LeRobot v3.0 dataset folder holds meta/info.json, meta/tasks.parquet, meta/episodes/, data/ and videos/ "
    "(what `onboard record` and lerobot-record write)"
)


def check_dataset_folder(root: str | Path) -> Path:
    """``root`` if it looks like a LeRobot v3.0 dataset (a folder with a readable meta/info.json); a
    ``DatasetFolderError`` naming it and saying what a dataset folder holds otherwise. Cheap: reads one JSON file."""
    root = Path(root)
    if not root.exists():
        raise DatasetFolderError(f"dataset {root} does not exist; {DATASET_HOLDS}")
    if not root.is_dir():
        raise DatasetFolderError(f"dataset {root} is a file, not a folder; {DATASET_HOLDS}")
    info = root / "meta" / "info.json"
    if not info.is_file():
        raise DatasetFolderError(f"{root} is not a dataset (no meta/info.json); {DATASET_HOLDS}")
    try:
        data = json.loads(info.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        raise DatasetFolderError(
            f"{info} is not valid JSON: the dataset is damaged (`onboard dataset repair`)"
        ) from None
    if not isinstance(data, dict) or "features" not in data:
        raise DatasetFolderError(f"{info} has no features: not a LeRobot v3.0 dataset; {DATASET_HOLDS}")
    return root


def parse_rename_map(rename: str | Mapping[str, str] | None) -> dict[str, str]:
    """LeRobot's ``--rename_map``: a JSON object (or a mapping) of dataset feature -> the feature name the model
    takes. ``None`` or ``""`` is no renaming. A ``ValueError`` that shows the form otherwise."""
    form = """--rename_map='{"observation.images.top": "observation.images.front"}'"""
    if rename is None or (isinstance(rename, str) and not rename.strip()):
        return {}
    if isinstance(rename, str):
        try:
            rename = json.loads(rename)
        except ValueError as exc:
            raise ValueError(f"--rename_map is not JSON ({exc}); write it as {form}") from None
    if not isinstance(rename, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in rename.items()):
        raise ValueError(f"--rename_map must be a JSON object of feature names to feature names, e.g. {form}")
    targets = list(rename.values())
    twice = sorted({t for t in targets if targets.count(t) > 1})
    if twice:
        raise ValueError(f"--rename_map renames several features to {', '.join(twice)}")
    return dict(rename)


def model_names(features: Mapping[str, Any], rename: Mapping[str, str]) -> dict[str, str]:
    """{name the model sees: dataset feature} for every feature of a dataset under ``rename``. A dataset feature
    renamed onto the name of another one it keeps is a ``DatasetFeaturesError``."""
    out: dict[str, str] = {}
    for key in features:
        new = rename.get(key, key)
        if new in out:
            renamed = key if key in rename else out[new]
            raise DatasetFeaturesError(
                f"--rename_map renames {renamed} to {new}, which the dataset already has; rename that one too"
            )
        out[new] = key
    return out


def _size_text(feature: Mapping[str, Any]) -> str:
    shape = feature.get("shape") or ()
    return f"{shape[1]}x{shape[0]}" if len(shape) >= 2 else "?"


def _cameras_text(features: Mapping[str, Any], rename: Mapping[str, str]) -> str:
    cams = [k for k, ft in features.items() if ft.get("dtype") in ("video", "image")]
    parts = [f"{k} ({_size_text(features[k])}" + (f", renamed {rename[k]})" if k in rename else ")") for k in cams]
    return ", ".join(parts) if parts else "none"


def check_dataset_fits(
    root: str | Path,
    *,
    cameras: tuple[str, ...] | list[str],
    rename: Mapping[str, str] | None = None,
    state_dim: int | None = None,
    action_dim: int | None = None,
    features: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """{model feature: dataset feature} for the state, the action and ``cameras`` (names of
    ``observation.images.<camera>``) of the dataset in ``root`` under ``rename``; a ``DatasetFeaturesError`` that
    lists the dataset's cameras (with their sizes) and what the model needs, and suggests a ``--rename_map``,
    otherwise. Reads only meta/info.json (``features``: its "features", if already read)."""
    rename = dict(rename or {})
    if features is None:
        info = json.loads((check_dataset_folder(root) / "meta" / "info.json").read_text())
        features = info["features"]
    names = model_names(features, rename)
    fitted: dict[str, str] = {}
    for key, dim, flag in ((STATE, state_dim, "state_dim"), (ACTION, action_dim, "action_dim")):
        if key not in names:
            vectors = [f"{k} {list(ft.get('shape', []))}" for k, ft in features.items() if ft.get("dtype") == "float32"]
            raise DatasetFeaturesError(
                f"dataset {root} has no {key} (its float features: {', '.join(vectors) or 'none'}); name the one "
                f"to use with --rename_map='{json.dumps({'<feature>': key})}'"
            )
        shape = list(features[names[key]].get("shape") or [])
        if dim is not None and shape != [dim]:
            raise DatasetFeaturesError(
                f"dataset {root}: {names[key]} has shape {shape}, the model takes {dim} values (--model.{flag})"
            )
        fitted[key] = names[key]
    needed = [IMAGES + c for c in cameras]
    missing = [k for k in needed if k not in names or features[names[k]].get("dtype") not in ("video", "image")]
    if missing:
        have = [k for k, ft in features.items() if ft.get("dtype") in ("video", "image")]
        spare = [k for k in have if rename.get(k, k) not in needed]
        hint = ""
        if spare:
            suggestion = {**rename, **dict(zip(spare, missing, strict=False))}
            hint = f"; map the dataset's cameras onto the model's with --rename_map='{json.dumps(suggestion)}'"
        if have:
            short = " ".join(k.removeprefix(IMAGES) for k in have)
            hint += f"{' or' if hint else ';'} train a model on the dataset's own cameras with --model.cameras {short}"
        raise DatasetFeaturesError(
            f"dataset {root} has cameras {_cameras_text(features, rename)}; the model takes {', '.join(needed)} "
            f"(--model.cameras {' '.join(cameras)}); missing: {', '.join(missing)}{hint}"
        )
    fitted.update({k: names[k] for k in needed})
    return fitted


def centre_crop(rgb: np.ndarray, aspect: tuple[int, int]) -> np.ndarray:
    """The centre of ``rgb`` (H, W, ...) at the aspect ratio ``aspect`` (H, W): a wider frame loses its sides, a
    taller one its top and bottom (a view, no copy)."""
    rh, rw = rgb.shape[:2]
    h, w = aspect
    if rh * w == rw * h:
        return rgb
    if rw * h > rh * w:
        cw = max(1, round(rh * w / h))
        x0 = (rw - cw) // 2
        return rgb[:, x0 : x0 + cw]
    ch = max(1, round(rw * h / w))
    y0 = (rh - ch) // 2
    return rgb[y0 : y0 + ch]


def resize_image(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 -> ``size`` (H, W): the centre at the model's aspect ratio (``centre_crop``), then OpenCV's area
    filter shrinking (linear growing), nearest pixels without OpenCV. The one resize of training and of `onboard run`
    (a camera frame before a policy of one exact size). Cropping, not squeezing: a camera of the same vertical field
    of view at 4:3 sees the square view plus its sides (the twin renders every size so), and a squeezed scene is one
    the model never saw (the bundled model picks nothing from squeezed 640x480 frames and picks from cropped ones)."""
    h, w = size
    rgb = centre_crop(rgb, size)
    if rgb.shape[:2] == (h, w):
        return rgb
    try:
        import cv2
    except ImportError:
        ys = (np.arange(h) * rgb.shape[0] / h).astype(np.intp)
        xs = (np.arange(w) * rgb.shape[1] / w).astype(np.intp)
        return np.ascontiguousarray(rgb[ys][:, xs])
    interp = cv2.INTER_AREA if rgb.shape[0] > h else cv2.INTER_LINEAR
    return cv2.resize(np.ascontiguousarray(rgb), (w, h), interpolation=interp)


class ResizedInputs:
    """``policy`` behind ``resize_image`` of every camera image to ``size`` (H, W): a policy trained on frames
    resized to its input (``ChunkDataset(image_size=...)``) sees a camera of another size the same way, as
    `onboard run` shows it a real camera's frames. Other attributes are the policy's."""

    def __init__(self, policy, size: tuple[int, int]):
        self.policy = policy
        self.size = (int(size[0]), int(size[1]))

    def reset(self, task: str) -> None:
        self.policy.reset(task)

    def infer(self, observation: dict):
        obs = {k: resize_image(v, self.size) if k.startswith(IMAGES) else v for k, v in observation.items()}
        return self.policy.infer(obs)

    def __getattr__(self, name: str):
        return getattr(self.policy, name)
