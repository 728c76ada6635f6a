"""`onboard demo`'s policy part: the bundled model drives the simulated SO-101 from a typed instruction.

    run_policy_demo("put the green cube in the box")

One episode on the mirrored stack (``SO101Env``: MuJoCo twin, emulated servos, the real driver), with the ONNX
bundle (``policies.onnx_policy.OnnxVLAPolicy``: onnxruntime, no torch) behind the runtime's ``AsyncRunner``
(``onboard.eval.episodes.run_episode_with_runner``; emulated inference latency on the sim clock, 0 ms by default). The
policy and the runner come from factories (by default ``onboard.eval.factories.policy_and_size`` with kind "onnx",
and ``make_runner``). The episode is written as a video and the run is summarised:
success and time to success, wall time, inference latency. The video shows the scene's viewing camera (``overview``,
640x480, rendered only for the video) beside the policy's own camera images (``onboard.video.VideoEnv``).

The policy gets the instruction exactly as typed. The simulator, though, must know which task and cube to judge
success by: ``judge_instruction`` guesses them from keywords (a colour word; box/tray/bin/basket/container: place;
touch/tap/poke/reach/contact: touch; anything else: pick), and ``task``/``color`` override the guess. That guess is
only the simulator's success check, never an input to the policy.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from onboard.demo import DEFAULT_INSTRUCTION, DEFAULT_VIDEO
from onboard.eval.episodes import LoadPolicy, MakeRunner, run_episode_with_runner
from onboard.eval.factories import make_runner as _make_runner
from onboard.eval.factories import policy_and_size
from onboard.video import VideoEnv, write_mp4
from policies.bundle import BUNDLED, check_bundle
from robot.latency import parse_latency as _parse_latency
from sim import tasks as T
from sim.envs.env import SO101Env

DEFAULT_BUNDLE = BUNDLED


class DemoError(Exception):
    """The demo cannot run (a missing bundle, a bad option): exit code 2."""


def judge_instruction(instruction: str, task: str | None = None, color: str | None = None) -> tuple[str, str]:
    """``sim.tasks.judge_instruction``, with a bad task or colour as a ``DemoError`` (exit code 2)."""
    try:
        return T.judge_instruction(instruction, task, color)
    except ValueError as exc:
        raise DemoError(str(exc)) from None


def parse_latency(value: str | float | None) -> float | None:
    """Emulated inference latency in seconds (the grammar of `onboard eval` / `onboard run`: "50ms", "0.05s", "0.05";
    "wall": the measured wall time of each inference, returned as None); no value: 0."""
    if value is None:
        return 0.0
    try:
        return _parse_latency(value)
    except ValueError as exc:
        raise DemoError(str(exc)) from None


def check_demo_bundle(bundle: str | Path | None) -> Path:
    """The bundle folder (None: the bundled model), checked (``policies.bundle.check_bundle``): a ``DemoError`` when
    there is no bundle, a ``policies.errors.PolicyLoadError`` naming the file when one is missing or damaged."""
    bundle = Path(bundle) if bundle is not None else DEFAULT_BUNDLE
    if not bundle.exists() or (bundle.is_dir() and not (bundle / "bundle.json").is_file()):
        raise DemoError(
            f"no policy bundle at {bundle} (no bundle.json). Reproduce the bundled model with scripts/make_model.sh "
            f"(writes outputs/model/bundle; then pass --bundle outputs/model/bundle), or pass --bundle PATH to any "
            f"`onboard export` bundle."
        )
    check_bundle(bundle)
    return bundle


class _TimedPolicy:
    """The policy with the wall time of every ``infer`` recorded (ms)."""

    def __init__(self, policy):
        self.policy = policy
        self.infer_ms: list[float] = []

    def reset(self, task: str) -> None:
        self.policy.reset(task)

    def infer(self, observation: dict):
        t = time.perf_counter()
        chunk = self.policy.infer(observation)
        self.infer_ms.append((time.perf_counter() - t) * 1e3)
        return chunk


def _video_what(recorder: VideoEnv, size: int) -> str:
    view = recorder.view
    return f"{view.camera} camera {view.width}x{view.height} beside the policy's {size}x{size} front and wrist views"


def _pct(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q)) if xs else math.nan


def run_policy_demo(
    instruction: str = DEFAULT_INSTRUCTION,
    bundle: str | Path | None = None,
    *,
    load_policy: LoadPolicy = policy_and_size,
    make_runner: MakeRunner = _make_runner,
    seed: int = 0,
    out: str | Path = DEFAULT_VIDEO,
    latency: str | float | None = None,
    task: str | None = None,
    color: str | None = None,
    video_size: int = 480,
    threads: int | None = 2,
    url: str | None = None,
    log=print,
) -> dict[str, Any]:
    """One episode of the bundled policy on ``instruction`` (module docstring). Raises ``DemoError`` when it cannot
    run; returns what it printed as a dict (``success``, ``time_to_success``, ``wall_s``, ``infer_ms``, ``video``).
    ``load_policy`` / ``make_runner``: the factories (default ``onboard.eval.factories``'s; the bundle is loaded as
    kind "onnx"). ``url``: a policy served by `onboard serve-policy` (ws://host:port) instead of the bundle."""
    bundle = url if url else check_demo_bundle(bundle)
    instruction = instruction.strip() or DEFAULT_INSTRUCTION
    judged_task, judged_color = judge_instruction(instruction, task, color)
    latency_s = parse_latency(latency)

    t_start = time.perf_counter()
    onnx_policy, size = load_policy("remote" if url else "onnx", bundle, threads=threads)
    policy = _TimedPolicy(onnx_policy)
    spec = T.make_spec(judged_task, judged_color, seed, instruction)
    shown = instruction if len(instruction) <= 200 else f"{instruction[:120]}... ({len(instruction)} characters)"
    log(f'instruction: "{shown}"  (the policy gets this text as typed)')
    how = "given" if task or color else "judged from keywords, for the simulator's success check only"
    log(f"success check: task {judged_task}, {judged_color} cube ({how}); layout seed {seed}")
    log(
        f"policy: {bundle} ({'served' if url else 'onnxruntime'}, {size}x{size} cameras); async runner, "
        "emulated latency " + ("= wall time of each inference" if latency_s is None else f"{latency_s * 1e3:.0f} ms")
    )
    env = SO101Env(task=judged_task, color=judged_color, image_size=(size, size), safety=True)  # as onboard run
    recorder = VideoEnv(env, video_size)
    recorder.recording = True
    try:
        t_episode = time.perf_counter()
        result = run_episode_with_runner(recorder, policy, "async", latency_s, spec, make_runner=make_runner)
        episode_wall = time.perf_counter() - t_episode
        video = write_mp4(out, recorder.frames, fps=env.fps)
    finally:
        recorder.close()
        env.close()
    wall = time.perf_counter() - t_start
    ms = policy.infer_ms
    if result.success:
        outcome = f"success: yes, at {result.time_to_success:.2f} s (sim time)"
    else:
        reason = f"servo fault: {result.fault}" if result.fault else f"time limit {spec.max_duration_s:.0f} s"
        outcome = f"success: no ({reason}; {result.duration_s:.2f} s sim time)"
    log(outcome)
    log(
        f"wall time: {wall:.1f} s in all, episode {episode_wall:.1f} s for {result.duration_s:.2f} s of sim time "
        f"({result.ticks} control ticks at {env.fps:.0f} Hz)"
    )
    log(
        f"inference: {len(ms)} chunks, p50 {_pct(ms, 50):.1f} ms, p95 {_pct(ms, 95):.1f} ms "
        + ("(round trip of each call to the server)" if url else "(wall time of each onnxruntime call)")
    )
    log(f"video: {video} ({_video_what(recorder, size)})")
    return {
        "instruction": instruction,
        "task": judged_task,
        "color": judged_color,
        "seed": seed,
        "success": result.success,
        "time_to_success": result.time_to_success,
        "sim_s": result.duration_s,
        "wall_s": wall,
        "infer_ms": {"p50": _pct(ms, 50), "p95": _pct(ms, 95), "n": len(ms)},
        "runner": result.stats,
        "video": str(video),
    }
