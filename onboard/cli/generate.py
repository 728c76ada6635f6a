"""`onboard generate`: demonstrations of the scripted expert on the simulated rig, recorded by a fleet of workers into
shards and merged into one LeRobot v3.0 dataset.

    onboard calibrate --robot.type=so101_follower --robot.port=sim --robot.id=f --robot.calibration_dir=cal
    onboard calibrate --teleop.type=so101_leader --teleop.port=sim --teleop.id=l --teleop.calibration_dir=cal
    onboard generate --robot.id=f --robot.calibration_dir=cal --teleop.id=l --teleop.calibration_dir=cal \\
        --sim.task=pick --sim.seed=102 --dataset.root=data/pick --dataset.num_episodes=40 \\
        --dataset.episode_time_s=8 --num_workers=4 --backend=ray

It is `onboard record --robot.port=sim --teleop.port=sim` (the same ``--robot.*``, ``--teleop.*``, ``--sim.*`` and
``--dataset.*`` options; the expert drives the simulated leader, no reset phase by default) split over
``--num_workers`` workers: ``--backend`` processes (the default for several workers; no Ray), ray (actors on a local
Ray or the cluster of ``--ray.address``), or serial. Episode j of the dataset is the scene of (--sim.seed, j) however
many workers record it (``onboard.eval.generate``). The shards are written to ``<root>.shards/`` and removed once
merged (``--keep_shards`` keeps them); on a cluster that folder must be on a filesystem every node sees.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from onboard.cli.options import add_options, config_from
from onboard.cli.rigs import FOLLOWER, LEADER, SimTeleopOptions, sim_rig_kwargs
from onboard.eval.fleet import BACKENDS, RayOptions, check_backend, resolve_backend
from robot.arm_config import ArmConfig
from robot.record_config import RecordConfig


@dataclass(frozen=True, kw_only=True)
class GenerateCommand:
    """`onboard generate`: the simulated arms, the scenes, the dataset, and the fleet that records it."""

    robot: ArmConfig = field(metadata={"defaults": {**FOLLOWER, "port": "sim"}})
    teleop: ArmConfig = field(metadata={"defaults": {**LEADER, "port": "sim"}})
    sim: SimTeleopOptions = field(default_factory=SimTeleopOptions)
    dataset: RecordConfig = field(metadata={"defaults": {"reset_time_s": 0.0, "episode_time_s": 12.0}})
    num_workers: int = field(default=1, metadata={"help": "workers, each recording a shard on a simulated rig"})
    backend: str = field(
        default="auto",
        metadata={
            "choices": BACKENDS,
            "help": "where the workers run: serial (this process), processes (spawned, no Ray), ray (Ray actors: a "
            "local Ray, or --ray.address); auto: serial for one worker, else processes",
        },
    )
    ray: RayOptions = field(default_factory=RayOptions)
    keep_shards: bool = field(default=False, metadata={"help": "keep <root>.shards/ after merging"})

    def __post_init__(self) -> None:
        if self.num_workers < 1:
            raise ValueError(f"--num_workers must be >= 1, got {self.num_workers}")
        check_backend(self.backend, self.num_workers, self.ray, worker="worker", flag="--num_workers")
        if self.robot.port != "sim" or self.teleop.port != "sim":
            raise ValueError("onboard generate records on the simulated rig (port sim); a real arm: `onboard record`")
        if self.dataset.resume or self.dataset.status_file is not None:
            raise ValueError("onboard generate makes a new dataset: --resume and --status_file are `onboard record`'s")
        if self.dataset.num_episodes < 1:
            raise ValueError(f"--dataset.num_episodes must be >= 1, got {self.dataset.num_episodes}")

    def resolved_backend(self) -> str:
        return resolve_backend(self.backend, self.num_workers)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="the scripted expert's demonstrations on the simulated rig, recorded by N workers (processes or Ray "
        "actors) and merged into one LeRobot dataset",
    )
    add_options(p, GenerateCommand)
    p.set_defaults(func=cmd_generate)


def _absolute(arm: ArmConfig) -> ArmConfig:
    """The arm with its calibration folder as an absolute path (a worker may run elsewhere)."""
    return dataclasses.replace(arm, calibration_dir=arm.calibration_path.parent.resolve())


def cmd_generate(args: argparse.Namespace) -> int:
    from onboard.eval.fleet import FleetError
    from onboard.eval.generate import GenerateError, plan_shards, remove_shards, run_shards
    from policies.dataset.merge import merge
    from robot.arm import Arm

    options = config_from(args, GenerateCommand)
    root = Path(options.dataset.root).resolve()
    shards_dir = root.parent / f"{root.name}.shards"
    for path, what in ((root, "the dataset"), (shards_dir, "a previous run's shards")):
        if path.exists():
            print(
                f"error: {path} already exists ({what}): choose another --dataset.root, or merge/remove it "
                "(`onboard dataset merge`)",
                file=sys.stderr,
            )
            return 2
    robot, teleop = _absolute(options.robot), _absolute(options.teleop)
    for arm in (robot, teleop):
        Arm(arm).load_calibration_file()  # a missing calibration says how to make one, before any worker starts
    record = dataclasses.replace(options.dataset, root=root)
    jobs = plan_shards(
        record.num_episodes,
        options.num_workers,
        shards_dir,
        record=record,
        robot=robot,
        teleop=teleop,
        rig=sim_rig_kwargs(options.sim, options.dataset.fps, robot.calibration_path, teleop.calibration_path),
    )
    backend = options.resolved_backend()
    print(
        f"recording {record.num_episodes} episodes ({record.episode_time_s:g} s each) with {len(jobs)} worker(s) "
        f"({backend}) into {shards_dir}",
        flush=True,
    )
    shards_dir.mkdir(parents=True)
    t0 = time.monotonic()
    try:
        summaries = run_shards(jobs, backend=backend, ray=options.ray, log=lambda line: print(line, flush=True))
    except GenerateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except FleetError as exc:  # no Ray, or no cluster there: nothing was recorded
        if not any(shards_dir.iterdir()):
            shards_dir.rmdir()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    wall = time.monotonic() - t0
    missing = [s["root"] for s in summaries if not (Path(s["root"]) / "meta" / "info.json").exists()]
    if missing:
        print(
            f"error: shard(s) {', '.join(missing)} were written where this machine cannot see them: put "
            "--dataset.root on a filesystem every node of the cluster shares",
            file=sys.stderr,
        )
        return 2
    report = merge(root, [Path(s["root"]) for s in summaries])
    if not options.keep_shards:
        remove_shards(shards_dir)
    print(report)
    print(f"{report.episodes} episodes in {wall:.1f} s: {report.episodes / wall:.2f} episodes/s")
    return 0
