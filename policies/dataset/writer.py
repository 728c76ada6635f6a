"""Crash-safe LeRobotDataset v3.0 writer (no torch, no LeRobot).

Each saved episode gets its own files at the next free place ``chunk-C/file-F`` (``layout``), also when the dataset
was written by LeRobot with many episodes per file. Commit protocol for episode e (``save_episode``):
  1. the camera encoders finish ``videos/<key>/chunk-C/file-F.mp4.partial`` (closed and fsynced);
  2. ``data/chunk-C/file-F.parquet.partial`` and ``meta/episodes/chunk-C/file-F.parquet.partial`` are written
     complete and fsynced;
  3. all of them are renamed into place;
  4. ``meta/tasks.parquet``, ``meta/stats.json`` and finally ``meta/info.json`` are rewritten atomically
     (temporary + fsync + ``os.replace``). info.json's ``total_episodes`` is the commit point.
A process killed at any moment therefore leaves every earlier episode intact and a dataset LeRobot loads. What it can
leave behind (``*.partial`` files, renamed files of an episode whose info.json update never happened, a
tasks.parquet or stats.json already counting it) is ignored by LeRobot and undone by ``repair`` (which
``DatasetWriter.resume`` runs first).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from policies.dataset import layout
from policies.dataset.layout import CAPTURE_TIME, CAPTURE_TIME_FEATURE, DEFAULT_FEATURES, DatasetReadError
from policies.dataset.stats import Stats, aggregate, to_json, vector_stats
from policies.dataset.tables import data_table, episode_meta_table, episode_stats, read_episodes
from policies.dataset.video import DEFAULT_VCODEC, EpisodeVideoEncoder, probe_video_info


class DatasetWriter:
    """Records episodes frame by frame into a LeRobotDataset v3.0 directory. Use ``create`` or ``resume``."""

    def __init__(
        self,
        root: Path,
        info: dict[str, Any],
        tasks: list[str],
        episode_stats: list[dict[str, Stats]],
        *,
        repo_id: str,
        vcodec: str,
        crf: int,
        g: int,
        preset: int | None,
        queue_size: int | None,
        next_file: int | None = None,
    ):
        self.root = Path(root)
        self.repo_id = repo_id
        self.info = info
        self.fps = int(info["fps"])
        self.features: dict[str, dict] = info["features"]
        self.user_keys = [k for k in self.features if k not in DEFAULT_FEATURES and k != CAPTURE_TIME]
        self.video_keys = layout.video_keys(self.features)
        self.vector_keys = [k for k in self.user_keys if k not in self.video_keys]
        self.record_capture_time = CAPTURE_TIME in self.features
        self.tasks = tasks
        self.episode_stats = episode_stats
        self.vcodec, self.crf, self.g, self.preset = vcodec, crf, g, preset
        self.queue_size = queue_size or max(2 * self.fps, 16)
        self._buffer: dict[str, list] | None = None
        self._encoders: dict[str, EpisodeVideoEncoder] = {}
        self._frame_task: str | None = None
        self._closed = False
        # the place (chunk-C/file-F in file order) of the next episode's files: after every file in use
        self._next_file = int(info["total_episodes"]) if next_file is None else int(next_file)
        self.last_encode_seconds_per_frame: dict[str, float] = {}

    # ----------------------------------------------------------------- lifecycle
    @classmethod
    def create(
        cls,
        root: str | Path,
        *,
        fps: int,
        features: dict[str, dict],
        robot_type: str | None = None,
        repo_id: str = "local/dataset",
        record_capture_time: bool = False,
        vcodec: str = DEFAULT_VCODEC,
        crf: int = 30,
        g: int = 2,
        preset: int | None = None,
        queue_size: int | None = None,
    ) -> DatasetWriter:
        """Start a new dataset in ``root`` (which must not exist, or be an empty directory)."""
        root = Path(root)
        _clear_unborn(root)
        if (root / layout.INFO_PATH).exists():
            raise FileExistsError(
                f"{root} already holds a dataset: add episodes with DatasetWriter.resume({str(root)!r})"
            )
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise FileExistsError(f"{root} already exists, is not empty and holds no dataset (no meta/info.json)")
        if int(fps) != fps or fps <= 0:
            raise ValueError(f"fps must be a positive integer, got {fps!r}")
        feats = layout.normalize_features(features)
        if record_capture_time:
            feats[CAPTURE_TIME] = dict(CAPTURE_TIME_FEATURE)
        feats.update({k: dict(v) for k, v in DEFAULT_FEATURES.items()})
        info = layout.build_info(
            robot_type=robot_type, fps=int(fps), features=feats, total_episodes=0, total_frames=0, total_tasks=0
        )
        (root / "meta").mkdir(parents=True, exist_ok=True)
        layout.write_json_atomic(root / layout.INFO_PATH, info)
        info["features"] = feats
        return cls(
            root, info, [], [], repo_id=repo_id, vcodec=vcodec, crf=crf, g=g, preset=preset, queue_size=queue_size
        )

    @classmethod
    def resume(
        cls,
        root: str | Path,
        *,
        repo_id: str = "local/dataset",
        vcodec: str = DEFAULT_VCODEC,
        crf: int = 30,
        g: int = 2,
        preset: int | None = None,
        queue_size: int | None = None,
    ) -> DatasetWriter:
        """Continue recording into an existing dataset (ours or LeRobot's, any layout); first undoes what a killed
        recording left (``repair``). The new episodes go into new files, after every file in use."""
        from policies.dataset.repair import repair

        root = Path(root)
        if not (root / layout.INFO_PATH).exists():
            raise FileNotFoundError(f"{root / layout.INFO_PATH} not found: not a dataset (use DatasetWriter.create)")
        info = layout.load_info(root)
        if info.get("codebase_version") != layout.CODEBASE_VERSION:
            raise ValueError(f"{root}: codebase_version {info.get('codebase_version')!r}, this writer writes v3.0")
        fixed = repair(root)
        if fixed.problems:
            raise DatasetReadError(f"cannot add episodes to {root}: " + "; ".join(fixed.problems))
        info = layout.load_info(root)
        tasks = layout.load_tasks(root)
        total = int(info["total_episodes"])
        chunks_size = int(info.get("chunks_size", layout.CHUNKS_SIZE))
        index = read_episodes(root, total, stats=True)
        episode_stats = [_stats_of(index.rows[ep], ep, root) for ep in range(total)]
        next_file = total
        for row in index.rows.values():
            places = [(row["data/chunk_index"], row["data/file_index"])]
            places += [
                (row.get(f"videos/{k}/chunk_index"), row.get(f"videos/{k}/file_index"))
                for k in layout.video_keys(info["features"])
            ]
            places.append((row.get("meta/episodes/chunk_index"), row.get("meta/episodes/file_index")))
            for c, f in places:
                if c is not None and f is not None:
                    next_file = max(next_file, layout.position(c, f, chunks_size) + 1)
        return cls(
            root,
            info,
            tasks,
            episode_stats,
            repo_id=repo_id,
            vcodec=vcodec,
            crf=crf,
            g=g,
            preset=preset,
            queue_size=queue_size,
            next_file=next_file,
        )

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop recording. An episode in progress (not saved) is discarded."""
        if self._closed:
            return
        self.discard_episode()
        self._closed = True

    # ----------------------------------------------------------------- properties
    @property
    def num_episodes(self) -> int:
        return int(self.info["total_episodes"])

    @property
    def num_frames(self) -> int:
        return int(self.info["total_frames"])

    @property
    def episode_frames(self) -> int:
        """Frames added to the episode in progress."""
        return 0 if self._buffer is None else len(self._buffer["frame_index"])

    # ----------------------------------------------------------------- recording
    def add_frame(self, frame: dict[str, Any], t_capture: float | None = None) -> None:
        """Append one frame (keys = the features; ``task`` optional). Never waits for video encoding."""
        if self._closed:
            raise RuntimeError("the writer is closed")
        frame = dict(frame)
        task = frame.pop("task", None)
        missing = [k for k in self.user_keys if k not in frame]
        extra = [k for k in frame if k not in self.user_keys]
        if missing or extra:
            raise ValueError(f"frame keys do not match the features: missing {missing}, unexpected {extra}")
        values: dict[str, np.ndarray] = {}
        for key in self.vector_keys:
            ft = self.features[key]
            arr = np.asarray(frame[key], dtype=ft["dtype"]).reshape(-1)
            if arr.shape != tuple(ft["shape"]):
                raise ValueError(f"{key}: expected shape {tuple(ft['shape'])}, got {np.shape(frame[key])}")
            values[key] = arr
        for key in self.video_keys:
            img = np.asarray(frame[key])
            if img.dtype != np.uint8 or img.shape != tuple(self.features[key]["shape"]):
                raise ValueError(
                    f"{key}: expected uint8 {tuple(self.features[key]['shape'])} (H, W, 3 RGB), "
                    f"got {img.dtype} {img.shape}"
                )
        if self.record_capture_time and t_capture is None:
            raise ValueError("this dataset records capture times: pass add_frame(frame, t_capture=...)")
        if self._buffer is None:
            self._start_episode()
        assert self._buffer is not None
        for key in self.video_keys:
            self._encoders[key].put(frame[key])
        k = len(self._buffer["frame_index"])
        for key, arr in values.items():
            self._buffer[key].append(arr)
        self._buffer["frame_index"].append(k)
        if self.record_capture_time:
            self._buffer[CAPTURE_TIME].append(float(t_capture))  # type: ignore[arg-type]
        if task is not None:
            self._frame_task = str(task)

    def discard_episode(self) -> None:
        """Drop the episode in progress (re-record). Saved episodes are untouched."""
        for enc in self._encoders.values():
            enc.cancel()
        self._encoders = {}
        self._buffer = None
        self._frame_task = None

    def save_episode(self, task: str | None = None) -> int:
        """Wait for the episode's videos, write its files and commit it. Returns its episode index."""
        if self._buffer is None or not self._buffer["frame_index"]:
            raise RuntimeError("no frames to save: call add_frame first")
        task = task if task is not None else self._frame_task
        if not task:
            raise ValueError("save_episode needs a task string (or frames carrying 'task')")
        ep = self.num_episodes
        pos = self._next_file
        n = len(self._buffer["frame_index"])
        chunks_size = int(self.info.get("chunks_size", layout.CHUNKS_SIZE))
        place = layout.chunk_file(pos, chunks_size)

        # 1. videos: wait for the encoders (they write <final>.partial, closed and fsynced)
        video_stats: dict[str, Stats] = {}
        try:
            for key, enc in self._encoders.items():
                video_stats[key] = enc.finish()
                if enc.frames_encoded != n:
                    raise RuntimeError(f"{key}: encoded {enc.frames_encoded} frames, expected {n}")
                self.last_encode_seconds_per_frame[key] = enc.encode_seconds / max(enc.frames_encoded, 1)
        except BaseException:
            self.discard_episode()
            raise

        # 2. data table + stats
        new_tasks = [*self.tasks] if task in self.tasks else [*self.tasks, task]
        task_index = new_tasks.index(task)
        start = self.num_frames
        columns: dict[str, np.ndarray] = {k: np.stack(self._buffer[k]) for k in self.vector_keys}
        if self.record_capture_time:
            columns[CAPTURE_TIME] = np.asarray(self._buffer[CAPTURE_TIME], dtype=np.float64)
        frame_index = np.arange(n, dtype=np.int64)
        columns["timestamp"] = (frame_index / self.fps).astype(np.float32)
        columns["frame_index"] = frame_index
        columns["episode_index"] = np.full(n, ep, dtype=np.int64)
        columns["index"] = np.arange(start, start + n, dtype=np.int64)
        columns["task_index"] = np.full(n, task_index, dtype=np.int64)
        rows = data_table(columns, self.features)

        ep_stats: dict[str, Stats] = {}
        for key in self.features:
            if key in video_stats:
                ep_stats[key] = video_stats[key]
            elif key in columns:
                col = columns[key]
                ep_stats[key] = vector_stats(col if col.ndim == 2 else col[:, None])

        ep_meta: dict[str, Any] = {
            "episode_index": ep,
            "tasks": [task],
            "length": n,
            "data/chunk_index": place["chunk_index"],
            "data/file_index": place["file_index"],
            "dataset_from_index": start,
            "dataset_to_index": start + n,
        }
        for key in self.video_keys:
            ep_meta[f"videos/{key}/chunk_index"] = place["chunk_index"]
            ep_meta[f"videos/{key}/file_index"] = place["file_index"]
            ep_meta[f"videos/{key}/from_timestamp"] = 0.0
            ep_meta[f"videos/{key}/to_timestamp"] = n / self.fps
        meta_table = episode_meta_table(ep_meta, ep_stats, self.features)

        # 3. files of the episode: complete, fsynced, renamed into place
        data_path = layout.data_path(self.root, pos, chunks_size)
        meta_path = layout.episodes_path(self.root, pos, chunks_size)
        for path, table in ((data_path, rows), (meta_path, meta_table)):
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, layout.partial(path), compression="snappy", use_dictionary=True)
        for key, enc in self._encoders.items():
            layout.commit_file(enc.path, layout.video_path(self.root, key, pos, chunks_size))
        layout.commit_file(layout.partial(data_path), data_path)
        layout.commit_file(layout.partial(meta_path), meta_path)

        # 4. metadata, info.json last (the commit point)
        all_stats = [*self.episode_stats, ep_stats]
        info = dict(self.info)
        features = {k: dict(v) for k, v in self.features.items()}
        for key in self.video_keys:
            if "info" not in features[key]:
                features[key]["info"] = probe_video_info(layout.video_path(self.root, key, pos, chunks_size))
        info.update(
            total_episodes=ep + 1,
            total_frames=start + n,
            total_tasks=len(new_tasks),
            splits={"train": f"0:{ep + 1}"},
            features=layout.features_to_json(features),
        )
        if new_tasks != self.tasks:
            layout.write_parquet_atomic(layout.tasks_table(new_tasks), self.root / layout.TASKS_PATH)
        layout.write_json_atomic(self.root / layout.STATS_PATH, to_json(aggregate(all_stats)))
        layout.write_json_atomic(self.root / layout.INFO_PATH, info)

        info["features"] = features
        for ft in features.values():
            ft["shape"] = tuple(ft["shape"])
        self.info, self.features, self.tasks, self.episode_stats = info, features, new_tasks, all_stats
        self._encoders = {}
        self._buffer = None
        self._frame_task = None
        self._next_file = pos + 1
        return ep

    # ----------------------------------------------------------------- internals
    def _start_episode(self) -> None:
        pos = self._next_file
        chunks_size = int(self.info.get("chunks_size", layout.CHUNKS_SIZE))
        self._buffer = {k: [] for k in [*self.vector_keys, "frame_index", CAPTURE_TIME]}
        self._encoders = {}
        for key in self.video_keys:
            final = layout.video_path(self.root, key, pos, chunks_size)
            self._encoders[key] = EpisodeVideoEncoder(
                layout.partial(final),
                key=key,
                fps=self.fps,
                vcodec=self.vcodec,
                g=self.g,
                crf=self.crf,
                preset=self.preset,
                queue_size=self.queue_size,
            )


def _stats_of(row: dict[str, Any], ep: int, root: Path) -> dict[str, Stats]:
    stats = episode_stats(row)
    if not stats:
        raise DatasetReadError(f"{root / row['_file']}: episode {ep} has no per-episode statistics (stats/... columns)")
    return stats


def _clear_unborn(root: Path) -> None:
    """A dataset killed inside ``create`` (before its info.json was in place) holds nothing but ``meta/`` and maybe
    ``meta/info.json.partial``: remove them so that the dataset can be created again."""
    meta = root / "meta"
    if not root.is_dir() or (root / layout.INFO_PATH).exists() or not meta.is_dir():
        return
    if any(p != meta for p in root.iterdir()):
        return
    leftovers = list(meta.iterdir())
    if all(p.name == "info.json" + layout.PARTIAL and p.is_file() for p in leftovers):
        for p in leftovers:
            p.unlink()
        meta.rmdir()
