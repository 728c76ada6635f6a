"""The parquet tables of one episode: its data rows (``data/chunk-C/file-F.parquet``) and its metadata row with its
per-episode statistics (``meta/episodes/chunk-C/file-F.parquet``), written by the writer; and ``read_episodes``,
which reads the episodes metadata of any layout LeRobot 0.4.4 writes (one row per file, as our writer does, or many
episodes per file, as LeRobot's writer does, rotated by size) for ``resume``, ``verify`` and ``repair``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from policies.dataset import layout
from policies.dataset.layout import STAT_KEYS
from policies.dataset.stats import Stats, from_json

__all__ = ["EpisodesIndex", "data_table", "episode_meta_table", "episode_stats", "read_episodes"]


def data_table(columns: dict[str, np.ndarray], features: dict[str, dict]) -> pa.Table:
    fields, arrays = [], []
    for key, ft in features.items():
        if ft["dtype"] == "video":
            continue
        col = columns[key]
        typ = layout.arrow_type(ft["dtype"])
        if tuple(ft["shape"]) == (1,):
            arrays.append(pa.array(col.reshape(-1), type=typ))
            fields.append(pa.field(key, typ))
        else:
            size = int(ft["shape"][0])
            arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(col.reshape(-1), type=typ), size))
            fields.append(pa.field(key, pa.list_(typ, size)))
    schema = pa.schema(fields, metadata={b"huggingface": layout.hf_features_metadata(features)})
    return pa.Table.from_arrays(arrays, schema=schema)


def _stat_type(ft: dict, stat: str) -> pa.DataType:
    if stat == "count":
        return pa.list_(pa.int64())
    if ft["dtype"] == "video":
        return pa.list_(pa.list_(pa.list_(pa.float64())))
    if stat in ("min", "max") and np.issubdtype(np.dtype(ft["dtype"]), np.integer):
        return pa.list_(pa.int64())
    return pa.list_(pa.float64())


def episode_meta_table(ep_meta: dict[str, Any], ep_stats: dict[str, Stats], features: dict[str, dict]) -> pa.Table:
    fields: list[pa.Field] = []
    values: list[Any] = []
    for key, value in ep_meta.items():
        if key == "tasks":
            typ = pa.list_(pa.string())
        elif key.endswith("_timestamp"):
            typ = pa.float64()
        else:
            typ = pa.int64()
        fields.append(pa.field(key, typ))
        values.append(value)
    for key, st in ep_stats.items():
        for stat in STAT_KEYS:
            fields.append(pa.field(f"stats/{key}/{stat}", _stat_type(features[key], stat)))
            values.append(np.asarray(st[stat]).tolist())
    fields += [pa.field("meta/episodes/chunk_index", pa.int64()), pa.field("meta/episodes/file_index", pa.int64())]
    values += [ep_meta["data/chunk_index"], ep_meta["data/file_index"]]
    schema = pa.schema(fields)
    return pa.Table.from_pylist([dict(zip(schema.names, values, strict=True))], schema=schema)


@dataclass
class EpisodesIndex:
    """The rows of ``meta/episodes`` for the committed episodes (``episode_index < total_episodes``), by index.

    ``files``: every episodes file found, relative to the root; ``unreadable``: those that could not be read (file ->
    reason); ``uncommitted``: files holding only rows of episodes beyond ``total_episodes``; ``duplicates``: episode
    indices found in more than one row."""

    rows: dict[int, dict[str, Any]] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    unreadable: dict[str, str] = field(default_factory=dict)
    uncommitted: list[str] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)

    def missing(self, total: int) -> list[int]:
        return [ep for ep in range(total) if ep not in self.rows]

    def referenced(self, info: dict[str, Any]) -> set[str]:
        """The data, video and episodes files (relative paths) that the committed episodes live in."""
        out: set[str] = set()
        vkeys = layout.video_keys(info["features"])
        for row in self.rows.values():
            out.add(layout.DATA_PATH.format(chunk_index=row["data/chunk_index"], file_index=row["data/file_index"]))
            for key in vkeys:
                c, f = row.get(f"videos/{key}/chunk_index"), row.get(f"videos/{key}/file_index")
                if c is not None and f is not None:
                    out.add(layout.VIDEO_PATH.format(video_key=key, chunk_index=c, file_index=f))
            out.add(row["_file"])
        return out


def unreadable_reason(path: Path, exc: BaseException) -> str:
    """Why a parquet file cannot be read, in words a user can act on."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            f.seek(max(0, size - 4))
            tail = f.read(4)
    except OSError as err:
        return f"cannot be opened ({err.strerror or err})"
    if size == 0:
        return "is empty (0 bytes)"
    if tail != b"PAR1":
        return (
            "has no parquet footer: its writer never closed it (a LeRobot recording killed before finalize(), or "
            "a truncated copy)"
        )
    return f"is not a readable parquet file ({type(exc).__name__}: {exc})"


def read_episodes(root: Path, total: int, *, stats: bool = False) -> EpisodesIndex:
    """Every ``meta/episodes/chunk-*/file-*.parquet`` (``*.partial`` excluded), rows by episode index. Each row gets
    ``_file``, the relative path of the file it came from. ``stats=False`` skips the ``stats/...`` columns."""
    index = EpisodesIndex()
    for path in sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet")):
        rel = path.relative_to(root).as_posix()
        index.files.append(rel)
        try:
            schema = pq.read_schema(path)
            columns = None if stats else [c for c in schema.names if not c.startswith("stats/")]
            rows = pq.read_table(path, columns=columns).to_pylist()
        except Exception as exc:
            index.unreadable[rel] = unreadable_reason(path, exc)
            continue
        committed = 0
        for row in rows:
            ep = int(row["episode_index"])
            if ep >= total:
                continue
            committed += 1
            if ep in index.rows:
                index.duplicates.append(ep)
            row["_file"] = rel
            index.rows[ep] = row
        if rows and not committed:
            index.uncommitted.append(rel)
    return index


def episode_stats(row: dict[str, Any]) -> dict[str, Stats]:
    """The per-episode statistics held in one episodes-metadata row (read with ``stats=True``)."""
    out: dict[str, dict[str, list]] = {}
    for col, value in row.items():
        if col.startswith("stats/") and value is not None:
            _, key, stat = col.split("/")
            out.setdefault(key, {})[stat] = value
    return from_json(out)
