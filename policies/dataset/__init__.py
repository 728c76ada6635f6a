"""Our own crash-safe LeRobotDataset v3.0 writer, checker, repairer and reader (pyarrow, numpy and PyAV; no torch)."""

from policies.dataset.reader import DatasetReadError, Episode, EpisodeReader
from policies.dataset.repair import RepairReport, repair
from policies.dataset.verify import VerifyReport, info, verify
from policies.dataset.video import EncoderBehindError
from policies.dataset.writer import DatasetWriter

__all__ = [
    "DatasetReadError",
    "DatasetWriter",
    "EncoderBehindError",
    "Episode",
    "EpisodeReader",
    "RepairReport",
    "VerifyReport",
    "info",
    "repair",
    "verify",
]
