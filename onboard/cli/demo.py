"""`onboard demo`: the simulated demo: the servo bus (``onboard.demo.bus``), then the bundled model on an instruction
(``onboard.demo.policy``), without torch. Its options are ``DemoConfig``'s fields."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from typing import Literal

from onboard.cli.options import add_options, config_from
from onboard.demo import DEFAULT_INSTRUCTION, DEFAULT_VIDEO


@dataclass(frozen=True)
class DemoConfig:
    instruction: str = field(default=DEFAULT_INSTRUCTION, metadata={"positional": True, "help": "what to do"})
    bundle: str | None = field(
        default=None, metadata={"help": "policy bundle folder (default policies/bundled/so101_vla)"}
    )
    policy_url: str | None = field(
        default=None,
        metadata={
            "flag": "--policy.url",
            "help": "instead of the bundle: a policy served by `onboard serve-policy`, ws://host:port",
        },
    )
    seconds: float = field(default=3.0, metadata={"help": "how long the servos follow the trajectory"})
    seed: int = field(default=0, metadata={"help": "scene layout of the simulated episode"})
    out: str = field(default=DEFAULT_VIDEO, metadata={"help": "video of the simulated episode"})
    latency: str = field(default="0ms", metadata={"help": "emulated inference latency: 50ms, 0.05 (s) or 'wall'"})
    task: Literal["touch", "pick", "place"] | None = field(default=None, metadata={"help": "task to judge success by"})
    color: Literal["red", "green", "blue"] | None = field(default=None, metadata={"help": "cube to judge success by"})
    bus_only: bool = field(
        default=False, metadata={"flag": "--bus-only", "group": "part", "help": "only the servo-bus part"}
    )
    policy_only: bool = field(
        default=False, metadata={"flag": "--policy-only", "group": "part", "help": "only the policy episode"}
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo", help="the simulated demo: the servo bus, then the bundled model on an instruction (no torch)"
    )
    add_options(p, DemoConfig)
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    """0: the episode succeeded; 1: it ran and failed; 2: it could not run (e.g. no bundle). Never imports torch."""
    cfg = config_from(args, DemoConfig)
    # a missing or damaged bundle stops the demo before its first part, not after it
    if not cfg.bus_only and not cfg.policy_url:
        from onboard.demo.policy import DemoError, check_demo_bundle

        try:
            check_demo_bundle(cfg.bundle)
        except (DemoError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if not cfg.policy_only:
        from onboard.demo.bus import run_demo

        rc = run_demo(seconds=cfg.seconds)
        if rc or cfg.bus_only:
            return rc
        print()
    from onboard.demo.policy import DemoError, run_policy_demo

    who = f"the policy served at {cfg.policy_url}" if cfg.policy_url else "the bundled model"
    print(f"{who} drives the simulated SO-101 (MuJoCo twin behind the same emulated servos and driver):")
    try:
        result = run_policy_demo(
            cfg.instruction,
            cfg.bundle,
            seed=cfg.seed,
            out=cfg.out,
            latency=cfg.latency,
            task=cfg.task,
            color=cfg.color,
            url=cfg.policy_url,
        )
    except (DemoError, FileNotFoundError, ValueError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0 if result["success"] else 1
