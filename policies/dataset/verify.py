"""Check, summarise and repair a LeRobotDataset v3.0 directory (no torch, no LeRobot)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq

from policies.dataset import layout
from policies.dataset.layout import DEFAULT_FEATURES, STAT_KEYS
from policies.dataset.stats import aggregate, to_json
from policies.dataset.tables import read_episode_stats

_FILE_RE = re.compile(r"chunk-(\d+)/file-(\d+)\.(parquet|mp4)$")


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


@dataclass
class RepairReport:
    root: Path
    removed: list[Path] = field(default_factory=list)
    rewrote_stats: bool = False

    def __str__(self) -> str:
        if not self.removed and not self.rewrote_stats:
            return f"{self.root}: nothing to repair"
        lines = [f"{self.root}: removed {len(self.removed)} leftover file(s)"] + [f"  {p}" for p in self.removed]
        if self.rewrote_stats:
            lines.append("  rewrote meta/stats.json from the committed episodes")
        return "\n".join(lines)


def _committed_episode_of(root: Path, path: Path, chunks_size: int) -> int | None:
    m = _FILE_RE.search(path.relative_to(root).as_posix())
    return None if m is None else int(m.group(1)) * chunks_size + int(m.group(2))


def repair(root: str | Path) -> RepairReport:
    """Remove what a killed recording can leave: ``*.partial`` files and files of an episode never committed
    to info.json (index >= total_episodes). Committed episodes are never touched."""
    root = Path(root)
    report = RepairReport(root)
    info = layout.load_info(root)
    total, chunks_size = int(info["total_episodes"]), int(info.get("chunks_size", layout.CHUNKS_SIZE))
    for sub in ("data", "videos", "meta"):
        base = root / sub
        if not base.exists():
            continue
        for path in sorted(base.rglob("*")):
            if not path.is_file():
                continue
            leftover = path.name.endswith(layout.PARTIAL)
            if not leftover and (sub != "meta" or path.relative_to(root).parts[:2] == ("meta", "episodes")):
                ep = _committed_episode_of(root, path, chunks_size)
                leftover = leftover or (ep is not None and ep >= total)
            if leftover:
                path.unlink()
                report.removed.append(path)
    # stats.json is rewritten just before info.json: a kill between the two leaves it counting one episode too many
    stats_path = root / layout.STATS_PATH
    try:
        counted = json.loads(stats_path.read_text())["timestamp"]["count"][0] if total else 0
    except (OSError, ValueError, KeyError, IndexError):
        counted = -1
    if total and counted != int(info["total_frames"]):
        per_episode = [read_episode_stats(root, ep, info) for ep in range(total)]
        layout.write_json_atomic(stats_path, to_json(aggregate(per_episode)))
        report.rewrote_stats = True
    return report


def verify(root: str | Path, *, decode_frames: int = 3) -> VerifyReport:
    """Check structure, totals, every episode's rows and timestamps, every video's frame times (from the packets)
    and decode ``decode_frames`` frames per episode and camera (first, last and ones between)."""
    root = Path(root)
    rep = VerifyReport(root)
    try:
        info = layout.load_info(root)
    except (OSError, ValueError, KeyError) as exc:
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
    chunks_size = int(info.get("chunks_size", layout.CHUNKS_SIZE))
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
        rep.errors.append(f"tasks.parquet has {len(tasks)} tasks, info.json says {info['total_tasks']}")

    expected_index = 0
    for ep in range(rep.episodes):
        where = f"episode {ep}"
        try:
            meta = pq.read_table(layout.episodes_path(root, ep, chunks_size)).to_pylist()
        except Exception as exc:
            rep.errors.append(f"{where}: episodes metadata unreadable: {exc!r}")
            continue
        if len(meta) != 1 or meta[0]["episode_index"] != ep:
            rep.errors.append(f"{where}: episodes metadata file does not hold exactly this episode")
            continue
        m = meta[0]
        n = int(m["length"])
        if (m["dataset_from_index"], m["dataset_to_index"]) != (expected_index, expected_index + n):
            rep.errors.append(
                f"{where}: dataset index range {m['dataset_from_index']}..{m['dataset_to_index']} "
                f"!= {expected_index}..{expected_index + n}"
            )
        for stat_key in (f"stats/{k}/{s}" for k in features for s in STAT_KEYS):
            if stat_key not in m:
                rep.errors.append(f"{where}: episodes metadata lacks {stat_key}")
                break
        try:
            data_file = root / info["data_path"].format(
                chunk_index=m["data/chunk_index"], file_index=m["data/file_index"]
            )
            table = pq.read_table(data_file)
        except Exception as exc:
            rep.errors.append(f"{where}: data parquet unreadable: {exc!r}")
            expected_index += n
            continue
        rows = table.filter(np.asarray(table["episode_index"].to_numpy() == ep))
        if rows.num_rows != n:
            rep.errors.append(f"{where}: {rows.num_rows} rows in {data_file.name}, metadata says {n}")
        else:
            fi = rows["frame_index"].to_numpy()
            ts = rows["timestamp"].to_numpy().astype(np.float64)
            idx = rows["index"].to_numpy()
            if not np.array_equal(fi, np.arange(n)):
                rep.errors.append(f"{where}: frame_index is not 0..{n - 1}")
            if np.abs(ts - np.arange(n) / fps).max() > 1e-4:
                rep.errors.append(f"{where}: timestamps are not frame_index/fps")
            if not np.array_equal(idx, np.arange(expected_index, expected_index + n)):
                rep.errors.append(f"{where}: global index is not contiguous")
            ti = rows["task_index"].to_numpy()
            if ti.size and (ti.min() < 0 or ti.max() >= len(tasks)):
                rep.errors.append(f"{where}: task_index out of range")
        for key in vkeys:
            _verify_video(root, info, m, key, n, fps, decode_frames, rep, where)
        expected_index += n
    if expected_index != rep.frames:
        rep.errors.append(f"episodes hold {expected_index} frames, info.json says {rep.frames}")

    _verify_stats(root, features, rep)
    leftovers = [p for p in root.rglob(f"*{layout.PARTIAL}")]
    if leftovers:
        rep.warnings.append(f"{len(leftovers)} leftover temporary file(s) (run repair)")
    return rep


def _verify_video(root, info, m, key, n, fps, decode_frames, rep, where) -> None:
    path = root / info["video_path"].format(
        video_key=key, chunk_index=m[f"videos/{key}/chunk_index"], file_index=m[f"videos/{key}/file_index"]
    )
    t0 = float(m[f"videos/{key}/from_timestamp"])
    if abs(float(m[f"videos/{key}/to_timestamp"]) - t0 - n / fps) > 1e-6:
        rep.errors.append(f"{where}: {key} to_timestamp - from_timestamp != length / fps")
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            times = sorted(
                float(p.pts * p.time_base) for p in container.demux(stream) if p.pts is not None and p.size > 0
            )
            want = t0 + np.arange(n) / fps
            within = [t for t in times if t0 - 1e-4 <= t < t0 + (n - 0.5) / fps]
            if len(within) != n or np.abs(np.asarray(within) - want).max() > 1e-4:
                rep.errors.append(f"{where}: {key} has {len(within)} frames at k/fps in its range, expected {n}")
                return
            picks = sorted({int(i + 0.5) for i in np.linspace(0, n - 1, max(1, min(decode_frames, n)))})
            for k in picks:
                target = want[k]
                container.seek(int(target / stream.time_base), stream=stream, backward=True, any_frame=False)
                found = False
                for frame in container.decode(stream):
                    if frame.time is None:
                        continue
                    if abs(frame.time - target) < 1e-4:
                        frame.to_ndarray(format="rgb24")
                        found = True
                        rep.frames_decoded += 1
                        break
                    if frame.time > target + 1e-4:
                        break
                if not found:
                    rep.errors.append(f"{where}: {key} frame {k} does not decode at t={target:.4f}s")
    except Exception as exc:
        rep.errors.append(f"{where}: {key} video unreadable ({path}): {exc!r}")


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
