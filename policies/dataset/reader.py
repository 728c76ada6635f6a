"""Read LeRobotDataset v3.0 episodes for training (pyarrow, numpy and PyAV; no torch).

Works on datasets written by our ``DatasetWriter`` (one data parquet and one mp4 per episode) and by LeRobot itself
(many episodes sharing one parquet and one mp4). Every episode is located through the episodes metadata:
``data/chunk_index``, ``data/file_index``, ``dataset_from_index``/``dataset_to_index`` for its rows and
``videos/<key>/chunk_index``, ``file_index``, ``from_timestamp``, ``to_timestamp`` for its video segment.

Video frames are decoded once per episode and camera: seek to the keyframe before ``from_timestamp``, decode forward,
and give row k the frame shown at ``from_timestamp + timestamp[k]`` (within ``tolerance_s``, 1e-4 s as in LeRobot).
"""

from __future__ import annotations

import io
import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from policies.dataset import layout
from policies.dataset.layout import DatasetReadError
from policies.dataset.tables import unreadable_reason

__all__ = ["DatasetReadError", "Episode", "EpisodeInfo", "EpisodeReader"]

TOLERANCE_S = 1e-4


@dataclass(frozen=True)
class EpisodeInfo:
    """Where one episode lives on disk (one row of ``meta/episodes``)."""

    index: int
    length: int
    tasks: tuple[str, ...]
    data_file: tuple[int, int]  # (chunk_index, file_index)
    from_index: int  # global frame index range, end exclusive
    to_index: int
    videos: dict[str, tuple[int, int, float, float]] = field(default_factory=dict)  # key -> (chunk, file, from, to)


@dataclass
class Episode:
    """One episode's rows. ``columns`` holds every numeric column of the data parquet as a numpy array (n, ...)."""

    index: int
    columns: dict[str, np.ndarray]
    task_index: np.ndarray  # (n,) int64
    tasks: list[str]  # the dataset's task list (task_index -> string)

    @property
    def length(self) -> int:
        return len(self.task_index)

    @property
    def state(self) -> np.ndarray:
        return self.columns["observation.state"]

    @property
    def action(self) -> np.ndarray:
        return self.columns["action"]

    @property
    def timestamp(self) -> np.ndarray:
        return self.columns["timestamp"]

    @property
    def task(self) -> str:
        """The episode's task (its first frame's)."""
        return self.tasks[int(self.task_index[0])]

    def task_of(self, row: int) -> str:
        return self.tasks[int(self.task_index[row])]


class EpisodeReader:
    """Random access to a LeRobotDataset v3.0 directory, episode by episode.

    ``cache_frames``: keep decoded frames in memory (``True``: all; an int: that many (episode, camera) entries, least
    recently used dropped; ``False``/0: none). ``decode_threads``: threads used by ``preload`` (one episode each).
    """

    def __init__(
        self,
        root: str | Path,
        *,
        cache_frames: bool | int = True,
        decode_threads: int = 2,
        tolerance_s: float = TOLERANCE_S,
    ):
        self.root = Path(root)
        info_path = self.root / layout.INFO_PATH
        if not info_path.exists():
            raise FileNotFoundError(f"{info_path} not found: {self.root} is not a LeRobotDataset v3.0 directory")
        self.info: dict[str, Any] = json.loads(info_path.read_text())
        if self.info.get("codebase_version") != layout.CODEBASE_VERSION:
            raise DatasetReadError(
                f"{self.root}: codebase_version {self.info.get('codebase_version')!r}; this reader reads v3.0 "
                "(convert older datasets with LeRobot's convert_dataset_v21_to_v30)"
            )
        self.fps = int(self.info["fps"])
        self.features: dict[str, dict] = self.info["features"]
        self.video_keys = [k for k, ft in self.features.items() if ft["dtype"] == "video"]
        self.image_keys = [k for k, ft in self.features.items() if ft["dtype"] == "image"]
        self.camera_keys = self.video_keys + self.image_keys
        self.tasks = layout.load_tasks(self.root)
        self.tolerance_s = tolerance_s
        self.decode_threads = max(1, int(decode_threads))
        self.episodes = self._load_episodes()
        self._stats: dict[str, dict[str, np.ndarray]] | bool | None = False  # False = not loaded yet
        self._data_files: dict[tuple[int, int], pa.Table] = {}
        self._episode_cache: dict[int, Episode] = {}
        limit = None if cache_frames is True else int(cache_frames)
        self._frame_cache_limit = limit
        self._frames: OrderedDict[tuple[int, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    # ----------------------------------------------------------------- metadata
    @property
    def num_episodes(self) -> int:
        return len(self.episodes)

    @property
    def num_frames(self) -> int:
        return sum(ep.length for ep in self.episodes)

    @property
    def stats(self) -> dict[str, dict[str, np.ndarray]] | None:
        """``meta/stats.json`` as numpy arrays, or None when the file is missing."""
        if self._stats is False:
            path = self.root / layout.STATS_PATH
            if path.exists():
                data = json.loads(path.read_text())
                self._stats = {k: {s: np.asarray(v) for s, v in st.items()} for k, st in data.items()}
            else:
                self._stats = None
        return self._stats  # type: ignore[return-value]

    def camera_shape(self, key: str) -> tuple[int, int, int]:
        """(H, W, 3) of a camera feature."""
        return tuple(int(s) for s in self.features[key]["shape"])  # type: ignore[return-value]

    def _load_episodes(self) -> list[EpisodeInfo]:
        files = sorted((self.root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
        total = int(self.info.get("total_episodes", 0))
        if not files and total:
            raise DatasetReadError(f"{self.root}: meta/episodes/ is missing (a LeRobot recording never finalized?)")
        rows: dict[int, EpisodeInfo] = {}
        for path in files:
            try:
                schema = pq.read_schema(path)
                columns = [c for c in schema.names if not c.startswith("stats/")]
                table = pq.read_table(path, columns=columns)
            except Exception as exc:
                raise DatasetReadError(f"{path} {unreadable_reason(path, exc)}") from exc
            for row in table.to_pylist():
                ep = int(row["episode_index"])
                if ep >= total:  # files of an episode whose commit (info.json) never happened
                    continue
                videos = {}
                for key in self.video_keys:
                    p = f"videos/{key}/"
                    videos[key] = (
                        int(row[p + "chunk_index"]),
                        int(row[p + "file_index"]),
                        float(row[p + "from_timestamp"]),
                        float(row[p + "to_timestamp"]),
                    )
                rows[ep] = EpisodeInfo(
                    index=ep,
                    length=int(row["length"]),
                    tasks=tuple(row.get("tasks") or ()),
                    data_file=(int(row["data/chunk_index"]), int(row["data/file_index"])),
                    from_index=int(row["dataset_from_index"]),
                    to_index=int(row["dataset_to_index"]),
                    videos=videos,
                )
        missing = sorted(set(range(total)) - set(rows))
        if missing:
            raise DatasetReadError(f"{self.root}: episodes {missing[:10]} are in info.json but not in meta/episodes/")
        return [rows[i] for i in range(total)]

    # ----------------------------------------------------------------- rows
    def _data_table(self, chunk_file: tuple[int, int]) -> pa.Table:
        with self._lock:
            table = self._data_files.get(chunk_file)
        if table is None:
            path = self.root / layout.DATA_PATH.format(chunk_index=chunk_file[0], file_index=chunk_file[1])
            if not path.exists():
                raise DatasetReadError(f"{path} is missing")
            try:
                table = pq.read_table(path)
            except Exception as exc:
                raise DatasetReadError(f"{path} {unreadable_reason(path, exc)}") from exc
            with self._lock:
                self._data_files[chunk_file] = table
        return table

    def episode(self, ep: int) -> Episode:
        """The rows of episode ``ep`` (numeric columns as numpy arrays, camera images excluded)."""
        cached = self._episode_cache.get(ep)
        if cached is not None:
            return cached
        meta = self.episodes[ep]
        table = self._data_table(meta.data_file)
        index = table["index"].to_numpy()
        rows = np.flatnonzero((index >= meta.from_index) & (index < meta.to_index))
        if len(rows) != meta.length:
            raise DatasetReadError(
                f"episode {ep}: {len(rows)} rows in the data file for index range "
                f"[{meta.from_index}, {meta.to_index}), its metadata says length {meta.length}"
            )
        part = table.take(pa.array(rows))
        order = np.argsort(part["index"].to_numpy(), kind="stable")
        columns: dict[str, np.ndarray] = {}
        for name in part.column_names:
            if name in self.image_keys:
                continue
            col = part[name].combine_chunks()
            if pa.types.is_fixed_size_list(col.type):
                arr = col.flatten().to_numpy(zero_copy_only=False).reshape(len(col), col.type.list_size)
            elif pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
                arr = np.stack([np.asarray(v) for v in col.to_pylist()]) if len(col) else np.zeros((0,))
            elif pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_boolean(col.type):
                arr = col.to_numpy(zero_copy_only=False)
            else:
                continue
            columns[name] = np.ascontiguousarray(arr[order])
        episode = Episode(
            index=ep, columns=columns, task_index=columns["task_index"].astype(np.int64), tasks=self.tasks
        )
        self._episode_cache[ep] = episode
        return episode

    # ----------------------------------------------------------------- frames
    def frames(self, ep: int, key: str, transform: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
        """All frames of camera ``key`` in episode ``ep``, uint8 (n, H, W, 3) RGB, row-aligned with ``episode(ep)``.

        ``transform`` (e.g. a resize to a model's input) is applied to each frame as it is decoded, so the episode is
        never held at full size (a minute of 640x480 video is ~1.7 GB of RGB); its results are not cached.
        """
        if key not in self.camera_keys:
            raise KeyError(f"{key!r} is not a camera of this dataset (cameras: {self.camera_keys})")
        if transform is not None:
            if key in self.image_keys:
                return np.stack([transform(img) for img in self._decode_images(ep, key)])
            return self._decode_video(ep, key, transform)
        with self._lock:
            frames = self._frames.get((ep, key))
            if frames is not None:
                self._frames.move_to_end((ep, key))
                return frames
        frames = self._decode_images(ep, key) if key in self.image_keys else self._decode_video(ep, key)
        frames.setflags(write=False)
        if self._frame_cache_limit != 0:
            with self._lock:
                self._frames[(ep, key)] = frames
                if self._frame_cache_limit is not None:
                    while len(self._frames) > self._frame_cache_limit:
                        self._frames.popitem(last=False)
        return frames

    def preload(self, keys: list[str] | None = None, episodes: list[int] | None = None) -> None:
        """Decode (and cache) the frames of ``keys`` x ``episodes``, ``decode_threads`` episodes at a time."""
        keys = self.camera_keys if keys is None else keys
        episodes = list(range(self.num_episodes)) if episodes is None else episodes
        for ep in episodes:
            self.episode(ep)
        jobs = [(ep, key) for ep in episodes for key in keys]
        if self.decode_threads == 1 or len(jobs) <= 1:
            for ep, key in jobs:
                self.frames(ep, key)
            return
        with ThreadPoolExecutor(self.decode_threads) as pool:
            list(pool.map(lambda job: self.frames(*job), jobs))

    def clear_frame_cache(self) -> None:
        with self._lock:
            self._frames.clear()

    def _decode_video(
        self, ep: int, key: str, transform: Callable[[np.ndarray], np.ndarray] | None = None
    ) -> np.ndarray:
        meta = self.episodes[ep]
        chunk, file, from_ts, _ = meta.videos[key]
        path = self.root / layout.VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=file)
        if not path.exists():
            raise DatasetReadError(f"episode {ep}: {path} is missing")
        targets = from_ts + self.episode(ep).timestamp.astype(np.float64)
        shape = self.camera_shape(key)
        out: list[np.ndarray] = []  # one array, allocated at the first frame (its size is the transform's)
        found = np.zeros(len(targets), dtype=bool)
        order = np.argsort(targets)
        sorted_targets = targets[order]
        last = sorted_targets[-1] if len(targets) else from_ts
        try:
            self._decode_into(path, sorted_targets, order, last, shape, transform, out, found)
        except av.error.FFmpegError as exc:
            done = int(found.sum())
            raise DatasetReadError(
                f"{path}: episode {ep} {key} does not decode ({type(exc).__name__}: {exc}); "
                f"{done} of its {len(targets)} frames decoded before the error"
            ) from exc
        if not found.all():
            missing = np.flatnonzero(~found)
            raise DatasetReadError(
                f"{path}: episode {ep} {key}: no frame within {self.tolerance_s}s of timestamps "
                f"{targets[missing[:5]].round(4).tolist()} ({len(missing)} of {len(targets)} missing)"
            )
        return out[0] if out else np.empty((0, *shape), dtype=np.uint8)

    def _decode_into(self, path, sorted_targets, order, last, shape, transform, out, found) -> None:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            time_base = float(stream.time_base)
            if sorted_targets[0] > self.tolerance_s:
                seek_to = int(max(0.0, sorted_targets[0] - self.tolerance_s) / time_base)
                container.seek(seek_to, stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                if frame.pts is None:
                    continue
                t = frame.pts * time_base
                if t > last + self.tolerance_s:
                    break
                j = int(np.searchsorted(sorted_targets, t - self.tolerance_s))
                while j < len(sorted_targets) and sorted_targets[j] <= t + self.tolerance_s:
                    row = order[j]
                    if not found[row]:
                        img = frame.to_ndarray(format="rgb24")
                        if img.shape != tuple(shape):
                            raise DatasetReadError(f"{path}: frame shape {img.shape}, features say {tuple(shape)}")
                        if transform is not None:
                            img = transform(img)
                        if not out:
                            out.append(np.empty((len(order), *img.shape), dtype=img.dtype))
                        out[0][row] = img
                        found[row] = True
                    j += 1

    def _decode_images(self, ep: int, key: str) -> np.ndarray:
        from PIL import Image  # only LeRobot's "image" features (PNG inside the parquet) need it

        meta = self.episodes[ep]
        table = self._data_table(meta.data_file)
        index = table["index"].to_numpy()
        rows = np.flatnonzero((index >= meta.from_index) & (index < meta.to_index))
        part = table.take(pa.array(rows))
        order = np.argsort(part["index"].to_numpy(), kind="stable")
        cells = part[key].to_pylist()
        images = []
        for i in order:
            cell = cells[i]
            data = cell["bytes"] if cell.get("bytes") else (self.root / cell["path"]).read_bytes()
            images.append(np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.uint8))
        return np.stack(images)
