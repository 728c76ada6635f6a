"""The `onboard` bus commands as a person runs them, on simulated ports."""

import subprocess
import sys
import time

import pytest
import serial

import sim  # noqa: F401
from hardware.feetech.bus import FeetechBus
from onboard.cli import main
from sim.feetech import SimBus
from sim.feetech.bus import register_bus, unregister_bus
from sim.feetech.servo import EmulatedServo


@pytest.fixture
def named_bus():
    bus = SimBus([EmulatedServo(i) for i in range(1, 7)])
    register_bus("cli-test", bus)
    yield "simbus://cli-test", bus
    unregister_bus("cli-test")


def test_scan_lists_servos(capsys):
    assert main(["bus", "scan", "--port", "sim", "--ids", "0-10", "--latency-ms", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("sts3215") == 6 and "1000000" in out


def test_scan_all_bauds_finds_a_servo_at_another_rate(capsys):
    register_bus("cli-baud", SimBus([EmulatedServo(4, baudrate_code=6)]))
    try:
        assert (
            main(["bus", "scan", "--port", "simbus://cli-baud", "--all-bauds", "--ids", "0-8", "--latency-ms", "2"])
            == 0
        )
    finally:
        unregister_bus("cli-baud")
    assert "57600    4  sts3215" in capsys.readouterr().out


def test_scan_reports_nothing_found(capsys):
    assert (
        main(["bus", "scan", "--port", "simbus://?ids=1", "--baud", "115200", "--ids", "0-3", "--latency-ms", "2"]) == 1
    )
    assert "no servos found" in capsys.readouterr().out


def test_read_write_by_name(named_bus, capsys):
    url, bus = named_bus
    assert main(["bus", "write", "--port", url, "--id", "2", "P_Coefficient", "16"]) == 0
    assert "note: P_Coefficient is in EEPROM" in capsys.readouterr().out
    assert main(["bus", "read", "--port", url, "--id", "2", "P_Coefficient", "Model_Number"]) == 0
    out = capsys.readouterr().out
    assert "P_Coefficient" in out and " 16" in out and "777" in out
    assert main(["bus", "write", "--port", url, "--id", "2", "Max_Torque_Limit", "500", "--persist"]) == 0
    bus.power_cycle()
    assert bus.servo(2).read_register("Max_Torque_Limit") == 500
    assert bus.servo(2).read_register("P_Coefficient") == 32  # not persisted (Lock was 1)


def test_read_all_registers(named_bus, capsys):
    url, _ = named_bus
    assert main(["bus", "read", "--port", url, "--id", "1"]) == 0
    out = capsys.readouterr().out
    assert "Homing_Offset" in out and "Present_Temperature" in out and "Maximum_Acceleration" in out


def test_set_id_and_baud(named_bus, capsys):
    url, bus = named_bus
    bus.unplug(6)
    assert main(["bus", "set-id", "--port", url, "--id", "1", "--new-id", "6"]) == 0
    assert main(["bus", "set-baud", "--port", url, "--id", "6", "--new-baud", "500000"]) == 0
    bus.power_cycle()
    assert bus.servo(6).baudrate == 500_000 and bus.servo(6).read_register("ID") == 6


def test_setup_motor_finds_the_single_servo_anywhere(capsys):
    register_bus("cli-setup", SimBus([EmulatedServo(1, baudrate_code=4)]))  # factory id 1, at 115200
    try:
        assert main(["bus", "setup-motor", "--port", "simbus://cli-setup", "--new-id", "5", "--latency-ms", "2"]) == 0
    finally:
        unregister_bus("cli-setup")
    assert "id 1, 115200 baud -> id 5, 1000000 baud" in capsys.readouterr().out


def test_setup_motor_refuses_two_servos(capsys):
    assert main(["bus", "setup-motor", "--port", "simbus://?ids=1-2", "--new-id", "5", "--latency-ms", "2"]) == 2
    assert "exactly one servo" in capsys.readouterr().err


def test_errors_are_one_line_not_a_traceback(capsys):
    assert main(["bus", "read", "--port", "simbus://?ids=1", "--id", "3", "Present_Position", "--latency-ms", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: servo 3 did not answer") and "Traceback" not in err


def test_registers_lists_the_map(capsys):
    assert main(["bus", "registers"]) == 0
    assert "Homing_Offset (sign bit 11)" in capsys.readouterr().out


def test_serve_bus_prints_a_pty_any_client_can_open():
    proc = subprocess.Popen(
        [sys.executable, "-m", "onboard.cli", "sim", "serve-bus", "--ids", "1-3", "--duration", "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        path = proc.stdout.readline().strip()
        assert path.startswith("/dev/pts/")
        with FeetechBus(serial.Serial(path, 1_000_000, timeout=0.1)) as bus:
            assert bus.sync_read("Model_Number", [1, 2, 3]) == {1: 777, 2: 777, 3: 777}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_demo_runs(capsys):
    from onboard.demo.bus import run_demo

    t = time.monotonic()
    assert run_demo(seconds=0.5) == 0
    out = capsys.readouterr().out
    assert "scan: 6 servos" in out and "300/300 sync reads succeeded" in out and "torque off" in out
    assert time.monotonic() - t < 60


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_broadcast_write_is_refused_without_the_flag(named_bus, capsys):
    """--id 254 reaches every servo: refused (rc 2, one line) and nothing is written, unless --broadcast."""
    url, bus = named_bus
    before = [bus.servo(i).read_register("Goal_Position") for i in range(1, 7)]
    assert main(["bus", "write", "--port", url, "--id", "254", "Goal_Position", "1000"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "broadcast id" in line and "--broadcast" in line
    assert [bus.servo(i).read_register("Goal_Position") for i in range(1, 7)] == before != [1000] * 6


def test_broadcast_write_with_the_flag_reaches_every_servo_and_reports_success(named_bus, capsys):
    url, bus = named_bus
    assert main(["bus", "write", "--port", url, "--id", "254", "--broadcast", "Goal_Position", "1000"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "broadcast: Goal_Position = 1000 sent to every servo" in captured.out
    assert [bus.servo(i).read_register("Goal_Position") for i in range(1, 7)] == [1000] * 6
    argv = ["bus", "write", "--port", url, "--id", "254", "--broadcast", "Max_Torque_Limit", "600", "--persist"]
    assert main(argv) == 0
    bus.power_cycle()  # --persist with --broadcast: unlocked, written, locked on every servo
    assert [bus.servo(i).read_register("Max_Torque_Limit") for i in range(1, 7)] == [600] * 6


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["read", "--id", "254", "Present_Position"], "254 is the broadcast id"),
        (["read", "--id", "-1"], "--id -1 is out of range: servo ids are 0-253"),
        (["read", "--id", "999", "Present_Position"], "--id 999 is out of range: servo ids are 0-253"),
        (["write", "--id", "999", "Goal_Position", "1"], "--id 999 is out of range"),
        (["write", "--id", "3", "--broadcast", "Goal_Position", "1"], "give --id 254 with it"),
        (["write", "--id", "254", "--broadcast", "ID", "7"], "same id"),
        (["set-id", "--id", "1", "--new-id", "300"], "--new-id 300 is out of range"),
        (["scan", "--ids", "1-x"], "write servo ids like 1-6"),
        (["scan", "--ids", "250-260"], "servo ids are 0-253"),
        (["read", "--id", "1", "No_Such_Register"], "No_Such_Register"),
    ],
)
def test_bad_ids_and_names_are_one_line(named_bus, capsys, argv, expected):
    url, bus = named_bus
    assert main(["bus", *argv, "--port", url, "--latency-ms", "2"]) == 2
    assert expected in _one_error_line(capsys.readouterr().err)
    assert bus.servo(1).read_register("ID") == 1


def test_a_bad_baud_names_the_supported_rates_not_the_cable(capsys):
    assert main(["bus", "scan", "--port", "sim", "--baud", "12345"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "--baud 12345 is not a baud rate the STS3215 supports" in line
    assert "1000000, 500000, 250000, 128000, 115200, 76800, 57600, 38400" in line and "cabl" not in line


def test_scan_on_a_noisy_bus_finds_or_reports_every_servo(capsys):
    """30 % of replies damaged, 10 % dropped: the scan pings again instead of taking damage for silence (the old scan,
    two pings per id, missed 61 of 300 live servos over seeds 0-49; this one misses 1 and reports 7)."""
    url = "simbus://?ids=1-6&faults=corrupt:0.3;drop:0.1&seed=3"
    assert main(["bus", "scan", "--port", url, "--ids", "0-9", "--latency-ms", "2"]) == 0
    assert capsys.readouterr().out.count("sts3215") == 6


def test_scan_reports_ids_that_answer_only_damaged(capsys):
    url = "simbus://?ids=2+5&faults=corrupt:1.0"
    assert main(["bus", "scan", "--port", url, "--ids", "0-7", "--latency-ms", "2"]) == 1
    captured = capsys.readouterr()
    line = _one_error_line(captured.err.replace("  scanning 1000000 baud ...\n", ""))
    assert "id 2 at 1000000 baud, id 5 at 1000000 baud answered only with damaged replies" in line
    assert "no servos found" not in captured.out
