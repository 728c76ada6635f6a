"""The parquet tables of one episode: its data rows (``data/chunk-C/file-F.parquet``) and its metadata row with its
per-episode statistics (``meta/episodes/chunk-C/file-F.parquet``), written by the writer and read back by ``resume``
and ``repair`` (which rebuilds meta/stats.json from them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from policies.dataset import layout
from policies.dataset.layout import STAT_KEYS
from policies.dataset.stats import Stats, from_json

__all__ = ["data_table", "episode_meta_table", "read_episode_stats"]


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


def read_episode_stats(root: Path, ep: int, info: dict[str, Any]) -> dict[str, Stats]:
    path = layout.episodes_path(root, ep, int(info.get("chunks_size", layout.CHUNKS_SIZE)))
    row = pq.read_table(path).to_pylist()[0]
    out: dict[str, dict[str, list]] = {}
    for col, value in row.items():
        if col.startswith("stats/"):
            _, key, stat = col.split("/")
            out.setdefault(key, {})[stat] = value
    return from_json(out)
