"""`onboard bench bus|sim|policy|loop|serve|soak|run|eval|train`: does this machine keep up? Each benchmark takes its
config (onboard/bench/config.py), from which its options are derived."""

from __future__ import annotations

import argparse

from onboard.bench.config import (
    BusBenchConfig,
    LoopBenchConfig,
    PolicyBenchConfig,
    RunBenchConfig,
    ServeBenchConfig,
    SimBenchConfig,
    SoakBenchConfig,
)
from onboard.bench.eval import EvalBenchConfig
from onboard.bench.train import TrainBenchConfig
from onboard.cli.options import add_options, config_from


def add_parser(sub: argparse._SubParsersAction) -> None:
    benchp = sub.add_parser("bench", help="benchmarks: does this machine keep up?")
    bsub = benchp.add_subparsers(dest="bench_cmd", required=True)
    for name, config, func, text in (
        (
            "bus",
            BusBenchConfig,
            cmd_bench_bus,
            "6-servo sync read/write round trips: in-process, pty, LeRobot, vendor SDK",
        ),
        (
            "sim",
            SimBenchConfig,
            cmd_bench_sim,
            "physics, rendering, closed-loop and environment speed of the simulated arm",
        ),
        (
            "policy",
            PolicyBenchConfig,
            cmd_bench_policy,
            "VLA inference latency: eager torch vs onnxruntime vs LeRobot's ACT",
        ),
        (
            "serve",
            ServeBenchConfig,
            cmd_bench_serve,
            "reply latency of the served servos and twin with the machine saturated (normal vs realtime serving)",
        ),
        (
            "soak",
            SoakBenchConfig,
            cmd_bench_soak,
            "LeRobot's lerobot-teleoperate against the served twin with the machine saturated (default 10 min)",
        ),
        (
            "loop",
            LoopBenchConfig,
            cmd_bench_loop,
            "control-loop jitter, overruns and per-stage times at 30 and 100 Hz (wall clock)",
        ),
        (
            "run",
            RunBenchConfig,
            cmd_bench_run,
            "the onboard run loop with the bundled policy and two 640x480 cameras against the served twin, pinned to "
            "--cpus cores: overruns, lateness, per-stage time and CPU, the task's success",
        ),
        (
            "eval",
            EvalBenchConfig,
            cmd_bench_eval,
            "`onboard eval` episodes/s with 1, 2, ... workers (Ray actors or processes) and the speed-up",
        ),
        (
            "train",
            TrainBenchConfig,
            cmd_bench_train,
            "training step time of the VLA for the recipe's model and precision choices (synthetic batches)",
        ),
    ):
        p = bsub.add_parser(name, help=text)
        add_options(p, config)
        p.set_defaults(func=func)


def cmd_bench_bus(args: argparse.Namespace) -> int:
    from onboard.bench.bus import main

    return main(config_from(args, BusBenchConfig))


def cmd_bench_sim(args: argparse.Namespace) -> int:
    from onboard.bench.sim import main

    return main(config_from(args, SimBenchConfig))


def cmd_bench_policy(args: argparse.Namespace) -> int:
    from onboard.bench.policy import main

    return main(config_from(args, PolicyBenchConfig))


def cmd_bench_loop(args: argparse.Namespace) -> int:
    from onboard.bench.loop import main

    return main(config_from(args, LoopBenchConfig))


def cmd_bench_serve(args: argparse.Namespace) -> int:
    from onboard.bench.serve import main

    return main(config_from(args, ServeBenchConfig))


def cmd_bench_soak(args: argparse.Namespace) -> int:
    from onboard.bench.soak import main

    return main(config_from(args, SoakBenchConfig))


def cmd_bench_run(args: argparse.Namespace) -> int:
    from onboard.bench.run import main

    return main(config_from(args, RunBenchConfig))


def cmd_bench_eval(args: argparse.Namespace) -> int:
    from onboard.bench.eval import main

    return main(config_from(args, EvalBenchConfig))


def cmd_bench_train(args: argparse.Namespace) -> int:
    from onboard.bench.train import main

    return main(config_from(args, TrainBenchConfig))
