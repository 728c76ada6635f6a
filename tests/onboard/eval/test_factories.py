"""`policy_and_size`: a policy trained on frames resized to its input is shown the simulated cameras at their recorded
size through the same resize (as `onboard run` shows it a real camera), not rendered at its input size."""

import numpy as np

from tests.conftest import require

torch = require("torch", "train")

from onboard.eval.factories import CAMERA_SIZE, policy_and_size  # noqa: E402
from policies.base import fake_observation  # noqa: E402
from policies.features import ResizedInputs, resize_image  # noqa: E402
from policies.vla.checkpoint import save_checkpoint  # noqa: E402
from policies.vla.config import VLAConfig  # noqa: E402
from policies.vla.model import VLA  # noqa: E402

STATS = {
    "observation.state": {"mean": np.full(6, 5.0), "std": np.full(6, 30.0)},
    "action": {"mean": np.full(6, 5.0), "std": np.full(6, 30.0)},
}


def _checkpoint(tmp_path, size: int):
    cfg = VLAConfig(image_size=size, conv_channels=(8, 8, 16, 16), d_model=32, n_heads=2, dropout=0.0)
    torch.manual_seed(0)
    save_checkpoint(tmp_path / f"px{size}", VLA(cfg, stats=STATS), cfg, STATS)
    return tmp_path / f"px{size}"


def test_a_policy_of_another_input_size_sees_the_recorded_cameras_resized(tmp_path):
    policy, size = policy_and_size("vla", _checkpoint(tmp_path, 64))
    assert size == CAMERA_SIZE == 96 and isinstance(policy, ResizedInputs) and policy.size == (64, 64)
    obs = fake_observation(image_size=(96, 96), state=np.full(6, 10.0))
    policy.reset(obs["task"])
    chunk = policy.infer(obs)
    inner = policy.policy
    inner.reset(obs["task"])
    small = {k: resize_image(v, (64, 64)) if k.startswith("observation.images.") else v for k, v in obs.items()}
    np.testing.assert_allclose(chunk.actions, inner.infer(small).actions, rtol=1e-5, atol=1e-4)
    assert policy.config is inner.config  # other attributes are the policy's


def test_a_policy_of_the_recorded_size_is_shown_the_cameras_as_they_are(tmp_path):
    policy, size = policy_and_size("vla", _checkpoint(tmp_path, 96))
    assert size == 96 and not isinstance(policy, ResizedInputs)
