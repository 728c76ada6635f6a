"""`onboard record`, `onboard teleoperate` and `onboard replay`, with LeRobot's flags.

    onboard record --robot.type=so101_follower --robot.port=/dev/ttyACM0 --robot.id=f \\
        --teleop.type=so101_leader --teleop.port=/dev/ttyACM1 --teleop.id=l \\
        --dataset.root=data/pick --dataset.repo_id=me/pick --dataset.num_episodes=3 --dataset.single_task="pick it"
    onboard replay --robot.type=so101_follower --robot.port=... --robot.id=f \\
        --dataset.root=data/pick --dataset.episode=0

``add_parser(sub, port_help, sim_rig=...)``: ``sim_rig(args) -> Rig`` is what the composition root gives for
``--robot.port=sim`` (the simulated follower, cameras, leader and clock); real ports get a ``Rig`` of the ports and
the cameras of ``--robot.cameras`` (``onboard.cli.rigs``). The recorder (and with it PyAV and pyarrow) is imported
when `onboard record` runs, not with the parser.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from onboard.cli.rigs import rig_from_args
from robot.arm_config import ArmConfig
from robot.controls import RecordControls
from robot.errors import RobotError
from robot.rig import Rig, connected_arms
from robot.teleop import Teleoperator

if TYPE_CHECKING:
    from robot.record import RecordConfig


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_parser(
    sub: argparse._SubParsersAction, port_help: str = "", sim_rig: Callable[[argparse.Namespace], Rig] | None = None
) -> None:
    def arm_flags(p: argparse.ArgumentParser, prefixes: tuple[str, ...]) -> None:
        for prefix in prefixes:
            default = "so101_follower" if prefix == "robot" else "so101_leader"
            p.add_argument(f"--{prefix}.type", dest=f"{prefix}_type", default=default, metavar="TYPE")
            p.add_argument(f"--{prefix}.port", dest=f"{prefix}_port", required=True, metavar="PORT", help=port_help)
            p.add_argument(f"--{prefix}.id", dest=f"{prefix}_id", required=True, metavar="ID")
            p.add_argument(f"--{prefix}.calibration_dir", dest=f"{prefix}_calibration_dir", default=None)
        if "robot" in prefixes:
            p.add_argument(
                "--robot.cameras",
                dest="robot_cameras",
                default=None,
                metavar="SPEC",
                help="real arm cameras, LeRobot's syntax: \"{front: {type: opencv, index_or_path: 0, width: 640, "
                'height: 480, fps: 30}}" (JSON works too); `onboard find cameras` lists them',
            )
        p.add_argument("--sim.seed", dest="sim_seed", type=int, default=0, help="sim: scene/task seed")
        p.add_argument("--sim.image_size", dest="sim_image_size", type=int, default=96, help="sim: camera px")
        p.add_argument("--sim.task", dest="sim_task", default=None, help="sim: touch, pick or place (default: any)")
        p.add_argument(
            "--sim.disturbance",
            dest="sim_disturbance",
            type=float,
            default=0.0,
            metavar="DEG",
            help="sim: push the follower's arm joints off the leader's goals during episodes (random, this standard "
            "deviation in degrees; ~1 gives demonstrations that show recovery, DART-style; default 0)",
        )
        p.add_argument(
            "--sim.disturbance_floor",
            dest="sim_disturbance_floor",
            type=float,
            default=None,
            metavar="M",
            help="sim: the pushes fade out as the tool point comes down to this height above the table (metres; "
            "full strength 3 cm higher; default 0.03: none while the jaws are at a cube)",
        )
        p.add_argument(
            "--display_data",
            action="store_true",
            help="live view: joint plots and cameras on a local web page (its address is printed)",
        )
        p.set_defaults(sim_rig=sim_rig)

    p = sub.add_parser("record", help="record teleoperated episodes into a LeRobot v3.0 dataset")
    arm_flags(p, ("robot", "teleop"))
    p.add_argument("--dataset.root", dest="dataset_root", required=True)
    p.add_argument("--dataset.repo_id", dest="dataset_repo_id", default="local/dataset")
    p.add_argument("--dataset.fps", dest="dataset_fps", type=int, default=30)
    p.add_argument("--dataset.num_episodes", dest="dataset_num_episodes", type=int, default=50)
    p.add_argument("--dataset.episode_time_s", dest="dataset_episode_time_s", type=float, default=60.0)
    p.add_argument("--dataset.reset_time_s", dest="dataset_reset_time_s", type=float, default=60.0)
    p.add_argument("--dataset.single_task", dest="dataset_single_task", default=None)
    p.add_argument("--dataset.vcodec", dest="dataset_vcodec", default="libsvtav1")
    p.add_argument("--dataset.capture_time", dest="dataset_capture_time", type=_bool, default=False)
    p.add_argument("--resume", type=_bool, nargs="?", const=True, default=False)
    p.add_argument("--control_file", default=None, help="write next / rerecord / stop into this file (headless)")
    p.add_argument("--status_file", default=None, help="append one JSON line per event (episode_start, ...)")
    p.set_defaults(func=cmd_record)

    p = sub.add_parser("teleoperate", help="the follower follows the leader")
    arm_flags(p, ("robot", "teleop"))
    p.add_argument("--fps", type=float, default=60.0)
    p.add_argument("--teleop_time_s", type=float, default=None, help="default: until Ctrl-C")
    p.set_defaults(func=cmd_teleoperate)

    p = sub.add_parser("replay", help="send a recorded episode's actions to the follower")
    arm_flags(p, ("robot",))
    p.add_argument("--dataset.root", dest="dataset_root", required=True)
    p.add_argument("--dataset.repo_id", dest="dataset_repo_id", default="local/dataset")
    p.add_argument("--dataset.episode", dest="dataset_episode", type=int, default=0)
    p.set_defaults(func=cmd_replay)


def _arms(args: argparse.Namespace, rig: Rig) -> tuple[ArmConfig, ArmConfig | None]:
    robot = ArmConfig(
        type=args.robot_type, port=rig.robot_port, id=args.robot_id, calibration_dir=args.robot_calibration_dir
    )
    teleop = None
    if getattr(args, "teleop_id", None):
        teleop = ArmConfig(
            type=args.teleop_type,
            port=rig.teleop_port or args.teleop_port,
            id=args.teleop_id,
            calibration_dir=args.teleop_calibration_dir,
        )
    return robot, teleop


@contextlib.contextmanager
def _live_view(args: argparse.Namespace):
    """With --display_data: a LiveView fed from each teleop sample (the loop only hands the sample over)."""
    if not getattr(args, "display_data", False):
        yield None
        return
    from robot.arm_config import arm_spec
    from robot.liveview import LiveView

    names = arm_spec(args.robot_type).names
    with LiveView() as view:
        print(f"live view: {view.url}", file=sys.stderr, flush=True)

        def publish(sample, tick=None) -> None:
            images = {k: f.rgb for k, f in sample.frames.items() if f is not None}
            view.publish(
                sample.t,
                dict(zip(names, map(float, sample.state))),
                dict(zip(names, map(float, sample.action))),
                images,
            )

        yield publish


def _progress(config: RecordConfig):
    """One line per episode event on stderr, so a person sees where the recording is."""

    def show(event: dict) -> None:
        kind = event["event"]
        if kind == "episode_start":
            task = f": {event['task']!r}" if event.get("task") else ""
            number = event.get("number", event["episode"] + 1)
            where = f" (dataset episode {event['episode']})" if number != event["episode"] + 1 else ""
            text = f"episode {number}/{config.num_episodes}{where}{task} (recording {config.episode_time_s:g} s)"
        elif kind == "episode_saved":
            text = f"  saved as dataset episode {event['episode']} ({event['frames']} frames)"
        elif kind == "episode_discarded":
            text = f"  discarded episode {event['episode'] + 1}: re-recording"
        elif kind == "reset_start":
            text = f"  reset ({config.reset_time_s:g} s): put the scene back"
        else:
            return
        print(text, file=sys.stderr, flush=True)

    return show


def cmd_record(args: argparse.Namespace) -> int:
    from robot.record import RecordConfig, record

    config = RecordConfig(
        root=Path(args.dataset_root),
        repo_id=args.dataset_repo_id,
        fps=args.dataset_fps,
        num_episodes=args.dataset_num_episodes,
        episode_time_s=args.dataset_episode_time_s,
        reset_time_s=args.dataset_reset_time_s,
        single_task=args.dataset_single_task,
        resume=args.resume,
        capture_time=args.dataset_capture_time,
        vcodec=args.dataset_vcodec,
        status_file=Path(args.status_file) if args.status_file else None,
    )
    rig = rig_from_args(args)
    controls = RecordControls()
    try:
        robot, teleop = _arms(args, rig)
        assert teleop is not None
        controls.handle_signals()
        if args.control_file:
            controls.watch_file(args.control_file)
        keys = controls.watch_keyboard() if args.robot_port != "sim" else None
        if keys:
            print("keys: right/n = next, left/r = re-record, Esc/q = stop, space/e = EMERGENCY STOP", file=sys.stderr)
        with _live_view(args) as live:
            report = record(
                rig, config, robot=robot, teleop=teleop, controls=controls, on_event=_progress(config), on_sample=live
            )
    except (RobotError, ValueError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        controls.close()
        rig.close()
    print(report)
    return 0


def cmd_teleoperate(args: argparse.Namespace) -> int:
    rig = rig_from_args(args)
    try:
        robot, teleop = _arms(args, rig)
        with connected_arms(rig, robot=robot, teleop=teleop) as (safe, leader):
            assert leader is not None
            if rig.hooks is not None:
                rig.hooks.begin_episode(0)
                safe.hold()
            tele = Teleoperator(leader, safe, rig.clock, rig.cameras)
            try:
                with _live_view(args) as live:
                    stats = tele.run(args.fps, duration_s=args.teleop_time_s, on_sample=live)
            except KeyboardInterrupt:
                stats = tele.loop.stats if tele.loop is not None else None
    except RobotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        rig.close()
    if stats is not None:
        s = stats.summary()
        print(f"{s['ticks']} ticks at {s['achieved_hz']:.1f} Hz, {s['overruns']} overruns")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from robot.replay import replay_episode

    rig = rig_from_args(args)
    try:
        robot, _ = _arms(args, rig)
        with connected_arms(rig, robot=robot, teleop=None) as (safe, _leader):
            if rig.hooks is not None:
                rig.hooks.begin_reset(args.dataset_episode)  # sim: the scene the episode was recorded in
                safe.hold()
            result = replay_episode(safe, rig.clock, args.dataset_root, args.dataset_episode)
    except (RobotError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        rig.close()
    err = result.max_state_error()
    print(
        f"replayed episode {args.dataset_episode}: {len(result.actions)} actions; max |state - recorded|: "
        + ", ".join(f"{e:.1f}" for e in err)
    )
    return 0
