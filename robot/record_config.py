"""What a recording is: ``RecordConfig`` (the dataset to write and the episodes to record), validated on
construction. Plain data, kept apart from ``robot.record`` so that reading the options loads neither the dataset
writer nor PyAV/pyarrow. Its fields are `onboard record`'s ``--dataset.*`` options (``--resume`` and
``--status_file`` keep LeRobot's and our earlier spellings); the metadata is their help (``onboard.cli.options``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_REPO_ID = "local/dataset"  # a dataset named by its folder only (LeRobot's --dataset.repo_id)


@dataclass(frozen=True)
class RecordConfig:
    root: Path = field(metadata={"help": "the dataset folder (LeRobot v3.0)", "metavar": "DIR"})
    repo_id: str = field(default=DEFAULT_REPO_ID, metadata={"help": "the dataset's name (<user>/<name>)"})
    fps: int = field(default=30, metadata={"help": "frames per second, the teleop rate while recording"})
    num_episodes: int = field(default=50, metadata={"help": "episodes to record"})
    episode_time_s: float = field(default=60.0, metadata={"help": "seconds of each episode"})
    reset_time_s: float = field(
        default=60.0, metadata={"help": "seconds between episodes to put the scene back (teleoperated, not recorded)"}
    )
    single_task: str | None = field(
        default=None, metadata={"help": "the task string of every episode (sim: default each scene's instruction)"}
    )
    resume: bool = field(
        default=False,
        metadata={"flag": "--resume", "value": "optional", "help": "add episodes to the dataset in --dataset.root"},
    )
    capture_time: bool = field(
        default=False, metadata={"value": "required", "help": "also record each frame's capture time"}
    )
    vcodec: str = field(default="libsvtav1", metadata={"help": "video codec of the camera streams"})
    status_file: Path | None = field(
        default=None,
        metadata={
            "flag": "--status_file",
            "help": "append one JSON line per event (episode_start, episode_saved, ...)",
        },
    )

    def __post_init__(self) -> None:
        if int(self.fps) != self.fps or self.fps <= 0:
            raise ValueError(f"--dataset.fps must be a positive integer, got {self.fps!r}")
        if self.num_episodes < 0:
            raise ValueError(f"--dataset.num_episodes must be >= 0, got {self.num_episodes!r}")
        if not self.episode_time_s > 0:
            raise ValueError(f"--dataset.episode_time_s must be positive, got {self.episode_time_s!r}")
        if not self.reset_time_s >= 0:
            raise ValueError(f"--dataset.reset_time_s must be >= 0, got {self.reset_time_s!r}")
