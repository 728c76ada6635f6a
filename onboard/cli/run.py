"""`onboard run`: a trained policy drives the follower arm (real, or the simulated twin).

    onboard run --robot.port=/dev/ttyACM0 --robot.id=my_arm \\
        --robot.cameras="{front: {type: opencv, index_or_path: 0}, wrist: {type: opencv, index_or_path: 2}}" \\
        --policy.path=policies/bundled/so101_vla --task "pick up the red cube" --duration_s 30
    onboard run --robot.port=sim --robot.id=sim_arm --policy.path=policies/bundled/so101_vla \\
        --task "pick up the red cube" --sim.seed 3

``add_parser(sub, port_help, sim_rig=...)``: ``sim_rig(args) -> Rig`` is what the composition root gives for
``--robot.port=sim``: a ``sim.rigs.follower.SimFollowerRig`` (the follower twin, rendered cameras at the policy's
image size, the sim clock, a scene as ``rig.spec`` and its success judge as ``rig.judge``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from onboard.cli.rigs import CAMERA_EXAMPLE, rig_from_args
from robot.arm_config import ArmConfig, check_arm_id
from robot.controls import RunControls
from robot.errors import RobotError
from robot.latency import parse_latency
from robot.policy_loader import KINDS, load_policy
from robot.rig import Rig
from robot.run import RunConfig, check_cameras, format_status, format_summary, run_policy

if TYPE_CHECKING:
    from sim.rigs.follower import SimFollowerRig

EXIT_CODES = {"safety": 1, "estop": 1, "policy": 1}


def add_parser(
    sub: argparse._SubParsersAction, port_help: str = "", sim_rig: Callable[[argparse.Namespace], Rig] | None = None
) -> None:
    p = sub.add_parser(
        "run",
        help="run a trained policy on the follower arm (real, or --robot.port=sim)",
        description="A policy drives the follower at --fps with safety on (clamps, stall/fault stops, torque off on "
        "exit). Enter, q or Ctrl-C stops; space or e is the emergency stop (torque off at once).",
    )
    p.add_argument("--robot.type", dest="robot_type", default="so101_follower", metavar="TYPE")
    p.add_argument("--robot.port", dest="robot_port", required=True, metavar="PORT", help=port_help)
    # required, but checked in cmd_run: check_arm_id's message says what the id is for and how to give it
    p.add_argument("--robot.id", dest="robot_id", default=None, metavar="ID", help="names the arm's calibration file")
    p.add_argument("--robot.calibration_dir", dest="robot_calibration_dir", default=None)
    p.add_argument(
        "--robot.cameras",
        dest="robot_cameras",
        default=None,
        metavar="SPEC",
        help=f"real arm cameras named as the policy's (front, wrist for the bundled VLA), e.g. {CAMERA_EXAMPLE}",
    )
    p.add_argument("--policy.path", dest="policy_path", required=True, help="bundle, LeRobot or VLA checkpoint folder")
    p.add_argument("--policy.type", dest="policy_type", choices=KINDS, default=None, help="default: from the folder")
    p.add_argument("--task", default=None, help='the instruction, e.g. "pick up the red cube" (sim: the scene\'s)')
    p.add_argument("--duration_s", type=float, default=30.0, help="seconds to run (default 30)")
    p.add_argument("--fps", type=float, default=30.0, help="control rate (default 30)")
    p.add_argument(
        "--latency", default="wall", help="sim only: emulated inference latency, e.g. 200ms (default wall: measured)"
    )
    p.add_argument("--control_file", default=None, help="write stop (or estop) into this file to end the run")
    p.add_argument("--status_every_s", type=float, default=1.0, help="seconds between status lines (0: none)")
    p.add_argument("--max_policy_failures", type=int, default=10, help="failed inferences in a row that end the run")
    p.add_argument("--summary_json", default=None, help="also write the summary to this JSON file")
    p.add_argument("--sim.seed", dest="sim_seed", type=int, default=0, help="sim: scene layout seed")
    p.add_argument("--sim.task", dest="sim_task", choices=["touch", "pick", "place"], default=None, help="sim: judge")
    p.add_argument("--sim.color", dest="sim_color", choices=["red", "green", "blue"], default=None, help="sim: cube")
    p.add_argument("--sim.image_size", dest="sim_image_size", type=int, default=None, help="sim: px (the policy's)")
    p.add_argument("--sim.stop_on_success", dest="sim_stop_on_success", action="store_true", help="sim: end at success")
    p.set_defaults(func=cmd_run, sim_rig=sim_rig)


def _sim_follower(rig: Rig, sim: bool) -> SimFollowerRig | None:
    """The simulated follower rig behind ``--robot.port=sim`` (its scene, judge and saved calibration); None for a
    real arm (sim/ is not imported then)."""
    if not sim:
        return None
    from sim.rigs.follower import SimFollowerRig

    return rig if isinstance(rig, SimFollowerRig) else None


def cmd_run(args: argparse.Namespace) -> int:
    sim = args.robot_port == "sim"
    try:
        check_arm_id(args.robot_id, args.robot_type)
        latency = parse_latency(args.latency)
        if not sim and latency is not None:
            raise ValueError("--latency is emulated on the simulated arm only; on a real arm it is measured")
        if not sim and not args.task:
            raise ValueError('give the instruction: --task "pick up the red cube"')
        loaded = load_policy(args.policy_path, args.policy_type)
        if sim and args.sim_image_size is None and loaded.image_size is not None:
            args.sim_image_size = loaded.image_size[0]
    except (RobotError, ValueError, FileNotFoundError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        rig = rig_from_args(args)
    except (RobotError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    scene = _sim_follower(rig, sim)
    controls = RunControls()
    try:
        check_cameras(loaded.cameras, rig.cameras)
        task = args.task or (scene.spec.instruction if scene is not None else None)
        config = RunConfig(
            task=task or "",
            fps=args.fps,
            duration_s=args.duration_s,
            latency_s=latency,
            status_every_s=args.status_every_s,
            max_policy_failures=args.max_policy_failures,
            stop_on_success=args.sim_stop_on_success,
        )
        robot = ArmConfig(
            type=args.robot_type, port=rig.robot_port, id=args.robot_id, calibration_dir=args.robot_calibration_dir
        )
        if scene is not None and scene.calibration_written:
            print(f"sim: saved the simulated arm's calibration to {scene.calibration_written}", file=sys.stderr)
        controls.handle_signals()
        if args.control_file:
            controls.watch_file(args.control_file)
        keys = controls.watch_keyboard() if not sim else None
        if keys:
            print("keys: Enter/q = stop, space/e = EMERGENCY STOP (torque off)", file=sys.stderr)
        spec = scene.spec if scene is not None else None
        where = f"the simulated arm ({spec.task} {spec.color}, seed {spec.seed})" if spec else args.robot_port
        print(f"running {loaded.kind} policy {args.policy_path} on {where}: {config.task!r}", file=sys.stderr)
        summary = run_policy(
            rig,
            loaded,
            config,
            robot=robot,
            controls=controls,
            judge=scene.judge if scene is not None else None,
            on_status=lambda s: print(format_status(s), file=sys.stderr, flush=True),
        )
    except (RobotError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        controls.close()
        rig.close()
    print(format_summary(summary), flush=True)
    if args.summary_json:
        Path(args.summary_json).write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return EXIT_CODES.get(summary["stopped_by"], 0)
