"""`onboard run`: a trained policy drives the follower arm (real, or the simulated twin).

    onboard run --robot.port=/dev/ttyACM0 --robot.id=my_arm \\
        --robot.cameras="{front: {type: opencv, index_or_path: 0}, wrist: {type: opencv, index_or_path: 2}}" \\
        --policy.path=policies/bundled/so101_vla --task "pick up the red cube" --duration_s 30
    onboard run --robot.port=sim --robot.id=sim_arm --policy.path=policies/bundled/so101_vla \\
        --task "pick up the red cube" --sim.seed 3

The options come from configs (``onboard.cli.options``): ``RunCommand`` (the follower's ``--robot.*``, from
``robot.arm_config.ArmConfig``; the policy; the simulation's ``--sim.*``, ``onboard.cli.rigs.SimRunOptions``) and
``robot.run.RunConfig`` (rate, duration, status lines, failures, ``--sim.stop_on_success``). ``--policy.type``'s
choices are the registry's kinds that run on a robot (``robot.policy_loader.policy_kinds(on_robot=True)``).
``--robot.port=sim`` builds ``onboard.cli.rigs.build_sim_follower_rig_from_args``'s rig: a
``sim.rigs.follower.SimFollowerRig`` (the follower twin, rendered cameras at the policy's image size, the sim clock,
a scene as ``rig.spec`` and its success judge as ``rig.judge``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from onboard.cli.options import add_options, config_from
from onboard.cli.rigs import CAMERA_EXAMPLE, FOLLOWER, SimRunOptions, build_sim_follower_rig_from_args, rig_from_args
from onboard.eval.config import POLICY_URL_OPTION
from robot.arm_config import ArmConfig
from robot.controls import RunControls
from robot.errors import RobotError, SafetyError
from robot.latency import parse_latency
from robot.policy_loader import load_policy, policy_kinds
from robot.rig import Rig
from robot.run import RunConfig, check_cameras, format_status, format_summary, run_policy

if TYPE_CHECKING:
    from sim.rigs.follower import SimFollowerRig

EXIT_CODES = {"safety": 1, "estop": 1, "policy": 1}
ECHO_CHARS = 120  # an instruction is echoed up to this many characters


def echo(text: str, limit: int = ECHO_CHARS) -> str:
    """``text`` quoted for a status line, cut to ``limit`` characters with an ellipsis."""
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def _robot_kinds() -> tuple[str, ...]:
    return policy_kinds(on_robot=True)


@dataclass(frozen=True, kw_only=True)
class RunCommand:
    """What `onboard run` adds to RunConfig: the arm, its cameras, the policy, the instruction, the simulation."""

    # --robot.id is required, but checked by ArmConfig (check_arm_id's message says what the id is for and how to
    # give it), not by the parser
    robot: ArmConfig = field(metadata={"defaults": {**FOLLOWER, "id": None}})
    robot_cameras: str | None = field(
        default=None,
        metadata={
            "flag": "--robot.cameras",
            "metavar": "SPEC",
            "help": f"the arm's cameras named as the policy's (front, wrist for the bundled VLA), e.g. "
            f"{CAMERA_EXAMPLE}; a served twin's: {{front: {{type: sim, name: front}}}} (`onboard sim serve` prints it)",
        },
    )
    policy_path: str | None = field(
        default=None, metadata={"flag": "--policy.path", "help": "bundle, LeRobot or VLA checkpoint folder"}
    )
    policy_url: str | None = field(default=None, metadata=POLICY_URL_OPTION)
    policy_type: str | None = field(
        default=None, metadata={"flag": "--policy.type", "choices": _robot_kinds, "help": "default: from the folder"}
    )
    task: str | None = field(
        default=None, metadata={"help": 'the instruction, e.g. "pick up the red cube" (sim: the scene\'s)'}
    )
    latency: str = field(
        default="wall", metadata={"help": "sim only: emulated inference latency, e.g. 200ms ('wall': measured)"}
    )
    control_file: str | None = field(
        default=None, metadata={"help": "write stop (or estop) into this file to end the run"}
    )
    summary_json: str | None = field(default=None, metadata={"help": "also write the summary to this JSON file"})
    sim: SimRunOptions = field(default_factory=SimRunOptions)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run a trained policy on the follower arm (real, or --robot.port=sim)",
        description="A policy drives the follower at --fps with safety on (clamps, stall/fault stops, torque off on "
        "exit). Enter, q or Ctrl-C stops; space or e is the emergency stop (torque off at once).",
    )
    add_options(p, RunCommand)
    add_options(p, RunConfig)
    p.set_defaults(func=cmd_run, sim_rig=build_sim_follower_rig_from_args)


def _sim_follower(rig: Rig, sim: bool) -> SimFollowerRig | None:
    """The simulated follower rig behind ``--robot.port=sim`` (its scene, judge and saved calibration); None for a
    real arm (sim/ is not imported then)."""
    if not sim:
        return None
    from sim.rigs.follower import SimFollowerRig

    return rig if isinstance(rig, SimFollowerRig) else None


def cmd_run(args: argparse.Namespace) -> int:
    options = config_from(args, RunCommand)
    sim = options.robot.port == "sim"
    try:
        latency = parse_latency(options.latency)
        if not sim and latency is not None:
            raise ValueError("--latency is emulated on the simulated arm only; on a real arm it is measured")
        if options.task is not None and not options.task.strip():
            raise ValueError('--task is empty: give the instruction, e.g. --task "pick up the red cube"')
        if not sim and not options.task:
            raise ValueError('give the instruction: --task "pick up the red cube"')
        if bool(options.policy_path) == bool(options.policy_url):
            raise ValueError("give the policy: --policy.path=FOLDER, or --policy.url=ws://host:port (one of them)")
        source = options.policy_url or options.policy_path
        loaded = load_policy(source, "remote" if options.policy_url else options.policy_type)
        if sim and options.sim.image_size is None and loaded.image_size is not None:
            args.sim_image_size = loaded.image_size[0]  # the simulated cameras at the policy's size
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
        task = options.task or (scene.spec.instruction if scene is not None else None)
        config = config_from(args, RunConfig, task=task or "", latency_s=latency)
        robot = dataclasses.replace(options.robot, port=rig.robot_port)
        if scene is not None and scene.calibration_written:
            print(f"sim: saved the simulated arm's calibration to {scene.calibration_written}", file=sys.stderr)
        controls.handle_signals()
        if options.control_file:
            controls.watch_file(options.control_file)
        keys = controls.watch_keyboard() if not sim else None
        if keys:
            print("keys: Enter/q = stop, space/e = EMERGENCY STOP (torque off)", file=sys.stderr)
        spec = scene.spec if scene is not None else None
        where = f"the simulated arm ({spec.task} {spec.color}, seed {spec.seed})" if spec else options.robot.port
        print(f"running {loaded.kind} policy {source} on {where}: {echo(config.task)}", file=sys.stderr)
        summary = run_policy(
            rig,
            loaded,
            config,
            robot=robot,
            controls=controls,
            judge=scene.judge if scene is not None else None,
            on_status=lambda s: print(format_status(s), file=sys.stderr, flush=True),
        )
    except SafetyError as exc:  # the arm was stopped on the way out (the bus failed under it): a safety stop
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (RobotError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        controls.close()
        rig.close()
    print(format_summary(summary), flush=True)
    if options.summary_json:
        Path(options.summary_json).write_text(json.dumps(summary, indent=2, default=str) + "\n")
    code = EXIT_CODES.get(summary["stopped_by"], 0)
    if code == 0 and controls.signal not in (None, signal.SIGINT):  # SIGTERM, SIGHUP: 128 + N, after the summary
        return 128 + controls.signal
    return code
