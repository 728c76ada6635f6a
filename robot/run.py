"""Running a trained policy on the follower arm: `onboard run`.

    summary = run_policy(rig, load_policy("policies/bundled/so101_vla"), RunConfig(task="pick up the red cube"),
                         robot=ArmConfig("so101_follower", rig.robot_port, "my_arm"))

The follower is connected through the ``Arm`` layer inside ``SafeArm`` (safety on: goals clamped to the calibrated
range, step and velocity; stall, fault and temperature stops; torque off on the way out, whatever happens), the
rig's cameras are read with ``CameraTap`` (``read_latest`` only: a camera never blocks the servo loop), and a
``ControlLoop`` at ``fps`` runs, each tick:

1. ``read``: ``SafeArm.check()``: joint positions in LeRobot units (the observation's state), faults raise;
2. ``cameras``: the newest frame of each camera the policy takes, as ``observation.images.<name>`` uint8 (H, W, 3)
   (resized to the policy's input when it needs one exact size);
3. ``policy``: ``AsyncRunner.action_for(t, observation)``: inference runs off the control thread (wall clock: its
   latency is measured) or is emulated on the sim clock (a configured latency, or the wall time ``infer`` took), with
   latency compensation and blending; the arm holds while no chunk is usable (warm-up, a late or failed inference);
4. ``write``: ``SafeArm.send_action``: the clamped goals in one SYNC_WRITE.

The run ends after ``duration_s``, on a control (Enter, ``q``, Esc, Ctrl-C, ``stop`` in the control file; space or
``e``: emergency stop, torque off at once), on a safety stop (the summary names the joint and why), after
``max_policy_failures`` failed inferences in a row, or (``stop_on_success``) when a ``judge`` says the task is done.
``judge`` is the world around the run (the simulation's success check); a real robot has none. Nothing here prints:
``on_status`` gets a status dict every ``status_every_s`` (``format_status`` makes it a line).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from hardware.camera import Frame
from hardware.feetech.errors import FeetechError
from policies.base import STATE_KEY, TASK_KEY
from policies.features import resize_image
from policies.runtime import AsyncRunner
from robot.arm_config import ArmConfig
from robot.controls import RecordControls, RunControls
from robot.errors import BusFailureError, RobotError, SafetyError
from robot.loop import CameraTap, ControlLoop, LoopStats, Tick
from robot.policy_loader import LoadedPolicy, describe
from robot.rig import Rig, connected_arms
from robot.safety_config import SafetyConfig

log = logging.getLogger(__name__)

IMAGE_PREFIX = "observation.images."


class CameraMismatchError(RobotError, ValueError):
    """The policy takes cameras the robot does not have (by name)."""


class Judge(Protocol):
    """A world around the run that can tell whether the task is done (the simulation); a real robot has none."""

    def update(self, t: float) -> bool:
        """Called after each tick at clock time ``t``; True once the task is done."""

    def result(self) -> dict[str, Any]:
        """What to report (e.g. ``{"success": True, "time_to_success_s": 4.2, ...}``)."""


@dataclass(frozen=True)
class RunConfig:
    """A run's settings. The metadata is the help of `onboard run`'s options (``onboard.cli.options``); ``task`` and
    ``latency_s`` the command resolves itself (``--task``, or the simulated scene's; ``--latency``)."""

    task: str = field(metadata={"cli": False})
    fps: float = field(default=30.0, metadata={"help": "control rate (Hz)"})
    duration_s: float | None = field(default=30.0, metadata={"help": "seconds to run"})  # None: until stopped
    # sim clock only: emulated seconds per chunk (None: the wall time infer takes)
    latency_s: float | None = field(default=None, metadata={"cli": False})
    status_every_s: float = field(default=1.0, metadata={"help": "seconds between status lines (0: none)"})
    max_policy_failures: int | None = field(  # None: never
        default=10, metadata={"help": "failed inferences in a row that end the run"}
    )
    stop_on_success: bool = field(
        default=False, metadata={"flag": "--sim.stop_on_success", "help": "sim: end the run when the task is done"}
    )
    camera_max_age_s: float | None = field(default=None, metadata={"cli": False})

    def __post_init__(self) -> None:
        if not isinstance(self.task, str) or not self.task.strip():
            raise ValueError('the policy needs an instruction: --task "pick up the red cube"')
        if not (self.fps > 0 and math.isfinite(self.fps)):
            raise ValueError(f"--fps must be a positive number, got {self.fps!r}")
        if self.duration_s is not None and not self.duration_s > 0:
            raise ValueError(f"--duration_s must be positive, got {self.duration_s!r}")
        if self.latency_s is not None and not (self.latency_s >= 0 and math.isfinite(self.latency_s)):
            raise ValueError(f"--latency must be >= 0 seconds, got {self.latency_s!r}")
        if not self.status_every_s >= 0:
            raise ValueError(f"status_every_s must be >= 0, got {self.status_every_s!r}")
        if self.max_policy_failures is not None and self.max_policy_failures < 1:
            raise ValueError(f"max_policy_failures must be >= 1 or None, got {self.max_policy_failures!r}")


# ---------------------------------------------------------------------------------------------------------- checks
def check_cameras(policy_cameras: tuple[str, ...] | None, robot_cameras: Mapping[str, object]) -> tuple[str, ...]:
    """The cameras to pass to the policy; ``CameraMismatchError`` (naming both sides) when it takes one the robot
    does not have."""
    have = tuple(robot_cameras)
    if policy_cameras is None:
        return have
    missing = [c for c in policy_cameras if c not in robot_cameras]
    if missing:
        listing = ", ".join(have) if have else "none"
        raise CameraMismatchError(
            f"the policy takes cameras {', '.join(policy_cameras)}; the robot has {listing} (no {', '.join(missing)}). "
            f"Name the cameras in --robot.cameras as the policy does, e.g. "
            f'"{{{", ".join(f"{c}: {{type: opencv, index_or_path: {k}}}" for k, c in enumerate(policy_cameras))}}}"'
        )
    return tuple(policy_cameras)


def _ms(samples) -> dict[str, float]:
    a = np.asarray(list(samples), dtype=np.float64) * 1e3
    if a.size == 0:
        return {"p50": math.nan, "p95": math.nan, "max": math.nan, "n": 0}
    return {
        "p50": float(np.percentile(a, 50)),
        "p95": float(np.percentile(a, 95)),
        "max": float(a.max()),
        "n": int(a.size),
    }


def format_status(s: Mapping[str, Any]) -> str:
    """One line of a status or summary dict."""
    lat = s["latency_ms"]
    text = (
        f"t={s['elapsed_s']:.1f}s ticks={s['ticks']} overruns={s['overruns']} "
        f"latency p50={lat['p50']:.0f}ms p95={lat['p95']:.0f}ms chunks={s['chunks']} "
        f"holds={s['holds']} (starved {s['starved_ticks']}) failures={s['failures']}"
    )
    if s.get("clamps"):
        text += " clamps=" + ",".join(f"{k}:{v}" for k, v in sorted(s["clamps"].items()))
    return text


# ------------------------------------------------------------------------------------------------------------- run
class _Run:
    def __init__(self, safe, runner: AsyncRunner, tap: CameraTap, cameras, loaded: LoadedPolicy, config: RunConfig):
        self.safe, self.runner, self.tap, self.cameras = safe, runner, tap, cameras
        self.loaded, self.config = loaded, config
        self.readings = None
        self.frames: dict[str, Frame | None] = {}
        self.action: np.ndarray | None = None
        self.no_frame_ticks = 0
        self.last_state: np.ndarray | None = None

    def read(self, tick: Tick) -> None:
        self.readings = self.safe.check()
        self.last_state = self.readings.positions.astype(np.float32)

    def read_cameras(self, tick: Tick) -> None:
        self.frames = self.tap.read() if self.cameras else {}

    def infer(self, tick: Tick) -> None:
        r = self.readings
        state = r.positions.astype(np.float32)
        obs: dict[str, Any] = {STATE_KEY: state, TASK_KEY: self.config.task, "t_capture": r.t}
        for name in self.cameras:
            frame = self.frames.get(name)
            if frame is None:  # no frame yet from this camera: hold (the policy cannot see)
                self.no_frame_ticks += 1
                self.action = self.action if self.action is not None else state
                return
            rgb = frame.rgb
            if self.loaded.exact_size and self.loaded.image_size is not None:
                rgb = resize_image(rgb, self.loaded.image_size)  # as training resized the dataset's
            obs[IMAGE_PREFIX + name] = rgb
        self.action = self.runner.action_for(r.t, obs)

    def write(self, tick: Tick) -> None:
        assert self.action is not None
        self.safe.send_action(self.action)

    def stages(self) -> dict[str, Callable[[Tick], None]]:
        return {"read": self.read, "cameras": self.read_cameras, "policy": self.infer, "write": self.write}


def run_policy(
    rig: Rig,
    policy: LoadedPolicy | Any,
    config: RunConfig,
    *,
    robot: ArmConfig,
    safety: SafetyConfig | None = None,
    controls: RecordControls | None = None,
    judge: Judge | None = None,
    on_status: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run ``policy`` on the follower of ``rig`` (module doc); returns the summary dict (``format_summary``)."""
    loaded = policy if isinstance(policy, LoadedPolicy) else describe(policy)
    cameras = check_cameras(loaded.cameras, rig.cameras)  # before any device is touched
    controls = controls if controls is not None else RunControls()
    clock = rig.clock
    wall = type(clock).__name__ == "WallClock"
    if wall and config.latency_s is not None:
        raise ValueError("an emulated --latency needs the simulated arm; on a real arm latency is measured")
    runner = AsyncRunner(
        loaded.policy, clock, config.fps, latency=None if wall else config.latency_s, mode=None if wall else "emulated"
    )
    stopped_by = "duration"
    safety_stop: dict[str, Any] | None = None
    emergency: list[str] | None = None
    loop = ControlLoop(clock, config.fps)
    state = {"next_status": math.nan, "fail_streak": 0, "seen": (0, 0), "judged": False}
    run: _Run | None = None

    def status(stats: LoopStats) -> dict[str, Any]:
        rs = runner.stats
        out = {
            "elapsed_s": clock.now() - stats.t0 if math.isfinite(stats.t0) else 0.0,
            "ticks": stats.ticks,
            "overruns": stats.overruns,
            "skipped": stats.skipped,
            "latency_ms": _ms(rs.latency_s),
            "infer_wall_ms": _ms(rs.infer_wall_s),
            "requests": rs.requests,
            "chunks": rs.chunks,
            "holds": rs.holds,
            "warmup_ticks": rs.warmup_ticks,
            "starved_ticks": rs.starved_ticks,
            "skipped_actions": rs.skipped_actions,
            "failures": rs.failures + rs.nonfinite,
            "clamps": dict(run.safe.stats.clamps) if run is not None else {},
        }
        return out

    def on_tick(tick: Tick, stats: LoopStats) -> None:
        nonlocal stopped_by, emergency
        controls.poll()
        if controls.estop:
            emergency = run.safe.emergency_stop("emergency stop (key/control)")
            stopped_by = "estop"
            loop.stop()
            return
        if controls.stop or controls.exit_early:
            stopped_by = "user"
            loop.stop()
            return
        rs = runner.stats
        chunks, fails = rs.chunks, rs.failures + rs.nonfinite
        seen_chunks, seen_fails = state["seen"]
        if chunks > seen_chunks:
            state["fail_streak"] = 0
        state["fail_streak"] += fails - seen_fails
        state["seen"] = (chunks, fails)
        if config.max_policy_failures is not None and state["fail_streak"] >= config.max_policy_failures:
            stopped_by = "policy"
            loop.stop()
        if judge is not None and judge.update(clock.now()) and config.stop_on_success:
            stopped_by = "success"
            loop.stop()
        if on_status is not None and config.status_every_s > 0:
            now = clock.now()
            if not now < state["next_status"]:  # NaN at first: the first status comes after one period
                if math.isfinite(state["next_status"]):
                    on_status(status(stats))
                    state["next_status"] += config.status_every_s * math.ceil(
                        (now - state["next_status"] + 1e-9) / config.status_every_s
                    )
                else:
                    state["next_status"] = now + config.status_every_s

    with connected_arms(rig, robot=robot, teleop=None, safety=safety) as (safe, _leader):
        tap = CameraTap({n: rig.cameras[n] for n in cameras}, max_age_s=config.camera_max_age_s)
        run = _Run(safe, runner, tap, cameras, loaded, config)
        with runner:
            runner.reset(config.task)
            try:
                loop.run(run.stages(), duration_s=config.duration_s, on_tick=on_tick)
            except SafetyError as exc:
                stopped_by = "safety"
                safety_stop = {
                    "error": type(exc).__name__,
                    "joint": getattr(exc, "joint", None) or ", ".join(getattr(exc, "joints", []) or []) or None,
                    "message": str(exc),
                }
            except FeetechError as exc:  # under a running arm a bus failure is a safety stop: torque off on the way out
                raise BusFailureError(f"the run stopped: {exc}") from exc
        summary = status(loop.stats)
        summary["elapsed_s"] = loop.stats.elapsed_s
    summary.update(
        {
            "task": config.task,
            "policy": loaded.path or type(loaded.policy).__name__,
            "fps": config.fps,
            "achieved_hz": loop.stats.achieved_hz,
            "stopped_by": stopped_by,
            "safety_stop": safety_stop,
            "torque_off_unconfirmed": emergency or [],
            "policy_errors": list(runner.stats.errors),
            "no_frame_ticks": run.no_frame_ticks if run is not None else 0,
            "final_state": None if run is None or run.last_state is None else [float(v) for v in run.last_state],
            "judge": judge.result() if judge is not None else None,
        }
    )
    return summary


STOP_REASONS = {
    "duration": "ran for the set duration",
    "user": "stopped by you",
    "estop": "EMERGENCY STOP: torque off",
    "safety": "safety stop",
    "policy": "the policy failed repeatedly",
    "success": "the task succeeded",
}


def format_summary(s: Mapping[str, Any]) -> str:
    """The final summary, a few lines for a person."""
    lines = [f"run ended: {STOP_REASONS.get(s['stopped_by'], s['stopped_by'])}"]
    stop = s.get("safety_stop")
    if stop:
        joint = f" on {stop['joint']}" if stop.get("joint") else ""
        lines.append(f"  safety stop{joint} ({stop['error']}): {stop['message']}")
    if s.get("torque_off_unconfirmed"):
        joints = ", ".join(s["torque_off_unconfirmed"])
        lines.append(f"  torque could not be confirmed off on {joints}: switch the power off")
    lines.append("  " + format_status(s) + f" achieved={s['achieved_hz']:.1f}Hz")
    if s.get("policy_errors"):
        lines.append(f"  last policy error: {s['policy_errors'][-1]}")
    if s.get("no_frame_ticks"):
        lines.append(f"  {s['no_frame_ticks']} ticks held without a camera frame")
    j = s.get("judge")
    if j:
        verdict = "SUCCEEDED" if j.get("success") else "did not succeed"
        when = f" after {j['time_to_success_s']:.1f} s" if j.get("time_to_success_s") is not None else ""
        lines.append(f"  sim: task {j.get('task')} ({j.get('color')}) {verdict}{when}")
    return "\n".join(lines)
