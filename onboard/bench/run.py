"""`onboard bench run`: does the whole policy loop keep up on N cores? The `onboard run` loop, unchanged
(``robot.run.run_policy``: ``SafeArm``, the async runtime with inference off the control thread, the ``ControlLoop`` on
the wall clock), against the twin served as a device in another process, for ``--duration`` seconds at ``--fps``:

- the twin: `onboard sim serve --calibrated` as a child process pinned to the cores this process does not get (all of
  them when there are no others): the follower's bus on a pty with the wire-time model, its front and wrist cameras
  rendered at ``--width`` x ``--height`` and published in shared memory, the scene of ``--sim.*`` and its success
  judge (a JSON line on the child's stdout when the task is done);
- this process, with every thread pinned to ``--cpus`` cores (``os.sched_setaffinity``; 1 = a Pi-class budget): the
  loop, the two camera streams decoded and resized to the policy's input (``run_cameras``: MJPEG as a USB camera
  delivers it, by default, or raw RGB), and the policy (the bundled ONNX model unless ``--policy.path``) with
  ``--threads`` intra-op threads (default: ``--cpus``).

What it reports (``run_meter`` says how each is taken without changing the loop): ticks, overruns, lateness (tick start
- its deadline) p50/p99/max; per stage, wall time p50/p99/max and thread CPU time (mean, p99, and the share of one
core): bus (the SYNC_READ), safety (``SafeArm``'s checks and clamps and the unit conversions around the bus calls),
write (the SYNC_WRITE), camera decode/resize, the policy step on the control thread, inference on its own thread;
inference p50/p99, the runtime's starved ticks and holds; the process's CPU over the run; the task's success (the
twin's judge).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from onboard.bench.config import RunBenchConfig
from onboard.bench.cores import pin_this_process, split_cores
from onboard.bench.run_cameras import MjpegCamera, MjpegStream, RawCamera
from onboard.bench.run_meter import BusMeter, MeteredPolicy, metered
from onboard.bench.sysinfo import machine_info, machine_lines
from onboard.cli.options import command_line
from policies.runtime import percentiles

ROBOT_ID = "bench_run"
CAMERAS = ("front", "wrist")


def _pinned(cpus: list[int], argv: list[str]) -> list[str]:
    """``argv`` (a Python command line) run pinned to ``cpus``: the child pins itself, then execs."""
    code = "import os, sys; os.sched_setaffinity(0, {%s}); os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
    return [sys.executable, "-c", code % ", ".join(map(str, cpus)), *argv]


class ServedTwin:
    """`onboard sim serve` as a child process on ``cpus``; its pty, its cameras' names and its judge's events."""

    def __init__(self, cfg: RunBenchConfig, cpus: list[int], folder: Path):
        self.cfg, self.cpus, self.folder = cfg, cpus, folder
        self.prefix = f"bench{os.getpid()}"
        self.streams = {cam: f"{self.prefix}.{cam}" for cam in CAMERAS}
        self.events: list[dict[str, Any]] = []
        self.log = folder / "serve.log"
        self.path = ""
        self._proc: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> ServedTwin:
        c = self.cfg
        argv = ["-m", "onboard", "sim", "serve", "--calibrated", "--robot.id", ROBOT_ID]
        argv += ["--robot.calibration_dir", str(self.folder), "--cameras.prefix", self.prefix]
        argv += ["--cameras.width", str(c.width), "--cameras.height", str(c.height), "--cameras.fps", str(c.fps)]
        argv += ["--sim.seed", str(c.seed), "--sim.task", c.task, "--sim.color", c.color]
        with open(self.log, "w") as err:
            self._proc = subprocess.Popen(
                _pinned(self.cpus, argv), stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, text=True
            )
        assert self._proc.stdout is not None
        self.path = self._proc.stdout.readline().strip()
        if not self.path.startswith("/dev/"):
            self.stop()
            raise RuntimeError(f"`onboard sim serve` did not start: {self.log.read_text()[-800:]}")
        self._reader = threading.Thread(target=self._read_events, name="twin-events", daemon=True)
        self._reader.start()
        return self

    def _read_events(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                self.events.append(event)

    def stop(self) -> int | None:
        """Ctrl-C to the twin (it prints its judge's last word), then wait; returns its exit code."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
        return proc.returncode

    def result(self) -> dict[str, Any]:
        """The judge's verdict: the first ``success`` event, else the ``end`` event (``{}``: neither came)."""
        by_kind = {e.get("event"): e for e in reversed(self.events)}
        out = dict(by_kind.get("end", {}))
        if "success" in by_kind:
            out.update(by_kind["success"], success=True)
        out.pop("event", None)
        return out


# ------------------------------------------------------------------------------------------------------ measure
def _ms(samples) -> dict[str, float]:
    p = percentiles([s * 1e3 for s in samples])
    return {k: p[k] for k in ("p50", "p99", "max", "mean", "n")}


def _stage(wall, cpu, elapsed_s: float) -> dict[str, Any]:
    return {"ms": _ms(wall), "cpu_ms": _ms(cpu), "cpu_share": sum(cpu) / elapsed_s if elapsed_s > 0 else math.nan}


def stage_report(timer, policy: MeteredPolicy, cameras: list, elapsed_s: float) -> dict[str, dict[str, Any]]:
    """Per-stage time and CPU (module doc) from the loop's metered stage timer, the policy and the cameras."""

    def minus(a, b):
        return [x - y for x, y in zip(a, b, strict=True)]

    def series(name: str):
        return list(timer.samples.get(name, [])), timer.cpu.get(name, []), timer.bus_wall.get(name, []), \
            timer.bus_cpu.get(name, [])  # fmt: skip

    r_wall, r_cpu, rb_wall, rb_cpu = series("read")
    w_wall, w_cpu, wb_wall, wb_cpu = series("write")
    c_wall, c_cpu, _, _ = series("cameras")
    p_wall, p_cpu, _, _ = series("policy")
    n = min(len(r_wall), len(w_wall))
    safety_wall = [a + b for a, b in zip(minus(r_wall, rb_wall)[:n], minus(w_wall, wb_wall)[:n], strict=True)]
    safety_cpu = [a + b for a, b in zip(minus(r_cpu, rb_cpu)[:n], minus(w_cpu, wb_cpu)[:n], strict=True)]
    decode_wall = [s for cam in cameras for s in cam.wall_s]
    decode_cpu = [s for cam in cameras for s in cam.cpu_s]
    return {
        "bus": _stage(rb_wall, rb_cpu, elapsed_s),
        "safety": _stage(safety_wall, safety_cpu, elapsed_s),
        "write": _stage(wb_wall, wb_cpu, elapsed_s),
        "cameras": _stage(c_wall, c_cpu, elapsed_s),
        "decode_resize": _stage(decode_wall, decode_cpu, elapsed_s),
        "policy_step": _stage(p_wall, p_cpu, elapsed_s),
        "inference": _stage(policy.wall_s, policy.cpu_s, elapsed_s),
    }


def main(cfg: RunBenchConfig) -> int:
    """Run the bench (module doc), print the report, and write it as JSON to ``cfg.json`` if given."""
    from policies.bundle import BUNDLED
    from robot.arm_config import ArmConfig
    from robot.clock import WallClock
    from robot.errors import RobotError
    from robot.policy_loader import load_policy
    from robot.rig import Rig
    from robot.run import RunConfig, run_policy
    from sim.rigs.follower import scene_spec

    loop_cpus, twin_cpus = split_cores(cfg.cpus)
    threads = cfg.threads if cfg.threads is not None else cfg.cpus
    policy_path = cfg.policy_path or str(BUNDLED)
    instruction = scene_spec(cfg.seed, cfg.task, cfg.color).instruction
    report: dict[str, Any] = {
        "command": command_line("onboard bench run", cfg),
        "argv": list(sys.argv),
        "machine": machine_info(),
        "cpus": {"loop": loop_cpus, "twin": twin_cpus, "shared": bool(set(loop_cpus) & set(twin_cpus))},
        "config": {**{k: getattr(cfg, k) for k in cfg.__dataclass_fields__}, "threads": threads},
        "policy": policy_path,
        "instruction": instruction,
    }
    print("\n".join([f"command: {report['command']}", *machine_lines(report["machine"])]), flush=True)
    with tempfile.TemporaryDirectory(prefix="onboard_bench_run_") as tmp:
        twin = ServedTwin(cfg, twin_cpus, Path(tmp)).start()
        stream = None
        try:
            pin_this_process(loop_cpus)
            size = None
            loaded = load_policy(policy_path, threads=threads)
            size = loaded.image_size or (cfg.height, cfg.width)
            policy = MeteredPolicy(loaded.policy)
            loaded = replace(loaded, policy=policy)
            names = list(loaded.cameras or CAMERAS)
            if cfg.camera == "mjpeg":
                stream = MjpegStream(
                    [twin.streams[n] for n in names], quality=cfg.jpeg_quality, fps=cfg.fps, cpus=twin_cpus
                ).start()
                cams = [MjpegCamera(stream, k, n, size) for k, n in enumerate(names)]
            else:
                cams = [RawCamera(twin.streams[n], n, size, cfg.fps) for n in names]
            rig = Rig(robot_port=twin.path, cameras=dict(zip(names, cams, strict=True)), clock=WallClock())
            arm = ArmConfig("so101_follower", twin.path, ROBOT_ID, calibration_dir=Path(tmp))
            print(
                f"twin on CPU {twin_cpus} ({twin.path}); loop, cameras and policy on CPU {loop_cpus}; "
                f"{cfg.duration:g} s at {cfg.fps:g} Hz ...",
                flush=True,
            )
            bus = BusMeter()
            cpu0 = time.process_time()
            failure = None
            run_config = RunConfig(task=instruction, fps=cfg.fps, duration_s=cfg.duration, status_every_s=0)
            with metered(bus) as capture:
                try:
                    summary = run_policy(rig, loaded, run_config, robot=arm)
                except RobotError as exc:  # e.g. the twin stopped answering: report what was measured up to then
                    if capture.loop is None or not capture.loop.stats.ticks:
                        raise  # nothing measured: the command's error line says why
                    failure, summary = f"{type(exc).__name__}: {exc}", {"stopped_by": "error"}
            process_cpu = time.process_time() - cpu0
        finally:
            if stream is not None:
                stream.stop()
            rc = twin.stop()
    loop = capture.loop
    assert loop is not None
    stats = loop.stats
    elapsed = stats.elapsed_s
    report["loop"] = {
        "fps": cfg.fps,
        "ticks": stats.ticks,
        "overruns": stats.overruns,
        "skipped": stats.skipped,
        "achieved_hz": stats.achieved_hz,
        "elapsed_s": elapsed,
        "lateness_ms": _ms(stats.lateness),
        "tick_ms": _ms(stats.tick_time),
    }
    report["stages"] = stage_report(stats.stages, policy, cams, elapsed)
    report["inference_ms"] = _ms(policy.wall_s)
    report["runtime"] = {k: summary.get(k) for k in ("chunks", "holds", "warmup_ticks", "starved_ticks", "failures")}
    report["runtime"]["latency_ms"] = summary.get("latency_ms")
    report["process_cpu"] = {"seconds": process_cpu, "share_of_granted": process_cpu / elapsed / len(loop_cpus)}
    report["cameras"] = {
        "source": cfg.camera,
        "size": [cfg.height, cfg.width],
        "policy_input": list(size),
        "decoded": [len(c.wall_s) for c in cams],
        "jpeg_kib_per_frame": (stream.bytes_received / max(1, sum(stream.received)) / 1024) if stream else None,
    }
    verdict = twin.result()
    report["task"] = {
        "task": cfg.task,
        "color": cfg.color,
        "seed": cfg.seed,
        "success": verdict.get("success"),
        "time_to_success_s": verdict.get("time_to_success_s"),
        "twin_camera_frames": verdict.get("camera_frames"),
        "twin_camera_skipped": verdict.get("camera_skipped"),
        "twin_rc": rc,
        "judge": verdict,
    }
    report["run"] = {k: summary.get(k) for k in ("stopped_by", "safety_stop", "no_frame_ticks", "policy_errors")}
    report["run"]["error"] = failure
    print()
    print(format_report(report))
    if cfg.json:
        Path(cfg.json).write_text(json.dumps(report, indent=2, default=str) + "\n")
        print(f"wrote {cfg.json}")
    return 1 if failure else 0


# ------------------------------------------------------------------------------------------------------- report
STAGE_TEXT = {
    "bus": "bus: SYNC_READ",
    "safety": "safety: checks, clamps, units",
    "write": "write: SYNC_WRITE",
    "cameras": "cameras stage (2 streams)",
    "decode_resize": "  decode+resize per frame",
    "policy_step": "policy step (loop thread)",
    "inference": "inference (its thread)",
}


def format_report(r: dict[str, Any]) -> str:
    c, lp = r["config"], r["loop"]
    lat = lp["lateness_ms"]
    lines = [
        f"cores: loop process {r['cpus']['loop']}, twin {r['cpus']['twin']}"
        + (" (shared)" if r["cpus"]["shared"] else ""),
        f"cameras: 2 x {c['width']}x{c['height']} {r['cameras']['source']} -> {r['cameras']['policy_input']}; "
        f"policy {r['policy']} ({c['threads']} intra-op thread(s)); {r['instruction']!r}",
        f"loop: {lp['ticks']} ticks at {c['fps']:g} Hz ({lp['achieved_hz']:.2f} achieved), overruns "
        f"{lp['overruns']}, skipped {lp['skipped']}; lateness p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms, "
        f"max {lat['max']:.2f} ms",
        "",
        "  ".join(
            [f"{'stage':28s}", *(f"{h:>7s}" for h in ("p50 ms", "p99 ms", "max ms", "CPU ms", "CPU p99")), "% core"]
        ),
    ]
    for key, text in STAGE_TEXT.items():
        s = r["stages"][key]
        ms, cpu = s["ms"], s["cpu_ms"]
        lines.append(
            f"{text:28s}  {ms['p50']:7.2f}  {ms['p99']:7.2f}  {ms['max']:7.2f}  {cpu['mean']:7.2f}  "
            f"{cpu['p99']:7.2f}  {100 * s['cpu_share']:6.1f}"
        )
    inf, rt = r["inference_ms"], r["runtime"]
    lines += [
        "",
        f"inference: {inf['n']} chunks, p50 {inf['p50']:.1f} ms, p99 {inf['p99']:.1f} ms, max {inf['max']:.1f} ms; "
        f"starved ticks {rt['starved_ticks']}, holds {rt['holds']}, failures {rt['failures']}",
        f"process CPU: {r['process_cpu']['seconds']:.1f} s = {100 * r['process_cpu']['share_of_granted']:.1f} % of "
        f"the {len(r['cpus']['loop'])} granted core(s)",
    ]
    if r["run"]["error"]:
        lines.append(f"the run stopped early: {r['run']['error']}")
    t = r["task"]
    if t["success"] is not None:
        verdict = "SUCCEEDED" if t["success"] else "did not succeed"
        when = f" after {t['time_to_success_s']:.1f} s" if t["time_to_success_s"] is not None else ""
        frames = f"; twin camera frames {t['twin_camera_frames']}" if t["twin_camera_frames"] is not None else ""
        skipped = f", skipped {t['twin_camera_skipped']}" if t["twin_camera_skipped"] is not None else ""
        lines.append(f"task: {t['task']} {t['color']} (seed {t['seed']}): {verdict}{when} (the twin's judge){frames}"
                     f"{skipped}")  # fmt: skip
    else:
        lines.append(f"task: no verdict from the twin (exit code {t.get('twin_rc')})")
    return "\n".join(lines)
