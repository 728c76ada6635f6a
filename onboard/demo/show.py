"""`onboard sim show`: one scripted-expert episode on the full mirrored stack, written as a video (front view and
wrist view side by side), and shown in MuJoCo's viewer when a display exists."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from onboard.video import write_mp4
from sim import tasks as T
from sim.expert.harness import EnvExecutor, run_episode
from sim.twin.cameras import RenderedCamera


def show(
    task: str = "pick",
    color: str = "red",
    seed: int = 0,
    out: str | Path = "outputs/sim_show.mp4",
    *,
    size: int = 240,
    viewer: bool | None = None,
    instruction: str | None = None,
    log=print,
) -> dict:
    spec = T.make_spec(task, color, seed, instruction)
    exe = EnvExecutor()
    world = exe.env.world
    front = RenderedCamera(world, "front", name="show_front", height=size, width=size * 4 // 3, fps=exe.control_hz)
    wrist = RenderedCamera(world, "wrist", name="show_wrist", height=size, width=size, fps=exe.control_hz)
    front.connect()
    wrist.connect()
    frames: list[np.ndarray] = []
    handle = None
    if viewer is None:
        viewer = bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    if viewer:
        try:
            import mujoco.viewer

            handle = mujoco.viewer.launch_passive(world.model, world.data)
        except Exception as exc:  # no usable display after all: the video is still written
            log(f"(no viewer: {exc})")
            handle = None

    def grab(_obs=None) -> None:
        frames.append(np.concatenate([front.read_latest().rgb, wrist.read_latest().rgb], axis=1))
        if handle is not None:
            handle.sync()

    exe.on_step = grab
    try:
        log(f"episode: {spec.instruction!r} (seed {seed}) on the mirrored stack: emulated servos, driver, Arm")
        result = run_episode(spec, executor=exe, on_tick=None, stop_on_success=False)
        path = write_mp4(out, frames, fps=exe.control_hz)
    finally:
        front.disconnect()
        wrist.disconnect()
        exe.close()
        if handle is not None:
            handle.close()
    outcome = f"success at {result.time_to_success:.2f} s" if result.success else "no success"
    log(f"{outcome}; {len(frames)} frames -> {path}")
    return {"success": result.success, "time_to_success": result.time_to_success, "video": str(path)}
