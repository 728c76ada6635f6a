"""How fast the simulated arm runs on this machine: simulated seconds per wall second of a control loop on the sim
clock (`onboard bench sim`).

The loop is what a policy or teleop loop does at ``rate_hz``: one SYNC_READ of Present_Position and one SYNC_WRITE
of Goal_Position through our ``FeetechBus`` on ``simbus://`` (in process), optionally a ``read_latest`` from each
rendered camera, then ``clock.sleep_until`` the next absolute deadline (which steps the 500 Hz physics). A ratio of
10 means ten simulated seconds per wall second: the loop runs 10x faster than real time.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from hardware.feetech.bus import FeetechBus
from onboard.bench.config import SimBenchConfig
from onboard.cli.options import command_line
from sim.twin.cameras import RenderedCamera
from sim.twin.so101 import SimulatedSO101
from sim.twin.world import JOINT_NAMES

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


def physics_steps_per_s(seconds: float = 2.0, *, servos: bool) -> float:
    """Bare MuJoCo steps/s of the table scene, or with the six servo plants' per-step hooks (``servos``)."""
    if servos:
        arm = SimulatedSO101(seed=0, uncalibrated=False)
        world = arm.world
    else:
        from sim.twin.physics import World

        arm, world = None, World()
    n = round(seconds / world.timestep)
    world.step(50)
    t = time.perf_counter()
    world.step(n)
    rate = n / (time.perf_counter() - t)
    if arm is not None:
        arm.close()
    return rate


def frames_per_s(camera: str, height: int, width: int, n: int = 200) -> float:
    """Rendered frames/s of one camera at ``height`` x ``width`` (fast software-rendering settings)."""
    from sim.twin.physics import World

    world = World()
    cam = RenderedCamera(world, camera, height=height, width=width, fps=1e6)
    cam.connect()
    try:
        for _ in range(10):
            world.step(1)
            cam.read_latest()
        t = time.perf_counter()
        for _ in range(n):
            world.step(1)  # a new state each time, so each read renders
            cam.read_latest()
        dt = time.perf_counter() - t
    finally:
        cam.disconnect()
    return n / dt


def env_steps_per_s(steps: int = 150) -> float:
    """``onboard/SO101Pick-v0`` steps/s (30 Hz control, two 96x96 cameras, the whole mirrored stack)."""
    import gymnasium as gym

    from sim.envs import env as envs  # noqa: F401

    env = gym.make("onboard/SO101Pick-v0")
    try:
        obs, _ = env.reset(seed=0)
        hold = obs["observation.state"]
        t = time.perf_counter()
        for _ in range(steps):
            env.step(hold)
        return steps / (time.perf_counter() - t)
    finally:
        env.close()


def main(cfg: SimBenchConfig) -> int:
    """Run every measurement ``cfg`` describes and print the report to stdout."""
    med = statistics.median
    print(f"command: {command_line('onboard bench sim', cfg)}")
    print("physics (table scene, 500 Hz):")
    bare = med(physics_steps_per_s(servos=False) for _ in range(cfg.repeat))
    hooked = med(physics_steps_per_s(servos=True) for _ in range(cfg.repeat))
    print(f"  bare MuJoCo            {bare:9.0f} steps/s  ({bare * 0.002:.0f}x real time)")
    print(f"  with 6 servo plants    {hooked:9.0f} steps/s  ({hooked * 0.002:.0f}x real time)")
    print("rendering (one camera, shadows and reflections off):")
    for h, w in ((96, 96), (224, 224), (480, 640)):
        rates = {c: med(frames_per_s(c, h, w) for _ in range(cfg.repeat)) for c in CAMERAS}
        size = f"{h}x{w}"
        print(f"  {size:<8} " + "  ".join(f"{c} {r:6.0f} frames/s" for c, r in rates.items()))
    print(f"closed loop ({cfg.rate:g} Hz SYNC_READ + SYNC_WRITE through FeetechBus on the sim clock):")
    for cameras in (0, 2):
        runs = [measure(cfg.seconds, cameras=cameras, size=cfg.size, rate_hz=cfg.rate) for _ in range(cfg.repeat)]
        runs.sort(key=lambda r: r["sim_s_per_wall_s"])
        mid = runs[len(runs) // 2]
        ratios = ", ".join(f"{r['sim_s_per_wall_s']:.1f}" for r in runs)
        print(
            f"  {cameras} camera(s) {cfg.size}x{cfg.size}: {mid['sim_s_per_wall_s']:.1f}x real time "
            f"(runs: {ratios}); "
            f"per tick: bus {mid['bus_ms_median']:.2f} ms, cameras {mid['cameras_ms_median']:.2f} ms, "
            f"physics {mid['physics_ms_median']:.2f} ms"
        )
    rate = med(env_steps_per_s() for _ in range(cfg.repeat))
    print(
        f"gymnasium env onboard/SO101Pick-v0 (30 Hz, two 96x96 cameras): {rate:.0f} steps/s "
        f"({rate / 30:.1f}x real time)"
    )
    return 0
