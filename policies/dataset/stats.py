"""Per-episode and aggregated feature statistics in LeRobot's format (min/max/mean/std/count/q01..q99).

Vectors: each stat has the feature's shape (N,). Camera images: per channel, values in [0, 1], shape (3, 1, 1),
computed exactly from a 256-bin histogram per channel of frames strided down to at most ~150 px (as LeRobot does).
Aggregation over episodes: count-weighted mean, pooled variance, min of mins, max of maxes, and count-weighted means
of the episodes' quantiles (LeRobot's approximation).
"""

from __future__ import annotations

import numpy as np

from policies.dataset.layout import QUANTILES, STAT_KEYS

Stats = dict[str, np.ndarray]


def vector_stats(values: np.ndarray) -> Stats:
    """Stats over axis 0 of an (n, N) array."""
    x = np.asarray(values)
    xf = x.astype(np.float64)
    out: Stats = {
        "min": x.min(axis=0),
        "max": x.max(axis=0),
        "mean": xf.mean(axis=0),
        "std": xf.std(axis=0),
        "count": np.array([len(x)], dtype=np.int64),
    }
    for name, q in QUANTILES.items():
        out[name] = np.quantile(xf, q, axis=0)
    return {k: out[k] for k in STAT_KEYS}


class ImageStatsAccumulator:
    """Exact per-channel histogram of (downsampled) uint8 RGB frames; cheap enough to run per frame."""

    def __init__(self, max_side: int = 150):
        self.max_side = max_side
        self.hist = np.zeros((3, 256), dtype=np.int64)
        self.frames = 0

    def update(self, img: np.ndarray) -> None:
        stride = max(1, -(-max(img.shape[:2]) // self.max_side))
        small = img[::stride, ::stride]
        for c in range(3):
            self.hist[c] += np.bincount(small[..., c].ravel(), minlength=256)
        self.frames += 1

    def stats(self) -> Stats:
        levels = np.arange(256, dtype=np.float64) / 255.0
        total = self.hist.sum(axis=1).astype(np.float64)  # (3,)
        if self.frames == 0 or (total == 0).any():
            raise ValueError("no image frames were accumulated")
        cdf = np.cumsum(self.hist, axis=1)
        nonzero = self.hist > 0
        mins = np.array([levels[np.argmax(nonzero[c])] for c in range(3)])
        maxs = np.array([levels[255 - np.argmax(nonzero[c][::-1])] for c in range(3)])
        mean = (self.hist * levels).sum(axis=1) / total
        var = (self.hist * (levels[None, :] - mean[:, None]) ** 2).sum(axis=1) / total
        out: Stats = {"min": mins, "max": maxs, "mean": mean, "std": np.sqrt(var)}
        out["count"] = np.array([self.frames], dtype=np.int64)
        for name, q in QUANTILES.items():
            out[name] = np.array([levels[np.searchsorted(cdf[c], q * total[c])] for c in range(3)])
        return {k: (v if k == "count" else v.reshape(3, 1, 1)) for k, v in out.items()}


def aggregate(per_episode: list[dict[str, Stats]]) -> dict[str, Stats]:
    """Merge episodes' stats feature by feature."""
    if not per_episode:
        return {}
    out: dict[str, Stats] = {}
    for key in per_episode[0]:
        eps = [ep[key] for ep in per_episode if key in ep]
        n = np.array([float(np.asarray(e["count"]).reshape(-1)[0]) for e in eps])
        total = n.sum()
        w = (n / total).reshape((-1,) + (1,) * np.asarray(eps[0]["mean"]).ndim)
        means = np.stack([np.asarray(e["mean"], dtype=np.float64) for e in eps])
        stds = np.stack([np.asarray(e["std"], dtype=np.float64) for e in eps])
        mean = (w * means).sum(axis=0)
        var = (w * (stds**2 + (means - mean) ** 2)).sum(axis=0)
        agg: Stats = {
            "min": np.min(np.stack([np.asarray(e["min"]) for e in eps]), axis=0),
            "max": np.max(np.stack([np.asarray(e["max"]) for e in eps]), axis=0),
            "mean": mean,
            "std": np.sqrt(var),
            "count": np.array([int(total)], dtype=np.int64),
        }
        for name in QUANTILES:
            agg[name] = (w * np.stack([np.asarray(e[name], dtype=np.float64) for e in eps])).sum(axis=0)
        out[key] = {k: agg[k] for k in STAT_KEYS}
    return out


def to_json(stats: dict[str, Stats]) -> dict[str, dict[str, list]]:
    return {key: {name: np.asarray(v).tolist() for name, v in st.items()} for key, st in stats.items()}


def from_json(data: dict[str, dict[str, list]]) -> dict[str, Stats]:
    return {key: {name: np.asarray(v) for name, v in st.items()} for key, st in data.items()}
