"""Replay a recorded episode: its actions sent to the follower at the dataset's fps, through ``SafeArm``
(LeRobot's ``lerobot-replay``: the episode's ``action`` column, paced at the dataset's fps, an observation read each
step).

    result = replay_episode(safe, clock, root, episode=0)
    result.states        # float32 (n, 6): the follower's positions read at each step, before the step's action

``episode_actions`` reads one episode's actions (and recorded states) from a LeRobot v3.0 dataset, ours or LeRobot's.
``ReplayConfig`` names the episode (`onboard replay`'s ``--dataset.*`` options).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hardware.feetech.errors import FeetechError
from robot.clock import Clock
from robot.errors import BusFailureError
from robot.loop import ControlLoop, LoopStats, Tick
from robot.record_config import DEFAULT_REPO_ID
from robot.safety import SafeArm


@dataclass(frozen=True)
class ReplayConfig:
    """The episode to replay (the metadata is the help of `onboard replay`'s options, ``onboard.cli.options``)."""

    root: Path = field(metadata={"help": "the dataset folder (LeRobot v3.0)", "metavar": "DIR"})
    repo_id: str = field(default=DEFAULT_REPO_ID, metadata={"help": "the dataset's name (not needed to read it)"})
    episode: int = field(default=0, metadata={"help": "the episode's index in the dataset"})


def episode_actions(root: str | Path, episode: int) -> tuple[np.ndarray, np.ndarray | None, int]:
    """(actions float32 (n, d), observation.state (n, d) or None, fps) of one episode of a LeRobot v3.0 dataset
    (ours or LeRobot's: episodes may share data files)."""
    import pyarrow.parquet as pq

    root = Path(root)
    info = json.loads((root / "meta" / "info.json").read_text())
    total = int(info["total_episodes"])
    if not 0 <= episode < total:
        raise ValueError(f"{root} has episodes 0..{total - 1}, not {episode}")
    row = None
    for path in sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet")):
        table = pq.read_table(path, columns=["episode_index", "data/chunk_index", "data/file_index"]).to_pylist()
        row = next((r for r in table if r["episode_index"] == episode), None)
        if row is not None:
            break
    if row is None:
        raise ValueError(f"episode {episode} is not in {root}/meta/episodes")
    data_path = root / info["data_path"].format(chunk_index=row["data/chunk_index"], file_index=row["data/file_index"])
    columns = ["episode_index", "frame_index", "action"]
    has_state = "observation.state" in info["features"]
    if has_state:
        columns.append("observation.state")
    table = pq.read_table(data_path, columns=columns)
    ep = np.asarray(table.column("episode_index").to_numpy())
    order = np.argsort(np.asarray(table.column("frame_index").to_numpy())[ep == episode], kind="stable")

    def vectors(name: str) -> np.ndarray:
        values = table.column(name).to_pylist()
        arr = np.asarray([v for v, e in zip(values, ep, strict=True) if e == episode], dtype=np.float32)
        return arr[order]

    return vectors("action"), vectors("observation.state") if has_state else None, int(info["fps"])


@dataclass
class ReplayResult:
    actions: np.ndarray  # float32 (n, d) the recorded actions
    recorded_states: np.ndarray | None  # float32 (n, d) observation.state of the recording
    states: np.ndarray  # float32 (n, d) the follower's positions during the replay (read before each action)
    stats: LoopStats

    def max_state_error(self) -> np.ndarray:
        """Per joint, the largest |replayed state - recorded state| (NaN without recorded states)."""
        if self.recorded_states is None:
            return np.full(self.states.shape[1], np.nan)
        n = min(len(self.states), len(self.recorded_states))
        return np.abs(self.states[:n] - self.recorded_states[:n]).max(axis=0)


def replay_actions(safe: SafeArm, clock: Clock, actions: np.ndarray, fps: float) -> tuple[np.ndarray, LoopStats]:
    """Send ``actions`` one per tick at ``fps`` (stages ``follower_read``, ``write``). Returns the states read."""
    actions = np.asarray(actions, dtype=np.float32)
    states = np.full(actions.shape, np.nan, dtype=np.float32)
    i = 0

    def read(tick: Tick) -> None:
        states[i] = safe.check().positions

    def write(tick: Tick) -> None:
        nonlocal i
        safe.send_action(actions[i])
        i += 1

    try:
        stats = ControlLoop(clock, fps).run({"follower_read": read, "write": write}, ticks=len(actions))
    except FeetechError as exc:  # under a moving arm a bus failure is a safety stop (SafeArm: torque off)
        raise BusFailureError(f"the replay stopped: {exc}") from exc
    return states[:i], stats


def replay_episode(safe: SafeArm, clock: Clock, root: str | Path, episode: int) -> ReplayResult:
    actions, recorded, fps = episode_actions(root, episode)
    states, stats = replay_actions(safe, clock, actions, fps)
    return ReplayResult(actions, recorded, states, stats)
