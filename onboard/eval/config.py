"""What an `onboard eval` run is: ``EvalConfig`` (validated on construction; ``command()`` reproduces it; its fields
are `onboard eval`'s options, the metadata their help, ``onboard.cli.options``) and the episodes it asks for
(``specs_for``). The simulation is imported by ``specs_for`` only, so that building the parser loads no MuJoCo."""

from __future__ import annotations

import dataclasses
import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from onboard.eval.fleet import BACKENDS, RayOptions, check_backend, resolve_backend
from robot.policy_loader import policy_kinds

if TYPE_CHECKING:
    from sim import tasks as T

POLICY_URL_OPTION = {  # --policy.url of `onboard eval` and `onboard run`
    "flag": "--policy.url",
    "help": "instead of --policy.path: a policy served by `onboard serve-policy`, ws://host:port (token: "
    "ONBOARD_POLICY_TOKEN)",
}


@dataclass(frozen=True)
class EvalConfig:
    policy_path: str | None = field(
        default=None,
        metadata={
            "flag": "--policy.path",
            "help": "checkpoint/bundle/LeRobot folder (default: the bundled model, policies/bundled/so101_vla)",
        },
    )
    policy_url: str | None = field(default=None, metadata=POLICY_URL_OPTION)
    policy_type: str | None = field(
        default=None,
        metadata={
            "flag": "--policy.type",
            "choices": policy_kinds,  # the registry's kinds when the parser is built ("expert": onboard.eval's)
            "help": "the policy kind (default: detected from --policy.path)",
        },
    )
    task: str = field(default="pick", metadata={"help": "touch, pick or place"})
    color: str = field(
        default="all", metadata={"help": "the cubes to draw", "choices": ("red", "green", "blue", "all")}
    )
    instruction: str | None = field(
        default=None, metadata={"help": "tell the policy this instead of the seed's phrasing"}
    )
    split: str = field(default="train", metadata={"help": "which phrasings to draw", "choices": ("train", "held_out")})
    n: int = field(default=50, metadata={"help": "episodes"})
    seed0: int = field(default=100_000, metadata={"help": "first seed (100000: never used in training)"})
    latency: str = field(
        default="0ms", metadata={"help": "emulated inference latency per chunk, e.g. 200ms; 'wall': measured (async)"}
    )
    runner: str = field(default="async", metadata={"help": "the runtime's runner", "choices": ("async", "sync")})
    refill_at: int | None = field(
        default=None,
        metadata={
            "help": "async: request the next chunk when this many actions are left (default: the latency in ticks, "
            ">= 2)"
        },
    )
    blend_steps: int | None = field(
        default=None,
        metadata={
            "help": "async: ticks over which a new chunk's weight ramps up where it overlaps the plan (default 1; "
            "0: replace)"
        },
    )
    videos: int = field(default=0, metadata={"help": "write videos of the first N episodes"})
    video_size: int = field(
        default=480,
        metadata={"help": "height of the viewing camera in videos (px; 4:3), beside the policy's views", "cli": False},
    )
    output_dir: str = field(default="outputs/eval", metadata={"help": "report.json, summary.png, videos/"})
    horizon: int = field(default=30, metadata={"help": "expert only: the chunk length", "cli": False})
    num_envs: int = field(
        default=1,
        metadata={"help": "environments, each with its own policy: worker processes or Ray actors (1: in-process)"},
    )
    backend: str = field(
        default="auto",
        metadata={
            "choices": BACKENDS,
            "help": "where the episodes run: serial (this process), processes (--num_envs spawned processes), ray "
            "(--num_envs Ray actors, local or a cluster: --ray.address); auto: serial for --num_envs=1, else "
            "processes. The report is the same for the same seeds",
        },
    )
    ray: RayOptions = field(default_factory=RayOptions)
    safety: bool = field(
        default=True,
        metadata={
            "value": ("on", "off"),
            "help": "on: the actions go through SafeArm, as `onboard run` sends them to a real arm (clamps, stall "
            "stop, a grasp derated below the servo's overload threshold); off: straight to the arm",
        },
    )

    def __post_init__(self) -> None:
        if self.n < 1:
            raise ValueError(f"--n must be >= 1, got {self.n}")
        if self.runner not in ("async", "sync"):
            raise ValueError(f"--runner must be 'async' or 'sync', got {self.runner!r}")
        if self.refill_at is not None and (self.runner != "async" or self.refill_at < 0):
            raise ValueError(
                f"--refill_at is the async runner's actions-left threshold (>= 0), got {self.refill_at} with "
                f"--runner={self.runner} (the sync runner infers only when its chunk is used up)"
            )
        if self.blend_steps is not None and (self.runner != "async" or self.blend_steps < 0):
            raise ValueError(
                f"--blend_steps is the async runner's blend ramp in ticks (>= 0), got {self.blend_steps} with "
                f"--runner={self.runner} (the sync runner's chunks do not overlap)"
            )
        if self.num_envs < 1:
            raise ValueError(f"--num_envs must be >= 1, got {self.num_envs}")
        check_backend(self.backend, self.num_envs, self.ray, worker="env", flag="--num_envs")

    def command(self) -> str:
        """The `onboard eval` command line that reproduces this run."""
        parts = ["onboard", "eval", f"--policy.type={self.resolved_policy_type()}"]
        if self.policy_path:
            parts.append(f"--policy.path={self.policy_path}")
        parts += [f"--task={self.task}", f"--color={self.color}"]
        if self.instruction:
            parts.append(f"--instruction={self.instruction}")
        parts += [f"--split={self.split}", f"--n={self.n}", f"--seed0={self.seed0}", f"--latency={self.latency}"]
        parts.append(f"--runner={self.runner}")
        if self.refill_at is not None:
            parts.append(f"--refill_at={self.refill_at}")
        if self.blend_steps is not None:
            parts.append(f"--blend_steps={self.blend_steps}")
        parts += [f"--videos={self.videos}", f"--output_dir={self.output_dir}"]
        parts.append(f"--safety={'on' if self.safety else 'off'}")
        if self.num_envs != 1:
            parts.append(f"--num_envs={self.num_envs}")
        if self.backend != "auto":
            parts.append(f"--backend={self.backend}")
        if self.ray.address:
            parts.append(f"--ray.address={self.ray.address}")
        return shlex.join(parts)

    def resolved_backend(self) -> str:
        """The backend that runs the episodes: ``backend``, with "auto" resolved by ``num_envs``."""
        return resolve_backend(self.backend, self.num_envs)

    def resolved_policy_type(self) -> str:
        """``policy_type``; set it first (`onboard eval` does, from the policy folder, when not given)."""
        if not self.policy_type:
            raise ValueError("EvalConfig.policy_type is not set (robot.policy_loader.detect_policy_type gives one)")
        return self.policy_type


def specs_for(cfg: EvalConfig) -> list[T.TaskSpec]:
    """The episodes of ``cfg``: colour, phrasing and layout from each seed (an ``instruction`` rewords them all)."""
    from sim import tasks as T
    from sim.expert.harness import spec_for_seed

    T.get_task(cfg.task)
    colors = T.COLORS if cfg.color in ("all", "", None) else (cfg.color,)
    for c in colors:
        T.cube_body(c)
    specs = []
    for i in range(cfg.n):
        spec = spec_for_seed(cfg.task, cfg.seed0 + i, colors, cfg.split)
        if cfg.instruction:
            spec = dataclasses.replace(spec, instruction=cfg.instruction)
        specs.append(spec)
    return specs
