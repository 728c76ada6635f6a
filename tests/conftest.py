import os

import pytest
from hypothesis import settings

pytest_plugins = ["tests.simarm"]  # sim_arm / make_arm: an emulated SO-101 with arbitrary horn offsets

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MUJOCO_GL", "egl")

# Property tests check behaviour, not speed: hypothesis' 200 ms per-example deadline fails them on a loaded 2-core
# machine (a training run or a second recorder beside the suite).
settings.register_profile("onboard", deadline=None)
settings.load_profile("onboard")


def require(module: str, extra: str):
    """Import an optional dependency for a test; skip without it, or fail when CI demands it
    (ONBOARD_REQUIRE_INTEROP=1, set by scripts/test.sh). Use it instead of ``pytest.importorskip``, in a test or at
    module level (``mujoco = require("mujoco", "sim")`` skips, or fails, the whole file)."""
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as exc:
        if os.environ.get("ONBOARD_REQUIRE_INTEROP") == "1":
            pytest.fail(f"{module} is required here (install onboard[{extra}]): {exc}")
        pytest.skip(f"{module} not installed (pip install onboard[{extra}])", allow_module_level=True)


@pytest.fixture(scope="session")
def random_bundle(tmp_path_factory):
    """An `onboard export` bundle (int8 text encoder included) of a randomly initialised default-config VLA, built
    once per session (~30 s); skipped without torch (the export needs onboard[train])."""
    require("torch", "train")
    require("onnxruntime", "onnx")
    import torch

    from policies.bundle import export_bundle
    from policies.vla.checkpoint import save_checkpoint
    from policies.vla.config import VLAConfig
    from policies.vla.model import VLA

    root = tmp_path_factory.mktemp("random_bundle")
    torch.manual_seed(0)
    config = VLAConfig()
    checkpoint = save_checkpoint(root / "checkpoint", VLA(config), config)
    return export_bundle(checkpoint, root / "bundle")


def default_signals() -> None:
    """``preexec_fn`` for a child that must stop on Ctrl-C: SIGINT and SIGQUIT back to their defaults. A suite
    started in the background of a non-interactive shell (`bash .ci/run &`) inherits them ignored, and so would
    every `onboard` process a test starts (Python then installs no KeyboardInterrupt handler)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)
