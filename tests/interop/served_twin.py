"""`onboard sim serve` in a child process for LeRobot's tools: calibrated (its calibration files written for LeRobot's
ids), its cameras published under a prefix of their own (so that tests running side by side do not meet), optionally
with a leader. Used by the LeRobot plugin tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ServedTwin:
    follower: str  # the follower's pty
    leader: str | None  # the leader's pty (with leader=True)
    prefix: str  # the cameras are <prefix>.front and <prefix>.wrist
    calibration_dir: Path  # follower.json (and leader.json)

    def cameras(self) -> str:
        """LeRobot's --robot.cameras for the twin's two cameras through the camera plugin."""
        return (
            f"{{front: {{type: onboard_sim, name: {self.prefix}.front}}, "
            f"wrist: {{type: onboard_sim, name: {self.prefix}.wrist}}}}"
        )

    def robot(self) -> list[str]:
        return [
            "--robot.type=so101_follower",
            f"--robot.port={self.follower}",
            "--robot.id=follower",
            f"--robot.calibration_dir={self.calibration_dir}",
            f"--robot.cameras={self.cameras()}",
        ]


@contextmanager
def served_twin(base: Path, *scene: str, leader: bool = False) -> Iterator[ServedTwin]:
    """Serve the twin (``scene``: --sim.* flags) until the block ends; its stderr goes to ``base / "serve.err"``."""
    from hardware.shm_camera import served_cameras

    cal, prefix = base / "cal", f"lrtest-{uuid.uuid4().hex[:8]}"
    cmd = [sys.executable, "-m", "onboard", "sim", "serve", "--calibrated", f"--cameras.prefix={prefix}"]
    cmd += ["--robot.id=follower", f"--robot.calibration_dir={cal}", *scene]
    if leader:
        cmd += ["--leader", "--leader.id=leader", f"--leader.calibration_dir={cal}"]
    log = base / "serve.err"
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, env={**os.environ})
    try:
        follower = proc.stdout.readline().strip()
        second = proc.stdout.readline().strip() if leader else None
        assert follower.startswith("/dev/pts/") and (second or "/dev/pts/").startswith("/dev/pts/"), log.read_text()
        deadline = time.monotonic() + 60
        while not {f"{prefix}.front", f"{prefix}.wrist"} <= set(served_cameras()):
            assert time.monotonic() < deadline and proc.poll() is None, log.read_text()
            time.sleep(0.1)
        yield ServedTwin(follower, second, prefix, cal)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
