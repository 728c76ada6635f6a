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
