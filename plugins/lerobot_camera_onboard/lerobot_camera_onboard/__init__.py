"""LeRobot camera plugin: the served twin's cameras as `--robot.cameras="{front: {type: onboard_sim, name: front}}"`.

LeRobot 0.4.4 imports every installed distribution named ``lerobot_camera_*`` at the start of its scripts
(``register_third_party_plugins``); importing this package registers the camera type "onboard_sim". LeRobot's camera
factory then finds ``OnboardSimCamera`` beside ``OnboardSimCameraConfig`` (``make_device_from_device_class``: the
config's class name without "Config", in ``onboard_sim``, the config module's name without "config_").
"""

from lerobot_camera_onboard.config_onboard_sim import OnboardSimCameraConfig
from lerobot_camera_onboard.onboard_sim import OnboardSimCamera

__all__ = ["OnboardSimCamera", "OnboardSimCameraConfig"]
