"""`onboard dataset info|verify|repair` on a dataset our writer made."""

import numpy as np

from onboard.cli import main
from policies.dataset import DatasetWriter

NAMES = [f"{j}.pos" for j in ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")]


def make(root):
    features = {
        "observation.state": {"dtype": "float32", "shape": (6,), "names": NAMES},
        "action": {"dtype": "float32", "shape": (6,), "names": NAMES},
        "observation.images.front": {"dtype": "video", "shape": (64, 64, 3), "names": ["height", "width", "channels"]},
    }
    w = DatasetWriter.create(root, fps=30, features=features, robot_type="so_follower")
    for _ in range(2):
        for k in range(15):
            w.add_frame(
                {
                    "observation.state": np.full(6, k, np.float32),
                    "action": np.full(6, k + 1, np.float32),
                    "observation.images.front": np.full((64, 64, 3), 8 * k, np.uint8),
                }
            )
        w.save_episode("pick up the red cube")
    w.close()


def test_info_verify_repair(tmp_path, capsys):
    root = tmp_path / "ds"
    make(root)
    assert main(["dataset", "info", str(root)]) == 0
    out = capsys.readouterr().out
    assert "2 episodes, 30 frames at 30 fps" in out and "pick up the red cube" in out
    assert main(["dataset", "verify", str(root)]) == 0
    assert "OK" in capsys.readouterr().out
    (root / "data" / "chunk-000" / "file-002.parquet.partial").write_bytes(b"half an episode")
    assert main(["dataset", "repair", str(root)]) == 0
    assert not (root / "data" / "chunk-000" / "file-002.parquet.partial").exists()
    (root / "data" / "chunk-000" / "file-001.parquet").unlink()  # damage a committed episode
    assert main(["dataset", "verify", str(root)]) == 1


def test_verify_full_and_typed_errors(tmp_path, capsys):
    import av

    root = tmp_path / "ds"
    make(root)
    mp4 = root / "videos" / "observation.images.front" / "chunk-000" / "file-001.mp4"
    with av.open(str(mp4)) as c:
        pos = [p.pos for p in c.demux(c.streams.video[0]) if p.size > 0][9]
    data = bytearray(mp4.read_bytes())
    data[pos : pos + 64] = b"\xff" * 64  # frame 9 of episode 1 no longer decodes
    mp4.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["dataset", "verify", "--full", str(root)]) == 1
    out = capsys.readouterr().out
    assert f"error: {mp4}: episode 1 observation.images.front frame 9 does not decode" in out
    for cmd in ("info", "repair"):  # not a dataset: one line, rc 2, no traceback
        assert main(["dataset", cmd, str(tmp_path / "nowhere")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "not a LeRobot v3.0 dataset" in err and "Traceback" not in err
    assert main(["dataset", "verify", str(tmp_path / "nowhere")]) == 2  # no such folder: a setup error
    assert (
        capsys.readouterr().err
        == f"error: {tmp_path / 'nowhere'}: no such folder (give the dataset's root: the folder holding meta/)\n"
    )
    (tmp_path / "empty").mkdir()  # a folder that is not a dataset fails the checks (1)
    assert main(["dataset", "verify", str(tmp_path / "empty")]) == 1
    assert "meta/info.json not found" in capsys.readouterr().out


def test_record_resume_continues_a_dataset_lerobot_wrote(tmp_path, capsys):
    """LeRobot's LeRobotDataset.create wrote 3 episodes (one file of each kind); `onboard record --resume` on the
    simulated rig adds one in new files, and LeRobot loads all 4. A dataset whose features differ is refused with
    the differences listed."""
    from tests.onboard.cli.test_cli_record import calibrate
    from tests.policies import lerobot_made

    root = tmp_path / "lr"
    lerobot_made.make(root, episodes=3, frames=20)
    assert main(["dataset", "verify", str(root)]) == 0
    arms = calibrate(tmp_path)
    record = ["record", *arms, f"--dataset.root={root}", "--dataset.num_episodes=1", "--dataset.episode_time_s=1"]
    capsys.readouterr()
    assert main([*record, "--dataset.reset_time_s=0"]) == 2  # without --resume: refused, and it says what to do
    assert "already holds a dataset: add --resume" in capsys.readouterr().err
    assert main([*record, "--dataset.reset_time_s=0", "--resume"]) == 0
    assert "saved 1 episode(s) (30 frames)" in capsys.readouterr().out
    assert main(["dataset", "verify", "--full", str(root)]) == 0
    ds = lerobot_made.load(root)
    assert ds.num_episodes == 4 and len(ds) == 3 * 20 + 30
    assert ds[59]["observation.state"][0].item() == 219  # LeRobot's episodes are untouched
    item = ds[60 + 29]
    assert item["episode_index"].item() == 3 and item["observation.images.wrist"].shape == (3, 96, 96)

    other = tmp_path / "lr64"
    lerobot_made.make(other, episodes=1, frames=5, size=64)
    record = [r.replace(str(root), str(other)) for r in record]
    capsys.readouterr()
    assert main([*record, "--dataset.reset_time_s=0", "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: cannot resume {other}: it differs from this recording")
    assert "observation.images.front: the dataset has video (64, 64, 3), this recording video (96, 96, 3)" in err
    assert "observation.images.wrist" in err and "Traceback" not in err
