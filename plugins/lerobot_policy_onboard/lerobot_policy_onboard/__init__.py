"""LeRobot policy plugin: our small VLA as `lerobot-train --policy.type=onboard`.

LeRobot 0.4.4 imports every installed distribution named ``lerobot_policy_*`` at the start of its scripts
(``lerobot.utils.import_utils.register_third_party_plugins``); importing this package registers the config type
"onboard". LeRobot's factory then imports ``modeling_onboard`` (``OnboardPolicy``) and ``processor_onboard``
(``make_onboard_pre_post_processors``) by name when a run needs them, so this import stays light.
"""

from lerobot_policy_onboard.configuration_onboard import OnboardConfig

__all__ = ["OnboardConfig"]
