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
    from policies.bundle import BUNDLED, check_bundle
    from robot.policy_loader import get_policy_kind, policy_kind

    try:
        cfg = config_from(args, EvalConfig)
        if cfg.policy_url:  # a served policy: its address stands where the folder would (kind "remote")
            if cfg.policy_path:
                raise ValueError("give --policy.path (a folder) or --policy.url (a served policy), not both")
            cfg = dataclasses.replace(cfg, policy_path=cfg.policy_url, policy_url=None, policy_type="remote")
        if not cfg.policy_path and cfg.policy_type in (None, "onnx"):
            cfg = dataclasses.replace(cfg, policy_path=str(BUNDLED), policy_type="onnx")
            print(f"policy: the bundled model, {BUNDLED} (no --policy.path given)", flush=True)
        elif not cfg.policy_path and get_policy_kind(cfg.policy_type).needs_path:
            raise ValueError(f"--policy.type={cfg.policy_type} needs --policy.path, the folder to load it from")
        needs_path = cfg.policy_type is None or get_policy_kind(cfg.policy_type).needs_path
        if cfg.policy_path and needs_path:  # checked here, before any episode or worker process starts
            kind = policy_kind(cfg.policy_path)
            cfg = dataclasses.replace(cfg, policy_type=cfg.policy_type or kind)
            if cfg.policy_type == "onnx":
                check_bundle(cfg.policy_path)
        evaluate(cfg)
    except (KeyError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except EvalWorkerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
