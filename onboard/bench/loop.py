"""`onboard bench loop`: does this machine hold a control loop's period? Jitter, overruns and per-stage times of a
fixed-rate loop on the wall clock, against the simulated SO-101 on a pseudo-terminal with the bus's wire-time model.

Each tick is what teleop and recording do (``robot.loop.ControlLoop`` on ``WallClock``, absolute deadlines):

- ``bus_read``: ``SafeArm.check()``: one SYNC_READ of Present_Position .. Status (10 bytes) from the six servos,
  then the fault / temperature / stall / watchdog checks;
- ``cameras``: ``CameraTap.read()``: ``read_latest`` of two cameras (never waits for a frame);
- ``bus_write``: ``SafeArm.send_action(goals)``: clamping, then one SYNC_WRITE of Goal_Position (a slow sine).

Where the simulated arm runs (``--arm``):

- ``process``: ``sim.process.so101.SO101Process``: world, servos and pty server in a child process, like a real arm
  on a USB adapter. The world is not in this process, so the two cameras are stand-ins: a thread each publishing a
  96x96 frame at 30 fps (what a real camera's capture thread does; no rendering on the loop thread).
- ``thread``: ``SimulatedSO101.serve_pty(wire_time=True)`` plus ``RealTimeRunner`` as threads of this process, and
  two rendered 96x96 ``RenderedCamera``s of that world (rendered on the loop thread when a frame is due, so their
  cost is in the ``cameras`` stage). The emulator and the physics share the GIL with the loop.

Lateness is tick start - its absolute deadline ``t0 + i * dt``. An overrun is a tick that ends after the next
deadline (the loop then skips the deadlines already past). The wire-time limit of the bytes at 1 Mbaud is printed
for the two bus stages.
"""

from __future__ import annotations

import gc
import json
import math
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hardware.camera import CameraError, Frame, StaleFrameError
from hardware.feetech import FeetechError
from hardware.feetech import protocol as proto
from onboard.bench.config import LoopBenchConfig
from onboard.bench.sysinfo import machine_info, machine_lines
from onboard.cli.options import command_line
from robot.arm import Arm
from robot.arm_config import ArmConfig
from robot.calibration import MotorCalibration, save_calibration
from robot.clock import WallClock
from robot.loop import CameraTap, ControlLoop, Tick
from robot.safety import BLOCK_ADDRESS, BLOCK_LENGTH, SafeArm

BAUD = 1_000_000
IDS = [1, 2, 3, 4, 5, 6]
ARMS = ("process", "thread")
CAMERA_SIZE = 96
CAMERA_FPS = 30.0
AMPLITUDE_DEG = 5.0  # the goal sine: well inside SafeArm's velocity limit at both rates
FREQUENCY_HZ = 0.5

READ_BYTES = len(proto.sync_read(IDS, BLOCK_ADDRESS, BLOCK_LENGTH)) + len(IDS) * (6 + BLOCK_LENGTH)  # 14 + 6x16
WRITE_BYTES = len(proto.sync_write(42, 2, {i: b"\0\0" for i in IDS}))  # 26
WIRE_LIMIT_MS = {
    "bus_read": proto.wire_time(READ_BYTES, BAUD) * 1e3,
    "bus_write": proto.wire_time(WRITE_BYTES, BAUD) * 1e3,
}
STAGES = ("bus_read", "cameras", "bus_write")
ARM_TEXT = {
    "process": "SimulatedSO101 in a child process (sim.process.so101), served on a pty, wire-time model, real time",
    "thread": "SimulatedSO101 served on a pty from threads of this process (serve_pty + RealTimeRunner), wire-time",
}
CAMERA_TEXT = {
    "process": f"2 stand-in cameras: a thread each publishing {CAMERA_SIZE}x{CAMERA_SIZE} frames at "
    f"{CAMERA_FPS:g} fps (the world is in the child)",
    "thread": f"2 RenderedCameras (front, wrist) {CAMERA_SIZE}x{CAMERA_SIZE} at {CAMERA_FPS:g} fps, rendered on the "
    "loop thread when a frame is due",
}


# ------------------------------------------------------------------------------------------------- cameras
class StandInCamera:
    """robot's ``Camera`` fed by a thread that publishes a new frame every ``1 / fps`` s (absolute deadlines), as a
    real camera's capture thread does: ``read_latest`` only hands over the newest frame."""

    def __init__(self, name: str, *, height: int = CAMERA_SIZE, width: int = CAMERA_SIZE, fps: float = CAMERA_FPS):
        self.name, self.height, self.width, self.fps = name, int(height), int(width), float(fps)
        self._latest: Frame | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.frames = 0

    def connect(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"camera-{self.name}", daemon=True)
        self._thread.start()
        while self._latest is None and self._thread.is_alive():
            time.sleep(0.001)

    def _run(self) -> None:
        base = np.zeros((self.height, self.width, 3), np.uint8)
        base[..., 0] = np.linspace(0, 255, self.width, dtype=np.uint8)[None, :]
        base[..., 1] = np.linspace(0, 255, self.height, dtype=np.uint8)[:, None]
        dt = 1.0 / self.fps
        t0 = time.monotonic()
        k = 0
        while not self._stop.is_set():
            rgb = np.roll(base, k % self.width, axis=1)  # a new array per frame, as a capture thread produces
            self._latest = Frame(rgb=rgb, t_capture=time.monotonic(), index=k)  # one assignment: the handover
            self.frames += 1
            k = max(k + 1, math.floor((time.monotonic() - t0) / dt) + 1)
            self._stop.wait(max(0.0, t0 + k * dt - time.monotonic()))

    def read_latest(self, max_age_s: float | None = None) -> Frame:
        latest = self._latest
        if latest is None:
            raise CameraError(f"camera {self.name!r} is not connected: call connect() first")
        if max_age_s is not None and time.monotonic() - latest.t_capture > max_age_s:
            raise StaleFrameError(f"camera {self.name!r}: the latest frame is older than {max_age_s} s")
        return latest

    def disconnect(self) -> None:
        thread, self._thread = self._thread, None
        self._stop.set()
        if thread is not None:
            thread.join()
        self._latest = None


# ---------------------------------------------------------------------------------------------------- rigs
@dataclass
class Rig:
    arm: Arm
    cameras: dict
    dropped_s: Callable[[], float]  # simulated time the arm's runner dropped (could not keep up)


def _connect_arm(port: str, calibration: dict, tmp: Path) -> Arm:
    save_calibration(tmp / "bench.json", {n: MotorCalibration(**v) for n, v in calibration.items()})
    arm = Arm(ArmConfig(type="so101_follower", port=port, id="bench", calibration_dir=tmp))
    arm.connect()  # torque on, holding the present pose
    return arm


@contextmanager
def make_rig(kind: str, seed: int = 0) -> Iterator[Rig]:
    """The simulated arm on a pty (wire time on) in real time, a connected ``Arm`` on it, and two cameras."""
    if kind not in ARMS:
        raise ValueError(f"arm must be one of {ARMS}, got {kind!r}")
    with tempfile.TemporaryDirectory(prefix="onboard-bench-loop-") as tmpdir:
        tmp = Path(tmpdir)
        if kind == "process":
            from sim.process.so101 import SO101Process

            with SO101Process(seed=seed, uncalibrated=False, wire_time=True) as sim_arm:
                arm = _connect_arm(sim_arm.path, sim_arm.factory_calibration(), tmp)
                cams = {n: StandInCamera(n) for n in ("front", "wrist")}
                try:
                    for cam in cams.values():
                        cam.connect()
                    yield Rig(arm, cams, lambda: sim_arm.dropped_s)
                finally:
                    for cam in cams.values():
                        cam.disconnect()
                    arm.disconnect()
        else:
            from sim.twin.cameras import RenderedCamera
            from sim.twin.physics import RealTimeRunner
            from sim.twin.so101 import SimulatedSO101

            with SimulatedSO101(seed=seed, uncalibrated=False) as sim_arm:
                server = sim_arm.serve_pty(wire_time=True)
                with RealTimeRunner(sim_arm.world) as runner:
                    arm = _connect_arm(server.path, sim_arm.factory_calibration(), tmp)
                    cams = {
                        n: RenderedCamera(sim_arm.world, n, height=CAMERA_SIZE, width=CAMERA_SIZE, fps=CAMERA_FPS)
                        for n in ("front", "wrist")
                    }
                    try:
                        for cam in cams.values():
                            cam.connect()
                            cam.read_latest()  # the first render sets up the GL context: not part of a tick
                        yield Rig(arm, cams, lambda: runner.dropped_s)
                    finally:
                        for cam in cams.values():
                            cam.disconnect()
                        arm.disconnect()


# ------------------------------------------------------------------------------------------------- measuring
def measure(rig: Rig, rate_hz: float, seconds: float) -> dict:
    """One loop run at ``rate_hz`` for ``seconds`` on the wall clock; ``LoopStats.summary()`` plus errors."""
    clock = WallClock()
    tap = CameraTap(rig.cameras)
    errors = {"bus_read": 0, "bus_write": 0}
    amplitude = AMPLITUDE_DEG
    with SafeArm(rig.arm, clock) as safe:
        center = safe.read().positions.copy()

        def step(tick: Tick) -> None:
            with tick.stage("bus_read"):
                try:
                    safe.check()
                except FeetechError:
                    errors["bus_read"] += 1
            with tick.stage("cameras"):
                tap.read()
            with tick.stage("bus_write"):
                phase = 2 * math.pi * FREQUENCY_HZ * tick.index * tick.dt
                try:
                    safe.send_action(center + amplitude * math.sin(phase))
                except FeetechError:
                    errors["bus_write"] += 1

        dropped0 = rig.dropped_s()
        gc.collect()
        stats = ControlLoop(clock, rate_hz).run(step, duration_s=seconds)
        dropped = rig.dropped_s() - dropped0
    out = stats.summary()
    out["achieved_hz"] = stats.ticks / seconds  # ticks run per second of schedule (skipped deadlines lower it)
    out["errors"] = errors
    out["stale_frames"] = dict(tap.stale)
    out["clamps"] = dict(safe.stats.clamps)
    out["sim_dropped_s"] = dropped
    out["busy"] = out["tick_s"]["mean"] * rate_hz if out["ticks"] else math.nan  # tick time / period
    return out


# ---------------------------------------------------------------------------------------------------- report
def _ms(s: float) -> str:
    return "-" if s is None or math.isnan(s) else f"{s * 1e3:.2f}"


def _tri(p: dict) -> str:
    return f"{_ms(p['p50'])} / {_ms(p['p99'])} / {_ms(p['max'])}"


def format_table(runs: list[dict]) -> str:
    header = ["arm", "rate Hz", "ticks", "achieved Hz", "overruns", "skipped", "lateness ms p50/p99/max"]
    header += [f"{s} ms p50/p99/max" for s in STAGES] + ["tick ms p50/p99/max", "busy", "bus err"]
    lines = []
    for r in runs:
        s = r["stats"]
        stages = s["stages_s"]
        lines.append(
            [
                r["arm"],
                f"{s['rate_hz']:g}",
                str(s["ticks"]),
                f"{s['achieved_hz']:.2f}",
                str(s["overruns"]),
                str(s["skipped"]),
                _tri(s["lateness_s"]),
                *(_tri(stages[k]) if k in stages else "-" for k in STAGES),
                _tri(s["tick_s"]),
                f"{s['busy'] * 100:.0f}%",
                str(sum(s["errors"].values())),
            ]
        )
    widths = [max(len(h), *(len(line[k]) for line in lines)) if lines else len(h) for k, h in enumerate(header)]

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if k == 0 else c.rjust(w) for k, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([fmt(header), fmt(["-" * w for w in widths]), *(fmt(line) for line in lines)])


def header(report: dict) -> str:
    m = {k: v for k, v in report["machine"].items() if k != "loadavg_after"}  # the header is printed before the run
    lines = [
        f"command: {report['command']}",
        *machine_lines(m),
        "clock:   WallClock (time.monotonic, sleep then spin the last 1 ms to absolute deadlines t0 + i*dt)",
        "tick:    SafeArm.check (1 SYNC_READ, Present_Position..Status of 6 servos) + CameraTap.read (read_latest "
        "x2) + SafeArm.send_action (1 SYNC_WRITE of Goal_Position)",
        f"wire:    1 Mbaud, 10 bits/byte: SYNC_READ {READ_BYTES} bytes = {WIRE_LIMIT_MS['bus_read']:.2f} ms, "
        f"SYNC_WRITE {WRITE_BYTES} bytes = {WIRE_LIMIT_MS['bus_write']:.2f} ms",
    ]
    for kind in report["arms"]:
        lines.append(f"arm {kind}: {ARM_TEXT[kind]}; cameras: {CAMERA_TEXT[kind]}")
    return "\n".join(lines)


NOTES = """\
notes: lateness = tick start - its absolute deadline. overruns = ticks that ended after the next deadline; skipped =
deadlines passed over after them. busy = mean tick time / period. bus err = failed transactions (timeouts, bad
replies). SYNC_WRITE gets no reply: its time is how long the caller is held, not the wire time."""


def run(arms: list[str], rates: list[float], seconds: float, command: str, echo: Callable[[str], None]) -> dict:
    report = {
        "command": command,
        "argv": list(sys.argv),
        "machine": machine_info(),
        "arms": list(arms),
        "rates_hz": list(rates),
        "seconds": seconds,
        "wire_limit_ms": dict(WIRE_LIMIT_MS),
        "runs": [],
    }
    echo(header(report))
    for kind in arms:
        with make_rig(kind) as rig:
            for rate in rates:
                echo(f"measuring: arm {kind}, {rate:g} Hz for {seconds:g} s ...")
                report["runs"].append({"arm": kind, "stats": measure(rig, rate, seconds)})
    report["machine"]["loadavg_after"] = machine_info()["loadavg"]
    echo("")
    echo(format_table(report["runs"]))
    for r in report["runs"]:
        s = r["stats"]
        extra = []
        if s["sim_dropped_s"] > 0:
            extra.append(f"the simulation dropped {s['sim_dropped_s'] * 1e3:.0f} ms (could not keep real time)")
        if s["stale_frames"]:
            extra.append(f"stale camera reads {s['stale_frames']}")
        if s["clamps"]:
            extra.append(f"safety clamps {s['clamps']}")
        if extra:
            echo(f"{r['arm']} {s['rate_hz']:g} Hz: " + "; ".join(extra))
    echo(NOTES)
    return report


# ----------------------------------------------------------------------------------------------------- main
def main(cfg: LoopBenchConfig) -> int:
    """Run the benchmark ``cfg`` describes, print the report to stdout, and write its numbers to ``cfg.json``."""
    import sim  # noqa: F401  (registers simbus://)

    arms = list(ARMS) if cfg.arm == "both" else [cfg.arm]
    command = command_line("onboard bench loop", cfg)
    report = run(arms, list(cfg.rates), cfg.seconds, command, lambda s: print(s, flush=True))
    if cfg.json:
        Path(cfg.json).write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {cfg.json}")
    return 0
