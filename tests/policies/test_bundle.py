"""`onboard export`: a checkpoint -> an ONNX bundle; the bundle runs with torch absent and matches torch."""

import json
import subprocess
import sys
import textwrap

import numpy as np

from onboard.cli import main
from policies.bundle import check_bundle
from policies.train import TrainConfig, train
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


# Measured 2026-11-29 (onnxruntime 1.32, all-MiniLM-L6-v2): per-channel int8 MatMul + Gather, cosine to the torch
# encoder 0.991-0.995 on these sentences (per-tensor weights: 0.955-0.976; Gather alone: 0.9996). Encoder 23.0 MB,
# bundle of the default-config VLA 30.4 MB (`du -sh`: 29M, MiB).
SENTENCES = [
    "pick up the red cube",
    "put the green cube in the box",
    "touch the blue cube",
    "grab the green block and lift it",
    "the red cube belongs in the tray, put it there",
    "go and touch the cube that is blue",
    "Could you please lift the red cube a little?",
    "open the gripper and move the arm to the left",
    "the quick brown fox jumps over the lazy dog",
    "reach for the blue cube",
]


def test_bundle_text_encoder_is_int8_and_close_to_torch(random_bundle):
    from policies.onnx_policy import OnnxVLAPolicy
    from policies.text import SentenceEncoder

    manifest = json.loads((random_bundle / "bundle.json").read_text())
    assert manifest["text_encoder"]["file"] == "text/text_encoder_int8.onnx"
    # every file it needs, with its size and sha256, as check_bundle verifies them on load
    assert sorted(manifest["files"]) == ["text/text_encoder_int8.onnx", "text/tokenizer.json", "vla.onnx"]
    assert check_bundle(random_bundle) == manifest
    assert "int8" in manifest["text_encoder"]["quantization"]
    assert sorted(p.name for p in (random_bundle / "text").iterdir()) == ["text_encoder_int8.onnx", "tokenizer.json"]
    size_mb = sum(f.stat().st_size for f in random_bundle.rglob("*") if f.is_file()) / 1e6
    assert size_mb < 32, size_mb  # fits in git; the fp32 encoder alone was 90 MB

    got = OnnxVLAPolicy(random_bundle).text.encode(SENTENCES)
    want = SentenceEncoder().encode(SENTENCES)
    cosine = (got * want).sum(axis=1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cosine.min() >= 0.99, dict(zip(SENTENCES, cosine.round(4)))


def test_bundle_without_text_encoder_entry_loads_fp32_file(random_bundle, tmp_path):
    """Bundles from before quantisation: text/text_encoder.onnx and no "text_encoder" entry in bundle.json."""
    import shutil

    from policies.onnx_policy import OnnxVLAPolicy

    old = tmp_path / "old"
    shutil.copytree(random_bundle, old)
    (old / "text" / "text_encoder_int8.onnx").rename(old / "text" / "text_encoder.onnx")  # stands in for the fp32 one
    manifest = json.loads((old / "bundle.json").read_text())
    del manifest["text_encoder"]
    del manifest["files"]  # older bundles record no files either
    (old / "bundle.json").write_text(json.dumps(manifest))
    policy = OnnxVLAPolicy(old)
    assert policy.text.model_path() == old / "text" / "text_encoder.onnx"
    assert policy.infer(obs() | _images(policy.image_size)).actions.shape[1] == 6


def _images(size):
    rng = np.random.default_rng(1)
    return {f"observation.images.{c}": rng.integers(0, 255, (size, size, 3), np.uint8) for c in ("front", "wrist")}
