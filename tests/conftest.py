import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MUJOCO_GL", "egl")


def require(module: str, extra: str):
    """Import an optional dependency for a test; skip without it, or fail when CI demands it
    (ONBOARD_REQUIRE_INTEROP=1, set by scripts/test.sh)."""
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as exc:
        if os.environ.get("ONBOARD_REQUIRE_INTEROP") == "1":
            pytest.fail(f"{module} is required here (install onboard[{extra}]): {exc}")
        pytest.skip(f"{module} not installed (pip install onboard[{extra}])")
