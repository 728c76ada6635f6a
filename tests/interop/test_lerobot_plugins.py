"""LeRobot's own `lerobot-train` trains our VLA through the policy plugin (plugins/lerobot_policy_onboard), on a
dataset `onboard record` records from the simulated rig, decoded by LeRobot's default video backend (torchcodec, with
the system's FFmpeg libraries), in one process and in two (LeRobot's accelerate/DDP path). Its checkpoint runs in
`onboard eval`, exports with `onboard export` to an ONNX bundle that computes what the torch model computes, and
gives the same actions through LeRobot's classes (the plugin's policy and processors) as through our torch backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import require
from tests.interop.served_twin import served_twin

pytestmark = pytest.mark.interop

ROOT = Path(__file__).resolve().parents[2]
REPO_ID = "local/onboard_sim"
IMAGE = 32  # px: the recorded cameras and the model's input (no resize)
CHUNK = 5
SMALL = [
    f"--policy.image_size={IMAGE}",
    "--policy.conv_channels=[8,16]",
    "--policy.d_model=32",
    "--policy.n_heads=2",
    "--policy.n_encoder_layers=1",
    "--policy.n_decoder_layers=1",
    f"--policy.chunk_size={CHUNK}",
]
CAMERAS = ("observation.images.front", "observation.images.wrist")


def lerobot_tool(name: str) -> str:
    require(f"lerobot.scripts.{name.replace('-', '_')}", "interop")
    require("lerobot_policy_onboard", "dev")  # plugins/, installed by scripts/setup.sh dev
    return str(Path(sys.executable).with_name(name))


def run(cmd: list, cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, f"{cmd[:3]} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


def onboard(*argv) -> list:
    return [sys.executable, "-m", "onboard", *argv]


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("lerobot_home")
    return {**os.environ, "HF_LEROBOT_HOME": str(home), "HF_HUB_OFFLINE": "1", "MUJOCO_GL": "egl"}


@pytest.fixture(scope="module")
def dataset(env, tmp_path_factory) -> Path:
    """Two 2-second episodes recorded by `onboard record` from the simulated rig (scripted leader), 32 px cameras."""
    require("mujoco", "sim")
    base = tmp_path_factory.mktemp("recorded")
    cal, root = base / "cal", base / "ds"
    follower = ("--robot.type=so101_follower", "--robot.port=sim", "--robot.id=f", f"--robot.calibration_dir={cal}")
    run(onboard("calibrate", *follower), base, env)
    leader = ("--teleop.type=so101_leader", "--teleop.port=sim", "--teleop.id=l", f"--teleop.calibration_dir={cal}")
    run(onboard("calibrate", *leader), base, env)
    run(
        onboard(
            "record",
            *follower,
            *leader,
            *(f"--dataset.root={root}", f"--dataset.repo_id={REPO_ID}", f"--sim.image_size={IMAGE}"),
            *("--dataset.num_episodes=2", "--dataset.episode_time_s=2", "--dataset.reset_time_s=0"),
        ),
        base,
        env,
    )
    return root


@pytest.fixture(scope="module")
def trained(dataset, env, tmp_path_factory) -> tuple[Path, str]:
    """`lerobot-train --policy.type=onboard` for 20 steps on the recorded dataset: (its output folder, its log)."""
    out = tmp_path_factory.mktemp("lerobot_train") / "run"
    cmd = [
        lerobot_tool("lerobot-train"),
        "--policy.type=onboard",
        f"--dataset.repo_id={REPO_ID}",
        f"--dataset.root={dataset}",
        *("--steps=20", "--batch_size=4", "--save_freq=20", "--log_freq=5", "--num_workers=0"),
        *("--policy.device=cpu", "--policy.push_to_hub=false", "--wandb.enable=false", f"--output_dir={out}"),
        *SMALL,
    ]
    proc = run(cmd, out.parent, env)
    return out, proc.stdout + proc.stderr


def test_the_plugin_config_carries_the_vla_settings_and_refuses_what_the_model_cannot_do():
    require("lerobot.configs.policies", "interop")
    OnboardConfig = require("lerobot_policy_onboard", "dev").OnboardConfig
    from policies.vla.config import VLAConfig
    from policies.vla.lerobot_format import model_fields

    config = OnboardConfig(device="cpu")
    assert config.type == "onboard" and config.n_action_steps == config.chunk_size
    assert {name: getattr(config, name) for name in model_fields()} == {
        name: getattr(VLAConfig(), name) for name in model_fields()
    }
    with pytest.raises(ValueError, match="IDENTITY"):  # the model normalises itself
        OnboardConfig(device="cpu", normalization_mapping={"STATE": "MEAN_STD"})
    with pytest.raises(ValueError, match="n_action_steps"):
        OnboardConfig(device="cpu", chunk_size=5, n_action_steps=6)
    with pytest.raises(ValueError, match="image_size 30 must be divisible"):  # VLAConfig's own check
        OnboardConfig(device="cpu", image_size=30)


@pytest.mark.slow
def test_lerobot_decodes_our_dataset_with_its_default_video_backend(dataset):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset
    from lerobot.datasets.video_utils import get_safe_default_codec

    from policies.dataset.reader import EpisodeReader

    ds = LeRobotDataset(REPO_ID, root=dataset)  # no video_backend: LeRobot's default
    assert get_safe_default_codec() == "torchcodec" and ds.video_backend == "torchcodec"
    reader = EpisodeReader(dataset)
    assert ds.num_episodes == reader.num_episodes == 2 and ds.num_frames == reader.num_frames
    n0 = reader.episode(0).length
    for key in CAMERAS:
        ours = [reader.frames(0, key)[0], reader.frames(0, key)[-1], reader.frames(1, key)[0]]
        theirs = [ds[i][key] for i in (0, n0 - 1, n0)]  # (3, H, W) float in [0, 1]
        for mine, item in zip(ours, theirs):
            assert tuple(item.shape) == (3, IMAGE, IMAGE)
            decoded = item.permute(1, 2, 0).numpy() * 255.0
            assert np.abs(decoded - mine.astype(np.float32)).mean() < 2.0  # the same AV1 frames, another decoder


@pytest.mark.slow
def test_lerobot_train_trains_our_vla_on_our_dataset(trained, dataset):
    out, log = trained
    assert "step:20" in log and "'video_backend': 'torchcodec'" in log, log[-3000:]
    checkpoint = out / "checkpoints" / "last" / "pretrained_model"
    assert (out / "checkpoints" / "last").resolve().name == "000020"
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["type"] == "onboard" and config["chunk_size"] == CHUNK and config["image_size"] == IMAGE
    assert [k for k in config["input_features"] if k.startswith("observation.images.")] == list(CAMERAS)
    for name in ("model.safetensors", "policy_preprocessor.json", "policy_postprocessor.json", "train_config.json"):
        assert (checkpoint / name).is_file(), name
    # the model normalises with the dataset's statistics, as `onboard train` does: they are in its weights
    from policies.vla.lerobot_format import stats_from_weights

    held = stats_from_weights(checkpoint / "model.safetensors")
    stats = json.loads((dataset / "meta" / "stats.json").read_text())
    for key in ("observation.state", "action"):
        for stat in ("mean", "std"):
            np.testing.assert_allclose(held[key][stat], stats[key][stat], rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_lerobot_train_in_two_processes_through_accelerate(dataset, env, tmp_path):
    """LeRobot's distributed path (accelerate's DDP, what `accelerate launch --multi_gpu` starts on GPUs) in two CPU
    processes (torchrun, gloo): the policy trains wrapped in DDP and its checkpoint loads as ours."""
    out = tmp_path / "run"
    cmd = [
        Path(sys.executable).with_name("torchrun"),
        *("--standalone", "--nproc_per_node=2"),
        lerobot_tool("lerobot-train"),
        *("--policy.type=onboard", f"--dataset.repo_id={REPO_ID}", f"--dataset.root={dataset}"),
        *("--steps=10", "--batch_size=4", "--save_freq=10", "--log_freq=5", "--num_workers=0"),
        *("--policy.device=cpu", "--policy.push_to_hub=false", "--wandb.enable=false", f"--output_dir={out}"),
        *SMALL,
    ]
    proc = run(cmd, tmp_path, env)
    assert "Effective batch size: 4 x 2 = 8" in proc.stdout + proc.stderr

    from policies.vla.checkpoint import load_checkpoint

    _model, config, stats = load_checkpoint(out)  # the run's folder: checkpoints/last/pretrained_model
    assert config.cameras == ("front", "wrist") and config.chunk_size == CHUNK
    assert set(stats) == {"observation.state", "action"}


@pytest.mark.slow
def test_the_checkpoint_runs_in_onboard_eval(trained, env, tmp_path):
    out, _ = trained
    report_dir = tmp_path / "eval"
    cmd = onboard("eval", f"--policy.path={out}", "--task=touch", "--n=2", f"--output_dir={report_dir}")
    run(cmd, tmp_path, env)
    report = json.loads((report_dir / "report.json").read_text())
    assert report["config"]["policy_type"] == "vla"  # our torch backend reads the LeRobot checkpoint
    assert len(report["episodes"]) == 2
    for episode in report["episodes"]:
        assert episode["ticks"] > 0 and episode["runner_stats"]["chunks"] > 0
        assert episode["runner_stats"]["failures"] == 0


@pytest.mark.slow
def test_the_checkpoint_exports_to_a_bundle_that_computes_the_same_actions(trained, env, tmp_path):
    ort = require("onnxruntime", "onnx")
    out, _ = trained
    checkpoint = out / "checkpoints" / "000020" / "pretrained_model"
    bundle = tmp_path / "bundle"
    run(onboard("export", "--checkpoint", checkpoint, "--output_dir", bundle), tmp_path, env)
    manifest = json.loads((bundle / "bundle.json").read_text())
    assert manifest["config"]["cameras"] == ["front", "wrist"] and manifest["config"]["chunk_size"] == CHUNK

    from policies.vla.checkpoint import load_checkpoint

    model, _config, _stats = load_checkpoint(checkpoint)
    rng = np.random.default_rng(0)
    state = rng.normal(0, 20, (1, 6)).astype(np.float32)
    images = [rng.integers(0, 256, (1, 3, IMAGE, IMAGE), dtype=np.uint8) for _ in CAMERAS]
    embedding = rng.normal(0, 1, (1, 384)).astype(np.float32)
    embedding /= np.linalg.norm(embedding)
    session = ort.InferenceSession(str(bundle / "vla.onnx"), providers=["CPUExecutionProvider"])
    feeds = {"observation.state": state, **dict(zip(CAMERAS, images)), "task_embedding": embedding}
    exported = session.run(["action"], feeds)[0][0]  # (T, 6)
    torch_chunk = model.predict_chunk(
        {"observation.state": state[0], **{k: img[0] for k, img in zip(CAMERAS, images)}, "task_embedding": embedding}
    )
    assert exported.shape == (CHUNK, 6)
    np.testing.assert_allclose(exported, torch_chunk, atol=1e-3)


@pytest.mark.slow
def test_lerobots_classes_and_our_backend_give_the_same_actions(trained):
    """The plugin as LeRobot loads it (OnboardPolicy.from_pretrained + the saved processor pipelines, behind our
    LeRobotPolicy) and our torch backend reading the same folder (policies.vla.lerobot_format) agree."""
    from policies.lerobot_policy import LeRobotPolicy
    from policies.vla.policy import VLAPolicy

    out, _ = trained
    checkpoint = out / "checkpoints" / "last" / "pretrained_model"
    theirs, ours = LeRobotPolicy(checkpoint), VLAPolicy(checkpoint)
    assert type(theirs.policy).__name__ == "OnboardPolicy" and theirs.cameras == ("front", "wrist")
    rng = np.random.default_rng(1)
    chunks = []
    for task in ("touch the red cube", "pick up the blue cube"):
        observation = {
            "observation.state": rng.normal(0, 20, 6).astype(np.float32),
            **{k: rng.integers(0, 256, (IMAGE, IMAGE, 3), dtype=np.uint8) for k in CAMERAS},
            "task": task,
        }
        theirs.reset(task)
        ours.reset(task)
        a, b = theirs.infer(observation).actions, ours.infer(observation).actions
        assert a.shape == b.shape == (CHUNK, 6)
        np.testing.assert_allclose(a, b, atol=1e-4)
        chunks.append(b)
    assert np.abs(chunks[0] - chunks[1]).max() > 1e-2  # another observation and task: other actions


@pytest.mark.slow
def test_lerobot_record_runs_the_checkpoint_on_the_served_twin(trained, env, tmp_path):
    """`lerobot-record --policy.path`: LeRobot's own loop runs the plugin policy (its processors, select_action) on
    the served twin, seeing it through the camera plugin (96 px frames for a 32 px model: the model resizes)."""
    require("lerobot_camera_onboard", "dev")
    require("mujoco", "sim")
    out, _ = trained
    root = tmp_path / "eval_dataset"
    with served_twin(tmp_path, "--sim.task=touch", "--sim.color=red") as twin:
        cmd = [
            lerobot_tool("lerobot-record"),
            *twin.robot(),
            f"--policy.path={out / 'checkpoints' / 'last' / 'pretrained_model'}",
            *("--dataset.repo_id=local/eval_onboard", f"--dataset.root={root}"),
            "--dataset.single_task=touch the red cube",
            *("--dataset.num_episodes=1", "--dataset.episode_time_s=2", "--dataset.reset_time_s=0"),
            *("--dataset.push_to_hub=false", "--play_sounds=false", "--display_data=false"),
        ]
        run(cmd, tmp_path, env)

    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("local/eval_onboard", root=root)
    assert ds.meta.total_episodes == 1 and len(ds) >= 5
    assert {"observation.images.front", "observation.images.wrist"} <= set(ds.meta.features)
    actions = np.stack(ds.hf_dataset.with_format("numpy")["action"])  # what the policy chose, step by step
    assert actions.shape[1] == 6 and np.isfinite(actions).all()
