"""`onboard calibrate` / `onboard calibration import|show`, with a scripted person at the prompts."""

from __future__ import annotations

import io
import json
import os
import re

import pytest

import onboard.cli as cli
from onboard.cli.calibrate import TerminalConsole, range_table, run_calibration
from robot.arm_config import ArmConfig
from robot.calibration import RangeSample, load_calibration, read_servo_calibration
from tests.simarm import NAMES, ScriptedPerson


def parse(*argv: str):
    return cli.build_parser().parse_args(list(argv))


def calibrate_args(sim_arm, tmp_path, *extra: str, prefix: str = "robot", type_: str = "so101_follower"):
    args = parse(
        "calibrate",
        f"--{prefix}.type={type_}",
        f"--{prefix}.port={sim_arm.url}",
        f"--{prefix}.id=my_arm",
        f"--{prefix}.calibration_dir={tmp_path}",
        *extra,
    )
    args.sample_period_s = 0.0
    return args


def test_calibrate_flow_with_a_scripted_person(sim_arm, tmp_path):
    args = calibrate_args(sim_arm, tmp_path)
    person = ScriptedPerson(sim_arm)
    args.console = person
    assert args.func(args) == 0
    path = tmp_path / "my_arm.json"
    assert load_calibration(path) == sim_arm.expected_calibration()
    assert "middle of its range of motion and press ENTER" in person.prompts[0]
    assert any("Move all joints except 'wrist_roll'" in s for s in person.shown)
    assert any(s.startswith("---") and "elbow_flex" in s for s in person.shown)  # the live table
    assert person.shown[-1] == f"Calibration saved to {path}"
    assert all(sim_arm.reg(n, "Torque_Enable") == 0 for n in NAMES)

    # again, with the file there: ENTER writes the file to the servos (here: servos reset since)
    for n in NAMES:
        sim_arm.servo(n).write_register("Homing_Offset", 0, persist=True)
    person = ScriptedPerson(sim_arm, answers=[""])
    args.console = person
    assert args.func(args) == 0
    assert "Press ENTER to use provided calibration file associated with the id my_arm" in person.prompts[0]
    assert len(person.prompts) == 1
    sim_arm.bus.power_cycle()
    assert all(sim_arm.reg(n, "Homing_Offset") == c.homing_offset for n, c in load_calibration(path).items())

    # 'c' recalibrates (the horns were moved on the shafts: new middle pose)
    before = path.read_text()
    sim_arm.mids = {n: (m + 300) % 4095 for n, m in sim_arm.mids.items()}
    person = ScriptedPerson(sim_arm, answers=["c"])
    args.console = person
    assert args.func(args) == 0
    assert path.read_text() != before
    assert load_calibration(path) == sim_arm.expected_calibration()


def test_calibrate_a_leader(sim_arm, tmp_path):
    args = calibrate_args(sim_arm, tmp_path, prefix="teleop", type_="so101_leader")
    args.console = ScriptedPerson(sim_arm)
    assert args.func(args) == 0
    assert load_calibration(tmp_path / "my_arm.json") == sim_arm.expected_calibration()


def test_failed_sweep_reports_the_joint(sim_arm, tmp_path, capsys):
    args = calibrate_args(sim_arm, tmp_path)
    args.console = ScriptedPerson(sim_arm, sweep=("shoulder_pan",))
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: shoulder_lift, elbow_flex, wrist_flex, gripper did not move")
    assert not (tmp_path / "my_arm.json").exists()
    assert all(sim_arm.reg(n, "Torque_Enable") == 0 for n in NAMES)


def test_run_calibration_default_location(sim_arm, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_LEROBOT_CALIBRATION", str(tmp_path))
    cfg = ArmConfig("so100_follower", sim_arm.url, "arm1")
    cal = run_calibration(cfg, ScriptedPerson(sim_arm), sample_period_s=0)
    assert load_calibration(tmp_path / "robots/so_follower/arm1.json") == cal


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["calibrate", "--robot.port=x", "--robot.id=a"], "name one arm"),
        (
            ["calibrate", "--robot.type=so101_leader", "--robot.port=x", "--robot.id=a"],
            r"so101_leader is a leader arm: name it with --teleop\.type=so101_leader",
        ),
        (["calibrate", "--robot.type=so101_follower", "--robot.id=a"], "needs --robot.port"),
        (["calibrate", "--robot.type=so101_follower", "--robot.port=x"], "--robot.id"),
        (["calibrate", "--robot.type=koch_follower", "--robot.port=x", "--robot.id=a"], "known types"),
    ],
)
def test_flag_errors(argv, message, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and re.search(message, err), err


def test_import_and_show(sim_arm, tmp_path, capsys):
    src = tmp_path / "lerobot" / "my_arm.json"
    calibration = sim_arm.install_calibration(src)
    dest_dir = tmp_path / "cal"
    argv = ["calibration", "import", str(src), "--robot.type=so101_follower", "--robot.id=my_arm"]
    rc = cli.main([*argv, f"--robot.calibration_dir={dest_dir}"])
    assert rc == 0
    assert (dest_dir / "my_arm.json").read_bytes() == src.read_bytes()
    assert "Imported" in capsys.readouterr().out

    # a different file over it needs --force
    other = json.loads(src.read_text())
    other["gripper"]["range_max"] -= 10
    src2 = tmp_path / "other.json"
    src2.write_text(json.dumps(other))
    base = ["calibration", "import", str(src2), "--robot.type=so101_follower", "--robot.id=my_arm"]
    base.append(f"--robot.calibration_dir={dest_dir}")
    assert cli.main(base) == 2
    assert "--force" in capsys.readouterr().err
    assert cli.main([*base, "--force"]) == 0
    assert load_calibration(dest_dir / "my_arm.json")["gripper"].range_max == calibration["gripper"].range_max - 10

    # an invalid file is refused with the reason
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({k: v for k, v in other.items() if k != "wrist_roll"}))
    assert cli.main(["calibration", "import", str(bad), "--robot.type=so101_follower", "--robot.id=x"]) == 2
    assert "no entry for wrist_roll" in capsys.readouterr().err

    # show: the file, and against the servos
    show = [
        "calibration",
        "show",
        "--robot.type=so101_follower",
        "--robot.id=my_arm",
        f"--robot.calibration_dir={dest_dir}",
    ]
    assert cli.main(show) == 0
    out = capsys.readouterr().out
    assert "shoulder_pan" in out and "SPAN" in out
    assert cli.main([*show, f"--robot.port={sim_arm.url}"]) == 1  # servos hold the original gripper range
    assert "gripper (id 6): Max_Position_Limit" in capsys.readouterr().out
    with_file = ["calibration", "show", "--robot.type=so101_follower", "--robot.id=my_arm"]
    with_file += [f"--robot.calibration_dir={src.parent}", f"--robot.port={sim_arm.url}"]
    assert cli.main(with_file) == 0
    assert "The servos hold this calibration." in capsys.readouterr().out
    assert read_servo_calibration  # (show never writes)


def test_terminal_console(tmp_path):
    out = io.StringIO()
    console = TerminalConsole(stdin=io.StringIO("c\n"), stdout=out)
    assert console.ask("use it? ") == "c"
    console.show(range_table({"elbow_flex": RangeSample(1000, 2040, 3000)}), live=True)  # not a tty: held back
    console.show(range_table({"elbow_flex": RangeSample(1000, 2047, 3000)}), live=True)
    console.show("done")
    table = range_table({"elbow_flex": RangeSample(1000, 2047, 3000)})
    assert out.getvalue() == f"use it? {table}\ndone\n"
    with pytest.raises(EOFError):
        console.ask("again? ")
    r, w = os.pipe()
    with os.fdopen(r) as rf, os.fdopen(w, "w") as wf:
        console = TerminalConsole(stdin=rf, stdout=io.StringIO())
        assert not console.enter_pressed()
        wf.write("\n")
        wf.flush()
        assert console.enter_pressed()
        assert not console.enter_pressed()
