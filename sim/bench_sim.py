"""How fast the simulated arm runs on this machine: simulated seconds per wall second of a control loop on the sim
clock (``python -m sim.bench_sim``).

The loop is what a policy or teleop loop does at ``rate_hz``: one SYNC_READ of Present_Position and one SYNC_WRITE
of Goal_Position through our ``FeetechBus`` on ``simbus://`` (in process), optionally a ``read_latest`` from each
rendered camera, then ``clock.sleep_until`` the next absolute deadline (which steps the 500 Hz physics). A ratio of
10 means ten simulated seconds per wall second: the loop runs 10x faster than real time.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from hardware.feetech.bus import FeetechBus

from .cameras import RenderedCamera
from .so101 import SimulatedSO101
from .world import JOINT_NAMES

CAMERAS = ("front", "wrist")


def measure(
    seconds: float = 5.0, *, cameras: int = 0, size: int = 96, rate_hz: float = 30.0, seed: int = 0
) -> dict[str, float]:
    """Run the loop for ``seconds`` of simulated time; returns the speed ratio and per-stage wall times (ms/tick)."""
    if not 0 <= cameras <= len(CAMERAS):
        raise ValueError(f"cameras must be 0..{len(CAMERAS)}")
    ids = list(range(1, len(JOINT_NAMES) + 1))
    with SimulatedSO101(seed=seed, uncalibrated=False) as arm:
        bus = FeetechBus(arm.url).connect()
        cams = [RenderedCamera(arm.world, c, height=size, width=size, fps=rate_hz) for c in CAMERAS[:cameras]]
        for cam in cams:
            cam.connect()
        try:
            arm.hand.to_middle()
            for i in ids:
                bus.write(i, "Torque_Enable", 1)
            arm.hand.release()
            clock = arm.clock
            amplitude = np.radians(20.0)
            ticks = round(seconds * rate_hz)
            t0 = clock.now()
            stages = {"bus": [], "cameras": [], "physics": []}
            wall0 = time.perf_counter()
            for k in range(ticks):
                a = time.perf_counter()
                present = bus.sync_read("Present_Position", ids)
                phase = 2 * np.pi * 0.5 * k / rate_hz  # a slow sine on every joint
                bus.sync_write(
                    "Goal_Position", {i: present[i] for i in ids} if k == 0 else _goals(arm, amplitude, phase)
                )
                b = time.perf_counter()
                for cam in cams:
                    cam.read_latest()
                c = time.perf_counter()
                clock.sleep_until(t0 + (k + 1) / rate_hz)
                d = time.perf_counter()
                stages["bus"].append(b - a)
                stages["cameras"].append(c - b)
                stages["physics"].append(d - c)
            wall = time.perf_counter() - wall0
            simulated = clock.now() - t0
        finally:
            for cam in cams:
                cam.disconnect()
            bus.disconnect()
    out = {"sim_s_per_wall_s": simulated / wall, "simulated_s": simulated, "wall_s": wall}
    for stage, times in stages.items():
        out[f"{stage}_ms_median"] = statistics.median(times) * 1e3
    return out


def _goals(arm: SimulatedSO101, amplitude: float, phase: float) -> dict[int, int]:
    offsets = amplitude * np.sin(phase + np.arange(len(JOINT_NAMES)))
    return {
        arm.ids[joint]: arm.reading_at(joint, float(pose + dq))
        for joint, pose, dq in zip(JOINT_NAMES, arm.calibration_pose, offsets)
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="simulated seconds per run")
    parser.add_argument("--size", type=int, default=96, help="camera image height and width (px)")
    parser.add_argument("--rate", type=float, default=30.0, help="control rate (Hz)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per configuration (the median is reported)")
    args = parser.parse_args(argv)
    for cameras in (0, 2):
        runs = [measure(args.seconds, cameras=cameras, size=args.size, rate_hz=args.rate) for _ in range(args.repeat)]
        runs.sort(key=lambda r: r["sim_s_per_wall_s"])
        mid = runs[len(runs) // 2]
        ratios = ", ".join(f"{r['sim_s_per_wall_s']:.1f}" for r in runs)
        print(
            f"{cameras} camera(s) {args.size}x{args.size}, {args.rate:g} Hz: "
            f"{mid['sim_s_per_wall_s']:.1f} sim s / wall s (runs: {ratios}); "
            f"per tick: bus {mid['bus_ms_median']:.2f} ms, cameras {mid['cameras_ms_median']:.2f} ms, "
            f"physics {mid['physics_ms_median']:.2f} ms"
        )


if __name__ == "__main__":
    main()
