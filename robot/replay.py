"""Replay a recorded episode: its actions sent to the follower at the dataset's fps, through ``SafeArm``
(LeRobot's ``lerobot-replay``: the episode's ``action`` column, paced at the dataset's fps, an observation read each
step).

    result = replay_episode(safe, clock, root, episode=0)
    result.states        # float32 (n, 6): the follower's positions read at each step, before the step's action
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from robot.clock import Clock
from robot.loop import ControlLoop, LoopStats, Tick
from robot.record import episode_actions
from robot.safety import SafeArm


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

    stats = ControlLoop(clock, fps).run({"follower_read": read, "write": write}, ticks=len(actions))
    return states[:i], stats


def replay_episode(safe: SafeArm, clock: Clock, root: str | Path, episode: int) -> ReplayResult:
    actions, recorded, fps = episode_actions(root, episode)
    states, stats = replay_actions(safe, clock, actions, fps)
    return ReplayResult(actions, recorded, states, stats)
