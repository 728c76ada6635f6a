"""The `onboard` command line: the composition root. The only module of robot/ that may import sim/."""

from __future__ import annotations

import argparse
import logging
import sys

from hardware.feetech import FeetechError
from onboard.cli import bus as bus_cli
from onboard.cli import calibrate as calibrate_cli
from onboard.cli import find as find_cli
from onboard.cli import record as record_cli
from onboard.cli import run as run_cli

PORT_HELP = (
    "serial port of the servo bus: /dev/ttyACM0 (real arm), /dev/pts/N (from `onboard sim serve-bus`), "
    "a pyserial URL such as simbus://?ids=1-6&faults=corrupt:0.02 (in-process emulator), or 'sim' (= simbus://?ids=1-6)"
)


def resolve_port(port: str) -> str:
    if port == "sim":
        return "simbus://?ids=1-6"
    return port


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

    bus_cli.add_parser(sub, PORT_HELP)
    calibrate_cli.add_parser(sub, PORT_HELP, resolve_port)
    find_cli.add_parser(sub)
    record_cli.add_parser(sub, PORT_HELP, sim_rig=_sim_rig)
    run_cli.add_parser(sub, PORT_HELP, sim_rig=_sim_run_rig)

    simp = sub.add_parser("sim", help="the simulated twin")
    ssub = simp.add_subparsers(dest="sim_cmd", required=True)
    p = ssub.add_parser(
        "serve-bus",
        help="serve emulated STS3215 servos on a pseudo-terminal that any serial client can open; prints its path",
    )
    p.add_argument("--ids", default="1-6", help="servo ids (default 1-6)")
    p.add_argument("--baud", type=int, default=1_000_000, help="the servos' baud rate (default 1000000)")
    p.add_argument("--faults", default="", help="fault profile, e.g. corrupt=0.02,drop=0.01,unplugged=3")
    p.add_argument("--no-wire-time", action="store_true", help="answer at once instead of at the wire's pace")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: Ctrl-C)")
    p.set_defaults(func=cmd_sim_serve_bus)

    p = sub.add_parser(
        "train",
        help="train the small VLA on LeRobot v3.0 datasets (CPU; checkpoints, resume, periodic evaluation in sim)",
    )
    p.add_argument("--dataset.root", dest="dataset_roots", action="append", required=True, help="repeatable")
    p.add_argument("--output_dir", required=True, help="run folder: checkpoints/<step>/, last/, train_config.json")
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--save_every", type=int, default=1000)
    p.add_argument("--eval_every", type=int, default=0, help="evaluate in simulation every N steps (0: never)")
    p.add_argument("--eval.n", dest="eval_n", type=int, default=10, help="episodes per evaluation")
    p.add_argument("--eval.task", dest="eval_task", default="pick", help="task to evaluate (touch, pick, place)")
    p.add_argument("--model.chunk_size", dest="chunk_size", type=int, default=20)
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--amp", choices=["none", "bf16"], default="none", help="bf16: bfloat16 autocast on the CPU")
    p.add_argument(
        "--augment.shift", dest="augment_shift", type=int, default=0, help="random image shift, px (0: off; try 4)"
    )
    p.add_argument(
        "--augment.state_noise",
        dest="augment_state_noise",
        type=float,
        default=0.0,
        help="Gaussian noise on the input joint state, degrees (0: off; try 1)",
    )
    p.add_argument(
        "--augment.paraphrase",
        dest="augment_paraphrase",
        action="store_true",
        help="train each demonstration under every training phrasing of its task and colour, drawn at random",
    )
    p.add_argument(
        "--init_from",
        default=None,
        metavar="CKPT",
        help="start from this checkpoint's weights and normalisation (fine-tuning; fresh optimizer and schedule)",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --output_dir from its last checkpoint")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("export", help="a trained checkpoint -> an ONNX bundle that runs with onnxruntime, no torch")
    p.add_argument("--checkpoint", required=True, help="checkpoint folder (e.g. runs/vla/last)")
    p.add_argument("--output_dir", required=True, help="bundle folder")
    p.set_defaults(func=cmd_export)

    dsp = sub.add_parser("dataset", help="LeRobot v3.0 datasets: verify, info, repair")
    dsub = dsp.add_subparsers(dest="dataset_cmd", required=True)
    for name, text in (
        ("verify", "check structure, lengths, timestamps, video frames and stats (exit 1 on errors)"),
        ("info", "summary: episodes, frames, fps, features, tasks"),
        ("repair", "remove what a killed recording left behind (the episode in progress) and fix stats"),
    ):
        p = dsub.add_parser(name, help=text)
        p.add_argument("root", help="dataset folder (the one holding meta/, data/, videos/)")
        p.set_defaults(func=cmd_dataset)

    benchp = sub.add_parser("bench", help="benchmarks: does this machine keep up?")
    bsub = benchp.add_subparsers(dest="bench_cmd", required=True)
    p = bsub.add_parser("bus", help="6-servo sync read/write round trips: in-process, pty, LeRobot, vendor SDK")
    p.add_argument("--n", type=int, default=2000, help="round trips per measurement (default 2000)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    p.set_defaults(func=cmd_bench_bus)

    p = ssub.add_parser(
        "serve",
        help="serve a simulated SO-101 (MuJoCo twin, real time) on a pseudo-terminal; prints its path",
        description="The simulated arm as a device: point any driver (LeRobot's --robot.port, onboard's --port) at "
        "the printed /dev/pts/N. The arm starts uncalibrated (random horn offsets), like a new kit, unless "
        "--calibrated.",
    )
    p.add_argument("--seed", type=int, default=0, help="draws the horn offsets (default 0)")
    p.add_argument("--calibrated", action="store_true", help="write the calibration into the servos first")
    p.add_argument("--no-wire-time", action="store_true", help="answer at once instead of at the wire's pace")
    p.add_argument("--duration", type=float, default=None, help="stop after this many seconds (default: Ctrl-C)")
    p.set_defaults(func=cmd_sim_serve)

    p = ssub.add_parser("show", help="write a video of a scripted-expert episode (and open MuJoCo's viewer)")
    p.add_argument("--task", default="pick", help="touch, pick or place (default pick)")
    p.add_argument("--color", default="red", help="red, green or blue (default red)")
    p.add_argument("--seed", type=int, default=0, help="scene layout seed (default 0)")
    p.add_argument("--out", default="outputs/sim_show.mp4", help="video path (default outputs/sim_show.mp4)")
    p.add_argument("--no-viewer", action="store_true", help="do not open MuJoCo's viewer even with a display")
    p.set_defaults(func=cmd_sim_show)

    p = ssub.add_parser(
        "expert",
        help="success rate of the scripted expert over N seeds per task",
        description="Runs the scripted expert on N random seeds per task and prints success rates per task and "
        "colour. --stack mirrored (default) runs it like a policy: goals through the Arm, the Feetech driver and the "
        "emulated servos on MuJoCo joints; --stack direct drives MuJoCo's actuators (for debugging the expert).",
    )
    p.add_argument("--task", action="append", help="repeatable: touch, pick, place (default: all)")
    p.add_argument("--n", type=int, default=100, help="seeds per task (default 100)")
    p.add_argument("--seed0", type=int, default=1000, help="first seed (default 1000)")
    p.add_argument("--stack", choices=["mirrored", "direct"], default="mirrored")
    p.set_defaults(func=cmd_sim_expert)

    p = bsub.add_parser("sim", help="physics, rendering, closed-loop and environment speed of the simulated arm")
    p.add_argument("--seconds", type=float, default=5.0, help="simulated seconds per closed-loop run")
    p.add_argument("--size", type=int, default=96, help="camera image size in the loop (px)")
    p.add_argument("--rate", type=float, default=30.0, help="control rate (Hz)")
    p.add_argument("--repeat", type=int, default=3, help="runs per measurement (median reported)")
    p.set_defaults(func=cmd_bench_sim)

    p = bsub.add_parser("policy", help="VLA inference latency: eager torch vs onnxruntime vs LeRobot's ACT")
    p.add_argument("--n", type=int, default=200, help="timed calls per backend (default 200)")
    p.add_argument("--threads", type=int, default=2, help="intra-op threads (default 2)")
    p.add_argument("--checkpoint", default=None, help="a VLA checkpoint (default: random default-config model)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    p.set_defaults(func=cmd_bench_policy)

    from onboard.bench import (
        loop as bench_loop,  # the composition root may import sim/ (this module is light: stdlib at import)
    )

    bench_loop.add_parser(bsub)

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


def _serve_until(duration: float | None) -> None:
    """Keep serving until ``duration`` seconds have passed (None: until Ctrl-C)."""
    import time

    try:
        deadline = None if duration is None else time.monotonic() + duration
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass


def cmd_sim_serve_bus(args: argparse.Namespace) -> int:
    from hardware.feetech import BAUD_CODES
    from sim.feetech import FaultProfile, SimBus
    from sim.feetech.servo import EmulatedServo
    from sim.transport.pty_server import PtyBusServer

    if args.baud not in BAUD_CODES:
        raise FeetechError(f"--baud must be one of {sorted(BAUD_CODES)}")
    ids = bus_cli.parse_ids(args.ids)
    servos = [EmulatedServo(i, baudrate_code=BAUD_CODES[args.baud]) for i in ids]
    bus = SimBus(servos, faults=FaultProfile.parse(args.faults) if args.faults else None)
    with PtyBusServer(bus, wire_time=not args.no_wire_time) as server:
        print(server.path, flush=True)
        print(
            f"serving {len(ids)} emulated STS3215 (ids {args.ids}) at {args.baud} baud on {server.path}; "
            "Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
        _serve_until(args.duration)
    return 0


def cmd_sim_serve(args: argparse.Namespace) -> int:
    from sim.twin.physics import RealTimeRunner
    from sim.twin.so101 import SimulatedSO101

    with SimulatedSO101(seed=args.seed, uncalibrated=not args.calibrated) as arm:
        server = arm.serve_pty(wire_time=not args.no_wire_time)
        print(server.path, flush=True)
        state = "calibrated" if args.calibrated else "uncalibrated (run a calibration first)"
        print(
            f"simulated SO-101 ({state}, seed {args.seed}) on {server.path}, ids 1-6 at 1000000 baud, real time; "
            "Ctrl-C to stop",
            file=sys.stderr,
            flush=True,
        )
        with RealTimeRunner(arm.world):
            _serve_until(args.duration)
    return 0


def cmd_sim_show(args: argparse.Namespace) -> int:
    from onboard.demo.show import show

    result = show(args.task, args.color, args.seed, args.out, viewer=False if args.no_viewer else None)
    return 0 if result["success"] else 1


def cmd_sim_expert(args: argparse.Namespace) -> int:
    import time

    from onboard.eval.expert import DirectExecutor, evaluate, format_table
    from sim import tasks

    names = args.task or sorted(tasks.TASKS)
    for name in names:
        tasks.get_task(name)
    reports = []
    for name in names:
        t = time.monotonic()
        if args.stack == "mirrored":
            from sim.expert.harness import EnvExecutor

            exe = EnvExecutor()
        else:
            exe = DirectExecutor()
        try:
            reports.append(evaluate(name, n=args.n, seed0=args.seed0, executor=exe))
        finally:
            if hasattr(exe, "close"):
                exe.close()
        print(f"  {name}: {args.n} episodes in {time.monotonic() - t:.0f} s", file=sys.stderr, flush=True)
    print(f"scripted expert on the {args.stack} stack, seeds {args.seed0}..{args.seed0 + args.n - 1}")
    print(format_table(reports))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from policies.augment import AugmentConfig
    from policies.train import TrainConfig, train
    from policies.vla.config import VLAConfig

    paraphrases = ()
    if args.augment_paraphrase:
        from sim.tasks import paraphrase_groups

        paraphrases = paraphrase_groups("train")
    cfg = TrainConfig(
        datasets=tuple(args.dataset_roots),
        output_dir=args.output_dir,
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        save_every=args.save_every,
        eval_every=args.eval_every,
        threads=args.threads,
        amp=args.amp,
        augment=AugmentConfig(shift=args.augment_shift, state_noise=args.augment_state_noise, paraphrases=paraphrases),
        init_from=args.init_from,
        model=VLAConfig(chunk_size=args.chunk_size),
    )
    evaluate = None
    if args.eval_every:

        def evaluate(checkpoint, step):
            from onboard.eval.episodes import evaluate_checkpoint
            from onboard.eval.factories import make_runner, policy_and_size

            # validation seeds: neither the data generation's layouts nor `onboard eval`'s (from 100000)
            return evaluate_checkpoint(
                checkpoint,
                load_policy=policy_and_size,
                make_runner=make_runner,
                task=args.eval_task,
                n=args.eval_n,
                seed0=50_000,
            )

    try:
        train(cfg, resume=args.resume, evaluate=evaluate)
    except (FileExistsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from policies.bundle import export_bundle

    out = export_bundle(args.checkpoint, args.output_dir)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e6
    print(f"bundle written to {out} ({size:.1f} MB); run it with policies.onnx_policy.OnnxVLAPolicy (no torch)")
    return 0


def cmd_dataset(args: argparse.Namespace) -> int:
    from policies.dataset import info, repair, verify

    if args.dataset_cmd == "info":
        print(info(args.root))
        return 0
    if args.dataset_cmd == "repair":
        print(repair(args.root))
        return 0
    report = verify(args.root)
    print(report)
    return 0 if report.ok else 1


def cmd_bench_sim(args: argparse.Namespace) -> int:
    from onboard.bench.sim import main as bench_main

    argv = ["--seconds", str(args.seconds), "--size", str(args.size), "--rate", str(args.rate)]
    return int(bench_main([*argv, "--repeat", str(args.repeat)]) or 0)


def cmd_bench_policy(args: argparse.Namespace) -> int:
    from onboard.bench.policy import main as bench_main

    argv = ["--n", str(args.n), "--threads", str(args.threads)]
    argv += ["--checkpoint", args.checkpoint] if args.checkpoint else []
    return int(bench_main([*argv, *(["--json", args.json] if args.json else [])]) or 0)


def _calibrate_simulated_arm(args: argparse.Namespace) -> int:
    """`onboard calibrate --robot.port=sim`: a fresh, uncalibrated simulated arm and a scripted person who moves it."""
    import numpy as np

    from robot.arm import Arm
    from robot.arm_config import ArmConfig
    from sim.twin.person import SimulatedPerson
    from sim.twin.so101 import SimulatedSO101
    from sim.twin.world import qpos_to_lerobot

    prefix = "robot" if getattr(args, "robot_port", None) == "sim" else "teleop"
    with SimulatedSO101(seed=0) as sim_arm:
        setattr(args, f"{prefix}_port", sim_arm.url)
        person = SimulatedPerson(sim_arm)
        args.console, args.sleep = person, person.sleep
        rc = calibrate_cli.cmd_calibrate(args)
        if rc == 0 and prefix == "robot":
            config = ArmConfig(
                type=args.robot_type, port=sim_arm.url, id=args.robot_id, calibration_dir=args.robot_calibration_dir
            )
            goal = np.array([20.0, -30.0, 40.0, -20.0, 45.0, 30.0], dtype=np.float32)
            with Arm(config) as arm:
                arm.send_action(goal)
                sim_arm.clock.sleep(1.5)
                read = arm.read_positions()
                true = qpos_to_lerobot(sim_arm.joint_angles())
            err = np.abs(read - true)
            print(
                "check: after a move the calibrated arm reads "
                + ", ".join(f"{n} {r:+.1f}" for n, r in zip(arm.spec.names, read))
                + f"; the simulated joints are within {err[:5].max():.2f}° of that (gripper {err[5]:.2f} of 100)"
            )
        return rc


def cmd_bench_bus(args: argparse.Namespace) -> int:
    from onboard.bench.bus import main as bench_main

    return bench_main(n=args.n, json_path=args.json)


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
        if args.func is calibrate_cli.cmd_calibrate and "sim" in (
            getattr(args, "robot_port", None),
            getattr(args, "teleop_port", None),
        ):
            return _calibrate_simulated_arm(args)
        return int(args.func(args) or 0)
    except FeetechError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
