"""Undo what a killed recording can leave in a LeRobotDataset v3.0 directory (no torch, no LeRobot).

info.json's ``total_episodes`` is the commit point of our writer (``policies.dataset.writer``): a kill at any write
of ``save_episode`` leaves the episodes counted there intact, plus some of these, which ``repair`` undoes:
  - ``*.partial`` files (a video being encoded, a table or json being written): removed;
  - complete data, video and episodes files of the episode being committed, that no committed episode's metadata
    refers to: removed (only when the metadata of every committed episode was found, so that a dataset whose
    metadata is damaged never loses files);
  - ``meta/tasks.parquet`` already holding the new episode's new task (it is written before info.json): cut back to
    info.json's ``total_tasks``;
  - ``meta/stats.json`` already counting the new episode: rebuilt from the committed episodes' own statistics.
Anything else wrong (a committed episode's file missing or unreadable, a LeRobot recording never finalised) is not
guessed at: it is listed in ``RepairReport.problems`` and nothing of it is touched.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from policies.dataset import layout
from policies.dataset.layout import DatasetReadError
from policies.dataset.stats import aggregate, to_json
from policies.dataset.tables import episode_stats, read_episodes

__all__ = ["RepairReport", "repair"]

_FILE_DIRS = ("data", "videos", "meta/episodes")


@dataclass
class RepairReport:
    root: Path
    removed: list[Path] = field(default_factory=list)
    rewrote_stats: bool = False
    rewrote_tasks: bool = False
    problems: list[str] = field(default_factory=list)  # what repair cannot fix (nothing of it was changed)

    @property
    def changed(self) -> bool:
        return bool(self.removed or self.rewrote_stats or self.rewrote_tasks)

    def __str__(self) -> str:
        if not self.changed and not self.problems:
            return f"{self.root}: nothing to repair"
        lines = [f"{self.root}: removed {len(self.removed)} leftover file(s)"] + [f"  {p}" for p in self.removed]
        if self.rewrote_tasks:
            lines.append("  cut meta/tasks.parquet back to the tasks of the committed episodes")
        if self.rewrote_stats:
            lines.append("  rewrote meta/stats.json from the committed episodes")
        lines += [f"  cannot repair: {p}" for p in self.problems]
        return "\n".join(lines)


def repair(root: str | Path) -> RepairReport:
    """Undo what a killed recording left (module doc). Committed episodes are never touched."""
    root = Path(root)
    if not (root / layout.INFO_PATH).is_file():
        raise DatasetReadError(f"{root / layout.INFO_PATH} not found: {root} is not a LeRobot v3.0 dataset")
    try:
        info = layout.load_info(root)
        total = int(info["total_episodes"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DatasetReadError(f"{root / layout.INFO_PATH} is unreadable ({exc}): repair cannot guess it") from None
    report = RepairReport(root)
    for sub in ("data", "videos", "meta"):
        for path in sorted((root / sub).rglob("*" + layout.PARTIAL)) if (root / sub).exists() else ():
            if path.is_file():
                path.unlink()
                report.removed.append(path)

    index = read_episodes(root, total, stats=True)
    for rel, why in index.unreadable.items():
        report.problems.append(f"{rel} {why}")
    missing = index.missing(total)
    if missing:
        report.problems.append(
            f"episodes {_short(missing)} are counted in meta/info.json but not in meta/episodes/ "
            "(a LeRobot recording that never called finalize() keeps them in memory until then)"
        )
    if not report.problems:
        referenced = index.referenced(info)
        for sub in _FILE_DIRS:
            base = root / sub
            for path in sorted(base.rglob("chunk-*/file-*")) if base.exists() else ():
                if path.is_file() and path.suffix in (".parquet", ".mp4"):
                    if path.relative_to(root).as_posix() not in referenced:
                        path.unlink()
                        report.removed.append(path)

    _repair_tasks(root, info, report)
    if not report.problems:
        _repair_stats(root, info, index, report)
    return report


def _repair_tasks(root: Path, info: dict, report: RepairReport) -> None:
    try:
        tasks = layout.load_tasks(root)
    except Exception as exc:
        report.problems.append(f"{layout.TASKS_PATH} is unreadable ({type(exc).__name__})")
        return
    want = int(info.get("total_tasks", len(tasks)))
    if len(tasks) > want:  # tasks only grow, and tasks.parquet is written before info.json
        layout.write_parquet_atomic(layout.tasks_table(tasks[:want]), root / layout.TASKS_PATH)
        report.rewrote_tasks = True
    elif len(tasks) < want:
        report.problems.append(f"{layout.TASKS_PATH} holds {len(tasks)} tasks, meta/info.json counts {want}")


def _repair_stats(root: Path, info: dict, index, report: RepairReport) -> None:
    total = int(info["total_episodes"])
    if not total:
        return
    stats_path = root / layout.STATS_PATH
    try:
        counted = json.loads(stats_path.read_text())["timestamp"]["count"][0]
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        counted = -1
    if counted == int(info["total_frames"]):
        return
    per_episode = [episode_stats(index.rows[ep]) for ep in range(total)]
    if any(not st for st in per_episode):
        report.problems.append("meta/stats.json is stale and some episodes have no per-episode statistics")
        return
    layout.write_json_atomic(stats_path, to_json(aggregate(per_episode)))
    report.rewrote_stats = True


def _short(items: list[int]) -> str:
    return str(items) if len(items) <= 8 else f"[{items[0]}, {items[1]}, ..., {items[-1]}] ({len(items)})"
