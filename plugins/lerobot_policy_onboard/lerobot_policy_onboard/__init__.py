"""LeRobot policy plugin: our small VLA as `lerobot-train --policy.type=onboard`.

LeRobot 0.4.4 imports every installed distribution named ``lerobot_policy_*`` at the start of its scripts
(``lerobot.utils.import_utils.register_third_party_plugins``); importing this package registers the config type
"onboard". LeRobot's factory then imports ``modeling_onboard`` (``OnboardPolicy``) and ``processor_onboard``
(``make_onboard_pre_post_processors``) by name when a run needs them, so this import stays light.
"""

import os
import sys


def _import_our_policies() -> None:
    """Import our ``policies`` package before LeRobot's can stand in for it.

    LeRobot 0.4.4's unitree_g1 robot module (imported by lerobot-record and lerobot-teleoperate) appends LeRobot's own
    folder to ``sys.path``. In an editable install of onboard (scripts/setup.sh: ``pip install -e``), whose import
    hook comes after ``sys.path``, ``import policies`` then finds ``lerobot/policies``. That folder is hidden while
    our package is imported; its submodules are found through the package itself afterwards.
    """
    import lerobot

    folder = os.path.dirname(os.path.abspath(lerobot.__file__))
    loaded = sys.modules.get("policies")
    if loaded is not None:
        if os.path.abspath(getattr(loaded, "__file__", None) or "").startswith(folder + os.sep):
            raise ImportError(
                "`policies` was imported from LeRobot's folder (on sys.path through lerobot.robots.unitree_g1), "
                "not onboard's: import lerobot_policy_onboard before it"
            )
        return
    hidden = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) == folder]
    for entry in hidden:
        sys.path.remove(entry)
    try:
        import policies  # noqa: F401
    finally:
        sys.path.extend(hidden)


_import_our_policies()

from lerobot_policy_onboard.configuration_onboard import OnboardConfig  # noqa: E402

__all__ = ["OnboardConfig"]
