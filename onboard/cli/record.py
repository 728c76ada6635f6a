"""`onboard record`, `onboard teleoperate` and `onboard replay`, with LeRobot's flags.

    onboard record --robot.type=so101_follower --robot.port=/dev/ttyACM0 --robot.id=f \\
        --teleop.type=so101_leader --teleop.port=/dev/ttyACM1 --teleop.id=l \\
        --dataset.root=data/pick --dataset.repo_id=me/pick --dataset.num_episodes=3 --dataset.single_task="pick it"
    onboard replay --robot.type=so101_follower --robot.port=... --robot.id=f \\
        --dataset.root=data/pick --dataset.episode=0

The options come from configs (``onboard.cli.options``): the rig's (``onboard.cli.rigs.TeleopRig`` /
``FollowerRig``: ``--robot.*`` and ``--teleop.*`` are ``robot.arm_config.ArmConfig``'s fields), the recording's
(``--dataset.*``: ``robot.record_config.RecordConfig``), the teleop loop's (``robot.teleop.TeleopConfig``) and the
replay's (``robot.replay.ReplayConfig``). ``--robot.port=sim`` builds the simulated rig (the follower, cameras, leader
and clock: ``onboard.cli.rigs.build_sim_rig_from_args``); real ports get a ``Rig`` of the ports and the cameras of
``--robot.cameras``. The recorder (and with it PyAV and pyarrow) is imported when `onboard record` runs, not with
the parser.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import signal
import sys
from dataclasses import dataclass, field

from onboard.cli.options import add_options, config_from
from onboard.cli.rigs import FollowerRig, TeleopRig, build_sim_rig_from_args, rig_from_args
from robot.arm_config import ArmConfig
from robot.controls import RecordControls
from robot.errors import RobotError, SafetyError
from robot.record_config import RecordConfig
from robot.replay import ReplayConfig
from robot.rig import Rig, connected_arms
from robot.teleop import TeleopConfig, Teleoperator


@dataclass(frozen=True, kw_only=True)
class RecordCommand(TeleopRig):
    """`onboard record`: the rig, the recording (--dataset.*, --resume, --status_file) and a control file."""

    dataset: RecordConfig
    control_file: str | None = field(
        default=None, metadata={"help": "write next / rerecord / stop into this file (headless)"}
    )


@dataclass(frozen=True, kw_only=True)
class ReplayCommand(FollowerRig):
    """`onboard replay`: the follower's rig and the episode (--dataset.*)."""

    dataset: ReplayConfig


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("record", help="record teleoperated episodes into a LeRobot v3.0 dataset")
    add_options(p, RecordCommand)
    p.set_defaults(func=cmd_record, sim_rig=build_sim_rig_from_args)

    p = sub.add_parser("teleoperate", help="the follower follows the leader")
    add_options(p, TeleopRig)
    add_options(p, TeleopConfig)
    p.set_defaults(func=cmd_teleoperate, sim_rig=build_sim_rig_from_args)

    p = sub.add_parser("replay", help="send a recorded episode's actions to the follower")
    add_options(p, ReplayCommand)
    p.set_defaults(func=cmd_replay, sim_rig=build_sim_rig_from_args)


def _arms(options: FollowerRig, rig: Rig) -> tuple[ArmConfig, ArmConfig | None]:
    """The arms of the options on the rig's ports (``--robot.port=sim``: the simulated buses)."""
    robot = dataclasses.replace(options.robot, port=rig.robot_port)
    teleop = getattr(options, "teleop", None)
    if teleop is not None:
        teleop = dataclasses.replace(teleop, port=rig.teleop_port or teleop.port)
    return robot, teleop


@contextlib.contextmanager
def _live_view(options: FollowerRig):
    """With --display_data: a LiveView fed from each teleop sample (the loop only hands the sample over)."""
    if not options.display_data:
        yield None
        return
    from robot.liveview import LiveView

    names = options.robot.spec.names
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
    from robot.record import record

    options = config_from(args, RecordCommand)
    config = options.dataset
    rig = rig_from_args(args)
    controls = RecordControls()
    try:
        robot, teleop = _arms(options, rig)
        assert teleop is not None
        controls.handle_signals()
        if options.control_file:
            controls.watch_file(options.control_file)
        keys = controls.watch_keyboard() if options.robot.port != "sim" else None
        if keys:
            print("keys: right/n = next, left/r = re-record, Esc/q = stop, space/e = EMERGENCY STOP", file=sys.stderr)
        with _live_view(options) as live:
            report = record(
                rig, config, robot=robot, teleop=teleop, controls=controls, on_event=_progress(config), on_sample=live
            )
    except SafetyError as exc:
        return _safety_stop(exc)
    except (RobotError, ValueError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        controls.close()
        rig.close()
    print(report)
    if controls.signal not in (None, signal.SIGINT):  # SIGTERM, SIGHUP: saved and stopped; 128 + N
        return 128 + controls.signal
    return 0


def _safety_stop(exc: SafetyError) -> int:
    """A safety stop (a fault, a stall, the bus failing under the arm): torque was turned off; exit code 1."""
    print(f"error: {exc}", file=sys.stderr)
    return 1


def cmd_teleoperate(args: argparse.Namespace) -> int:
    options, loop = config_from(args, TeleopRig), config_from(args, TeleopConfig)
    rig = rig_from_args(args)
    tele: Teleoperator | None = None
    try:
        robot, teleop = _arms(options, rig)
        with connected_arms(rig, robot=robot, teleop=teleop) as (safe, leader):
            assert leader is not None
            if rig.hooks is not None:
                rig.hooks.begin_episode(0)
                safe.hold()
            tele = Teleoperator(leader, safe, rig.clock, rig.cameras)
            with _live_view(options) as live:
                stats = tele.run(loop.fps, duration_s=loop.teleop_time_s, on_sample=live)
    except KeyboardInterrupt:  # Ctrl-C is how teleoperation ends (torque is off: the arms were disconnected)
        stats = tele.loop.stats if tele is not None and tele.loop is not None else None
    except SafetyError as exc:
        return _safety_stop(exc)
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

    options = config_from(args, ReplayCommand)
    episode = options.dataset.episode
    rig = rig_from_args(args)
    try:
        robot, _ = _arms(options, rig)
        with connected_arms(rig, robot=robot, teleop=None) as (safe, _leader):
            if rig.hooks is not None:
                rig.hooks.begin_reset(episode)  # sim: the scene the episode was recorded in
                safe.hold()
            result = replay_episode(safe, rig.clock, options.dataset.root, episode)
    except SafetyError as exc:
        return _safety_stop(exc)
    except (RobotError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        rig.close()
    err = result.max_state_error()
    print(
        f"replayed episode {episode}: {len(result.actions)} actions; max |state - recorded|: "
        + ", ".join(f"{e:.1f}" for e in err)
    )
    return 0
