"""`onboard eval`: a policy (or the scripted expert) on N simulated episodes: success rate with a 95 % interval,
videos, a report. Its options are ``onboard.eval.config.EvalConfig``'s fields; ``--policy.type``'s choices are the
registry's kinds (``robot.policy_loader.policy_kinds()``, with onboard.eval's "expert")."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from onboard.cli.options import add_options, config_from
from onboard.eval.config import EvalConfig


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="a policy on N simulated episodes: success rate with 95%% CI, videos, report")
    add_options(p, EvalConfig)
    p.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from onboard.eval.evaluate import evaluate
    from onboard.eval.workers import EvalWorkerError
    from robot.policy_loader import detect_policy_type

    try:
        cfg = config_from(args, EvalConfig)
        if not cfg.policy_type:
            cfg = dataclasses.replace(cfg, policy_type=detect_policy_type(cfg.policy_path))
        evaluate(cfg)
    except (KeyError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except EvalWorkerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
