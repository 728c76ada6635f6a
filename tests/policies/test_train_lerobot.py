"""Real data and LeRobot's training conventions: `onboard train` on a dataset LeRobot wrote (several episodes per
file, 640x480 cameras named ``top`` and ``side``) through ``--rename_map``, LeRobot's checkpoint layout and default
output folder, and the checkpoint run by `onboard eval` through ``checkpoints/last``; a dataset that does not fit is
one error line listing its cameras; every folder a user may name for a checkpoint loads the same policy."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import require

ROOT = Path(__file__).resolve().parents[2]
NAMES = [f"{j}.pos" for j in ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")]
COLORS = ("red", "green", "blue")
FRAMES = 8
RENAME = {"observation.images.top": "observation.images.front", "observation.images.side": "observation.images.wrist"}
SMALL = [
    *("--model.image_size", "32", "--model.conv_channels", "8", "16", "--model.d_model", "32", "--model.n_heads", "2"),
    *("--model.n_encoder_layers", "1", "--model.n_decoder_layers", "1", "--model.chunk_size", "5"),
]


def top(i: int) -> int:
    """The top camera's gray level in frame i of any episode."""
    return 20 * i


def side(ep: int) -> int:
    """The side camera's gray level throughout episode ep."""
    return 60 * ep + 30


@pytest.fixture(scope="module")
def lerobot_dataset(tmp_path_factory) -> Path:
    """Three 8-frame episodes written by LeRobot 0.4.4's own writer (one data, video and metadata file for all),
    640x480 cameras ``top`` and ``side``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    LeRobotDataset = require("lerobot.datasets.lerobot_dataset", "interop").LeRobotDataset
    cam = {"dtype": "video", "shape": (480, 640, 3), "names": ["height", "width", "channels"]}
    vec = {"dtype": "float32", "shape": (6,), "names": NAMES}
    features = {"observation.state": vec, "action": dict(vec), "observation.images.top": cam}
    features["observation.images.side"] = dict(cam)
    root = tmp_path_factory.mktemp("lerobot") / "so101_cams"
    ds = LeRobotDataset.create(
        repo_id="local/so101_cams", fps=30, features=features, root=root, robot_type="so_follower"
    )
    for ep in range(3):
        for i in range(FRAMES):
            ds.add_frame(
                {
                    "observation.state": np.full(6, 10 * ep + i, np.float32),
                    "action": np.full(6, -(10 * ep + i), np.float32),
                    "observation.images.top": np.full((480, 640, 3), top(i), np.uint8),
                    "observation.images.side": np.full((480, 640, 3), side(ep), np.uint8),
                    "task": f"touch the {COLORS[ep]} cube",
                }
            )
        ds.save_episode()
    ds.finalize()
    assert len(list((root / "data").rglob("*.parquet"))) == 1  # several episodes per file, as LeRobot writes them
    return root


def onboard(*argv, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "onboard.cli", *[str(a) for a in argv]]
    return subprocess.run(cmd, cwd=cwd or ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def run(lerobot_dataset, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """`onboard train` as LeRobot's users spell it, with no --output_dir (LeRobot's default folder under the cwd)."""
    require("torch", "train")
    cwd = tmp_path_factory.mktemp("cwd")
    done = onboard(
        "train",
        f"--dataset.root={lerobot_dataset}",
        "--dataset.repo_id=local/so101_cams",
        f"--rename_map={json.dumps(RENAME)}",
        *("--steps", "4", "--batch_size", "2", "--save_freq", "2", "--log_freq", "1", "--policy.device=cpu"),
        *("--warmup_steps", "1", "--job_name", "cams", *SMALL),
        cwd=cwd,
    )
    assert done.returncode == 0, done.stderr
    runs = list((cwd / "outputs" / "train").glob("*/*"))
    assert len(runs) == 1, runs
    return runs[0], done


def test_lerobot_written_640x480_dataset_trains_through_the_rename_map(run):
    out, done = run
    # LeRobot's default output folder: outputs/train/<YYYY-MM-DD>/<HH-MM-SS>_<job_name>
    assert re.fullmatch(r"\d{4}-\d\d-\d\d/\d\d-\d\d-\d\d_cams", f"{out.parent.name}/{out.name}"), out
    front, wrist = "observation.images.front 32x32", "observation.images.wrist 32x32"
    assert f"observation.images.top 640x480 -> {front}, observation.images.side 640x480 -> {wrist}" in done.stdout
    # LeRobot's layout: a step folder per save, each with pretrained_model/ and training_state/, `last` a link
    checkpoints = out / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["000002", "000004", "last"]
    assert (checkpoints / "last").is_symlink() and os.readlink(checkpoints / "last") == "000004"
    for step in ("000002", "000004"):
        policy = checkpoints / step / "pretrained_model"
        assert sorted(p.name for p in policy.iterdir()) == [
            "config.json",
            "model.safetensors",
            "stats.json",
            "train_config.json",
        ]
        assert json.loads((checkpoints / step / "training_state" / "training_step.json").read_text()) == {
            "step": int(step)
        }
    recorded = json.loads((checkpoints / "last" / "pretrained_model" / "train_config.json").read_text())
    assert json.loads(recorded["rename_map"]) == RENAME and recorded["repo_ids"] == ["local/so101_cams"]
    config = json.loads((checkpoints / "last" / "pretrained_model" / "config.json").read_text())["config"]
    assert config["cameras"] == ["front", "wrist"] and config["image_size"] == 32
    # the state and action statistics are the dataset's (state 10 ep + i over 3 x 8 frames)
    stats = json.loads((checkpoints / "last" / "pretrained_model" / "stats.json").read_text())
    values = np.array([10 * ep + i for ep in range(3) for i in range(FRAMES)], np.float64)
    assert np.allclose(stats["observation.state"]["mean"], values.mean(), atol=1e-3)
    assert [line for line in done.stdout.splitlines() if line.startswith("step ")] == []  # the progress bar instead
    relative = Path("outputs/train", out.parent.name, out.name, "checkpoints")  # as given: under the cwd
    assert (
        f"policy: {relative / '000004' / 'pretrained_model'} (the newest is always {relative / 'last'})" in done.stdout
    )


def test_the_checkpoint_runs_in_onboard_eval_through_checkpoints_last(run, tmp_path):
    require("mujoco", "sim")
    out, _ = run
    path = out / "checkpoints" / "last"
    done = onboard("eval", f"--policy.path={path}", "--task=touch", "--n=1", f"--output_dir={tmp_path / 'eval'}")
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert report["config"]["policy_path"] == str(path) and report["config"]["policy_type"] == "vla"
    assert report["summary"]["n"] == 1 and len(report["episodes"]) == 1
    assert "vla on touch" in done.stdout


def test_items_are_the_renamed_cameras_resized_to_the_model_input(lerobot_dataset):
    require("torch", "train")
    from policies.data import ChunkDataset

    keys = list(RENAME.values())
    data = ChunkDataset(lerobot_dataset, 5, image_keys=keys, rename=RENAME, image_size=32)
    assert len(data) == 3 * FRAMES
    batch = data.__getitems__(list(range(len(data))))
    front, wrist = batch["observation.images.front"].numpy(), batch["observation.images.wrist"].numpy()
    assert front.shape == wrist.shape == (3 * FRAMES, 3, 32, 32)
    ep, i = batch["episode_index"].numpy(), batch["frame_index"].numpy()
    # top (gray 20 i) became front, side (gray 60 ep + 30) became wrist: video coding moves a level by a few units
    assert np.abs(front.reshape(len(data), -1).mean(1) - top(i)).max() < 4
    assert np.abs(wrist.reshape(len(data), -1).mean(1) - side(ep)).max() < 4
    assert np.array_equal(batch["observation.state"].numpy()[:, 0], 10 * ep + i)
    swapped = ChunkDataset(
        lerobot_dataset,
        5,
        image_keys=["observation.images.front"],
        image_size=32,
        rename={"observation.images.side": "observation.images.front"},
    )
    assert abs(float(swapped[FRAMES]["observation.images.front"].float().mean()) - side(1)) < 4


def test_a_dataset_whose_cameras_do_not_fit_is_one_line_listing_them(lerobot_dataset, tmp_path):
    require("torch", "train")
    out = tmp_path / "run"
    done = onboard("train", f"--dataset.root={lerobot_dataset}", f"--output_dir={out}", "--steps=1")
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert (
        "has cameras observation.images.top (640x480), observation.images.side (640x480); the model takes "
        "observation.images.front, observation.images.wrist (--model.cameras front wrist)"
    ) in line
    suggested = re.search(r"--rename_map='(\{.*?\})'", line).group(1)
    assert json.loads(suggested) == RENAME  # the map that works (the test above trains with it)
    assert "--model.cameras top side" in line
    assert not out.exists()


def test_a_rename_map_that_does_not_fit_says_why(lerobot_dataset, tmp_path):
    require("torch", "train")
    from policies.errors import DatasetFeaturesError
    from policies.train import TrainConfig, check_datasets

    def check(rename):
        return check_datasets(TrainConfig(datasets=(str(lerobot_dataset),), rename_map=rename))

    with pytest.raises(DatasetFeaturesError, match=r"renames observation\.images\.left, which no dataset has"):
        check({**RENAME, "observation.images.left": "observation.images.extra"})
    with pytest.raises(DatasetFeaturesError, match=r"missing: observation\.images\.wrist; .*side.*wrist"):
        check({"observation.images.top": "observation.images.front"})
    with pytest.raises(DatasetFeaturesError, match=r"renames observation\.images\.top to observation\.images\.side"):
        check({"observation.images.top": "observation.images.side"})
    with pytest.raises(DatasetFeaturesError, match=r"no observation\.state \(its float features: .*action \[6\]"):
        check({**RENAME, "observation.state": "observation.joints"})
    with pytest.raises(ValueError, match="not JSON"):
        TrainConfig(datasets=("d",), rename_map="{top: front}")
    assert check(json.dumps(RENAME)) == (lerobot_dataset,)


def test_every_folder_naming_a_checkpoint_loads_the_newest_policy(run, tmp_path):
    from policies.checkpoints import resolve_policy_folder, training_step
    from robot.policy_loader import load_policy, policy_kind

    out, _ = run
    newest = (out / "checkpoints" / "000004" / "pretrained_model").resolve()
    forms = [out, out / "checkpoints", out / "checkpoints" / "last", out / "checkpoints" / "000004", newest]
    for form in forms:
        assert resolve_policy_folder(form).resolve() == newest, form
        assert policy_kind(form) == "vla" and training_step(form) == 4
    older = out / "checkpoints" / "000002"
    assert resolve_policy_folder(older) == older / "pretrained_model" and training_step(older) == 2
    loaded = load_policy(out)  # `onboard run/eval/demo --policy.path=<the run's folder>`
    assert Path(loaded.path).resolve() == newest and loaded.cameras == ("front", "wrist")
    assert loaded.image_size == (32, 32) and loaded.exact_size  # `onboard run` resizes frames for it, as training did


def test_export_reads_the_run_folder_and_records_the_step(run):
    """What `onboard export --checkpoint=<run>` loads and copies into bundle.json (the ONNX export itself is
    tests/policies/test_bundle.py's)."""
    require("torch", "train")
    from policies.bundle import _training_config
    from policies.checkpoints import resolve_policy_folder, training_step
    from policies.vla.checkpoint import load_checkpoint

    out, _ = run
    _, config, _ = load_checkpoint(out)
    assert config.cameras == ("front", "wrist") and config.image_size == 32
    training = _training_config(resolve_policy_folder(out))
    assert json.loads(training["rename_map"]) == RENAME and training["steps"] == 4 and training_step(out) == 4
