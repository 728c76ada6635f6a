"""Training data from LeRobotDataset v3.0 episodes: (observation, future action chunk) items, stats and a loader.

An item at frame t of an episode of length n:
  ``observation.state``            float32 (S,)      the state at t
  ``observation.images.<cam>``     uint8 (3, H, W)   (or float32 in [0, 1] with ``image_dtype="float32"``)
  ``task``                         str
  ``action``                       float32 (T, A)    actions t .. t+T-1; past the episode end the last action repeats
  ``action_is_pad``                bool (T,)         True where the action is such padding
plus ``episode_index`` and ``frame_index`` (int64 scalars).

Everything is gathered with numpy fancy indexing from arrays built once, so ``ChunkDataset.__getitems__`` (which
torch's DataLoader calls with a whole batch of indices) builds a batch in a few vectorised copies.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from policies.dataset.reader import EpisodeReader
from policies.errors import DatasetFolderError

STATE = "observation.state"
ACTION = "action"
DATASET_HOLDS = (
    "a LeRobot v3.0 dataset folder holds meta/info.json, meta/tasks.parquet, meta/episodes/, data/ and videos/ "
    "(what `onboard record` and lerobot-record write)"
)


def check_dataset_folder(root: str | Path) -> Path:
    """``root`` if it looks like a LeRobot v3.0 dataset (a folder with a readable meta/info.json); a
    ``DatasetFolderError`` naming it and saying what a dataset folder holds otherwise. Cheap: reads one JSON file."""
    import json

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


class ChunkDataset(Dataset):
    """Frames of a dataset as training items with a T-step action chunk (see the module docstring).

    ``image_keys``: cameras to return (default: all of the dataset's). ``cache=True`` decodes every frame of those
    cameras once into memory (as (N, 3, H, W) uint8; ~27 KB a frame at 96x96); ``cache=False`` decodes an episode
    when one of its frames is asked for and keeps only the last few episodes. ``episodes`` restricts the items to a
    subset (e.g. a train/validation split).
    """

    def __init__(
        self,
        reader: EpisodeReader | str | Path,
        chunk_size: int,
        *,
        image_keys: list[str] | None = None,
        cache: bool = True,
        image_dtype: str = "uint8",
        episodes: list[int] | None = None,
        state_key: str = STATE,
        action_key: str = ACTION,
    ):
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        if image_dtype not in ("uint8", "float32"):
            raise ValueError(f"image_dtype must be 'uint8' or 'float32', got {image_dtype!r}")
        if not isinstance(reader, EpisodeReader):
            reader = EpisodeReader(reader, cache_frames=True if cache else 4)
        self.reader = reader
        self.chunk_size = int(chunk_size)
        self.image_keys = list(reader.camera_keys if image_keys is None else image_keys)
        unknown = [k for k in self.image_keys if k not in reader.camera_keys]
        if unknown:
            raise KeyError(f"unknown cameras {unknown}; this dataset has {reader.camera_keys}")
        self.image_dtype = image_dtype
        self.cache = cache
        self.state_key, self.action_key = state_key, action_key
        self.episode_ids = list(range(reader.num_episodes)) if episodes is None else list(episodes)
        if not self.episode_ids:
            raise ValueError("no episodes to read")

        eps = [reader.episode(e) for e in self.episode_ids]
        lengths = np.array([e.length for e in eps], dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)  # row of each episode's frame 0
        self.ends = self.starts + lengths  # exclusive
        n = int(lengths.sum())
        self.state = np.concatenate([e.columns[state_key] for e in eps]).astype(np.float32)
        self.action = np.concatenate([e.columns[action_key] for e in eps]).astype(np.float32)
        self.episode_of_row = np.repeat(np.arange(len(eps)), lengths)  # position in self.episode_ids
        self.frame_index = np.concatenate([np.arange(length) for length in lengths]).astype(np.int64)
        self.task_index = np.concatenate([e.task_index for e in eps]).astype(np.int64)
        self.tasks = list(reader.tasks)
        self._offsets = np.arange(self.chunk_size, dtype=np.int64)
        self._frames: dict[str, np.ndarray] = {}
        if cache:
            for key in self.image_keys:
                h, w, _ = reader.camera_shape(key)
                self._frames[key] = np.empty((n, 3, h, w), dtype=np.uint8)

            def fill(job: tuple[int, str]) -> None:
                pos, key = job
                frames = reader.frames(self.episode_ids[pos], key)
                self._frames[key][self.starts[pos] : self.ends[pos]] = frames.transpose(0, 3, 1, 2)

            jobs = [(pos, key) for pos in range(len(eps)) for key in self.image_keys]
            with ThreadPoolExecutor(reader.decode_threads) as pool:
                list(pool.map(fill, jobs))
            reader.clear_frame_cache()  # the (N, 3, H, W) copies above are the ones kept

    def __len__(self) -> int:
        return len(self.state)

    # ----------------------------------------------------------------- batched gather
    def _gather(self, rows: np.ndarray) -> dict[str, Any]:
        ep_pos = self.episode_of_row[rows]
        last = self.ends[ep_pos] - 1
        targets = rows[:, None] + self._offsets[None, :]  # (B, T)
        is_pad = targets > last[:, None]
        targets = np.minimum(targets, last[:, None])
        batch: dict[str, Any] = {
            STATE: torch.from_numpy(self.state[rows]),
            ACTION: torch.from_numpy(self.action[targets]),
            "action_is_pad": torch.from_numpy(is_pad),
            "episode_index": torch.from_numpy(np.asarray(self.episode_ids, dtype=np.int64)[ep_pos]),
            "frame_index": torch.from_numpy(self.frame_index[rows]),
            "task": [self.tasks[i] for i in self.task_index[rows]],
        }
        for key in self.image_keys:
            batch[key] = self._images(key, rows, ep_pos)
        return batch

    def _images(self, key: str, rows: np.ndarray, ep_pos: np.ndarray) -> torch.Tensor:
        if key in self._frames:
            imgs = self._frames[key][rows]
        else:
            h, w, _ = self.reader.camera_shape(key)
            imgs = np.empty((len(rows), 3, h, w), dtype=np.uint8)
            for i, (row, pos) in enumerate(zip(rows, ep_pos, strict=True)):
                frames = self.reader.frames(self.episode_ids[pos], key)
                imgs[i] = frames[row - self.starts[pos]].transpose(2, 0, 1)
        out = torch.from_numpy(imgs)
        return out.float().div_(255.0) if self.image_dtype == "float32" else out

    def __getitem__(self, idx: int) -> dict[str, Any]:
        if idx < 0:
            idx += len(self)
        if not 0 <= idx < len(self):
            raise IndexError(f"index {idx} out of range for {len(self)} frames")
        batch = self._gather(np.array([idx], dtype=np.int64))
        return {k: (v[0] if k == "task" else v[0].clone()) for k, v in batch.items()}

    def __getitems__(self, indices: list[int]) -> dict[str, Any]:
        """A whole collated batch at once (torch's DataLoader calls this when it exists)."""
        rows = np.asarray(indices, dtype=np.int64)
        if len(rows) and (rows.min() < 0 or rows.max() >= len(self)):
            raise IndexError(f"indices out of range for {len(self)} frames")
        return self._gather(rows)


def collate(items: list[dict[str, Any]] | dict[str, Any]) -> dict[str, Any]:
    """Stack tensors, keep strings (``task``) as a list. A batch already built by ``__getitems__`` passes through."""
    if isinstance(items, dict):
        return items
    out: dict[str, Any] = {}
    for key in items[0]:
        values = [item[key] for item in items]
        if isinstance(values[0], torch.Tensor):
            out[key] = torch.stack(values)
        elif isinstance(values[0], np.ndarray):
            out[key] = torch.from_numpy(np.stack(values))
        elif isinstance(values[0], (int, float)):
            out[key] = torch.tensor(values)
        else:
            out[key] = values
    return out


def make_dataloader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool = True,
    num_workers: int = 0,
    drop_last: bool = False,
    seed: int | None = None,
    pin_memory: bool = False,
    **kwargs: Any,
) -> DataLoader:
    """A DataLoader over ``dataset`` whose batches keep ``task`` strings as a list."""
    generator = None
    if seed is not None:
        generator = torch.Generator()
        generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        drop_last=drop_last,
        collate_fn=collate,
        generator=generator,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
        **kwargs,
    )


def normalization_stats(
    reader: EpisodeReader | str | Path, keys: tuple[str, ...] = (STATE, ACTION)
) -> dict[str, dict[str, np.ndarray]]:
    """Per-feature ``mean, std, min, max, q01, q99`` (float32 arrays) from ``meta/stats.json``; features missing
    there (or a missing file) are computed from the episodes' rows."""
    if not isinstance(reader, EpisodeReader):
        reader = EpisodeReader(reader, cache_frames=False)
    stats = reader.stats or {}
    names = ("mean", "std", "min", "max", "q01", "q99")
    out: dict[str, dict[str, np.ndarray]] = {}
    for key in keys:
        st = stats.get(key, {})
        if all(n in st for n in ("mean", "std", "min", "max")):
            out[key] = {n: np.asarray(st[n], dtype=np.float32) for n in names if n in st}
            continue
        values = np.concatenate([reader.episode(e).columns[key] for e in range(reader.num_episodes)]).astype(np.float64)
        out[key] = {
            "mean": values.mean(axis=0),
            "std": values.std(axis=0),
            "min": values.min(axis=0),
            "max": values.max(axis=0),
            "q01": np.quantile(values, 0.01, axis=0),
            "q99": np.quantile(values, 0.99, axis=0),
        }
        out[key] = {n: v.astype(np.float32) for n, v in out[key].items()}
    return out
