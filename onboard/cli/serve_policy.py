"""`onboard serve-policy`: a policy served over a websocket (``policies.remote``), for a robot whose own computer is
too small for it:

    onboard serve-policy --policy.path=runs/vla/last --host 0.0.0.0 --port 8765 --token "$TOKEN"   # on the GPU box
    ONBOARD_POLICY_TOKEN="$TOKEN" onboard run --policy.url=ws://gpu-box:8765 ...                     # on the robot

Any kind the policy loader loads is served (the bundled ONNX model by default, our torch VLA, a LeRobot checkpoint).
Prints one line once listening (with the bound port: ``--port 0`` picks a free one), then serves until Ctrl-C or
SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import signal
import sys
from dataclasses import dataclass, field

from onboard.cli.options import add_options, config_from
from robot.policy_loader import policy_kinds
from robot.shutdown import signal_name


def _served_kinds() -> tuple[str, ...]:
    return tuple(k for k in policy_kinds(on_robot=True) if k != "remote")


@dataclass(frozen=True)
class ServePolicyConfig:
    policy_path: str | None = field(
        default=None,
        metadata={
            "flag": "--policy.path",
            "help": "bundle, LeRobot or VLA checkpoint folder (default: the bundled model, policies/bundled/so101_vla)",
        },
    )
    policy_type: str | None = field(
        default=None,
        metadata={"flag": "--policy.type", "choices": _served_kinds, "help": "default: from the folder"},
    )
    host: str = field(
        default="127.0.0.1",
        metadata={
            "help": "address to listen on: 127.0.0.1 is this machine only; 0.0.0.0 exposes the policy to the LAN "
            "and needs --token"
        },
    )
    port: int = field(default=8765, metadata={"help": "TCP port (0: any free one, printed)"})
    token: str | None = field(
        default=None,
        metadata={
            "help": "shared secret clients must send (they set ONBOARD_POLICY_TOKEN; default: this process's "
            "ONBOARD_POLICY_TOKEN); required off loopback"
        },
    )
    max_message_mb: float = field(
        default=16.0, metadata={"flag": "--max-message-mb", "help": "largest message accepted (MiB); larger: closed"}
    )
    threads: int | None = field(default=None, metadata={"help": "intra-op threads of the policy's backend"})


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve-policy",
        help="serve a policy over a websocket for --policy.url=ws://host:port (msgpack, no pickle, token)",
        description="Serve a policy to `onboard run/eval/demo --policy.url=ws://HOST:PORT` on another machine. "
        "Binds 127.0.0.1 by default; --host 0.0.0.0 exposes it to the LAN and needs --token. Health: GET /healthz.",
    )
    add_options(p, ServePolicyConfig)
    p.set_defaults(func=cmd_serve_policy)


def cmd_serve_policy(args: argparse.Namespace) -> int:
    from policies.bundle import BUNDLED
    from policies.remote.server import PolicyServer, check_bind
    from robot.policy_loader import load_policy

    cfg = config_from(args, ServePolicyConfig)
    if not cfg.token and os.environ.get("ONBOARD_POLICY_TOKEN"):  # kept out of the shell's history and `ps`
        cfg = dataclasses.replace(cfg, token=os.environ["ONBOARD_POLICY_TOKEN"])
    try:
        if not 0 <= cfg.port <= 65535:
            raise ValueError(f"--port must be 0..65535, got {cfg.port}")
        if not cfg.max_message_mb > 0:
            raise ValueError(f"--max-message-mb must be positive, got {cfg.max_message_mb}")
        check_bind(cfg.host, cfg.token)  # before the policy is loaded: a refusal is immediate
        loaded = load_policy(cfg.policy_path or str(BUNDLED), cfg.policy_type, threads=cfg.threads)
        server = PolicyServer(
            loaded, host=cfg.host, port=cfg.port, token=cfg.token, max_size=int(cfg.max_message_mb * 2**20)
        )
    except (ValueError, FileNotFoundError, ImportError) as exc:  # typed policy errors: onboard.cli.errors
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def ready(port: int) -> None:
        where = f"ws://{cfg.host}:{port}"
        token = " (token required)" if cfg.token else ""
        cams = ", ".join(loaded.cameras or ()) or "any"
        print(f"serving {loaded.kind} policy {loaded.path} on {where}{token}; cameras {cams}", flush=True)
        print(f"  clients: --policy.url={where}   health: http://{cfg.host}:{port}/healthz", flush=True)

    stopped_by: list[int] = []

    async def serve() -> None:
        # a signal stops the event loop's server cleanly (an exception raised by a Python signal handler inside the
        # loop can land in a transport's callback and leave the loop running)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            loop.add_signal_handler(signum, lambda s=signum: (stopped_by.append(s), server.stop()))
        await server.serve(ready)

    try:
        asyncio.run(serve())
    except OSError as exc:  # the address is taken or not this machine's
        print(f"error: cannot listen on {cfg.host}:{cfg.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if stopped_by:
        print(f"stopped by {signal_name(stopped_by[0])}", file=sys.stderr, flush=True)
        return 128 + stopped_by[0]
    return 0
