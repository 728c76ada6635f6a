"""The `onboard` command line: the composition root (the one place that wires hardware/, policies/, robot/ and sim/
together, parses options, prints and configures logging).

One module per command group registers its subcommands (``add_parser``): bus, calibrate (calibrate, calibration),
find, record (record, teleoperate, replay), run, sim, train (train, export), dataset, bench. A command's options are
derived from its config dataclass (onboard/cli/options.py); this module keeps the root parser, ``main`` and the
mapping of errors to exit codes.
"""

from __future__ import annotations

import argparse
import logging
import sys

from hardware.feetech import FeetechError
from onboard.cli import bench as bench_cli
from onboard.cli import bus as bus_cli
from onboard.cli import calibrate as calibrate_cli
from onboard.cli import dataset as dataset_cli
from onboard.cli import find as find_cli
from onboard.cli import record as record_cli
from onboard.cli import run as run_cli
from onboard.cli import sim as sim_cli
from onboard.cli import train as train_cli
from onboard.cli.bus import PORT_HELP, resolve_port
from onboard.cli.options import OptionError


def _sim_rig(args: argparse.Namespace):
    """`--robot.port=sim` for record/teleoperate/replay: the simulated follower (with cameras), the expert-driven
    simulated leader and the sim clock."""
    from onboard.cli.rigs import build_sim_rig_from_args

    return build_sim_rig_from_args(args)


def _sim_run_rig(args: argparse.Namespace):
    """`--robot.port=sim` for `onboard run`: the simulated follower (cameras at the policy's size), a scene from
    --sim.seed/--sim.task/--sim.color, its success judge (``rig.judge``) and the sim clock; no leader."""
    from onboard.cli.rigs import build_sim_follower_rig_from_args

    return build_sim_follower_rig_from_args(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="onboard", description="On-device policy runtime for low-cost robot arms.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging (retries, timeouts)")
    sub = parser.add_subparsers(dest="cmd", required=True)

    bus_cli.add_parser(sub)
    calibrate_cli.add_parser(sub)
    find_cli.add_parser(sub)
    record_cli.add_parser(sub, PORT_HELP, sim_rig=_sim_rig)
    run_cli.add_parser(sub, PORT_HELP, sim_rig=_sim_run_rig)
    sim_cli.add_parser(sub)
    train_cli.add_parser(sub)
    dataset_cli.add_parser(sub)
    bench_cli.add_parser(sub)

    p = sub.add_parser(
        "demo", help="the simulated demo: the servo bus, then the bundled model on an instruction (no torch)"
    )
    p.add_argument(
        "instruction", nargs="?", default="pick up the red cube", help='what to do (default "pick up the red cube")'
    )
    p.add_argument("--bundle", default=None, help="policy bundle folder (default policies/bundled/so101_vla)")
    p.add_argument("--seconds", type=float, default=3.0, help="how long the servos follow the trajectory")
    p.add_argument("--seed", type=int, default=0, help="scene layout of the simulated episode")
    p.add_argument("--out", default="outputs/demo.mp4", help="video of the simulated episode")
    p.add_argument("--latency", default="0ms", help="emulated inference latency: 50ms, 0.05 (s) or 'wall'")
    p.add_argument("--task", choices=["touch", "pick", "place"], default=None, help="task to judge success by")
    p.add_argument("--color", choices=["red", "green", "blue"], default=None, help="cube to judge success by")
    parts = p.add_mutually_exclusive_group()
    parts.add_argument("--bus-only", action="store_true", help="only the servo-bus part")
    parts.add_argument("--policy-only", action="store_true", help="only the policy episode")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("eval", help="a policy on N simulated episodes: success rate with 95%% CI, videos, report")
    p.add_argument("--policy.path", dest="policy_path", default=None, help="checkpoint/bundle/LeRobot folder")
    p.add_argument("--policy.type", dest="policy_type", choices=["vla", "onnx", "lerobot", "expert"], default=None)
    p.add_argument("--task", default="pick", help="touch, pick or place (default pick)")
    p.add_argument("--color", default="all", choices=["red", "green", "blue", "all"])
    p.add_argument("--instruction", default=None, help="tell the policy this instead of the seed's phrasing")
    p.add_argument("--split", default="train", choices=["train", "held_out"], help="which phrasings to draw")
    p.add_argument("--n", type=int, default=50, help="episodes (default 50)")
    p.add_argument("--seed0", type=int, default=100_000, help="first seed (default 100000: never used in training)")
    p.add_argument("--latency", default="0ms", help="emulated inference latency, e.g. 200ms; 'wall': measured")
    p.add_argument("--runner", default="async", choices=["async", "sync"])
    p.add_argument(
        "--refill_at",
        type=int,
        default=None,
        help="async: request the next chunk when this many actions are left (default: the latency in ticks, >= 2)",
    )
    p.add_argument(
        "--blend_steps",
        type=int,
        default=None,
        help="async: ticks over which a new chunk's weight ramps up where it overlaps the plan (default 1; 0: replace)",
    )
    p.add_argument("--videos", type=int, default=0, help="write videos of the first N episodes")
    p.add_argument(
        "--num_envs", type=int, default=1, help="environments, each in its own process (default 1: one, in-process)"
    )
    p.add_argument(
        "--safety",
        choices=["on", "off"],
        default="on",
        help="on (default): the actions go through SafeArm, as `onboard run` sends them to a real arm (clamps, stall "
        "stop, a grasp derated below the servo's overload threshold); off: straight to the arm",
    )
    p.add_argument("--output_dir", default="outputs/eval", help="report.json, summary.png, videos/")
    p.set_defaults(func=cmd_eval)
    return parser


def cmd_demo(args: argparse.Namespace) -> int:
    """0: the episode succeeded; 1: it ran and failed; 2: it could not run (e.g. no bundle). Never imports torch."""
    if not args.policy_only:
        from onboard.demo.bus import run_demo

        rc = run_demo(seconds=args.seconds)
        if rc or args.bus_only:
            return rc
        print()
    from onboard.demo.policy import DemoError, run_policy_demo

    print("the bundled model drives the simulated SO-101 (MuJoCo twin behind the same emulated servos and driver):")
    try:
        result = run_policy_demo(
            args.instruction,
            args.bundle,
            seed=args.seed,
            out=args.out,
            latency=args.latency,
            task=args.task,
            color=args.color,
        )
    except (DemoError, FileNotFoundError, ValueError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0 if result["success"] else 1


def cmd_eval(args: argparse.Namespace) -> int:
    from onboard.eval.config import EvalConfig
    from onboard.eval.evaluate import evaluate
    from onboard.eval.workers import EvalWorkerError
    from robot.policy_loader import detect_policy_type

    try:
        cfg = EvalConfig(
            policy_path=args.policy_path,
            policy_type=args.policy_type or detect_policy_type(args.policy_path),
            task=args.task,
            color=args.color,
            instruction=args.instruction,
            split=args.split,
            n=args.n,
            seed0=args.seed0,
            latency=args.latency,
            runner=args.runner,
            refill_at=args.refill_at,
            blend_steps=args.blend_steps,
            videos=args.videos,
            output_dir=args.output_dir,
            num_envs=args.num_envs,
            safety=args.safety == "on",
        )
        evaluate(cfg)
    except (KeyError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except EvalWorkerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    import sim  # noqa: F401  (registers the simbus:// pyserial URL handler)

    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if hasattr(args, "port"):
        args.port = resolve_port(args.port)
    try:
        return int(args.func(args) or 0)
    except (FeetechError, OptionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
