"""LeRobot checkpoints behind the policy seam: a tiny ACT trained for a few steps with LeRobot's own classes on a
dataset written by our pipeline, saved with its processors, loaded by ``LeRobotPolicy`` and run in simulation (and
through `onboard eval`); a tiny Diffusion policy through the same class; clear errors for what is not a checkpoint."""

from __future__ import annotations

import json
import os
import shutil
from itertools import cycle
from pathlib import Path

import numpy as np
import pytest

from policies.base import ActionChunk, Policy, fake_observation
from policies.dataset import DatasetWriter
from tests.conftest import require

FPS = 30
SIZE = 96
CHUNK = 10
NAMES = [f"{j}.pos" for j in ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")]
# the dataset's actions sit around this pose (LeRobot SO-101 units): far from 0 in every joint but the pan and the roll,
# so an output that skipped the un-normalisation (~N(0, 1)) is told apart from one in the dataset's range
BASE = np.array([0.0, -20.0, 25.0, 40.0, 0.0, 30.0], np.float32)


def make_dataset(root: Path, episodes: int = 2, frames: int = 20) -> Path:
    cam = {"dtype": "video", "shape": (SIZE, SIZE, 3), "names": ["height", "width", "channels"]}
    features = {
        "observation.state": {"dtype": "float32", "shape": (6,), "names": NAMES},
        "action": {"dtype": "float32", "shape": (6,), "names": NAMES},
        "observation.images.front": cam,
        "observation.images.wrist": cam,
    }
    rng = np.random.default_rng(0)
    with DatasetWriter.create(root, fps=FPS, features=features, robot_type="so_follower") as w:
        for ep in range(episodes):
            for k in range(frames):
                state = BASE + 0.5 * k * np.array([1, 1, -1, 1, 0, 1], np.float32)
                w.add_frame(
                    {
                        "observation.state": state,
                        "action": state + 0.5,
                        "observation.images.front": rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8),
                        "observation.images.wrist": np.full((SIZE, SIZE, 3), 8 * k, np.uint8),
                    }
                )
            w.save_episode(["touch the red cube", "touch the blue cube"][ep % 2])
    return root


def _features(root: Path):
    from lerobot.configs.types import FeatureType
    from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata
    from lerobot.datasets.utils import dataset_to_policy_features

    meta = LeRobotDatasetMetadata("local/test", root=root)
    features = dataset_to_policy_features(meta.features)
    outputs = {k: f for k, f in features.items() if f.type is FeatureType.ACTION}
    inputs = {k: f for k, f in features.items() if k not in outputs}
    return meta, inputs, outputs


def train_tiny_act(root: Path, out: Path, steps: int = 5) -> Path:
    """A small ACT trained for ``steps`` optimiser steps with LeRobot's classes (dataset, policy, processors), saved the
    way lerobot-train saves a ``pretrained_model/``."""
    import torch
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from lerobot.policies.act.configuration_act import ACTConfig
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.factory import make_pre_post_processors

    torch.manual_seed(0)
    meta, inputs, outputs = _features(root)
    cfg = ACTConfig(
        input_features=inputs,
        output_features=outputs,
        device="cpu",
        chunk_size=CHUNK,
        n_action_steps=CHUNK,
        pretrained_backbone_weights=None,  # no download: the backbone is trained from scratch here
        dim_model=32,
        n_heads=2,
        dim_feedforward=64,
        n_encoder_layers=1,
        n_decoder_layers=1,
        latent_dim=8,
    )
    delta = {"action": [i / meta.fps for i in range(CHUNK)]}
    dataset = LeRobotDataset("local/test", root=root, delta_timestamps=delta, video_backend="pyav")
    policy = ACTPolicy(cfg)
    pre, post = make_pre_post_processors(cfg, dataset_stats=dataset.meta.stats)
    loader = torch.utils.data.DataLoader(dataset, batch_size=4, shuffle=True, num_workers=0)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-3)
    policy.train()
    losses = []
    for _, batch in zip(range(steps), cycle(loader), strict=False):
        loss, _ = policy.forward(pre(batch))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(np.isfinite(losses))
    policy.save_pretrained(out)
    pre.save_pretrained(out)
    post.save_pretrained(out)
    return out


def save_tiny_diffusion(root: Path, out: Path) -> Path:
    """A small Diffusion policy with random weights and the dataset's statistics in its processors."""
    import torch
    from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig
    from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy
    from lerobot.policies.factory import make_pre_post_processors

    torch.manual_seed(0)
    meta, inputs, outputs = _features(root)
    cfg = DiffusionConfig(
        input_features=inputs,
        output_features=outputs,
        device="cpu",
        n_obs_steps=2,
        horizon=8,
        n_action_steps=4,
        crop_shape=None,
        pretrained_backbone_weights=None,
        spatial_softmax_num_keypoints=8,
        down_dims=(16, 32),
        kernel_size=3,
        n_groups=4,
        diffusion_step_embed_dim=16,
        num_train_timesteps=10,
        num_inference_steps=3,
    )
    policy = DiffusionPolicy(cfg)
    pre, post = make_pre_post_processors(cfg, dataset_stats=meta.stats)
    policy.save_pretrained(out)
    pre.save_pretrained(out)
    post.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def lerobot_files(tmp_path_factory) -> dict[str, Path]:
    require("lerobot.policies.factory", "interop")
    import torch

    torch.set_num_threads(max(1, min(2, int(os.environ.get("OMP_NUM_THREADS", "2")))))
    tmp = tmp_path_factory.mktemp("lerobot")
    data = make_dataset(tmp / "ds")
    return {"data": data, "act": train_tiny_act(data, tmp / "act")}


def test_trained_act_runs_behind_the_seam(lerobot_files):
    from policies.lerobot_policy import LeRobotPolicy

    ckpt = lerobot_files["act"]
    assert {"config.json", "model.safetensors", "policy_preprocessor.json", "policy_postprocessor.json"} <= {
        p.name for p in ckpt.iterdir()
    }
    policy = LeRobotPolicy(ckpt)
    assert isinstance(policy, Policy)
    assert policy.type == "act" and policy.cameras == ("front", "wrist") and policy.image_size == (SIZE, SIZE)
    assert policy.chunk_size == CHUNK
    policy.reset("touch the red cube")
    obs = fake_observation(task="touch the red cube", state=BASE, image_size=(SIZE, SIZE))
    obs["t_capture"] = 12.5
    chunk = policy.infer(obs)
    assert isinstance(chunk, ActionChunk) and chunk.t_obs == 12.5
    assert chunk.actions.shape == (CHUNK, 6) and chunk.actions.dtype == np.float32 and chunk.finite
    # un-normalised by the postprocessor: in the dataset's range, not ~N(0, 1)
    stats = json.loads((lerobot_files["data"] / "meta" / "stats.json").read_text())["action"]
    lo, hi = np.array(stats["min"]), np.array(stats["max"])
    span = hi - lo + 5.0
    assert np.all(chunk.actions > lo - 3 * span) and np.all(chunk.actions < hi + 3 * span)
    assert chunk.actions[:, 1].mean() < -8 and chunk.actions[:, 3].mean() > 20 and chunk.actions[:, 5].mean() > 15
    # a camera of another size is resized to the policy's input shape
    small = fake_observation(task="touch the red cube", state=BASE, image_size=(48, 64))
    assert policy.infer(small).actions.shape == (CHUNK, 6)
    with pytest.raises(KeyError, match="wrist"):
        policy.infer({k: v for k, v in obs.items() if k != "observation.images.wrist"})


def test_onboard_eval_drives_the_simulated_arm_with_a_lerobot_checkpoint(lerobot_files, tmp_path):
    """One simulated episode of `onboard eval` (SO101Env with the policy's cameras, the async runner,
    ``run_episode_with_runner``): the untrained ACT's chunks drive the arm for the whole episode without a fault;
    success is not expected."""
    from onboard.cli import main
    from robot.policy_loader import detect_policy_type

    ckpt = str(lerobot_files["act"])
    assert detect_policy_type(ckpt) == "lerobot"
    out = tmp_path / "eval"
    argv = ["eval", "--policy.type", "lerobot", "--policy.path", ckpt, "--n", "1", "--task", "touch"]
    assert main([*argv, "--output_dir", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["policy_type"] == "lerobot" and report["summary"]["n"] == 1
    assert report["command"].startswith("onboard eval --policy.type=lerobot")
    (episode,) = report["episodes"]
    assert episode["fault"] is None and episode["ticks"] > 0
    assert episode["runner_stats"]["requests"] >= 2  # the runner refilled from the policy's chunks more than once


def test_diffusion_through_the_same_class(lerobot_files, tmp_path):
    from policies.lerobot_policy import LeRobotPolicy

    ckpt = save_tiny_diffusion(lerobot_files["data"], tmp_path / "diffusion")
    policy = LeRobotPolicy(ckpt)
    assert policy.type == "diffusion" and policy.n_obs_steps == 2 and policy.cameras == ("front", "wrist")
    policy.reset("touch the blue cube")
    for seed in range(3):  # the history fills up, then rolls
        chunk = policy.infer(
            fake_observation(task="touch the blue cube", state=BASE, image_size=(SIZE, SIZE), seed=seed)
        )
        assert chunk.actions.shape == (4, 6) and chunk.actions.dtype == np.float32 and chunk.finite
    assert len(policy.policy._queues["observation.state"]) == 2
    policy.reset("touch the blue cube")
    assert len(policy.policy._queues["observation.state"]) == 0


def test_clear_errors(lerobot_files, tmp_path):
    from policies.lerobot_policy import LeRobotPolicy, is_lerobot_checkpoint

    act = lerobot_files["act"]
    with pytest.raises(FileNotFoundError, match="not a folder"):
        LeRobotPolicy(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        LeRobotPolicy(empty)
    (empty / "config.json").write_text(json.dumps({"image_size": 32}))  # e.g. one of our own checkpoints
    with pytest.raises(ValueError, match='no policy "type"'):
        LeRobotPolicy(empty)
    assert not is_lerobot_checkpoint(empty) and is_lerobot_checkpoint(act)

    other = tmp_path / "tdmpc"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"type": "tdmpc"}))
    with pytest.raises(ValueError, match="'tdmpc' is not supported"):
        LeRobotPolicy(other)

    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        os.link(act / name, bare / name)
    with pytest.raises(
        FileNotFoundError, match=r"policy_preprocessor\.json / policy_postprocessor\.json.*save_pretrained"
    ):
        LeRobotPolicy(bare)

    smolvla = tmp_path / "smolvla"
    shutil.copytree(bare, smolvla, copy_function=os.link)
    for name in ("policy_preprocessor.json", "policy_postprocessor.json"):
        (smolvla / name).write_text("{}")
    cfg = {"type": "smolvla", "vlm_model_name": "HuggingFaceTB/SmolVLM2-500M-Video-Instruct"}
    (smolvla / "config.json").unlink()
    (smolvla / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(FileNotFoundError, match="not a local folder"):
        LeRobotPolicy(smolvla)


def test_import_policies_stays_light():
    import subprocess
    import sys

    code = "import sys, policies.lerobot_policy; assert 'torch' not in sys.modules and 'lerobot' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
