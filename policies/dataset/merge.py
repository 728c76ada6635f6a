"""Merge LeRobotDataset v3.0 datasets (shards) into one, without torch or LeRobot.

    report = merge("data/pick", ["data/pick.shards/shard-000", "data/pick.shards/shard-001"])

Why: a simulation fleet (``onboard generate``) records its episodes in parallel, each worker into a dataset of its own
(a shard, written by our crash-safe writer); training wants one dataset. ``onboard dataset merge OUT SHARD...`` is the
same function for datasets a user recorded separately.

What it does: the shards' committed episodes, shard by shard in the order given and in episode order within each,
become episodes ``0 .. N-1`` of the new dataset. Every file a committed episode lives in moves to the next free place
of its kind (data, each camera's videos, episodes metadata), so shards written by our writer (one episode per file)
and by LeRobot (many per file) merge alike:

- data parquet: rows of committed episodes, with ``episode_index``, ``index`` (frame index across the dataset) and
  ``task_index`` renumbered; every other column and the schema (LeRobot's ``huggingface`` metadata) unchanged;
- videos: copied byte for byte (an episode's ``from_timestamp`` .. ``to_timestamp`` inside its file is unchanged);
- episodes metadata: each row's episode index, ``dataset_from_index``/``dataset_to_index`` and the places of its
  files rewritten; its per-episode statistics kept;
- ``meta/tasks.parquet``: the shards' tasks in order of first appearance; ``meta/stats.json``: aggregated from the
  per-episode statistics; ``meta/info.json``: the totals, the first shard's features (video ``info`` included).

The shards must agree on fps, robot type and features (dtype, shape, names), and be clean (no ``.partial`` files, the
metadata of every committed episode present: ``onboard dataset repair`` first). Crash safety: everything is written
into a hidden sibling folder ``.<name>.merging`` (files fsynced), which is renamed to ``out`` only when complete; a
killed merge leaves no ``out`` and the next merge clears its folder. The shards are only read.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from policies.dataset import layout
from policies.dataset.layout import DatasetReadError
from policies.dataset.stats import aggregate, to_json
from policies.dataset.tables import EpisodesIndex, episode_stats, read_episodes

__all__ = ["MergeError", "MergeReport", "merge"]


class MergeError(DatasetReadError):
    """The shards cannot be merged as they are (they differ, or one is not clean); the message says what to do."""


@dataclass
class MergeReport:
    root: Path
    shards: list[Path]
    episodes: int = 0
    frames: int = 0
    tasks: list[str] = field(default_factory=list)
    per_shard: list[int] = field(default_factory=list)  # episodes taken from each shard

    def __str__(self) -> str:
        return (
            f"merged {len(self.shards)} datasets into {self.root}: {self.episodes} episodes, {self.frames} frames, "
            f"{len(self.tasks)} task(s) (episodes per shard: {', '.join(map(str, self.per_shard))})"
        )


@dataclass
class _Shard:
    """One input dataset, read: its info, tasks, committed episodes' metadata rows (stats included)."""

    root: Path
    info: dict[str, Any]
    tasks: list[str]
    index: EpisodesIndex

    @property
    def total(self) -> int:
        return int(self.info["total_episodes"])

    @property
    def chunks_size(self) -> int:
        return int(self.info.get("chunks_size", layout.CHUNKS_SIZE))

    def rows(self) -> list[dict[str, Any]]:
        return [self.index.rows[ep] for ep in range(self.total)]


def merge(out: str | Path, shards: list[str | Path]) -> MergeReport:
    """Merge ``shards`` (dataset folders, in this order) into a new dataset at ``out`` (module doc). ``out`` must not
    exist. Raises ``MergeError``."""
    out = Path(out)
    if not shards:
        raise MergeError("nothing to merge: give at least one dataset folder")
    if out.exists():
        raise FileExistsError(f"{out} already exists: merge into a new folder")
    parts = [_read_shard(Path(s)) for s in shards]
    features = _check_compatible(parts)
    tmp = out.parent / f".{out.name}.merging"
    if tmp.exists():
        shutil.rmtree(tmp)  # what a killed merge into the same place left
    tmp.mkdir(parents=True)
    try:
        report = _write(tmp, parts, features)
        _fsync_tree(tmp)
        os.rename(tmp, out)
        layout.fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    report.root, report.shards = out, [Path(s) for s in shards]
    return report


# ------------------------------------------------------------------------------------------------------- reading
def _read_shard(root: Path) -> _Shard:
    if not (root / layout.INFO_PATH).is_file():
        raise MergeError(f"{root}: no {layout.INFO_PATH}: not a LeRobot v3.0 dataset")
    info = layout.load_info(root)
    if info.get("codebase_version") != layout.CODEBASE_VERSION:
        raise MergeError(f"{root}: codebase_version {info.get('codebase_version')!r}; only v3.0 datasets merge")
    leftovers = sorted(p for p in root.rglob("*" + layout.PARTIAL) if p.is_file())
    if leftovers:
        raise MergeError(
            f"{root}: {len(leftovers)} unfinished file(s) ({leftovers[0].relative_to(root)}, ...): a recording was "
            f"killed; run `onboard dataset repair {root}` first"
        )
    total = int(info["total_episodes"])
    index = read_episodes(root, total, stats=True)
    problems = [f"{f} {why}" for f, why in index.unreadable.items()]
    if index.missing(total):
        problems.append(f"no metadata for episode(s) {index.missing(total)[:5]}")
    if index.duplicates:
        problems.append(f"episode(s) {sorted(set(index.duplicates))[:5]} appear twice in meta/episodes")
    if problems:
        raise MergeError(f"{root}: " + "; ".join(problems) + f" (`onboard dataset verify {root}` says more)")
    return _Shard(root, info, layout.load_tasks(root), index)


def _signature(features: dict[str, dict]) -> dict[str, tuple]:
    return {k: (ft["dtype"], tuple(ft["shape"]), list(ft.get("names") or [])) for k, ft in features.items()}


def _check_compatible(parts: list[_Shard]) -> dict[str, dict]:
    """The features of the merged dataset (the first shard's); a ``MergeError`` listing how another shard differs."""
    first = parts[0]
    want = _signature(first.info["features"])
    for part in parts[1:]:
        problems = []
        for key in ("fps", "robot_type"):
            if part.info.get(key) != first.info.get(key):
                problems.append(f"{key} {part.info.get(key)!r} (the first has {first.info.get(key)!r})")
        have = _signature(part.info["features"])
        for key in sorted(set(want) | set(have)):
            if want.get(key) != have.get(key):
                problems.append(f"feature {key}: {have.get(key)} (the first has {want.get(key)})")
        if problems:
            raise MergeError(f"{part.root} differs from {first.root}: " + "; ".join(problems))
    return first.info["features"]


# ------------------------------------------------------------------------------------------------------- writing
class _Places:
    """The next free place (chunk-C/file-F in file order) of each kind of file in the merged dataset."""

    def __init__(self) -> None:
        self.next: dict[str, int] = {}

    def take(self, kind: str) -> dict[str, int]:
        pos = self.next.get(kind, 0)
        self.next[kind] = pos + 1
        return layout.chunk_file(pos)


def _places_of(rows: list[dict[str, Any]], prefix: str, chunks_size: int) -> list[tuple[int, int]]:
    """The distinct (chunk, file) places of ``prefix`` ("data", "videos/<key>") the rows use, in file order."""
    seen = {(int(r[f"{prefix}/chunk_index"]), int(r[f"{prefix}/file_index"])) for r in rows}
    return sorted(seen, key=lambda cf: layout.position(cf[0], cf[1], chunks_size))


def _write(tmp: Path, parts: list[_Shard], features: dict[str, dict]) -> MergeReport:
    vkeys = layout.video_keys(features)
    places = _Places()
    tasks: list[str] = []
    all_stats = []
    meta_schema: pa.Schema | None = None
    episodes = frames = 0
    report = MergeReport(tmp, [])
    for part in parts:
        rows = part.rows()
        task_map = {}
        for i, task in enumerate(part.tasks):
            if task not in tasks:
                tasks.append(task)
            task_map[i] = tasks.index(task)
        # every file of the shard that a committed episode lives in -> its new place
        moved: dict[str, dict[tuple[int, int], dict[str, int]]] = {}
        for prefix in ["data", *(f"videos/{k}" for k in vkeys)]:
            moved[prefix] = {cf: places.take(prefix) for cf in _places_of(rows, prefix, part.chunks_size)}
        meta_files = {rel: places.take("meta/episodes") for rel in sorted({r["_file"] for r in rows})}
        ep_offset, frame_offset = episodes, frames

        for (c, f), new in moved["data"].items():
            table = pq.read_table(part.root / layout.DATA_PATH.format(chunk_index=c, file_index=f))
            table = _renumber_data(table, part.total, ep_offset, frame_offset, task_map, part.root)
            _write_table(table, tmp / layout.DATA_PATH.format(**new))
        for key in vkeys:
            for (c, f), new in moved[f"videos/{key}"].items():
                src = part.root / layout.VIDEO_PATH.format(video_key=key, chunk_index=c, file_index=f)
                dst = tmp / layout.VIDEO_PATH.format(video_key=key, **new)
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
        for rel, new in meta_files.items():
            table = pq.read_table(part.root / rel)
            table = _renumber_meta(table, part, ep_offset, frame_offset, moved, new, vkeys)
            if meta_schema is None:
                meta_schema = table.schema
            elif table.schema.remove_metadata() != meta_schema.remove_metadata():
                raise MergeError(
                    f"{part.root}: its episodes metadata has other columns than {parts[0].root}'s "
                    f"({sorted(set(table.schema.names) ^ set(meta_schema.names))[:5]}): they were written differently"
                )
            _write_table(table, tmp / layout.EPISODES_PATH.format(**new))
        all_stats += [episode_stats(r) for r in rows]
        episodes += part.total
        frames += int(part.info["total_frames"])
        report.per_shard.append(part.total)

    first = parts[0].info
    info = layout.build_info(
        robot_type=first.get("robot_type"),
        fps=int(first["fps"]),
        features=features,
        total_episodes=episodes,
        total_frames=frames,
        total_tasks=len(tasks),
    )
    _write_table(layout.tasks_table(tasks), tmp / layout.TASKS_PATH)
    layout.write_json_atomic(tmp / layout.STATS_PATH, to_json(aggregate(all_stats)))
    layout.write_json_atomic(tmp / layout.INFO_PATH, info)
    report.episodes, report.frames, report.tasks = episodes, frames, tasks
    return report


def _replace(table: pa.Table, name: str, values: np.ndarray) -> pa.Table:
    i = table.schema.get_field_index(name)
    return table.set_column(i, table.schema.field(i), pa.array(values, type=table.schema.field(i).type))


def _renumber_data(
    table: pa.Table, total: int, ep_offset: int, frame_offset: int, task_map: dict[int, int], root: Path
) -> pa.Table:
    """The committed rows of a data file, with episode, frame-across-dataset and task indices of the merged dataset."""
    ep = table["episode_index"].to_numpy()
    table = table.filter(pa.array(ep < total))
    ep = table["episode_index"].to_numpy()
    old_tasks = table["task_index"].to_numpy()
    unknown = sorted(set(old_tasks.tolist()) - set(task_map))
    if unknown:
        raise MergeError(f"{root}: task_index {unknown[:5]} not in meta/tasks.parquet")
    new_tasks = np.array([task_map[int(t)] for t in old_tasks], dtype=np.int64)
    table = _replace(table, "episode_index", ep + ep_offset)
    table = _replace(table, "index", table["index"].to_numpy() + frame_offset)
    return _replace(table, "task_index", new_tasks)


def _renumber_meta(
    table: pa.Table,
    part: _Shard,
    ep_offset: int,
    frame_offset: int,
    moved: dict[str, dict[tuple[int, int], dict[str, int]]],
    new_place: dict[str, int],
    vkeys: list[str],
) -> pa.Table:
    """The committed rows of an episodes-metadata file, pointing at the merged dataset's files and indices."""
    ep = table["episode_index"].to_numpy()
    table = table.filter(pa.array(ep < part.total))
    n = table.num_rows
    table = _replace(table, "episode_index", table["episode_index"].to_numpy() + ep_offset)
    for col in ("dataset_from_index", "dataset_to_index"):
        table = _replace(table, col, table[col].to_numpy() + frame_offset)
    for prefix in ["data", *(f"videos/{k}" for k in vkeys)]:
        old = zip(table[f"{prefix}/chunk_index"].to_pylist(), table[f"{prefix}/file_index"].to_pylist(), strict=True)
        new = [moved[prefix][(int(c), int(f))] for c, f in old]
        table = _replace(table, f"{prefix}/chunk_index", np.array([p["chunk_index"] for p in new], np.int64))
        table = _replace(table, f"{prefix}/file_index", np.array([p["file_index"] for p in new], np.int64))
    if "meta/episodes/chunk_index" in table.schema.names:
        table = _replace(table, "meta/episodes/chunk_index", np.full(n, new_place["chunk_index"], np.int64))
        table = _replace(table, "meta/episodes/file_index", np.full(n, new_place["file_index"], np.int64))
    return table


def _write_table(table: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression="snappy", use_dictionary=True)


def _fsync_tree(root: Path) -> None:
    """Every file and folder under ``root`` durable, before the rename that makes it the dataset."""
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            layout.fsync_file(Path(dirpath) / name)
        layout.fsync_dir(Path(dirpath))
