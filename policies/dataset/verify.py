"""Check and summarise a LeRobotDataset v3.0 directory of any layout LeRobot 0.4.4 writes (no torch, no LeRobot).

``verify`` reads the episodes metadata (one or many episodes per file), then each data file once (every committed
episode's rows, frame indices, timestamps and global indices; no rows of other episodes) and each video file once
(every episode's frames at ``from_timestamp + k / fps``), decoding a few frames per episode, or with ``full=True``
every frame, naming the first one that does not decode. ``repair`` (``policies.dataset.repair``) undoes what a
killed recording left.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from policies.dataset import layout
from policies.dataset.layout import DEFAULT_FEATURES, STAT_KEYS
from policies.dataset.repair import RepairReport, repair
from policies.dataset.tables import read_episodes, unreadable_reason
from policies.dataset.videocheck import Segment, check_video

__all__ = ["RepairReport", "VerifyReport", "info", "repair", "verify"]


@dataclass
class VerifyReport:
    root: Path
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    episodes: int = 0
    frames: int = 0
    frames_decoded: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors

    def __str__(self) -> str:
        head = f"{self.root}: {'OK' if self.ok else 'FAILED'} ({self.episodes} episodes, {self.frames} frames, "
        head += f"{self.frames_decoded} video frames decoded)"
        lines = [head] + [f"  error: {e}" for e in self.errors] + [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def verify(root: str | Path, *, full: bool = False, decode_frames: int = 3) -> VerifyReport:
    """Check structure, totals, every episode's rows and timestamps and every video's frame times (from the
    packets); decode ``decode_frames`` frames per episode and camera (first, last and between), or with ``full``
    every frame of every video."""
    root = Path(root)
    rep = VerifyReport(root)
    try:
        info = layout.load_info(root)
    except FileNotFoundError:
        rep.errors.append(f"{root / layout.INFO_PATH} not found: not a LeRobot v3.0 dataset")
        return rep
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        rep.errors.append(f"meta/info.json unreadable: {exc!r}")
        return rep
    for key in ("codebase_version", "fps", "features", "total_episodes", "total_frames", "total_tasks", "data_path"):
        if key not in info:
            rep.errors.append(f"info.json lacks {key!r}")
    if rep.errors:
        return rep
    if info["codebase_version"] != layout.CODEBASE_VERSION:
        rep.errors.append(f"codebase_version {info['codebase_version']!r} != {layout.CODEBASE_VERSION!r}")
    fps, features = int(info["fps"]), info["features"]
    vkeys = layout.video_keys(features)
    for key in DEFAULT_FEATURES:
        if key not in features:
            rep.errors.append(f"feature {key!r} missing from info.json")
    for key in vkeys:
        if "info" not in features[key] and info["total_episodes"] > 0:
            rep.warnings.append(f"video feature {key!r} has no 'info' block")
    rep.episodes, rep.frames = int(info["total_episodes"]), int(info["total_frames"])

    try:
        tasks = layout.load_tasks(root)
    except Exception as exc:
        rep.errors.append(f"meta/tasks.parquet unreadable: {exc!r}")
        tasks = []
    if len(tasks) != info["total_tasks"]:
        fix = " (run repair)" if len(tasks) > info["total_tasks"] else ""
        rep.errors.append(f"tasks.parquet has {len(tasks)} tasks, info.json says {info['total_tasks']}{fix}")

    index = read_episodes(root, rep.episodes, stats=True)
    for rel, why in index.unreadable.items():
        rep.errors.append(f"{rel} {why}")
    missing = index.missing(rep.episodes)
    if missing:
        rep.errors.append(
            f"episodes {missing[:10]}{' ...' if len(missing) > 10 else ''} are in info.json but not in "
            "meta/episodes/ (a LeRobot recording that never called finalize()?)"
        )
    if index.duplicates:
        rep.errors.append(f"episodes {sorted(set(index.duplicates))[:10]} have more than one row in meta/episodes/")

    by_data: dict[str, list[dict]] = defaultdict(list)
    by_video: dict[tuple[str, str], list[Segment]] = defaultdict(list)
    expected_index = 0
    for ep in range(rep.episodes):
        m = index.rows.get(ep)
        if m is None:
            continue
        n = int(m["length"])
        if (m["dataset_from_index"], m["dataset_to_index"]) != (expected_index, expected_index + n):
            rep.errors.append(
                f"episode {ep}: dataset index range {m['dataset_from_index']}..{m['dataset_to_index']} "
                f"!= {expected_index}..{expected_index + n}"
            )
        for stat_key in (f"stats/{k}/{s}" for k in features for s in STAT_KEYS):
            if m.get(stat_key) is None:
                rep.errors.append(f"episode {ep}: episodes metadata lacks {stat_key}")
                break
        rel = info["data_path"].format(chunk_index=m["data/chunk_index"], file_index=m["data/file_index"])
        by_data[rel].append({"ep": ep, "n": n, "from": expected_index})
        for key in vkeys:
            t0, t1 = float(m[f"videos/{key}/from_timestamp"]), float(m[f"videos/{key}/to_timestamp"])
            if abs(t1 - t0 - n / fps) > 1e-4:
                rep.errors.append(f"episode {ep}: {key} to_timestamp - from_timestamp != length / fps")
            vrel = info["video_path"].format(
                video_key=key, chunk_index=m[f"videos/{key}/chunk_index"], file_index=m[f"videos/{key}/file_index"]
            )
            by_video[(key, vrel)].append(Segment(ep, t0, n))
        expected_index += n
    if not missing and expected_index != rep.frames:
        rep.errors.append(f"episodes hold {expected_index} frames, info.json says {rep.frames}")

    for rel, eps in by_data.items():
        _verify_data(root / rel, eps, fps, len(tasks), rep)
    if missing:  # the rows of the episodes not in meta/episodes may still be readable: say whether they are
        for path in sorted((root / "data").rglob("chunk-*/file-*.parquet")):
            rel = path.relative_to(root).as_posix()
            if rel not in by_data:
                try:
                    pq.read_schema(path)
                except Exception as exc:
                    rep.errors.append(f"{rel} {unreadable_reason(path, exc)}")
    for (key, rel), segments in by_video.items():
        checked = check_video(root / rel, key, segments, fps, sample=decode_frames, full=full)
        rep.errors += checked.errors
        rep.frames_decoded += checked.frames_decoded

    if not missing and not index.unreadable:
        _verify_stats(root, features, rep)
        referenced = index.referenced(info)
        stray = [
            p.relative_to(root).as_posix()
            for sub in ("data", "videos", "meta/episodes")
            for p in sorted((root / sub).rglob("chunk-*/file-*"))
            if p.suffix in (".parquet", ".mp4") and p.relative_to(root).as_posix() not in referenced
        ]
        if stray:
            rep.warnings.append(f"{len(stray)} file(s) of no committed episode, e.g. {stray[0]} (run repair)")
    leftovers = [p for p in root.rglob(f"*{layout.PARTIAL}")]
    if leftovers:
        rep.warnings.append(f"{len(leftovers)} leftover temporary file(s) (run repair)")
    return rep


def _verify_data(path: Path, eps: list[dict], fps: int, n_tasks: int, rep: VerifyReport) -> None:
    """The rows of every committed episode in one data file, and no others (LeRobot loads every row of it)."""
    try:
        table = pq.read_table(path, columns=["timestamp", "frame_index", "episode_index", "index", "task_index"])
    except FileNotFoundError:
        rep.errors.append(f"{path} is missing (episodes {[e['ep'] for e in eps][:10]})")
        return
    except Exception as exc:
        rep.errors.append(f"{path} {unreadable_reason(path, exc)}")
        return
    ep_col = table["episode_index"].to_numpy()
    others = sorted(set(np.unique(ep_col).tolist()) - {e["ep"] for e in eps})
    if others:
        rep.errors.append(f"{path} holds rows of episodes {others[:10]} that are not committed (run repair)")
    for e in eps:
        ep, n, start = e["ep"], e["n"], e["from"]
        rows = table.filter(ep_col == ep)
        if rows.num_rows != n:
            rep.errors.append(f"episode {ep}: {rows.num_rows} rows in {path}, metadata says {n}")
            continue
        idx = rows["index"].to_numpy()
        order = np.argsort(idx, kind="stable")
        fi = rows["frame_index"].to_numpy()[order]
        ts = rows["timestamp"].to_numpy().astype(np.float64)[order]
        if not np.array_equal(fi, np.arange(n)):
            rep.errors.append(f"episode {ep}: frame_index is not 0..{n - 1} in {path}")
        elif np.abs(ts - np.arange(n) / fps).max(initial=0.0) > 1e-4:
            rep.errors.append(f"episode {ep}: timestamps are not frame_index/fps in {path}")
        if not np.array_equal(idx[order], np.arange(start, start + n)):
            rep.errors.append(f"episode {ep}: global index is not {start}..{start + n - 1} in {path}")
        ti = rows["task_index"].to_numpy()
        if ti.size and (ti.min() < 0 or ti.max() >= n_tasks):
            rep.errors.append(f"episode {ep}: task_index out of range in {path}")


def _verify_stats(root: Path, features: dict, rep: VerifyReport) -> None:
    if rep.episodes == 0:
        return
    try:
        stats = json.loads((root / layout.STATS_PATH).read_text())
    except Exception as exc:
        rep.errors.append(f"meta/stats.json unreadable: {exc!r}")
        return
    counted = stats.get("timestamp", {}).get("count", [None])[0]
    if counted != rep.frames:
        rep.warnings.append(f"stats.json counts {counted} frames, info.json {rep.frames} (run repair)")
    for key, ft in features.items():
        if key not in stats:
            rep.errors.append(f"stats.json lacks feature {key!r}")
            continue
        shape = (3, 1, 1) if ft["dtype"] == "video" else tuple(ft["shape"])
        for s in STAT_KEYS:
            if s not in stats[key]:
                rep.errors.append(f"stats.json {key!r} lacks {s!r}")
                continue
            got = np.asarray(stats[key][s]).shape
            if got != ((1,) if s == "count" else shape):
                rep.errors.append(f"stats.json {key}/{s} has shape {got}, expected {shape}")
        if ft["dtype"] == "video" and "min" in stats[key] and "max" in stats[key]:
            if np.min(stats[key]["min"]) < 0 or np.max(stats[key]["max"]) > 1:
                rep.errors.append(f"stats.json {key}: image stats must lie in [0, 1]")


def info(root: str | Path) -> str:
    """A human summary of a dataset."""
    root = Path(root)
    meta = layout.load_info(root)
    tasks = layout.load_tasks(root)
    fps = meta["fps"]
    lines = [
        f"dataset {root} (LeRobotDataset {meta['codebase_version']}, robot_type={meta.get('robot_type')})",
        f"  {meta['total_episodes']} episodes, {meta['total_frames']} frames at {fps} fps "
        f"({meta['total_frames'] / fps:.1f} s), {meta['total_tasks']} task(s)",
        "  features:",
    ]
    for key, ft in meta["features"].items():
        if key in DEFAULT_FEATURES:
            continue
        extra = ""
        if ft["dtype"] == "video" and "info" in ft:
            extra = f" {ft['info'].get('video.codec')} {ft['info'].get('video.pix_fmt')}"
        names = ft.get("names")
        if ft["dtype"] != "video" and names:
            extra = f" {list(names)}"
        lines.append(f"    {key}: {ft['dtype']} {tuple(ft['shape'])}{extra}")
    for i, task in enumerate(tasks[:10]):
        lines.append(f"  task {i}: {task}")
    if len(tasks) > 10:
        lines.append(f"  ... {len(tasks) - 10} more tasks")
    return "\n".join(lines)
