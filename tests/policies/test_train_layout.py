"""LeRobot's training conventions without training: the checkpoint layout and its crash-safe `last` link
(policies/checkpoints.py), where `--dataset.repo_id` is read from, the default output folder, the old flag spellings,
`--policy.device=cuda` on a machine without one, and the frame resize shared by training and `onboard run`."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import numpy as np
import pytest

from policies import checkpoints as layout
from policies.checkpoints import latest_checkpoint, resolve_policy_folder, step_name, training_step
from policies.train_config import TrainConfig, lerobot_home
from tests.conftest import require


def fake_checkpoint(out: Path, step: int, total: int = 100) -> Path:
    """A checkpoint written the way the trainer writes one: staged, then published."""
    name = step_name(step, total)
    staged = layout.staging_folder(out, name)
    (staged / "pretrained_model").mkdir()
    (staged / "pretrained_model" / "config.json").write_text(json.dumps({"type": "onboard_vla", "step": step}))
    (staged / "training_state").mkdir()
    (staged / "training_state" / "training_step.json").write_text(json.dumps({"step": step}))
    return layout.publish(staged, name)


def test_step_names_are_lerobots():
    assert step_name(50, 20_000) == "000050" and step_name(20_000, 20_000) == "020000"
    assert step_name(5, 1_500_000) == "0000005"  # more digits when --steps needs them


def test_last_is_a_relative_link_moved_to_each_new_checkpoint(tmp_path):
    out = tmp_path / "run"
    first = fake_checkpoint(out, 50)
    assert first == out / "checkpoints" / "000050"
    last = out / "checkpoints" / "last"
    assert last.is_symlink() and os.readlink(last) == "000050"
    fake_checkpoint(out, 100)
    assert os.readlink(last) == "000100" and latest_checkpoint(out) == out / "checkpoints" / "000100"
    assert json.loads((last / "pretrained_model" / "config.json").read_text())["step"] == 100
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["000050", "000100", "last"]  # no temp left
    # the run moved elsewhere: the link is relative, so it still points inside it
    moved = tmp_path / "moved"
    out.rename(moved)
    assert resolve_policy_folder(moved).resolve() == (moved / "checkpoints" / "000100" / "pretrained_model").resolve()


def test_a_run_killed_while_writing_a_checkpoint_still_resolves_to_a_complete_one(tmp_path):
    out = tmp_path / "run"
    fake_checkpoint(out, 50)
    # killed while writing 000100: its staging folder is half written, `last` still on 000050
    half = layout.staging_folder(out, "000100")
    (half / "pretrained_model").mkdir()
    (half / "pretrained_model" / "model.safetensors").write_bytes(b"\0" * 10)
    assert resolve_policy_folder(out) == out / "checkpoints" / "000050" / "pretrained_model"
    assert training_step(out) == 50
    # killed after the rename, before the link moved: 000100 is complete, `last` still names 000050 (complete too)
    fake_checkpoint(out, 100)  # the staging leftover of the kill above is cleared first
    (out / "checkpoints" / "last").unlink()
    os.symlink("000050", out / "checkpoints" / "last")
    assert training_step(out) == 50
    # the resumed run saves step 100 again: the folder is replaced whole, then the link moves
    fake_checkpoint(out, 100)
    assert training_step(out) == 100
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["000050", "000100", "last"]


def test_without_a_last_link_the_highest_step_is_the_newest(tmp_path):
    out = tmp_path / "run"
    fake_checkpoint(out, 9)
    fake_checkpoint(out, 10)
    (out / "checkpoints" / "last").unlink()
    assert latest_checkpoint(out) == out / "checkpoints" / "000010"  # by number, not by name order


def test_a_run_of_the_older_layout_resolves_to_its_last_folder(tmp_path):
    out = tmp_path / "old"
    for folder in (out / "checkpoints" / "20", out / "last"):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
    (out / "last" / "trainer.json").write_text(json.dumps({"step": 20}))
    assert resolve_policy_folder(out) == out / "last" and training_step(out) == 20
    assert resolve_policy_folder(out / "checkpoints" / "20") == out / "checkpoints" / "20"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert resolve_policy_folder(empty) == empty and latest_checkpoint(empty) is None  # the loader says what is wrong


def test_repo_ids_are_read_where_lerobot_keeps_them(tmp_path, monkeypatch):
    for var in ("HF_LEROBOT_HOME", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert lerobot_home() == tmp_path / "home" / ".cache" / "huggingface" / "lerobot"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert lerobot_home() == tmp_path / "xdg" / "huggingface" / "lerobot"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert lerobot_home() == tmp_path / "hf" / "lerobot"
    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "lr"))
    cfg = TrainConfig(repo_ids=("me/so101_pick", "me/so101_place"))
    assert cfg.dataset_roots() == (tmp_path / "lr" / "me" / "so101_pick", tmp_path / "lr" / "me" / "so101_place")
    # with --dataset.root, the root is the dataset's folder (LeRobot's DatasetConfig.root)
    assert TrainConfig(repo_ids=("me/x",), datasets=("/data/x",)).dataset_roots() == (Path("/data/x"),)
    with pytest.raises(ValueError, match="one folder per id"):
        TrainConfig(repo_ids=("a/b", "c/d"), datasets=("/data/x",))
    with pytest.raises(ValueError, match=r"--dataset\.root=DIR or --dataset\.repo_id=ID"):
        TrainConfig()


def test_a_repo_id_that_is_not_there_says_where_it_looked(tmp_path, monkeypatch):
    require("torch", "train")
    from policies.errors import DatasetFolderError
    from policies.train import check_datasets

    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "lr"))
    with pytest.raises(DatasetFolderError, match=r"me/missing: no dataset at .*lr/me/missing.*--dataset\.root"):
        check_datasets(TrainConfig(repo_ids=("me/missing",)))


def test_default_output_dir_is_lerobots():
    cfg = TrainConfig(datasets=("d",), job_name="pick")
    now = dt.datetime(2026, 12, 7, 9, 5, 3)
    assert cfg.default_output_dir(now) == Path("outputs/train/2026-12-07/09-05-03_pick")
    assert TrainConfig(datasets=("d",)).default_output_dir(now).name == "09-05-03_vla"


def test_old_and_lerobot_spellings_give_the_same_config():
    import onboard.cli as cli
    from onboard.cli.options import config_from
    from onboard.cli.train import TrainCommand

    parser = cli.build_parser()
    old = ["train", "--dataset.root", "d", "--save_every", "7", "--eval_every", "3", "--log_every", "2"]
    new = ["train", "--dataset.root=d", "--save_freq=7", "--eval_freq=3", "--log_freq=2"]
    a, b = (config_from(parser.parse_args(argv), TrainConfig) for argv in (old, new))
    assert a == b and (a.save_freq, a.eval_freq, a.log_freq) == (7, 3, 2)
    args = parser.parse_args(["train", "--dataset.repo_id=me/x", "--policy.path=run", "--eval.n_episodes=4"])
    cfg, command = config_from(args, TrainConfig), config_from(args, TrainCommand)
    assert cfg.repo_ids == ("me/x",) and cfg.init_from == "run" and command.eval.n == 4
    rename = '{"observation.images.top": "observation.images.front"}'
    cfg = config_from(parser.parse_args(["train", "--dataset.root=d", f"--rename_map={rename}"]), TrainConfig)
    assert cfg.renames == {"observation.images.top": "observation.images.front"}
    assert config_from(parser.parse_args(["train", "--dataset.root=d", "--policy.device=cuda:1"]), TrainConfig).device
    with pytest.raises(ValueError, match="cpu, cuda or cuda:N"):
        TrainConfig(datasets=("d",), device="gpu")


def test_cuda_asked_for_without_one_is_a_clear_error_before_anything_is_written(tmp_path, capsys):
    torch = require("torch", "train")
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    from onboard.cli import main
    from tests.policies.test_train import make_dataset

    data = make_dataset(tmp_path / "ds", episodes=1, frames=6, size=32)
    out = tmp_path / "run"
    argv = ["train", f"--dataset.root={data}", f"--output_dir={out}", "--policy.device=cuda", "--steps=1"]
    assert main([*argv, "--model.image_size=32", "--model.conv_channels", "8", "16"]) == 2
    err = capsys.readouterr().err
    assert "--policy.device=cuda: torch" in err and "sees no CUDA GPU" in err and "--policy.device=cpu" in err
    assert not out.exists()


def test_training_resizes_a_frame_as_onboard_run_does():
    import robot.run
    from policies.features import centre_crop, resize_image

    assert robot.run.resize_image is resize_image  # one resize for the dataset's frames and a camera's
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    ours = resize_image(frame, (96, 96))  # a 4:3 camera: its centre 480x480, shrunk; never squeezed
    assert ours.shape == (96, 96, 3) and np.array_equal(ours, resize_image(frame[:, 80:560], (96, 96)))
    assert centre_crop(frame, (96, 96)).shape == (480, 480, 3) and centre_crop(frame, (3, 4)) is frame
    assert centre_crop(frame[:, :300], (1, 1)).shape == (300, 300, 3)  # taller than wide: top and bottom go
    small = rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)
    assert resize_image(small, (96, 96)).shape == (96, 96, 3)  # growing: linear
    # the area filter averages: a frame of 5x5-pixel blocks shrunk 5 times gives each block its own value
    flat = np.repeat(np.repeat(np.arange(96 * 96, dtype=np.uint8).reshape(96, 96), 5, 0), 5, 1)[:480, :480]
    flat = np.stack([flat] * 3, -1)
    assert np.array_equal(resize_image(flat, (96, 96)), flat[::5, ::5])
    wide = np.concatenate([np.zeros((480, 80, 3), np.uint8), flat, np.full((480, 80, 3), 255, np.uint8)], axis=1)
    assert np.array_equal(resize_image(wide, (96, 96)), flat[::5, ::5])  # the sides are cut, not blended in


class SeesFrames:
    """A VLA-kind policy (32x32 cameras front and wrist) that records the frames it is given."""

    cameras = ("front", "wrist")
    image_size = 32

    def __init__(self):
        self.shapes: set[tuple[int, ...]] = set()

    def reset(self, task: str) -> None:
        pass

    def infer(self, observation: dict):
        from policies.base import ActionChunk

        self.shapes |= {v.shape for k, v in observation.items() if k.startswith("observation.images.")}
        state = np.asarray(observation["observation.state"], np.float32)
        return ActionChunk(np.tile(state, (5, 1)), t_obs=observation["t_capture"])


def test_onboard_run_gives_a_trained_vla_its_input_size_from_a_640x480_camera(tmp_path):
    require("mujoco", "sim")
    from robot.arm_config import ArmConfig
    from robot.policy_loader import describe
    from robot.run import RunConfig, run_policy
    from sim.rigs.follower import build_sim_follower_rig

    robot = ArmConfig(type="so101_follower", port="sim", id="f", calibration_dir=tmp_path / "cal")
    rig = build_sim_follower_rig(robot_calibration=robot.calibration_path, seed=1, image_size=(480, 640))
    policy = SeesFrames()
    loaded = describe(policy, "vla")  # what load_policy gives for a checkpoint `onboard train` wrote
    assert loaded.exact_size and loaded.image_size == (32, 32)
    try:
        robot = ArmConfig(type="so101_follower", port=rig.robot_port, id="f", calibration_dir=tmp_path / "cal")
        summary = run_policy(rig, loaded, RunConfig(task="pick", duration_s=0.2, latency_s=0.0), robot=robot)
    finally:
        rig.close()
    assert summary["ticks"] == 6 and policy.shapes == {(32, 32, 3)}


def test_a_lerobot_train_run_folder_loads_its_newest_checkpoint_as_lerobot(tmp_path):
    """`lerobot-train`'s output folder (same layout): --policy.path=<its output_dir> finds a LeRobot checkpoint."""
    from robot.policy_loader import policy_kind

    run = tmp_path / "outputs" / "train" / "act_so101"
    for step in ("005000", "010000"):
        policy = run / "checkpoints" / step / "pretrained_model"
        policy.mkdir(parents=True)
        (policy / "config.json").write_text(json.dumps({"type": "act"}))
    os.symlink("010000", run / "checkpoints" / "last")
    assert resolve_policy_folder(run) == run / "checkpoints" / "010000" / "pretrained_model"
    assert policy_kind(run) == "lerobot" and policy_kind(run / "checkpoints" / "last") == "lerobot"
