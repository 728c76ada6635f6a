"""`onboard bench serve`: do the served servos keep their reply deadline with the machine saturated?

A real servo answers whatever its host is doing; LeRobot's driver waits about 50 ms for a reply before it gives up
("no status packet"), and on a 2-core machine at a load average of 5-7 the served twin used to miss that now and
then. This benchmark serves the devices exactly as a user does (`onboard sim serve-bus`, `onboard sim serve
--calibrated`, each in its own process, with and without `--no-realtime`), starts ``load`` processes that each spin
a core, and times 6-servo SYNC_READ round trips of Present_Position through our driver at the control loop's pace
(every 10 ms) for ``seconds``: median, p99, max, how many took longer than LeRobot's 50 ms deadline, and how many
got no reply at all. The wire-time limit of the bytes is ~0.7 ms at 1 Mbaud.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

from hardware.feetech.bus import FeetechBus
from hardware.feetech.errors import FeetechError
from onboard.bench.config import ServeBenchConfig
from onboard.bench.sysinfo import machine_info, machine_lines
from onboard.cli.options import command_line

IDS = [1, 2, 3, 4, 5, 6]
LEROBOT_DEADLINE_MS = 50.0  # lerobot's patched SDK: packet_timeout = bytes * byte time + 50 ms (reference/hardware.md)
PERIOD_S = 0.010
BURN = "import os\nos.nice(0)\nwhile True:\n    pass\n"


@dataclass
class Row:
    target: str
    priority: str
    n: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    over_deadline: int
    no_reply: int


def _serve(target: str, priority: str) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "onboard", "sim", target]
    cmd += ["--calibrated"] if target == "serve" else []
    cmd += ["--no-realtime"] if priority == "normal" else []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    path = proc.stdout.readline().strip()
    if not path.startswith("/dev/"):
        proc.kill()
        raise RuntimeError(f"`onboard sim {target}` did not print its pty (got {path!r})")
    return proc, path


def _measure(path: str, seconds: float) -> tuple[list[float], int]:
    times, missing = [], 0
    with FeetechBus(path, retries=0, latency_s=LEROBOT_DEADLINE_MS / 1e3) as bus:
        for _ in range(50):  # the first transaction opens the port; a loaded server may miss it
            try:
                bus.sync_read("Present_Position", IDS)
                break
            except FeetechError:
                continue
        end = time.monotonic() + seconds
        deadline = time.monotonic()
        while time.monotonic() < end:
            t = time.perf_counter()
            try:
                bus.sync_read("Present_Position", IDS)
                times.append((time.perf_counter() - t) * 1e3)
            except FeetechError:
                missing += 1
            deadline += PERIOD_S
            time.sleep(max(0.0, deadline - time.monotonic()))
    return times, missing


def run(cfg: ServeBenchConfig, out=print) -> list[Row]:
    rows = []
    for target in cfg.targets:
        for priority in cfg.priorities:
            server, path = _serve(target, priority)
            burners = [subprocess.Popen([sys.executable, "-c", BURN]) for _ in range(cfg.load)]
            try:
                time.sleep(1.0)  # the burners get going
                times, missing = _measure(path, cfg.seconds)
            finally:
                for p in [*burners, server]:
                    p.terminate()
                for p in [*burners, server]:
                    p.wait()
            a = np.array(times) if times else np.array([np.nan])
            row = Row(
                target,
                priority,
                len(times),
                float(np.median(a)),
                float(np.percentile(a, 99)),
                float(a.max()),
                int((a > LEROBOT_DEADLINE_MS).sum()),
                missing,
            )
            out(_line(row))
            rows.append(row)
    return rows


HEADER = "served by              priority       n   p50 ms   p99 ms   max ms  > 50 ms  no reply"


def _line(r: Row) -> str:
    return (
        f"{'onboard sim ' + r.target:<22} {r.priority:<9} {r.n:>6} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {r.max_ms:>8.2f} "
        f"{r.over_deadline:>8} {r.no_reply:>9}"
    )


def main(cfg: ServeBenchConfig) -> int:
    machine = machine_info()
    print(f"command: {command_line('onboard bench serve', cfg)}")
    for line in machine_lines(machine):
        print(line)
    print(
        f"6-servo SYNC_READ round trips through onboard's driver every {PERIOD_S * 1e3:.0f} ms for {cfg.seconds:g} s, "
        f"{cfg.load} CPU-spinning processes beside the server"
    )
    print(HEADER)
    rows = run(cfg)
    print(f"load average after: {[round(x, 2) for x in os.getloadavg()]}")
    if cfg.json:
        with open(cfg.json, "w") as f:
            json.dump({"machine": machine, "config": asdict(cfg), "rows": [asdict(r) for r in rows]}, f, indent=2)
        print(f"wrote {cfg.json}")
    return 0
