"""Recording demonstrations: LeRobot's ``lerobot-record`` flow on our teleop loop and crash-safe dataset writer.

    report = record(rig, config, robot=ArmConfig(...), teleop=ArmConfig(...))   # connects, records, disconnects

``config`` is a ``RecordConfig`` (``robot.record_config``: the dataset and the episodes, plain data).

Flow (LeRobot 0.4.4 ``lerobot-record``, reference §6): for each of ``num_episodes`` episodes, teleoperate for
``episode_time_s`` recording one frame per tick: ``observation.state`` (the follower's positions, read *before* the
action is sent), ``action`` (the leader's positions as read, *not* the clamped goal that was sent), one video per
camera, the episode's task string; then, except after the last episode, a reset phase of ``reset_time_s`` that
teleoperates without recording. Differences from LeRobot: an episode is saved (committed to disk) as soon as it
ends, before the reset phase, so a crash loses at most the episode in progress; "re-record" therefore applies to the
episode being recorded (pressed during a reset it is ignored).

Controls (``robot.controls.RecordControls``): right arrow or ``n`` ends the episode (or the reset) early; left
arrow or ``r`` ends it and records it again (discarded); Esc or ``q`` stops recording (the episode in progress is
saved). Headless: a control file (``next``, ``rerecord`` or ``stop`` written into it; read and removed), or signals:
SIGINT/SIGTERM stop after saving the episode in progress (a second SIGINT interrupts at once), SIGUSR1 = next,
SIGUSR2 = re-record.

The rig's ``EpisodeHooks`` (``robot.rig``) let the composition root put a world around the loop (the simulation
lays out a new scene with a fresh task at each reset, and its instruction becomes the episode's task); on a real
robot there are none.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hardware.camera import Camera
from policies.dataset import DatasetWriter
from robot.arm_config import ArmConfig
from robot.controls import RecordControls
from robot.record_config import RecordConfig
from robot.rig import EpisodeHooks, Rig, connected_arms
from robot.safety_config import SafetyConfig
from robot.teleop import Teleoperator, TeleopSample

log = logging.getLogger(__name__)


def dataset_features(names: tuple[str, ...], cameras: Mapping[str, Camera]) -> dict[str, dict]:
    """LeRobot's features for a follower with these motor keys and cameras (``observation.images.<name>``)."""
    vec = {"dtype": "float32", "shape": (len(names),), "names": list(names)}
    features: dict[str, dict] = {"observation.state": dict(vec), "action": dict(vec)}
    for name, cam in cameras.items():
        h, w = _camera_shape(cam)
        features[f"observation.images.{name}"] = {
            "dtype": "video",
            "shape": (h, w, 3),
            "names": ["height", "width", "channels"],
        }
    return features


def _camera_shape(cam: Camera) -> tuple[int, int]:
    h, w = getattr(cam, "height", None), getattr(cam, "width", None)
    if h and w:
        return int(h), int(w)
    frame = cam.read_latest()
    return int(frame.rgb.shape[0]), int(frame.rgb.shape[1])


@dataclass
class RecordReport:
    episodes_saved: list[int] = field(default_factory=list)
    frames_saved: int = 0
    rerecorded: int = 0
    dropped_frames: int = 0  # ticks without a camera frame (not recorded)
    stopped: bool = False
    loop: list[dict] = field(default_factory=list)  # LoopStats.summary() per episode

    def __str__(self) -> str:
        return (
            f"saved {len(self.episodes_saved)} episode(s) ({self.frames_saved} frames)"
            + (f", {self.rerecorded} re-recorded" if self.rerecorded else "")
            + (f", {self.dropped_frames} ticks without a camera frame" if self.dropped_frames else "")
            + (", stopped early" if self.stopped else "")
        )


# -------------------------------------------------------------------------------------------------------- session
class RecordSession:
    """The record loop on a connected leader, a started ``SafeArm`` and connected cameras (``record_session``
    builds one from a ``Rig``)."""

    def __init__(
        self,
        teleop: Teleoperator,
        writer: DatasetWriter,
        config: RecordConfig,
        *,
        hooks: EpisodeHooks | None = None,
        controls: RecordControls | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        on_sample: Callable[[TeleopSample], None] | None = None,
    ):
        self.teleop = teleop
        self.writer = writer
        self.config = config
        self.hooks = hooks
        self.controls = controls if controls is not None else RecordControls()
        self.on_event = on_event
        self.on_sample = on_sample  # e.g. a live view; called after the frame is queued
        self.report = RecordReport()
        self._task: str | None = None

    def _event(self, event: str, **fields: Any) -> None:
        record = {"event": event, "t": self.teleop.clock.now(), **fields}
        log.info("%s", record)
        if self.config.status_file is not None:
            with open(self.config.status_file, "a") as f:
                f.write(json.dumps(record) + "\n")
                f.flush()
        if self.on_event is not None:
            self.on_event(record)

    def _poll_controls(self, tick, stats) -> None:
        self.controls.poll()
        if self.controls.estop:
            failed = self.teleop.follower.emergency_stop()
            self._event("emergency_stop", torque_off_unconfirmed=failed)
        if self.controls.exit_early:
            self.teleop.stop()

    def _add_frame(self, sample: TeleopSample, tick) -> None:
        if self.on_sample is not None:
            self.on_sample(sample)
        frame: dict[str, Any] = {"observation.state": sample.state, "action": sample.action}
        for name in self.teleop.cameras:
            f = sample.frames.get(name)
            if f is None:
                self.report.dropped_frames += 1
                return
            frame[f"observation.images.{name}"] = f.rgb
        frame["task"] = self._task
        self.writer.add_frame(frame, t_capture=sample.t)

    def run(self) -> RecordReport:
        cfg, controls, report = self.config, self.controls, self.report
        target = self.writer.num_episodes + cfg.num_episodes
        while self.writer.num_episodes < target and not controls.stop:
            index = self.writer.num_episodes
            controls.clear_episode()
            hook_task = self.hooks.begin_episode(index) if self.hooks is not None else None
            self.teleop.follower.hold()  # the scene may have been laid out again: goals start where the arm is
            self._task = cfg.single_task or hook_task
            if not self._task:
                raise ValueError("no task string for the episode: give --dataset.single_task='...'")
            # episode: the dataset's index; number: this session's count (1-based), which differ after --resume
            self._event("episode_start", episode=index, number=index - target + cfg.num_episodes + 1, task=self._task)
            stats = self.teleop.run(
                cfg.fps, duration_s=cfg.episode_time_s, on_sample=self._add_frame, on_tick=self._poll_controls
            )
            report.loop.append(stats.summary())
            if self.hooks is not None:
                self.hooks.end_episode()
            if controls.rerecord and (not controls.stop or controls.estop):
                self.writer.discard_episode()
                report.rerecorded += 1
                self._event("episode_discarded", episode=index)
            elif self.writer.episode_frames > 0:
                n = self.writer.episode_frames
                saved = self.writer.save_episode(self._task)
                report.episodes_saved.append(saved)
                report.frames_saved += n
                self._event("episode_saved", episode=saved, frames=n)
            if controls.stop or self.writer.num_episodes >= target:
                break
            if cfg.reset_time_s > 0:
                self._reset_phase(self.writer.num_episodes)
        report.stopped = controls.stop
        self._event("done", episodes=len(report.episodes_saved))
        return report

    def _reset_phase(self, next_index: int) -> None:
        self.controls.clear_episode()
        if self.hooks is not None:
            self.hooks.begin_reset(next_index)
        self.teleop.follower.hold()
        self._event("reset_start", next_episode=next_index)
        self.teleop.run(self.config.fps, duration_s=self.config.reset_time_s, on_tick=self._poll_controls)
        self.controls.rerecord = False  # LeRobot re-records the previous episode here; ours is already saved


def open_writer(config: RecordConfig, features: dict[str, dict], robot_type: str, queue_size: int | None):
    """Create the dataset, or with ``resume`` continue it (ours or one LeRobot wrote, any layout; after a repair of
    what a crash left), checking that fps, robot type and features match (LeRobot's
    ``sanity_check_dataset_robot_compatibility``): a mismatch is refused with every difference listed."""
    root = Path(config.root)
    info_exists = (root / "meta" / "info.json").exists()
    if config.resume and info_exists:
        writer = DatasetWriter.resume(root, repo_id=config.repo_id, vcodec=config.vcodec, queue_size=queue_size)
        problems = resume_mismatch(writer, config, features, robot_type)
        if problems:
            writer.close()
            raise ValueError(f"cannot resume {root}: it differs from this recording: " + "; ".join(problems))
        return writer
    if config.resume:
        log.warning("--resume: %s has no dataset yet; starting a new one", root)
    elif info_exists:
        raise FileExistsError(
            f"{root} already holds a dataset: add --resume to record more episodes into it, "
            "or choose another --dataset.root"
        )
    return DatasetWriter.create(
        root,
        fps=config.fps,
        features=features,
        robot_type=robot_type,
        repo_id=config.repo_id,
        record_capture_time=config.capture_time,
        vcodec=config.vcodec,
        queue_size=queue_size,
    )


def resume_mismatch(
    writer: DatasetWriter, config: RecordConfig, features: dict[str, dict], robot_type: str
) -> list[str]:
    """Each way the dataset in ``writer`` differs from what this recording would write (empty: it may resume)."""
    problems = []
    if writer.fps != config.fps:
        problems.append(f"fps: the dataset has {writer.fps}, this recording {config.fps}")
    if writer.info.get("robot_type") != robot_type:
        problems.append(f"robot_type: the dataset has {writer.info.get('robot_type')!r}, this robot {robot_type!r}")
    for key, ft in features.items():
        have = writer.features.get(key)
        if have is None:
            problems.append(f"{key}: not in the dataset (recording {ft['dtype']} {tuple(ft['shape'])})")
            continue
        if have["dtype"] != ft["dtype"] or tuple(have["shape"]) != tuple(ft["shape"]):
            problems.append(
                f"{key}: the dataset has {have['dtype']} {tuple(have['shape'])}, "
                f"this recording {ft['dtype']} {tuple(ft['shape'])}"
            )
        elif ft["dtype"] != "video" and list(have.get("names") or []) != list(ft.get("names") or []):
            problems.append(f"{key} names: the dataset has {have.get('names')}, this robot {ft.get('names')}")
    extra = [k for k in writer.user_keys if k not in features]
    if extra:
        problems.append(f"the dataset has features this setup does not record: {', '.join(extra)}")
    if config.capture_time and not writer.record_capture_time:
        problems.append("capture_time: the dataset has no capture_time column (record without it)")
    return problems


def record(
    rig: Rig,
    config: RecordConfig,
    *,
    robot: ArmConfig,
    teleop: ArmConfig,
    safety: SafetyConfig | None = None,
    controls: RecordControls | None = None,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    on_sample: Callable[[TeleopSample], None] | None = None,
) -> RecordReport:
    """Record ``config.num_episodes`` episodes with ``teleop`` driving ``robot`` (module doc)."""
    with connected_arms(rig, robot=robot, teleop=teleop, safety=safety) as (safe, leader):
        assert leader is not None
        features = dataset_features(safe.keys, rig.cameras)
        writer = open_writer(config, features, robot.spec.name, rig.encoder_queue_size)
        try:
            tele = Teleoperator(leader, safe, rig.clock, rig.cameras)
            session = RecordSession(
                tele, writer, config, hooks=rig.hooks, controls=controls, on_event=on_event, on_sample=on_sample
            )
            return session.run()
        finally:
            writer.close()
