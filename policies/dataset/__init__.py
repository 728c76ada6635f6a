"""Our own crash-safe LeRobotDataset v3.0 writer, checker, repairer and reader (pyarrow, numpy and PyAV; no torch)."""

from .reader import DatasetReadError, Episode, EpisodeReader
from .verify import RepairReport, VerifyReport, info, repair, verify
from .video import EncoderBehindError
from .writer import DatasetWriter

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
