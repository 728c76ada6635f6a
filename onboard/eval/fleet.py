"""Ray for simulation fleets (`onboard eval --backend=ray`, `onboard generate --backend=ray`): the ``--ray.*``
options, joining or starting a Ray cluster for the length of a run, and the environment every actor gets.

    with ray_session(RayOptions(address=None), num_cpus=2) as ray:   # a local Ray of 2 CPUs, shut down after
        actor = ray.remote(num_cpus=1)(MyActor).options(runtime_env=actor_runtime_env()).remote(...)

``address`` None starts a private local Ray (``ray.init(num_cpus=N)``: one CPU per actor); ``"auto"`` joins the cluster
that ``ray start --head`` started on this machine (and its workers on other machines); ``ray://host:10001`` joins a
remote head through Ray Client. A Ray already initialised in this process (a test's, a notebook's) is used as it is
and left running. Ray is imported here, when a session starts: the runtime install has no Ray (extra ``fleet``).

Every node must have the same onboard install (the actors import onboard's modules by name, and a ``--policy.path``
must exist at the same path there). Actors get one math-library thread each and the driver's MuJoCo GL backend and
Hugging Face offline flag (``actor_runtime_env``). Usage statistics are off (no network) unless the user set
``RAY_USAGE_STATS_ENABLED`` themselves.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")
PASS_THROUGH = ("MUJOCO_GL", "PYOPENGL_PLATFORM", "HF_HUB_OFFLINE", "ONBOARD_POLICY_TOKEN")


@dataclass(frozen=True)
class RayOptions:
    """``--ray.*``: where a ``--backend=ray`` run's actors live."""

    address: str | None = field(
        default=None,
        metadata={
            "help": "--backend=ray: the Ray cluster to join: 'auto' (started with `ray start --head` on this machine) "
            "or ray://HEAD:10001; default: a local Ray started for this run, one CPU per worker",
            "metavar": "ADDRESS",
        },
    )


BACKENDS = ("auto", "serial", "processes", "ray")  # where a fleet's workers run; auto: serial for one, else processes


def resolve_backend(backend: str, workers: int) -> str:
    """``backend``, with "auto" resolved by the number of workers."""
    if backend != "auto":
        return backend
    return "serial" if workers == 1 else "processes"


def check_backend(backend: str, workers: int, ray: RayOptions, *, worker: str, flag: str) -> None:
    """A ``ValueError`` saying what to change when ``--backend``, the worker count (``flag``; ``worker``: what one
    is called) and ``--ray.address`` do not fit together."""
    if backend not in BACKENDS:
        raise ValueError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "serial" and workers != 1:
        raise ValueError(f"--backend=serial runs one {worker} in this process: drop {flag}={workers}")
    if ray.address and backend != "ray":
        raise ValueError("--ray.address is where --backend=ray runs its actors; add --backend=ray")


class FleetError(ValueError):
    """Ray is missing or could not be started/joined: the run cannot start as asked (exit code 2); the message says
    what to do."""


def import_ray() -> Any:
    """``ray``, or a ``FleetError`` naming the extra to install."""
    try:
        import ray
    except ImportError as exc:
        raise FleetError(f"--backend=ray needs Ray: pip install 'onboard[fleet]' ({exc})") from exc
    return ray


def actor_runtime_env() -> dict[str, Any]:
    """The runtime environment of every actor: one thread per math library, the driver's GL backend (default egl)
    and offline/token variables."""
    env = {k: "1" for k in THREAD_VARS}
    env.update({k: os.environ[k] for k in PASS_THROUGH if k in os.environ})
    env.setdefault("MUJOCO_GL", "egl")
    return {"env_vars": env}


@contextlib.contextmanager
def ray_session(options: RayOptions, num_cpus: int) -> Iterator[Any]:
    """Ray, initialised for the ``with`` block (module doc): ``num_cpus`` is the local Ray's size when this starts
    one; a joined cluster brings its own. Yields the ``ray`` module."""
    ray = import_ray()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        yield ray
        return
    quiet = {"logging_level": logging.WARNING, "log_to_driver": log.isEnabledFor(logging.INFO)}
    # ray.init installs its own SIGTERM handler in this process and shutdown leaves it: put ours back afterwards
    handlers = _signal_handlers()
    try:
        if options.address:
            ray.init(address=options.address, **quiet)
        else:
            ray.init(num_cpus=int(num_cpus), include_dashboard=False, **quiet)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {options.address!r}" if options.address else "a local Ray"
        hint = " (is `ray start --head` running there?)" if options.address else ""
        _restore(handlers)
        raise FleetError(f"could not start or join {where}{hint}: {exc}") from exc
    try:
        yield ray
    finally:
        try:
            ray.shutdown()
        finally:
            _restore(handlers)


_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")


def _signal_handlers() -> dict[int, Any]:
    """This process's handlers of the terminating signals (main thread only: elsewhere none can be set)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    found = {}
    for name in _SIGNALS:
        if (signum := getattr(signal, name, None)) is not None:
            found[signum] = signal.getsignal(signum)
    return found


def _restore(handlers: dict[int, Any]) -> None:
    for signum, handler in handlers.items():
        if handler is not None and signal.getsignal(signum) is not handler:
            signal.signal(signum, handler)


def one_thread() -> None:
    """Inside an actor or worker: torch (when it is loaded) on one intra-op thread, like the math libraries."""
    import sys

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
