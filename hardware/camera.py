"""Cameras: the seam between a real camera and a rendered one (DESIGN.md, seam 2). The interface lives here, beside
the OpenCV driver, so that hardware/ needs nothing of ours; robot/ and sim/ import it from here.

``connect()`` / ``read_latest(max_age_s) -> Frame`` / ``disconnect()``. A frame carries its capture time on the
runtime's clock (``Clock.now()``), so staleness is measured the same way on hardware and in simulation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


class CameraError(RuntimeError):
    """A camera is missing, disconnected, or its frames are too old."""


class StaleFrameError(CameraError):
    pass


@dataclass(frozen=True)
class Frame:
    rgb: np.ndarray  # uint8, (height, width, 3), RGB
    t_capture: float  # seconds, on the runtime's clock
    index: int = 0  # frame counter since connect


@runtime_checkable
class Camera(Protocol):
    name: str
    height: int
    width: int
    fps: float

    def connect(self) -> None: ...

    def read_latest(self, max_age_s: float | None = None) -> Frame:
        """The newest frame; raises StaleFrameError if it is older than ``max_age_s``."""

    def disconnect(self) -> None: ...
