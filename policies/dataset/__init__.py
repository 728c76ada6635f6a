"""Our own crash-safe LeRobotDataset v3.0 writer, checker and repairer (pyarrow, numpy and PyAV; no torch)."""

from .verify import RepairReport, VerifyReport, info, repair, verify
from .video import EncoderBehindError
from .writer import DatasetWriter

__all__ = ["DatasetWriter", "EncoderBehindError", "RepairReport", "VerifyReport", "info", "repair", "verify"]
