"""Training data from LeRobotDataset v3.0 episodes: (observation, future action chunk) items, stats and a loader.

An item at frame t of an episode of length n:
  ``observation.state``            float32 (S,)      the state at t
  ``observation.images.<cam>``     uint8 (3, H, W)   (or float32 in [0, 1] with ``image_dtype="float32"``)
  ``task``                         str
  ``action``                       float32 (T, A)    actions t .. t+T-1; past the episode end the last action repeats
  ``action_is_pad``                bool (T,)         True where the action is such padding
  ``subgoal.state``                float32 (S,)      the state at the episode's next subgoal after t (``subgoal_rows``)
plus ``episode_index`` and ``frame_index`` (int64 scalars).

Everything is gathered with numpy fancy indexing from arrays built once, so ``ChunkDataset.__getitems__`` (which
torch's DataLoader calls with a whole batch of indices) builds a batch in a few vectorised copies.

Any LeRobot v3.0 dataset fits a model through a rename map (LeRobot's ``--rename_map``: dataset feature -> the name
the model takes, e.g. ``{"observation.images.top": "observation.images.front"}``) and ``image_size``: frames are
resized once, when decoded, to the model's input with ``resize_image`` (OpenCV's area filter, what `onboard run` does
to a camera frame), so a 640x480 camera costs what a 96x96 one does after decoding. ``check_dataset_fits`` reads only
meta/info.json and says what is missing, listing the dataset's cameras and what the model needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from policies.dataset.reader import EpisodeReader
from policies.features import (  # noqa: F401  (check_dataset_folder: imported from here too)
    ACTION,
    IMAGES,
    STATE,
    check_dataset_fits,
    check_dataset_folder,
    model_names,
    resize_image,
)


def gripper_column(names: list[str] | None) -> int | None:
    """Index of the gripper in a feature's ``names`` (LeRobot's ``gripper.pos``), or None when none is named so."""
    for i, name in enumerate(names or []):
        if "gripper" in str(name).lower():
            return i
    return None


def subgoal_rows(gripper: np.ndarray | None, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """For each row of episodes laid end to end (``starts``/``ends``: each episode's first and past-last row), the row
    of its next subgoal: the next frame at which the gripper command (``gripper``, one value a row) crosses the middle
    of its range (q01 to q99 over these rows: a grasp, a release), else the episode's last frame; a last frame is its
    own subgoal. No gripper (None) or one that never moves: every row's subgoal is its episode's end.

    The state at that row is a hindsight target that needs no labels: before a grasp it is the arm's pose at the
    grasp, which only the position of the instructed object decides."""
    n = int(ends[-1]) if len(ends) else 0
    last = np.repeat(ends - 1, ends - starts)  # (N,) each row's episode's last row
    keys = [ends - 1]
    if gripper is not None and n:
        g = np.asarray(gripper, dtype=np.float64)
        lo, hi = np.quantile(g, 0.01), np.quantile(g, 0.99)
        if hi - lo > 1e-6:
            above = g >= (lo + hi) / 2
            cross = np.flatnonzero(above[1:] != above[:-1]) + 1  # rows where the command has just crossed
            keys.append(cross[~np.isin(cross, starts)])  # a crossing at an episode's first row is a seam
    key = np.unique(np.concatenate(keys))
    key = np.append(key, np.iinfo(np.int64).max)  # sentinel past the end
    nxt = key[np.searchsorted(key, np.arange(n) + 1)]  # (N,) first key row after each row
    return np.minimum(nxt, last).astype(np.int64)


def _image_hw(size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    if size is None:
        return None
    return (int(size), int(size)) if isinstance(size, int | np.integer) else (int(size[0]), int(size[1]))


class ChunkDataset(Dataset):
    """Frames of a dataset as training items with a T-step action chunk (see the module docstring).

    ``image_keys``: cameras to return, by the names the model takes (default: all of the dataset's). ``rename``:
    dataset feature -> model name (``parse_rename_map``); ``state_key`` and ``action_key`` are model names too.
    ``image_size``: (H, W) (or one side of a square) every frame is resized to (``resize_image``); None keeps the
    dataset's. ``cache=True`` decodes every frame of those cameras once into memory (as (N, 3, H, W) uint8; ~27 KB a
    frame at 96x96); ``cache=False`` decodes an episode when one of its frames is asked for and keeps only the last
    few episodes. ``episodes`` restricts the items to a subset (e.g. a train/validation split).
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
        rename: Mapping[str, str] | None = None,
        image_size: int | tuple[int, int] | None = None,
    ):
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        if image_dtype not in ("uint8", "float32"):
            raise ValueError(f"image_dtype must be 'uint8' or 'float32', got {image_dtype!r}")
        if not isinstance(reader, EpisodeReader):
            # cache=True keeps its own (resized) copies, so the reader keeps none; else the last few episodes
            reader = EpisodeReader(reader, cache_frames=False if cache else 4)
        self.reader = reader
        self.chunk_size = int(chunk_size)
        self.rename = dict(rename or {})
        names = model_names(reader.features, self.rename)  # model name -> dataset feature
        cameras = [self.rename.get(k, k) for k in reader.camera_keys]
        self.image_keys = list(cameras if image_keys is None else image_keys)
        if any(k not in cameras for k in self.image_keys):
            check_dataset_fits(
                reader.root,
                cameras=[k.removeprefix(IMAGES) for k in self.image_keys],
                rename=self.rename,
                features=reader.features,
            )
        self.source = {k: names[k] for k in (*self.image_keys, state_key, action_key) if k in names}
        self.image_size = _image_hw(image_size)
        self.image_dtype = image_dtype
        self.cache = cache
        self.state_key, self.action_key = state_key, action_key
        state_key, action_key = self.source.get(state_key, state_key), self.source.get(action_key, action_key)
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
        grip = gripper_column(reader.features.get(action_key, {}).get("names"))
        self.subgoal_row = subgoal_rows(None if grip is None else self.action[:, grip], self.starts, self.ends)
        self.tasks = list(reader.tasks)
        self._offsets = np.arange(self.chunk_size, dtype=np.int64)
        self._frames: dict[str, np.ndarray] = {}
        if cache:
            for key in self.image_keys:
                h, w = self.frame_size(key)
                self._frames[key] = np.empty((n, 3, h, w), dtype=np.uint8)

            def fill(job: tuple[int, str]) -> None:
                pos, key = job
                size = self.frame_size(key)
                # resized as each frame is decoded: the episode is never held at the camera's full size
                frames = reader.frames(self.episode_ids[pos], self.source[key], lambda rgb: resize_image(rgb, size))
                self._frames[key][self.starts[pos] : self.ends[pos]] = frames.transpose(0, 3, 1, 2)

            jobs = [(pos, key) for pos in range(len(eps)) for key in self.image_keys]
            with ThreadPoolExecutor(reader.decode_threads) as pool:
                list(pool.map(fill, jobs))
            reader.clear_frame_cache()  # the (N, 3, H, W) copies above are the ones kept

    def __len__(self) -> int:
        return len(self.state)

    def frame_size(self, key: str) -> tuple[int, int]:
        """(H, W) of the frames of camera ``key`` (a model name) in the items."""
        if self.image_size is not None:
            return self.image_size
        h, w, _ = self.reader.camera_shape(self.source[key])
        return h, w

    def normalization_stats(self) -> dict[str, dict[str, np.ndarray]]:
        """``normalization_stats`` of this dataset's state and action, under the model's names."""
        keys = (self.source.get(self.state_key, self.state_key), self.source.get(self.action_key, self.action_key))
        stats = normalization_stats(self.reader, keys)
        return {STATE: stats[keys[0]], ACTION: stats[keys[1]]}

    # ----------------------------------------------------------------- batched gather
    def _gather(self, rows: np.ndarray) -> dict[str, Any]:
        ep_pos = self.episode_of_row[rows]
        last = self.ends[ep_pos] - 1
        targets = rows[:, None] + self._offsets[None, :]  # (B, T)
        is_pad = targets > last[:, None]
        targets = np.minimum(targets, last[:, None])
        batch: dict[str, Any] = {
            STATE: torch.from_numpy(self.state[rows]),
            "subgoal.state": torch.from_numpy(self.state[self.subgoal_row[rows]]),
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
            h, w = self.frame_size(key)
            imgs = np.empty((len(rows), 3, h, w), dtype=np.uint8)
            for i, (row, pos) in enumerate(zip(rows, ep_pos, strict=True)):
                frames = self.reader.frames(self.episode_ids[pos], self.source[key])
                imgs[i] = resize_image(frames[row - self.starts[pos]], (h, w)).transpose(2, 0, 1)
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
