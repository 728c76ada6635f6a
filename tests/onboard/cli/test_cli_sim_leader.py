"""`onboard sim serve --leader` as a person runs it: the leader's pty, a recorded dataset replayed at the leader, and
the options that do not go together."""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np
import pytest

from hardware.feetech.bus import FeetechBus
from policies.dataset import DatasetWriter
from tests.conftest import require

NAMES = [f"{j}.pos" for j in ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")]
IDS = [1, 2, 3, 4, 5, 6]


def serve(*flags: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "onboard", "sim", "serve", "--no-cameras", *flags]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--leader.dataset", "x"], "add --leader"),
        (["--leader.id", "x", "--leader"], "add --calibrated"),
    ],
)
def test_leader_options_that_do_not_go_together(flags, message):
    proc = serve(*flags)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


def swinging_dataset(root):
    """One episode, 3 s at 30 fps: the leader's shoulder_pan swings +-30 degrees, nothing else moves."""
    vec = {"dtype": "float32", "shape": (6,), "names": NAMES}
    with DatasetWriter.create(root, fps=30, features={"observation.state": vec, "action": vec}) as w:
        for k in range(90):
            a = np.array([30 * np.sin(2 * np.pi * k / 45), 0, 0, 0, 0, 20], np.float32)
            w.add_frame({"observation.state": a, "action": a})
        w.save_episode("swing")
    return root


def test_served_leader_replays_a_recorded_dataset_while_a_client_teleoperates(tmp_path):
    require("mujoco", "sim")
    data = swinging_dataset(tmp_path / "ds")
    cmd = [sys.executable, "-m", "onboard", "sim", "serve", "--no-cameras", "--calibrated", "--leader"]
    proc = subprocess.Popen(
        [*cmd, f"--leader.dataset={data}", "--duration", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        follower, leader = proc.stdout.readline().strip(), proc.stdout.readline().strip()
        assert follower.startswith("/dev/pts/") and leader.startswith("/dev/pts/") and follower != leader
        with FeetechBus(leader) as lb:
            assert [lb.read(i, "Torque_Enable") for i in IDS] == [0] * 6  # a leader: torque off
            rest = lb.sync_read("Present_Position", IDS)
            assert lb.sync_read("Present_Position", IDS) == rest  # nobody teleoperates yet: the leader rests
            with FeetechBus(follower) as fb:  # a client starts teleoperating: it writes the follower's goals
                for i in IDS:
                    fb.write(i, "Torque_Enable", 1)
                fb.sync_write("Goal_Position", fb.sync_read("Present_Position", IDS))
                seen = []
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:  # until the whole swing has been seen (3 s of replay)
                    seen.append(lb.sync_read("Present_Position", IDS))
                    pan = [s[1] for s in seen]
                    if max(pan) - rest[1] > 300 and rest[1] - min(pan) > 300:
                        break
        pan = [s[1] for s in seen]
        assert max(pan) - rest[1] > 300 and rest[1] - min(pan) > 300, (rest, min(pan), max(pan))  # +-30 deg: 341
        assert all(abs(s[3] - rest[3]) <= 2 for s in seen)  # elbow_flex stays where the dataset holds it
    finally:
        proc.terminate()
        err = proc.communicate(timeout=20)[1]
    assert "replaying 90 recorded actions at 30 fps" in err, err
