"""LeRobotDataset v3.0 on-disk layout: paths, feature specs, atomic file writes, info.json and tasks.parquet.

Our writer gives each committed episode its own files: one data parquet, one mp4 per camera and one
episodes-metadata parquet, all named ``chunk-C/file-F`` at the next free place in file order (a new dataset: episode
e at place e, ``chunk-{e // chunks_size:03d}/file-{e % chunks_size:03d}``). LeRobot 0.4.4 writes many episodes per
file instead (rotated by size; videos concatenated, each episode at ``from_timestamp``..``to_timestamp``). Both
are read the same way: each episode's files are looked up through ``data/chunk_index``, ``data/file_index`` and
``videos/<key>/chunk_index|file_index`` in its episodes-metadata row. Files being written carry the suffix
``.partial`` (never ``.parquet``/``.mp4``, so LeRobot's globs cannot see them) and are renamed into place once
complete.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
DATA_FILES_SIZE_IN_MB = 100
VIDEO_FILES_SIZE_IN_MB = 200
CHUNK_FILE = "chunk-{chunk_index:03d}/file-{file_index:03d}"
DATA_PATH = "data/" + CHUNK_FILE + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + CHUNK_FILE + ".mp4"
EPISODES_PATH = "meta/episodes/" + CHUNK_FILE + ".parquet"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
PARTIAL = ".partial"
STAT_KEYS = ("min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99")
QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}

# The 5 columns LeRobot adds to every dataset, in its order (after the user's features).
DEFAULT_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": (1,), "names": None},
    "frame_index": {"dtype": "int64", "shape": (1,), "names": None},
    "episode_index": {"dtype": "int64", "shape": (1,), "names": None},
    "index": {"dtype": "int64", "shape": (1,), "names": None},
    "task_index": {"dtype": "int64", "shape": (1,), "names": None},
}
# Optional extra column holding each frame's capture time (seconds on the recorder's monotonic clock).
CAPTURE_TIME = "capture_time"
CAPTURE_TIME_FEATURE = {"dtype": "float64", "shape": (1,), "names": None}
NUMERIC_DTYPES = ("float32", "float64", "int64", "int32", "int16", "int8", "uint8", "bool")


class DatasetReadError(ValueError):
    """The dataset on disk is missing something or inconsistent (a missing or unreadable file, missing rows, a video
    frame that is not there); the message names the file."""


def chunk_file(pos: int, chunks_size: int = CHUNKS_SIZE) -> dict[str, int]:
    """``chunk_index`` and ``file_index`` of the file at place ``pos`` in file order."""
    return {"chunk_index": pos // chunks_size, "file_index": pos % chunks_size}


def data_path(root: Path, pos: int, chunks_size: int = CHUNKS_SIZE) -> Path:
    return root / DATA_PATH.format(**chunk_file(pos, chunks_size))


def video_path(root: Path, key: str, pos: int, chunks_size: int = CHUNKS_SIZE) -> Path:
    return root / VIDEO_PATH.format(video_key=key, **chunk_file(pos, chunks_size))


def episodes_path(root: Path, pos: int, chunks_size: int = CHUNKS_SIZE) -> Path:
    return root / EPISODES_PATH.format(**chunk_file(pos, chunks_size))


def position(chunk_index: int, file_index: int, chunks_size: int = CHUNKS_SIZE) -> int:
    """The place of ``chunk-C/file-F`` in the order files are made (LeRobot's ``update_chunk_file_indices``)."""
    return int(chunk_index) * chunks_size + int(file_index)


def partial(path: Path) -> Path:
    return path.with_name(path.name + PARTIAL)


def normalize_features(features: dict[str, dict]) -> dict[str, dict[str, Any]]:
    """Validate user features (LeRobot's spec: dtype, shape, names) and return them with shapes as tuples."""
    out: dict[str, dict[str, Any]] = {}
    for key, ft in features.items():
        if key in DEFAULT_FEATURES or key in (CAPTURE_TIME, "task"):
            raise ValueError(f"feature {key!r} is reserved; the writer adds it itself")
        if "/" in key:
            raise ValueError(f"feature name {key!r} must not contain '/'")
        if not isinstance(ft, dict) or "dtype" not in ft or "shape" not in ft:
            raise ValueError(f"feature {key!r} needs at least 'dtype' and 'shape', e.g. {{'dtype': 'float32', ...}}")
        dtype, shape = ft["dtype"], tuple(int(s) for s in ft["shape"])
        if dtype == "image":
            raise ValueError(f"feature {key!r}: dtype 'image' (PNG in parquet) is not supported; use 'video'")
        if dtype == "video":
            if len(shape) != 3 or shape[2] != 3:
                raise ValueError(f"video feature {key!r} must have shape (height, width, 3), got {shape}")
            if shape[0] % 2 or shape[1] % 2:
                raise ValueError(f"video feature {key!r}: yuv420p needs an even height and width, got {shape}")
            names = ft.get("names") or ["height", "width", "channels"]
        elif dtype in NUMERIC_DTYPES:
            if len(shape) != 1:
                raise ValueError(f"feature {key!r}: only 1-D numeric features are supported, got shape {shape}")
            names = ft.get("names")
        else:
            raise ValueError(f"feature {key!r}: unsupported dtype {dtype!r} (use 'video' or one of {NUMERIC_DTYPES})")
        out[key] = {**ft, "dtype": dtype, "shape": shape, "names": names}
    return out


def video_keys(features: dict[str, dict]) -> list[str]:
    return [k for k, ft in features.items() if ft["dtype"] == "video"]


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def commit_file(tmp: Path, final: Path) -> None:
    """Make a fully written temporary file durable and move it into place atomically."""
    fsync_file(tmp)
    os.replace(tmp, final)
    fsync_dir(final.parent)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial(path)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_json_atomic(path: Path, data: Any) -> None:
    write_bytes_atomic(path, (json.dumps(data, indent=4, ensure_ascii=False) + "\n").encode())


def write_parquet_atomic(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial(path)
    pq.write_table(table, tmp, compression="snappy", use_dictionary=True)
    commit_file(tmp, path)


def features_to_json(features: dict[str, dict]) -> dict[str, dict]:
    return {k: {**ft, "shape": list(ft["shape"])} for k, ft in features.items()}


def build_info(
    *,
    robot_type: str | None,
    fps: int,
    features: dict[str, dict],
    total_episodes: int,
    total_frames: int,
    total_tasks: int,
) -> dict[str, Any]:
    """meta/info.json with exactly the keys LeRobot 0.4.4 writes (``create_empty_dataset_info``)."""
    return {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": robot_type,
        "total_episodes": total_episodes,
        "total_frames": total_frames,
        "total_tasks": total_tasks,
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": DATA_FILES_SIZE_IN_MB,
        "video_files_size_in_mb": VIDEO_FILES_SIZE_IN_MB,
        "fps": fps,
        "splits": {"train": f"0:{total_episodes}"},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if video_keys(features) else None,
        "features": features_to_json(features),
    }


def load_info(root: Path) -> dict[str, Any]:
    info = json.loads((root / INFO_PATH).read_text())
    for ft in info["features"].values():
        ft["shape"] = tuple(ft["shape"])
    return info


def tasks_table(tasks: list[str]) -> pa.Table:
    """tasks.parquet as pandas writes a DataFrame indexed by task string (what LeRobot's ``load_tasks`` reads)."""
    pandas_meta = {
        "index_columns": ["__index_level_0__"],
        "column_indexes": [
            {"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object", "metadata": None}
        ],
        "columns": [
            {
                "name": "task_index",
                "field_name": "task_index",
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
            {
                "name": None,
                "field_name": "__index_level_0__",
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": None,
            },
        ],
        "attributes": {},
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.0.0",
    }
    schema = pa.schema([("task_index", pa.int64()), ("__index_level_0__", pa.large_string())]).with_metadata(
        {b"pandas": json.dumps(pandas_meta).encode()}
    )
    return pa.table({"task_index": list(range(len(tasks))), "__index_level_0__": list(tasks)}, schema=schema)


def load_tasks(root: Path) -> list[str]:
    path = root / TASKS_PATH
    if not path.exists():
        return []
    table = pq.read_table(path)
    pairs = sorted(zip(table["task_index"].to_pylist(), table["__index_level_0__"].to_pylist(), strict=True))
    return [task for _, task in pairs]


def hf_features_metadata(features: dict[str, dict]) -> bytes:
    """The ``huggingface`` schema metadata (``datasets.Features`` JSON) that LeRobot's parquet files carry."""
    out: dict[str, Any] = {}
    for key, ft in features.items():
        if ft["dtype"] == "video":
            continue
        value = {"dtype": ft["dtype"], "_type": "Value"}
        if tuple(ft["shape"]) != (1,):
            value = {"feature": value, "length": ft["shape"][0], "_type": "List"}
        out[key] = value
    return json.dumps({"info": {"features": out}}).encode()


def arrow_type(dtype: str) -> pa.DataType:
    return pa.from_numpy_dtype(np.dtype(dtype))
