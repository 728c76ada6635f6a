"""`onboard sim ...`: the simulated twin as a device (serve-bus, serve: `onboard/cli/serve.py`), a video of the scripted
expert (show), and the expert's success rates (expert)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from typing import Literal

from onboard.cli.options import add_options, config_from
from onboard.cli.serve import ServeBusConfig, ServeConfig, cmd_sim_serve, cmd_sim_serve_bus


@dataclass(frozen=True)
class ShowConfig:
    task: str = field(default="pick", metadata={"help": "touch, pick or place"})
    color: str = field(default="red", metadata={"help": "red, green or blue"})
    seed: int = field(default=0, metadata={"help": "scene layout seed"})
    out: str = field(default="outputs/sim_show.mp4", metadata={"help": "video path"})
    viewer: bool = field(
        default=True, metadata={"flag": "--no-viewer", "help": "do not open MuJoCo's viewer even with a display"}
    )


@dataclass(frozen=True)
class ExpertConfig:
    task: tuple[str, ...] = field(default=(), metadata={"help": "repeatable: touch, pick, place (none: all)"})
    n: int = field(default=100, metadata={"help": "seeds per task"})
    seed0: int = field(default=1000, metadata={"help": "first seed"})
    stack: Literal["mirrored", "direct", "degraded"] = field(
        default="mirrored",
        metadata={
            "help": "mirrored: the whole stack down to the emulated servos; direct: MuJoCo's actuators; degraded: "
            "MuJoCo's actuators made worse as servos are (soft gains, quantised, slewed, noisy and late readings, "
            "overload protection)"
        },
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    simp = sub.add_parser("sim", help="the simulated twin")
    ssub = simp.add_subparsers(dest="sim_cmd", required=True)
    p = ssub.add_parser(
        "serve-bus",
        help="serve emulated STS3215 servos on a pseudo-terminal that any serial client can open; prints its path",
    )
    add_options(p, ServeBusConfig)
    p.set_defaults(func=cmd_sim_serve_bus)

    p = ssub.add_parser(
        "serve",
        help="serve a simulated SO-101 (MuJoCo twin, real time) on a pseudo-terminal; prints its path",
        description="The simulated arm as a device: point any driver (LeRobot's --robot.port, onboard's --port) at "
        "the printed /dev/pts/N. The arm starts uncalibrated (random horn offsets), like a new kit, unless "
        "--calibrated. Its front and wrist cameras are published by name in shared memory, rendered in real time (the "
        "names and the --robot.cameras that reads them are printed); the scene is laid out as `onboard run "
        "--robot.port=sim` lays out its own (--sim.*), and a JSON line on stdout says when its task is done.",
    )
    add_options(p, ServeConfig)
    p.set_defaults(func=cmd_sim_serve)

    p = ssub.add_parser("show", help="write a video of a scripted-expert episode (and open MuJoCo's viewer)")
    add_options(p, ShowConfig)
    p.set_defaults(func=cmd_sim_show)

    p = ssub.add_parser(
        "expert",
        help="success rate of the scripted expert over N seeds per task",
        description="Runs the scripted expert on N random seeds per task and prints success rates per task and "
        "colour. --stack mirrored (default) runs it like a policy: goals through the Arm, the Feetech driver and the "
        "emulated servos on MuJoCo joints; --stack direct drives MuJoCo's actuators (for debugging the expert); "
        "--stack degraded drives them made worse in the ways servos are (does the expert depend on exact tracking?).",
    )
    add_options(p, ExpertConfig)
    p.set_defaults(func=cmd_sim_expert)


def cmd_sim_show(args: argparse.Namespace) -> int:
    from onboard.demo.show import show

    cfg = config_from(args, ShowConfig)
    result = show(cfg.task, cfg.color, cfg.seed, cfg.out, viewer=None if cfg.viewer else False)
    return 0 if result["success"] else 1


def cmd_sim_expert(args: argparse.Namespace) -> int:
    import time

    from onboard.eval.expert import evaluate, format_table
    from sim import tasks
    from sim.expert.harness import DegradedExecutor, DirectExecutor

    cfg = config_from(args, ExpertConfig)
    names = cfg.task or sorted(tasks.TASKS)
    for name in names:
        tasks.get_task(name)
    reports = []
    for name in names:
        t = time.monotonic()
        if cfg.stack == "mirrored":
            from sim.expert.harness import EnvExecutor

            exe = EnvExecutor()
        elif cfg.stack == "degraded":
            exe = DegradedExecutor()
        else:
            exe = DirectExecutor()
        try:
            reports.append(evaluate(name, n=cfg.n, seed0=cfg.seed0, executor=exe))
        finally:
            if hasattr(exe, "close"):
                exe.close()
        print(f"  {name}: {cfg.n} episodes in {time.monotonic() - t:.0f} s", file=sys.stderr, flush=True)
    print(f"scripted expert on the {cfg.stack} stack, seeds {cfg.seed0}..{cfg.seed0 + cfg.n - 1}")
    print(format_table(reports))
    return 0
