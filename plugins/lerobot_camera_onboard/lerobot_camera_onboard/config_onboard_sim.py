"""``OnboardSimCameraConfig`` (type "onboard_sim"): a camera that `onboard sim serve` publishes in shared memory.

    --robot.cameras="{front: {type: onboard_sim, name: front}, wrist: {type: onboard_sim, name: wrist}}"

``name`` is the published name `onboard sim serve` prints (``front``, ``wrist``, or ``PREFIX.front`` with
``--cameras.prefix``). ``width``, ``height`` and ``fps`` may be left out: LeRobot needs them before it connects (a
robot's ``observation_features``, hence the dataset's features, are built from the config), so they are then read
from the publisher when the config is made, which needs the twin served by then; given, they must match what is
served (checked on connect).
"""

from __future__ import annotations

from dataclasses import dataclass

from lerobot.cameras.configs import CameraConfig, ColorMode

from hardware.camera import CameraError
from hardware.shm_camera import ShmCamera

TYPE = "onboard_sim"


@CameraConfig.register_subclass(TYPE)
@dataclass
class OnboardSimCameraConfig(CameraConfig):
    name: str = "front"  # the published name (`onboard sim serve` prints it)
    color_mode: ColorMode = ColorMode.RGB
    connect_timeout_s: float = 5.0  # how long connect() waits for a first frame

    def __post_init__(self) -> None:
        self.color_mode = ColorMode(self.color_mode)
        if self.connect_timeout_s <= 0:
            raise ValueError(f"connect_timeout_s must be > 0, got {self.connect_timeout_s}")
        if None in (self.width, self.height, self.fps):
            self._from_publisher()

    def _from_publisher(self) -> None:
        """Fill the missing width / height / fps with what the publisher serves."""
        camera = ShmCamera(self.name, connect_timeout_s=self.connect_timeout_s)
        try:
            camera.connect()
        except CameraError as exc:
            raise ValueError(
                f"{exc}. Or give the camera's width, height and fps: {{type: {TYPE}, name: {self.name}, "
                "width: 96, height: 96, fps: 30}"
            ) from None
        try:
            self.width = self.width or camera.width
            self.height = self.height or camera.height
            served = float(camera.fps)
            self.fps = self.fps or (int(served) if served.is_integer() else served)
        finally:
            camera.disconnect()
