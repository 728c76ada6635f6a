"""`onboard sim serve` and `onboard sim serve-bus`: the simulated twin as devices, in real time, for any process.

`serve`: the follower's bus on a pty (and with --leader a leader's on a second one), each arm with a simulated person
who answers a calibration seen on the bus (sim.rigs.served); the front and wrist cameras rendered in real time and
published by name in shared memory (sim.transport.camera_server, read by hardware.shm_camera); the scene of --sim.*
laid out as `onboard run --robot.port=sim` lays out its own, with a JSON line on stdout when its task is done.
`serve-bus`: emulated STS3215 servos alone. Both serve at raised priority, with the kernel's tty workers raised too
(sim.realtime), unless --no-realtime.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from hardware.feetech import FeetechError
from onboard.cli.bus import parse_ids
from onboard.cli.options import OptionError, config_from

_WIRE_TIME = {"flag": "--no-wire-time", "help": "answer at once instead of at the wire's pace"}
_DURATION = {"help": "stop after this many seconds (none: at Ctrl-C)"}
_REALTIME = {
    "flag": "--no-realtime",
    "help": "serve the pty at normal priority (default: from a thread of its own, ahead of other threads and "
    "processes where permitted, so that replies keep their deadline on a loaded machine)",
}


@dataclass(frozen=True)
class ServeBusConfig:
    ids: str = field(default="1-6", metadata={"help": "servo ids"})
    baud: int = field(default=1_000_000, metadata={"help": "the servos' baud rate"})
    faults: str = field(default="", metadata={"help": "fault profile, e.g. corrupt=0.02,drop=0.01,unplugged=3"})
    wire_time: bool = field(default=True, metadata=_WIRE_TIME)
    realtime: bool = field(default=True, metadata=_REALTIME)
    duration: float | None = field(default=None, metadata=_DURATION)


@dataclass(frozen=True)
class ServedArm:
    id: str | None = field(
        default=None,
        metadata={
            "help": "with --calibrated: also write the served arm's calibration as this so101_follower id's LeRobot "
            "calibration file (printed), so that `onboard run/record` and LeRobot's tools use the served arm as is"
        },
    )
    calibration_dir: str | None = field(
        default=None, metadata={"help": "where that file goes (default: LeRobot's calibration folder)"}
    )


@dataclass(frozen=True)
class ServedCameras:
    prefix: str | None = field(
        default=None,
        metadata={
            "help": "publish the cameras as PREFIX.front and PREFIX.wrist (default: front and wrist, or twin2.front "
            "and twin2.wrist where another served twin has those, twin3... : the names are printed)"
        },
    )
    width: int = field(
        default=96, metadata={"help": "camera px (96x96: the bundled policy's; 640x480: a USB camera's)"}
    )
    height: int = field(default=96, metadata={"help": "camera px"})
    fps: float = field(default=30.0, metadata={"help": "frames per second, rendered in real time"})

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0 or not 0 < self.fps <= 240:
            raise ValueError("--cameras.width/--cameras.height must be positive and --cameras.fps in (0, 240]")


@dataclass(frozen=True)
class ServedScene:
    seed: int = field(default=0, metadata={"help": "scene layout seed (as `onboard run --robot.port=sim --sim.seed`)"})
    task: Literal["touch", "pick", "place"] | None = field(
        default=None, metadata={"help": "the task laid out and judged (default: drawn from --sim.seed)"}
    )
    color: Literal["red", "green", "blue"] | None = field(
        default=None, metadata={"help": "its cube (default: drawn from --sim.seed)"}
    )


@dataclass(frozen=True)
class ServedLeader:
    serve: bool = field(
        default=False,
        metadata={
            "flag": "--leader",
            "help": "also serve a leader arm on a second pty (its path is printed on the line after the follower's): "
            "torque off, its joints moved by the scripted expert solving the served scene's task while a client "
            "teleoperates (writes goals to the follower), or by --leader.dataset's recorded actions",
        },
    )
    seed: int | None = field(default=None, metadata={"help": "draws the leader's horn offsets (default: --seed + 1)"})
    id: str | None = field(
        default=None,
        metadata={
            "help": "with --calibrated: also write the leader's calibration as this so101_leader id's LeRobot "
            "calibration file (printed), for --teleop.id"
        },
    )
    calibration_dir: str | None = field(
        default=None, metadata={"help": "where that file goes (default: LeRobot's calibration folder)"}
    )
    dataset: str | None = field(
        default=None,
        metadata={"help": "replay this dataset's recorded actions at the leader instead of the expert (a folder)"},
    )
    episode: int = field(default=0, metadata={"help": "which episode of --leader.dataset to replay"})


@dataclass(frozen=True)
class ServeConfig:
    seed: int = field(default=0, metadata={"help": "draws the horn offsets"})
    calibrated: bool = field(
        default=False,
        metadata={
            "help": "write the calibration into the servos first (the leader's too); without it, calibrate the "
            "served arms with `lerobot-calibrate` or `onboard calibrate`: a simulated person moves their joints"
        },
    )
    robot: ServedArm = field(default_factory=ServedArm)
    leader: ServedLeader = field(default_factory=ServedLeader)
    publish_cameras: bool = field(
        default=True,
        metadata={"flag": "--no-cameras", "help": "do not publish the front and wrist cameras (shared memory)"},
    )
    cameras: ServedCameras = field(default_factory=ServedCameras)
    sim: ServedScene = field(default_factory=ServedScene)
    wire_time: bool = field(default=True, metadata=_WIRE_TIME)
    realtime: bool = field(default=True, metadata=_REALTIME)
    duration: float | None = field(default=None, metadata=_DURATION)


def _serve_until(duration: float | None, poll: Callable[[], None] | None = None) -> None:
    """Keep serving until ``duration`` seconds have passed (None: until Ctrl-C), calling ``poll`` every 0.1 s."""
    import time

    try:
        deadline = None if duration is None else time.monotonic() + duration
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.1)
            if poll is not None:
                poll()
    except KeyboardInterrupt:
        pass


def cmd_sim_serve_bus(args: argparse.Namespace) -> int:
    from hardware.feetech import BAUD_CODES
    from sim.feetech import FaultProfile, SimBus
    from sim.feetech.servo import EmulatedServo
    from sim.transport.pty_server import PtyBusServer

    cfg = config_from(args, ServeBusConfig)
    if cfg.baud not in BAUD_CODES:
        raise FeetechError(f"--baud must be one of {sorted(BAUD_CODES)}")
    ids = parse_ids(cfg.ids)
    servos = [EmulatedServo(i, baudrate_code=BAUD_CODES[cfg.baud]) for i in ids]
    bus = SimBus(servos, faults=FaultProfile.parse(cfg.faults) if cfg.faults else None)
    with contextlib.ExitStack() as stack:
        _serve_realtime(stack, cfg.realtime)
        server = stack.enter_context(PtyBusServer(bus, wire_time=cfg.wire_time, realtime=cfg.realtime))
        print(server.path, flush=True)
        print(
            f"serving {len(ids)} emulated STS3215 (ids {cfg.ids}) at {cfg.baud} baud on {server.path}; Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
        _serve_until(cfg.duration)
    return 0


def cmd_sim_serve(args: argparse.Namespace) -> int:
    from sim.twin.physics import RealTimeRunner
    from sim.twin.so101 import SimulatedSO101

    cfg = config_from(args, ServeConfig)
    if cfg.robot.id is not None and not cfg.calibrated:
        raise OptionError("--robot.id writes the served arm's calibration file: add --calibrated")
    _check_leader(cfg)
    with SimulatedSO101(seed=cfg.seed, uncalibrated=not cfg.calibrated) as arm:
        judge = _lay_out_scene(arm, cfg.sim)
        if cfg.robot.id is not None:
            from robot.arm_config import calibration_file
            from robot.calibration import MotorCalibration, save_calibration

            path = calibration_file("so101_follower", cfg.robot.id, cfg.robot.calibration_dir)
            save_calibration(path, {j: MotorCalibration(**c) for j, c in arm.factory_calibration().items()})
            print(f"calibration of the served arm: {path}", file=sys.stderr, flush=True)
        with _publish_cameras(arm, cfg) as cameras, _served_rig(arm, cfg) as rig:
            state = "calibrated" if cfg.calibrated else "uncalibrated (run a calibration first)"
            print(
                f"simulated SO-101 ({state}, seed {cfg.seed}) on {rig.follower_path}, ids 1-6 at 1000000 baud, real "
                "time; Ctrl-C to stop",
                file=sys.stderr,
                flush=True,
            )
            try:
                with RealTimeRunner(arm.world, realtime=cfg.realtime):
                    _serve_until(cfg.duration, judge.poll)
            finally:  # also when stopped by a signal
                judge.end(cameras)
    return 0


def _check_leader(cfg: ServeConfig) -> None:
    lead = cfg.leader
    if not lead.serve and (lead.id or lead.dataset or lead.seed is not None or lead.calibration_dir):
        raise OptionError("--leader.* options describe the served leader: add --leader")
    if lead.id is not None and not cfg.calibrated:
        raise OptionError("--leader.id writes the served leader's calibration file: add --calibrated")


def _serve_realtime(stack: contextlib.ExitStack, realtime: bool) -> None:
    """With --realtime: the kernel's tty workers raised and the CPUs kept out of slow idle states while serving
    (sim.realtime.KernelTtyPriority, CpuWakeLatency; each where permitted)."""
    if realtime:
        from sim.realtime import CpuWakeLatency, KernelTtyPriority

        stack.enter_context(KernelTtyPriority())
        stack.enter_context(CpuWakeLatency())


@contextlib.contextmanager
def _served_rig(arm, cfg: ServeConfig) -> Iterator[object]:
    """The follower (and, with --leader, the leader) on ptys, each with a simulated person who answers a calibration
    (sim.rigs.served); prints the paths on stdout, the follower's first. With --realtime (the default) the kernel's
    tty workers run raised while it serves (sim.realtime.KernelTtyPriority, where permitted)."""
    lead = cfg.leader
    replay, fps = None, 30.0
    if lead.dataset is not None:
        from policies.dataset.reader import EpisodeReader

        reader = EpisodeReader(lead.dataset, cache_frames=False)
        if not 0 <= lead.episode < reader.num_episodes:
            raise OptionError(f"--leader.episode must be within 0..{reader.num_episodes - 1} for {lead.dataset}")
        replay, fps = reader.episode(lead.episode).action, float(reader.fps)
    with contextlib.ExitStack() as stack:
        _serve_realtime(stack, cfg.realtime)
        rig = stack.enter_context(_rig(arm, cfg, replay, fps))
        print(rig.follower_path, flush=True)
        if rig.leader is not None:
            print(rig.leader_path, flush=True)
            _leader_lines(rig, lead, replay is not None)
        yield rig


def _rig(arm, cfg: ServeConfig, replay, fps: float):
    from sim.rigs.follower import scene_spec
    from sim.rigs.served import ServedRig

    lead = cfg.leader
    return ServedRig(
        arm,
        leader=lead.serve,
        spec=scene_spec(cfg.sim.seed, cfg.sim.task, cfg.sim.color),
        leader_seed=lead.seed,
        leader_calibrated=cfg.calibrated,
        replay=replay,
        replay_fps=fps,
        wire_time=cfg.wire_time,
        realtime=cfg.realtime,
        out=lambda text: print(text, file=sys.stderr, flush=True),
    )


def _leader_lines(rig, lead: ServedLeader, replaying: bool) -> None:
    """Write the leader's calibration file (--leader.id) and say what moves the leader."""
    if lead.id is not None:
        from robot.arm_config import calibration_file
        from robot.calibration import MotorCalibration, save_calibration

        path = calibration_file("so101_leader", lead.id, lead.calibration_dir)
        cal = rig.leader.sim.factory_calibration()
        save_calibration(path, {j: MotorCalibration(**c) for j, c in cal.items()})
        print(f"calibration of the served leader: {path}", file=sys.stderr, flush=True)
    what = f"replays {lead.dataset} episode {lead.episode}" if replaying else "follows the expert"
    print(
        f"leader SO-101 on {rig.leader_path} (torque off; while a client teleoperates it {what})",
        file=sys.stderr,
        flush=True,
    )


class _SceneJudge:
    """The served scene's success judge, polled by the serving loop: one JSON line on stdout when the task is first
    done (``{"event": "success", ...}``) and one when serving ends (``{"event": "end", "success": ...}``)."""

    def __init__(self, arm, judge) -> None:
        self.arm, self.judge, self.reported = arm, judge, False

    def poll(self) -> None:
        if self.judge.update(self.arm.world.time) and not self.reported:
            self.reported = True
            self._say("success", **self.judge.result())

    def end(self, cameras) -> None:
        frames = {"camera_frames": cameras.frames, "camera_skipped": cameras.skipped} if cameras is not None else {}
        self._say("end", **self.judge.result(), **frames)

    @staticmethod
    def _say(event: str, **fields) -> None:
        import json

        print(json.dumps({"event": event, **fields}), flush=True)


def _lay_out_scene(arm, scene: ServedScene) -> _SceneJudge:
    """Lay out the scene of --sim.* as `onboard run --robot.port=sim` does (the arm at home, the cubes where the seed
    says), print it, and return its judge."""

    from sim.rigs.follower import SuccessJudge, scene_spec

    spec = scene_spec(scene.seed, scene.task, scene.color)
    world = arm.world
    with world.lock:
        spec.lay_out(world.model, world.data)
    print(
        f"scene: {spec.task} {spec.color} (--sim.seed {scene.seed}), instruction {spec.instruction!r}; a JSON line "
        "on stdout when the task is done",
        file=sys.stderr,
        flush=True,
    )
    return _SceneJudge(arm, SuccessJudge(world, spec))


@contextlib.contextmanager
def _publish_cameras(arm, cfg: ServeConfig) -> Iterator[object | None]:
    """The twin's front and wrist cameras, rendered in real time and published by name (unless --no-cameras); prints
    the names and the --robot.cameras that reads them."""
    if not cfg.publish_cameras:
        yield None
        return
    c = cfg.cameras
    server = _start_cameras(arm.world, c)
    names = server.cameras
    try:
        spec = ", ".join(f"{cam}: {{type: sim, name: {name}}}" for name, cam in names.items())
        print(
            f"cameras: {', '.join(names)} ({c.width}x{c.height} @ {c.fps:g} fps, shared memory); read them with "
            f'--robot.cameras="{{{spec}}}"',
            file=sys.stderr,
            flush=True,
        )
        yield server
    finally:
        server.stop()


def _start_cameras(world, c: ServedCameras):
    """Start publishing the twin's cameras as PREFIX.front/.wrist, or without --cameras.prefix as front and wrist,
    or where another twin serves those, as twin2.front and .wrist (twin3, ...): a second twin's cameras do not
    collide with the first's, and the names are printed."""
    from hardware.camera import CameraError
    from sim.rigs.base import CAMERAS
    from sim.transport.camera_server import CameraServer

    for n in range(1, 100):
        prefix = c.prefix or ("" if n == 1 else f"twin{n}")
        names = {(f"{prefix}.{cam}" if prefix else cam): cam for cam in CAMERAS}
        try:
            return CameraServer(world, names, height=c.height, width=c.width, fps=c.fps).start()
        except CameraError:
            if c.prefix:
                raise
    raise CameraError("99 served twins' cameras are in use: give --cameras.prefix=NAME")
