"""How a command ends: every exception is one line and an exit code (2: cannot run as asked; 1: a safety stop or an
internal error; 128 + N: a signal), a traceback only with --debug; run's instruction checks; an aborted calibration
puts the servos' calibration back and says so."""

from __future__ import annotations

import signal

import pytest
import serial

import onboard.cli as cli
import onboard.cli.bus
from hardware.camera import CameraError
from hardware.discovery import PortError
from hardware.feetech.bus import FeetechBus
from hardware.feetech.errors import BusDisconnectedError, BusTimeoutError
from onboard.cli.errors import classify
from onboard.cli.options import OptionError
from onboard.cli.run import echo
from policies.dataset.reader import DatasetReadError
from policies.errors import PolicyFileMissingError, PolicyLoadError
from robot.calibration import load_calibration, read_servo_calibration
from robot.errors import BusFailureError, CalibrationMismatchError, StallError
from robot.shutdown import Terminated
from tests.simarm import IDS, NAMES, ScriptedPerson


@pytest.mark.parametrize(
    "exc",
    [
        BusTimeoutError(3, "READ 2 byte(s) at 56", 0.02),
        BusDisconnectedError("/dev/ttyACM0", OSError(5, "Input/output error"), 1, "SYNC_READ"),
        CalibrationMismatchError("the servos differ", "/tmp/a.json", []),
        CameraError("camera 'front': cannot open 0"),
        PortError("no port appeared"),
        PolicyLoadError("vla.onnx is truncated"),
        PolicyFileMissingError("bundle.json is missing"),
        DatasetReadError("meta/info.json is missing"),
        OptionError("--fps: not a number"),
        FileNotFoundError(2, "No such file or directory", "data/missing.json"),
        PermissionError(13, "Permission denied", "/dev/ttyACM0"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_setup_errors_are_exit_code_2_and_one_line(exc):
    code, line = classify(exc)
    assert code == 2 and line.startswith("error: ") and "internal error" not in line
    assert line.count("\n") == str(exc).count("\n")  # the message as written, nothing added
    if isinstance(exc, OSError) and not isinstance(exc, PolicyLoadError):
        assert line == f"error: {exc.strerror}: {exc.filename}"


def test_demo_error_is_a_setup_error():
    from onboard.demo.policy import DemoError

    assert classify(DemoError("no bundle: run scripts/make_model.sh")) == (
        2,
        "error: no bundle: run scripts/make_model.sh",
    )


def test_safety_stops_signals_and_bugs():
    assert classify(StallError("elbow_flex stalled", "elbow_flex", 0.9, 10.0, 0.5))[0] == 1
    assert classify(BusFailureError("the run stopped: lost the servo bus"))[0] == 1
    assert classify(Terminated(signal.SIGTERM)) == (143, "stopped by SIGTERM")
    assert classify(Terminated(signal.SIGHUP)) == (129, "stopped by SIGHUP")
    assert classify(KeyboardInterrupt()) == (130, "interrupted")
    assert classify(ZeroDivisionError("division by zero")) == (
        1,
        "error: internal error: ZeroDivisionError: division by zero (run with --debug for the traceback)",
    )
    assert classify(FileNotFoundError("no filename"))[0] == 1  # not about a path the user gave: a bug


def test_an_internal_error_is_one_line_unless_debug(monkeypatch, capsys):
    def broken(args, out=print):
        raise KeyError("gripper")

    monkeypatch.setattr(onboard.cli.bus, "cmd_registers", broken)
    assert cli.main(["bus", "registers"]) == 1
    err = capsys.readouterr().err
    assert err == "error: internal error: KeyError: 'gripper' (run with --debug for the traceback)\n"
    assert cli.main(["--debug", "bus", "registers"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and "in broken" in err
    assert err.endswith("error: internal error: KeyError: 'gripper' (run with --debug for the traceback)\n")


def test_run_refuses_an_empty_instruction(capsys):
    argv = ["run", "--robot.port=sim", "--robot.id=a", "--policy.path=policies/bundled/so101_vla", "--task", "  "]
    assert cli.main(argv) == 2
    assert capsys.readouterr().err == (
        'error: --task is empty: give the instruction, e.g. --task "pick up the red cube"\n'
    )


def test_a_long_instruction_is_echoed_cut():
    assert echo("pick up the red cube") == "'pick up the red cube'"
    long = echo("pick " * 2000)
    assert len(long) == 122 and long.endswith("…'")


def _recalibrate(sim_arm, tmp_path, person):
    args = cli.build_parser().parse_args(
        [
            "calibrate",
            "--robot.type=so101_follower",
            f"--robot.port={sim_arm.url}",
            "--robot.id=my_arm",
            f"--robot.calibration_dir={tmp_path}",
        ]
    )
    args.sample_period_s = 0.0
    args.console = person
    return args.func(args)


def test_an_aborted_calibration_puts_the_servos_back_and_says_so(sim_arm, tmp_path, capsys):
    """A recalibration ('c') whose sweep missed joints: the servos hold the calibration they had (and the file)
    again, and the message no longer claims nothing was written."""
    path = tmp_path / "my_arm.json"
    calibration = sim_arm.install_calibration(path)
    before = path.read_bytes()
    sim_arm.mids = {n: (m + 300) % 4095 for n, m in sim_arm.mids.items()}  # the person would home elsewhere
    assert _recalibrate(sim_arm, tmp_path, ScriptedPerson(sim_arm, answers=["c"], sweep=("shoulder_pan",))) == 2
    err = capsys.readouterr().err
    assert "did not move" in err and "nothing was written" not in err
    assert f"the servos' previous calibration was written back; {path} is unchanged" in err
    assert path.read_bytes() == before
    bus_values = {n: sim_arm.reg(n, "Homing_Offset") for n in NAMES}
    assert bus_values == {n: calibration[n].homing_offset for n in NAMES}
    sim_arm.bus.power_cycle()  # in EEPROM, not only in RAM
    assert {n: sim_arm.reg(n, "Max_Position_Limit") for n in NAMES} == {n: calibration[n].range_max for n in NAMES}


def test_a_calibration_interrupted_by_ctrl_c_puts_the_servos_back(sim_arm, tmp_path):
    path = tmp_path / "my_arm.json"
    calibration = sim_arm.install_calibration(path)

    class Interrupting(ScriptedPerson):
        def enter_pressed(self) -> bool:
            super().enter_pressed()
            raise KeyboardInterrupt  # Ctrl-C during the sweep

    person = Interrupting(sim_arm, answers=["c"])
    with pytest.raises(KeyboardInterrupt):
        _recalibrate(sim_arm, tmp_path, person)
    assert person.shown[-1].startswith("Calibration aborted: the servos' previous calibration was written back")
    with FeetechBus(serial.serial_for_url(sim_arm.url, baudrate=1_000_000)) as bus:
        assert read_servo_calibration(bus, IDS) == calibration
    assert load_calibration(path) == calibration
