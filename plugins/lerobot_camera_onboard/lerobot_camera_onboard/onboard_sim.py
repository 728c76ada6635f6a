"""``OnboardSimCamera``: LeRobot's ``Camera`` on our shared-memory camera reader (hardware/shm_camera.py).

The frames are rendered and published by another process (`onboard sim serve`), so there is no capture thread here:

    read_latest(max_age_ms)  the newest frame, at once (what LeRobot's SO follower reads every step);
                             TimeoutError when it is older than max_age_ms (the publisher stalled or exited)
    async_read(timeout_ms)   the newest frame not returned before, waiting for it (sleeping, never spinning);
                             TimeoutError when none comes in time
    read()                   the same as async_read with a long timeout

Frames are (height, width, 3) uint8, RGB (``color_mode: bgr`` flips them).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
from lerobot.cameras.camera import Camera
from lerobot.cameras.configs import ColorMode
from lerobot.utils.errors import DeviceAlreadyConnectedError, DeviceNotConnectedError

from hardware.camera import CameraError, Frame, StaleFrameError
from hardware.shm_camera import ShmCamera, served_cameras
from lerobot_camera_onboard.config_onboard_sim import TYPE, OnboardSimCameraConfig

logger = logging.getLogger(__name__)
READ_TIMEOUT_MS = 10_000


class OnboardSimCamera(Camera):
    def __init__(self, config: OnboardSimCameraConfig):
        super().__init__(config)
        self.config = config
        self._camera = ShmCamera(
            config.name,
            width=config.width,
            height=config.height,
            fps=config.fps,
            connect_timeout_s=config.connect_timeout_s,
        )
        self._returned = -1  # index of the last frame async_read returned

    def __str__(self) -> str:
        return f"{self.__class__.__name__}({self.config.name})"

    @property
    def is_connected(self) -> bool:
        return self._camera.is_connected

    @staticmethod
    def find_cameras() -> list[dict[str, Any]]:
        """The shared-memory cameras served now (by a living publisher)."""
        return [{"type": TYPE, "id": name, "name": name} for name in served_cameras()]

    def connect(self, warmup: bool = True) -> None:
        if self.is_connected:
            raise DeviceAlreadyConnectedError(f"{self} is already connected")
        try:
            self._camera.connect()  # waits for a first frame: the warm-up
        except CameraError as exc:
            raise ConnectionError(str(exc)) from None
        self._returned = -1
        logger.info("%s connected: %dx%d @ %g fps", self, self._camera.width, self._camera.height, self._camera.fps)

    def _image(self, frame: Frame) -> np.ndarray:
        rgb = frame.rgb  # (H, W, 3) uint8, a copy of the shared slot
        return np.ascontiguousarray(rgb[..., ::-1]) if self.config.color_mode == ColorMode.BGR else rgb

    def read_latest(self, max_age_ms: int = 500) -> np.ndarray:
        if not self.is_connected:
            raise DeviceNotConnectedError(f"{self} is not connected")
        try:
            frame = self._camera.read_latest(max_age_s=max_age_ms / 1000.0)
        except StaleFrameError as exc:
            raise TimeoutError(str(exc)) from None
        return self._image(frame)

    def async_read(self, timeout_ms: float = 200) -> np.ndarray:
        if not self.is_connected:
            raise DeviceNotConnectedError(f"{self} is not connected")
        deadline = time.monotonic() + timeout_ms / 1000.0
        pause = 0.25 / max(float(self._camera.fps), 1.0)
        while True:
            try:
                frame = self._camera.read_latest()
            except StaleFrameError:
                frame = None
            if frame is not None and frame.index != self._returned:
                self._returned = frame.index
                return self._image(frame)
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{self}: no new frame in {timeout_ms:g} ms")
            time.sleep(pause)

    def read(self, color_mode: ColorMode | None = None) -> np.ndarray:
        if color_mode is not None:
            logger.warning("%s: read(color_mode) is ignored; set color_mode in the camera's config", self)
        return self.async_read(timeout_ms=READ_TIMEOUT_MS)

    def disconnect(self) -> None:
        if not self.is_connected:
            raise DeviceNotConnectedError(f"{self} is not connected")
        self._camera.disconnect()
