"""`onboard calibrate` and `onboard calibration import|show`: LeRobot's calibration flow with its prompts.

    onboard calibrate --robot.type=so101_follower --robot.port=/dev/ttyACM0 --robot.id=my_arm
    onboard calibrate --teleop.type=so101_leader --teleop.port=/dev/ttyACM1 --teleop.id=my_leader
    onboard calibration import ~/old/my_arm.json --robot.type=so101_follower --robot.id=my_arm
    onboard calibration show --robot.type=so101_follower --robot.id=my_arm [--robot.port=...]

The person at the keyboard is a ``Console`` (ask a question, see whether ENTER was pressed, show text), so that a
test or a simulated person can answer instead: ``run_calibration(config, console)``, or set ``args.console`` (and
``args.sample_period_s``, the pause between range samples) on the parsed command before calling ``args.func(args)``.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from onboard.cli.bus import resolve_port
from onboard.cli.console import Console, TerminalConsole, range_table
from onboard.cli.options import add_options, config_from
from robot.arm import Arm
from robot.arm_config import ARM_SPECS, PORT_HELP, ArmConfig, arm_spec, calibration_file
from robot.calibration import (
    Calibration,
    Calibrator,
    MotorCalibration,
    calibration_differences,
    calibration_to_json,
    import_calibration,
    load_calibration,
    save_calibration,
)
from robot.errors import ArmConfigError, CalibrationError, CalibrationFileError, RobotError
from robot.shutdown import deferred_signals
from robot.units import MAX_RES

DEFAULT_SAMPLE_PERIOD_S = 0.02  # between range samples (LeRobot 0.6.1 sleeps 20 ms per read)


# ------------------------------------------------------------------------------------------------------------- flow
@contextlib.contextmanager
def _opened(arm: Arm) -> Iterator[Arm]:
    """The arm's bus open (handshake done, no calibration check), disconnected afterwards; a disconnect error does
    not hide an exception already on its way out."""
    arm.open()
    try:
        yield arm
    except BaseException as exc:
        arm.__exit__(type(exc), exc, exc.__traceback__)
        raise
    arm.disconnect()


def run_calibration(
    config: ArmConfig,
    console: Console,
    *,
    bus=None,
    sample_period_s: float = DEFAULT_SAMPLE_PERIOD_S,
    sleep: Callable[[float], None] | None = None,
) -> Calibration:
    """LeRobot's ``lerobot-calibrate`` for one arm: if a calibration file exists, ENTER writes it to the servos and
    'c' recalibrates; calibrating = middle pose + ENTER, sweep every joint (live table) + ENTER; the result goes to
    the servos' EEPROM and to the file. The arm is left with torque off. Returns the calibration."""
    import time

    sleep = sleep or time.sleep
    with _opened(Arm(config, bus)) as arm:
        path = config.calibration_path
        if path.is_file():
            try:
                existing = arm.load_calibration_file()
            except CalibrationFileError as exc:
                console.show(f"The calibration file cannot be used, calibrating again:\n{exc}")
            else:
                answer = console.ask(
                    f"Press ENTER to use provided calibration file associated with the id {config.id}, or type 'c' "
                    "and press ENTER to run calibration: "
                )
                if answer.strip().lower() != "c":
                    arm.apply_calibration(existing)
                    console.show(f"Wrote the calibration in {path} to the servos of {config.id} ({config.type})")
                    return existing
        console.show(f"\nRunning calibration of {config.id} ({config.type})")
        calibrator = Calibrator(arm.bus, arm.ids, full_turn_motors=arm.spec.full_turn_motors)
        previous = arm.read_servo_calibration()  # written back if calibrating does not finish
        calibrator.start()
        try:
            console.ask(f"Move {config.id} ({config.type}) to the middle of its range of motion and press ENTER....")
            calibrator.set_homing()
            full_turn = ", ".join(f"'{m}'" for m in calibrator.full_turn_motors)
            console.show(
                f"Move all joints except {full_turn} sequentially through their entire ranges of motion.\n"
                "Recording positions. Press ENTER to stop..."
            )
            while True:
                console.show(range_table(calibrator.sample_range()), live=True)
                if console.enter_pressed():
                    break
                sleep(sample_period_s)
            calibration = calibrator.finish()
        except BaseException as exc:
            _aborted(arm, previous, exc, console)
            raise
        save_calibration(path, calibration)
        console.show(f"Calibration saved to {path}")
        return calibration


def _aborted(arm: Arm, previous: Calibration, exc: BaseException, console: Console) -> None:
    """Calibrating stopped before the end: write back the homing offsets and ranges the servos held before it reset
    them, and say so (in the error, or to the person); the file was not touched."""
    try:
        with deferred_signals():
            arm.apply_calibration(previous)
        note = f"the servos' previous calibration was written back; {arm.calibration_path} is unchanged"
    except Exception as err:  # the bus failed too
        note = f"the servos' reset calibration could not be undone ({err}): calibrate again before use"
    if isinstance(exc, CalibrationError):  # the library says nothing was written; its reset was
        text = str(exc).replace(" (nothing was written to the servos)", "")
        raise CalibrationError(f"{text}\nCalibration aborted: {note}.") from exc
    console.show(f"Calibration aborted: {note}.")


def describe_calibration(calibration: Mapping[str, MotorCalibration]) -> str:
    """A table of a calibration, with each range's span in degrees."""
    lines = [f"{'NAME':<15} | {'ID':>3} | {'DRIVE':>5} | {'HOMING':>6} | {'MIN':>5} | {'MAX':>5} | {'SPAN':>8}"]
    for name, c in calibration.items():
        span = (c.range_max - c.range_min) * 360 / MAX_RES
        lines.append(
            f"{name:<15} | {c.id:>3} | {c.drive_mode:>5} | {c.homing_offset:>6} | {c.range_min:>5} | "
            f"{c.range_max:>5} | {span:>7.1f}°"
        )
    return "\n".join(lines)


# -------------------------------------------------------------------------------------------------------------- CLI
_TYPES = "; ".join(
    f"{flag}: " + ", ".join(t for t, s in ARM_SPECS.items() if s.role == role)
    for flag, role in (("--robot.type", "follower"), ("--teleop.type", "leader"))
)


@dataclass(frozen=True, kw_only=True)
class ArmFile:
    """One arm as its calibration file knows it: --robot.* for a follower, --teleop.* for a leader."""

    type: str | None = field(default=None, metadata={"help": f"the arm's type ({_TYPES})", "metavar": "TYPE"})
    id: str | None = field(default=None, metadata={"help": "the arm's name (its file)", "metavar": "ID"})
    calibration_dir: str | None = field(
        default=None,
        metadata={
            "help": "where its calibration file lives (default: LeRobot's, "
            "~/.cache/huggingface/lerobot/calibration/robots|teleoperators/...)",
            "metavar": "DIR",
        },
    )


@dataclass(frozen=True, kw_only=True)
class ArmDevice(ArmFile):
    port: str | None = field(default=None, metadata={"help": PORT_HELP, "metavar": "PORT"})


@dataclass(frozen=True)
class CalibrateConfig:
    """`onboard calibrate` and `onboard calibration show`: one arm, a follower or a leader."""

    robot: ArmDevice = field(default_factory=ArmDevice)
    teleop: ArmDevice = field(default_factory=ArmDevice)


@dataclass(frozen=True)
class ImportConfig:
    path: Path = field(metadata={"help": "a LeRobot calibration JSON file", "positional": True})
    force: bool = field(default=False, metadata={"help": "replace an existing, different calibration file"})
    robot: ArmFile = field(default_factory=ArmFile)
    teleop: ArmFile = field(default_factory=ArmFile)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register `calibrate` and `calibration import|show`."""
    p = sub.add_parser(
        "calibrate",
        help="calibrate an arm (LeRobot's procedure and file format)",
        description=f"Calibrate one arm, as lerobot-calibrate does. Arm types: {', '.join(ARM_SPECS)}.",
    )
    add_options(p, CalibrateConfig)
    p.set_defaults(func=cmd_calibrate, console=None, sample_period_s=DEFAULT_SAMPLE_PERIOD_S)

    cal = sub.add_parser("calibration", help="calibration files: import a LeRobot file, show one")
    csub = cal.add_subparsers(dest="calibration_cmd", required=True)
    p = csub.add_parser("import", help="check a LeRobot calibration file and put it where this arm's file goes")
    add_options(p, ImportConfig)
    p.set_defaults(func=cmd_import)
    p = csub.add_parser("show", help="show an arm's calibration file (and, with a port, compare it with the servos)")
    add_options(p, CalibrateConfig)
    p.set_defaults(func=cmd_show)


def _device(cfg: CalibrateConfig | ImportConfig, *, need_port: bool) -> tuple[str, dict]:
    """(role prefix, fields) of the one arm named by --robot.* or --teleop.*."""
    chosen = [prefix for prefix in ("robot", "teleop") if getattr(cfg, prefix).type]
    if len(chosen) != 1:
        raise ArmConfigError(
            "name one arm: --robot.type=so101_follower (a follower) or --teleop.type=so101_leader (a leader), "
            "with its --*.port and --*.id" + (" (not both)" if chosen else "")
        )
    prefix = chosen[0]
    arm = getattr(cfg, prefix)
    spec = arm_spec(arm.type)
    if (spec.role == "follower") != (prefix == "robot"):
        right = "--robot.type" if spec.role == "follower" else "--teleop.type"
        raise ArmConfigError(f"{arm.type} is a {spec.role} arm: name it with {right}={arm.type}")
    fields = {"type": arm.type, "id": arm.id, "calibration_dir": arm.calibration_dir}
    port = getattr(arm, "port", None)
    if need_port and not port:
        raise ArmConfigError(f"{arm.type} needs --{prefix}.port (e.g. /dev/ttyACM0, or sim for the simulated arm)")
    if port:
        fields["port"] = resolve_port(port)
    if fields["id"] is None:
        raise ArmConfigError(f"name the arm with --{prefix}.id=... (its calibration file is <id>.json)")
    return prefix, fields


def _fail(exc: Exception) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return 2


def cmd_calibrate(args: argparse.Namespace) -> int:
    """``args.console`` (None: the terminal), ``args.sample_period_s`` and ``args.sleep`` may stand in for the
    person and the clock. ``--robot.port=sim`` (or ``--teleop.port=sim``): a fresh simulated arm and a scripted
    person who moves it."""
    cfg = config_from(args, CalibrateConfig)
    period = getattr(args, "sample_period_s", DEFAULT_SAMPLE_PERIOD_S)
    if "sim" in (cfg.robot.port, cfg.teleop.port):
        return _calibrate_simulated_arm(cfg, period)
    console = args.console if getattr(args, "console", None) is not None else TerminalConsole()
    return _calibrate(cfg, console, period, getattr(args, "sleep", None))


def _calibrate(cfg: CalibrateConfig, console: Console, period: float, sleep: Callable[[float], None] | None) -> int:
    try:
        _, fields = _device(cfg, need_port=True)
        run_calibration(ArmConfig(**fields), console, sample_period_s=period, sleep=sleep)
    except (RobotError, EOFError) as exc:
        return _fail(exc)
    return 0


def _calibrate_simulated_arm(cfg: CalibrateConfig, period: float) -> int:
    import dataclasses

    import numpy as np

    from sim.twin.person import SimulatedPerson
    from sim.twin.so101 import SimulatedSO101
    from sim.twin.world import qpos_to_lerobot

    prefix = "robot" if cfg.robot.port == "sim" else "teleop"
    with SimulatedSO101(seed=0) as sim_arm:
        arm_options = dataclasses.replace(getattr(cfg, prefix), port=sim_arm.url)
        cfg = dataclasses.replace(cfg, **{prefix: arm_options})
        person = SimulatedPerson(sim_arm, out=print)
        rc = _calibrate(cfg, person, period, person.sleep)
        if rc == 0 and prefix == "robot":
            r = cfg.robot
            config = ArmConfig(type=r.type, port=sim_arm.url, id=r.id, calibration_dir=r.calibration_dir)
            goal = np.array([20.0, -30.0, 40.0, -20.0, 45.0, 30.0], dtype=np.float32)
            with Arm(config) as arm:
                arm.send_action(goal)
                sim_arm.clock.sleep(1.5)
                read = arm.read_positions()
                true = qpos_to_lerobot(sim_arm.joint_angles())
            err = np.abs(read - true)
            print(
                "check: after a move the calibrated arm reads "
                + ", ".join(f"{n} {r:+.1f}" for n, r in zip(arm.spec.names, read))
                + f"; the simulated joints are within {err[:5].max():.2f}° of that (gripper {err[5]:.2f} of 100)"
            )
        return rc


def cmd_import(args: argparse.Namespace) -> int:
    cfg = config_from(args, ImportConfig)
    try:
        _, fields = _device(cfg, need_port=False)
        spec = arm_spec(fields["type"])
        dest = calibration_file(fields["type"], fields["id"], fields["calibration_dir"])
        if dest.exists() and not cfg.force and dest.resolve() != cfg.path.expanduser().resolve():
            try:
                same = calibration_to_json(load_calibration(dest)) == calibration_to_json(
                    load_calibration(cfg.path.expanduser())
                )
            except CalibrationFileError:
                same = False
            if not same:
                raise CalibrationFileError(
                    f"{dest} already exists with another calibration; add --force to replace it", dest
                )
        calibration = import_calibration(cfg.path.expanduser(), dest, spec.ids)
    except RobotError as exc:
        return _fail(exc)
    print(f"Imported {cfg.path} as the calibration of {fields['type']} {fields['id']!r}: {dest}")
    print(describe_calibration(calibration))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    try:
        _, fields = _device(config_from(args, CalibrateConfig), need_port=False)
        path = calibration_file(fields["type"], fields["id"], fields["calibration_dir"])
        if not path.is_file():
            p = "--robot" if arm_spec(fields["type"]).role == "follower" else "--teleop"
            raise CalibrationFileError(
                f"no calibration file at {path}: `onboard calibrate {p}.type={fields['type']} {p}.port=... "
                f"{p}.id={fields['id']}` makes one",
                path,
            )
        calibration = load_calibration(path)
        print(path)
        print(describe_calibration(calibration))
        if "port" in fields:
            with _opened(Arm(ArmConfig(**fields, disable_torque_on_disconnect=False))) as arm:
                differences = calibration_differences(calibration, arm.read_servo_calibration())
            if differences:
                print("The servos differ from the file:\n  - " + "\n  - ".join(differences))
                return 1
            print("The servos hold this calibration.")
    except RobotError as exc:
        return _fail(exc)
    return 0
