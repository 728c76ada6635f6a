"""`onboard export`: a checkpoint -> an ONNX bundle; the bundle runs with torch absent and matches torch."""

import json
import subprocess
import sys
import textwrap

import numpy as np

from policies.train import TrainConfig, train
from robot.cli import main
from tests.policies.test_train import SMALL, make_dataset


def obs(seed=0):
    rng = np.random.default_rng(seed)
    return {
        "observation.state": rng.normal(0, 20, 6).astype(np.float32),
        "observation.images.front": rng.integers(0, 255, (32, 32, 3), dtype=np.uint8),
        "observation.images.wrist": rng.integers(0, 255, (32, 32, 3), dtype=np.uint8),
        "task": "pick up the red cube",
    }


def test_export_runs_without_torch_and_matches(tmp_path):
    from policies.vla.policy import VLAPolicy

    data = make_dataset(tmp_path / "ds", episodes=1, frames=10)
    cfg = TrainConfig(
        datasets=(str(data),), output_dir=str(tmp_path / "run"), steps=3, batch_size=2, warmup_steps=1, model=SMALL
    )
    ckpt = train(cfg, progress=False, log=lambda _: None)
    bundle = tmp_path / "bundle"
    assert main(["export", "--checkpoint", str(ckpt), "--output_dir", str(bundle)]) == 0
    assert json.loads((bundle / "bundle.json").read_text())["format"].startswith("onboard-vla-onnx")

    expected = VLAPolicy(ckpt).infer(obs()).actions
    np.save(tmp_path / "obs.npy", obs(), allow_pickle=True)
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["torch"] = None          # torch (and what needs it) cannot be imported in this process
        sys.modules["transformers"] = None
        import numpy as np
        from policies.onnx_policy import OnnxVLAPolicy
        obs = np.load({str(tmp_path / "obs.npy")!r}, allow_pickle=True).item()
        policy = OnnxVLAPolicy({str(bundle)!r})
        policy.reset(obs["task"])
        np.save({str(tmp_path / "onnx.npy")!r}, policy.infer(obs).actions)
        assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules if sys.modules[m] is not None)
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)
    got = np.load(tmp_path / "onnx.npy")
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, atol=1e-3)  # includes the ONNX sentence encoder vs the torch one
