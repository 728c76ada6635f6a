"""`onboard bench soak`: LeRobot's own `lerobot-teleoperate` against the served twin, with the machine saturated.

The follower is the twin as a user serves it (`onboard sim serve --calibrated --robot.id=...`, which also writes the
served arm's calibration file for LeRobot), the leader six emulated servos (`onboard sim serve-bus`) with a
calibration file matching their registers; ``load`` processes each spin a core. `lerobot-teleoperate` (unmodified,
``--teleop_time_s``) then reads the leader, reads the follower and writes its goals every 1/fps s; it exits with an
error the first time a servo misses LeRobot's ~50 ms reply deadline ("no status packet"). The report: its exit code,
the loops it ran (from its "Teleop loop time" lines) with their median, p99 and max, and the errors it printed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from hardware.feetech.bus import FeetechBus
from onboard.bench.config import SoakBenchConfig
from onboard.bench.serve import BURN
from onboard.bench.sysinfo import machine_info, machine_lines
from onboard.cli.options import command_line
from robot.arm_config import arm_spec
from robot.calibration import MotorCalibration, save_calibration

LOOP = re.compile(r"Teleop loop time: ([0-9.]+)ms")
FOLLOWER, LEADER = "soak_follower", "soak_leader"


@dataclass
class SoakResult:
    rc: int
    loops: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: list[str]
    wall_s: float

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.errors


def _start(args: list[str], log: Path) -> tuple[subprocess.Popen, str]:
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "onboard", "sim", *args], stdout=subprocess.PIPE, stderr=err, text=True
        )
    path = proc.stdout.readline().strip()
    if not path.startswith("/dev/"):
        proc.kill()
        raise RuntimeError(f"`onboard sim {args[0]}` did not print its pty: {log.read_text()[-500:]}")
    return proc, path


def _leader_calibration(path: str, folder: Path) -> Path:
    """A LeRobot calibration file for the leader's emulated servos that matches what their registers hold (so
    LeRobot finds the leader calibrated and asks nothing)."""
    names = arm_spec("so101_leader").names
    with FeetechBus(path) as bus:
        cal = {
            name: MotorCalibration(
                id=i,
                drive_mode=0,
                homing_offset=bus.read(i, "Homing_Offset"),
                range_min=bus.read(i, "Min_Position_Limit"),
                range_max=bus.read(i, "Max_Position_Limit"),
            )
            for i, name in enumerate(names, start=1)
        }
    return save_calibration(folder / f"{LEADER}.json", cal)


def soak(cfg: SoakBenchConfig, workdir: Path) -> SoakResult:
    lerobot = shutil.which("lerobot-teleoperate") or str(Path(sys.executable).with_name("lerobot-teleoperate"))
    if not Path(lerobot).exists():
        raise RuntimeError("lerobot-teleoperate is not installed (pip install 'onboard[interop]')")
    flags = [] if cfg.realtime else ["--no-realtime"]
    procs: list[subprocess.Popen] = []
    try:
        follower, follower_path = _start(
            ["serve", "--calibrated", f"--robot.id={FOLLOWER}", f"--robot.calibration_dir={workdir}", *flags],
            workdir / "follower.log",
        )
        procs.append(follower)
        leader, leader_path = _start(["serve-bus", *flags], workdir / "leader.log")
        procs.append(leader)
        _leader_calibration(leader_path, workdir)
        procs += [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(cfg.load)]
        cmd = [
            lerobot,
            "--robot.type=so101_follower",
            f"--robot.port={follower_path}",
            f"--robot.id={FOLLOWER}",
            f"--robot.calibration_dir={workdir}",
            "--teleop.type=so101_leader",
            f"--teleop.port={leader_path}",
            f"--teleop.id={LEADER}",
            f"--teleop.calibration_dir={workdir}",
            f"--fps={cfg.fps}",
            f"--teleop_time_s={cfg.seconds}",
            "--display_data=false",
        ]
        t0 = time.monotonic()
        with open(workdir / "lerobot.out", "w") as out, open(workdir / "lerobot.err", "w") as err:
            rc = subprocess.run(
                cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, timeout=cfg.seconds + 120
            ).returncode
        wall = time.monotonic() - t0
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
    loops = [float(m) for m in LOOP.findall((workdir / "lerobot.out").read_text())]
    err_text = (workdir / "lerobot.err").read_text()
    errors = [
        line.strip()
        for line in err_text.splitlines()
        if re.search(r"Error|error|Traceback|status packet|timed out", line) and "INFO" not in line
    ]
    a = np.array(loops) if loops else np.array([np.nan])
    return SoakResult(
        rc, len(loops), float(np.median(a)), float(np.percentile(a, 99)), float(a.max()), errors[:20], wall
    )


def main(cfg: SoakBenchConfig) -> int:
    machine = machine_info()
    print(f"command: {command_line('onboard bench soak', cfg)}")
    for line in machine_lines(machine):
        print(line)
    print(
        f"lerobot-teleoperate at {cfg.fps} Hz for {cfg.seconds:g} s: follower `onboard sim serve`, leader `onboard sim "
        f"serve-bus` ({'realtime' if cfg.realtime else 'normal priority'}), {cfg.load} CPU-spinning processes"
    )
    with tempfile.TemporaryDirectory(prefix="onboard_soak_") as tmp:
        result = soak(cfg, Path(tmp))
    print(
        f"exit code {result.rc}; {result.loops} loops in {result.wall_s:.0f} s; loop time p50 {result.p50_ms:.2f} ms, "
        f"p99 {result.p99_ms:.2f} ms, max {result.max_ms:.2f} ms; errors: {len(result.errors)}"
    )
    for line in result.errors:
        print(f"  {line}")
    print(f"load average after: {[round(x, 2) for x in os.getloadavg()]}")
    if cfg.json:
        with open(cfg.json, "w") as f:
            json.dump({"machine": machine, "config": asdict(cfg), "result": asdict(result)}, f, indent=2)
        print(f"wrote {cfg.json}")
    return 0 if result.ok else 1
