"""robot.calibration: LeRobot's file format and locations, validation and import, and the calibration procedure run
end to end on an uncalibrated emulated arm by a scripted person."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import serial

from hardware.feetech.bus import FeetechBus
from robot.calibration import (
    Calibrator,
    MotorCalibration,
    RangeSample,
    calibration_differences,
    calibration_root,
    calibration_to_json,
    default_calibration_dir,
    import_calibration,
    load_calibration,
    read_servo_calibration,
    save_calibration,
    validate_calibration,
)
from robot.errors import CalibrationError, CalibrationFileError
from tests.conftest import require
from tests.simarm import IDS, NAMES, ScriptedPerson

LEROBOT_FILE = {
    "shoulder_pan": {"id": 1, "drive_mode": 0, "homing_offset": -1016, "range_min": 758, "range_max": 3292},
    "shoulder_lift": {"id": 2, "drive_mode": 0, "homing_offset": 590, "range_min": 812, "range_max": 3227},
    "elbow_flex": {"id": 3, "drive_mode": 0, "homing_offset": -1473, "range_min": 869, "range_max": 3094},
    "wrist_flex": {"id": 4, "drive_mode": 0, "homing_offset": 1131, "range_min": 902, "range_max": 3222},
    "wrist_roll": {"id": 5, "drive_mode": 0, "homing_offset": -1750, "range_min": 0, "range_max": 4095},
    "gripper": {"id": 6, "drive_mode": 0, "homing_offset": 1337, "range_min": 2030, "range_max": 3495},
}


def sample_calibration() -> dict[str, MotorCalibration]:
    return {n: MotorCalibration(**v) for n, v in LEROBOT_FILE.items()}


# ----------------------------------------------------------------------------------------------------------- files
def test_file_text_is_what_lerobot_writes(tmp_path):
    text = calibration_to_json(sample_calibration())
    assert text.startswith('{\n    "shoulder_pan": {\n        "id": 1,\n        "drive_mode": 0,\n')
    assert not text.endswith("\n")
    path = save_calibration(tmp_path / "deep" / "dir" / "a.json", sample_calibration())
    assert path.read_text() == text
    assert load_calibration(path) == sample_calibration()
    assert list(load_calibration(path)) == list(NAMES)
    assert [p.name for p in path.parent.iterdir()] == ["a.json"]  # no temp file left behind


def test_file_is_byte_identical_to_draccus_and_loads_in_lerobot(tmp_path):
    draccus = require("draccus", "interop")
    from lerobot.motors import MotorCalibration as LeRobotMotorCalibration

    theirs = {n: LeRobotMotorCalibration(**v) for n, v in LEROBOT_FILE.items()}
    lerobot_path = tmp_path / "lerobot.json"
    with open(lerobot_path, "w") as f, draccus.config_type("json"):
        draccus.dump(theirs, f, indent=4)
    ours = save_calibration(tmp_path / "ours.json", sample_calibration())
    assert ours.read_bytes() == lerobot_path.read_bytes()
    with open(ours) as f, draccus.config_type("json"):
        loaded = draccus.load(dict[str, LeRobotMotorCalibration], f)
    assert loaded == theirs


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = save_calibration(tmp_path / "a.json", sample_calibration())
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    changed = {**sample_calibration(), "gripper": MotorCalibration(6, 0, 0, 1, 2)}
    with pytest.raises(OSError, match=r"disk full"):
        save_calibration(path, changed)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_default_location_follows_lerobot(monkeypatch, tmp_path):
    for var in ("HF_LEROBOT_CALIBRATION", "HF_LEROBOT_HOME", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    home = Path(os.path.expanduser("~"))
    assert calibration_root() == home / ".cache/huggingface/lerobot/calibration"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert calibration_root() == tmp_path / "xdg/huggingface/lerobot/calibration"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert calibration_root() == tmp_path / "hf/lerobot/calibration"
    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "lr"))
    assert calibration_root() == tmp_path / "lr/calibration"
    monkeypatch.setenv("HF_LEROBOT_CALIBRATION", str(tmp_path / "cal"))
    assert default_calibration_dir("robots", "so_follower") == tmp_path / "cal/robots/so_follower"


@pytest.mark.parametrize(
    "env",
    [{}, {"HF_HOME": "/tmp/x-hf"}, {"HF_LEROBOT_HOME": "/tmp/x-lr"}, {"HF_LEROBOT_CALIBRATION": "/tmp/x-cal"}],
)
def test_default_location_is_lerobots_own(env):
    require("lerobot", "interop")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "XDG_CACHE"))}
    code = "from lerobot.utils.constants import HF_LEROBOT_CALIBRATION as c; print(c)"
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    code = "from robot.calibration import calibration_root; print(calibration_root())"
    ours = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True)
    assert ours.stdout == out.stdout


# ------------------------------------------------------------------------------------------------------ validation
def write(tmp_path, data, name="in.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return p


def test_import_copies_a_valid_lerobot_file(tmp_path):
    src = save_calibration(tmp_path / "src" / "my_arm.json", sample_calibration())
    dest = tmp_path / "cal" / "robots" / "so_follower" / "my_arm.json"
    assert import_calibration(src, dest, IDS) == sample_calibration()
    assert dest.read_bytes() == src.read_bytes()


def test_import_reorders_compact_json(tmp_path):
    shuffled = dict(reversed(list(LEROBOT_FILE.items())))
    src = write(tmp_path, shuffled)
    dest = tmp_path / "out.json"
    import_calibration(src, dest, IDS)
    assert dest.read_text() == calibration_to_json(sample_calibration())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("gripper"), "no entry for gripper"),
        (lambda d: d.update(griper=d.pop("gripper")), "unknown motor name.*griper"),
        (lambda d: d["elbow_flex"].update(range_min=3200), "elbow_flex: range_min 3200 must be below range_max 3094"),
        (lambda d: d["elbow_flex"].update(range_min=3094), "did not move"),
        (lambda d: d["wrist_flex"].update(range_max=4096), "outside the servo's 0..4095"),
        (lambda d: d["shoulder_pan"].update(homing_offset=-2500), r"homing_offset -2500 is outside \+-2047"),
        (lambda d: d["shoulder_lift"].update(id=7), "shoulder_lift: id 7, but shoulder_lift is servo id 2"),
        (lambda d: d["gripper"].update(drive_mode=2), "drive_mode must be 0 or 1"),
        (lambda d: d["gripper"].pop("range_max"), "gripper: missing range_max"),
        (lambda d: d["gripper"].update(range_max=3495.5), "range_max must be an integer"),
        (lambda d: d["gripper"].update(calib_mode="x"), "unknown field"),
    ],
)
def test_import_refuses_what_does_not_fit_and_says_why(tmp_path, change, message):
    data = json.loads(json.dumps(LEROBOT_FILE))
    change(data)
    dest = tmp_path / "out.json"
    with pytest.raises(CalibrationFileError, match=message) as info:
        import_calibration(write(tmp_path, data), dest, IDS)
    assert info.value.path == tmp_path / "in.json"
    assert not dest.exists()


def test_unreadable_files_are_explained(tmp_path):
    with pytest.raises(CalibrationFileError, match=r"no calibration file"):
        load_calibration(tmp_path / "nope.json")
    with pytest.raises(CalibrationFileError, match=r"not valid JSON.*looks like"):
        load_calibration(write(tmp_path, "{oops"))
    old = {"homing_offset": [0] * 6, "drive_mode": [0] * 6, "motor_names": list(NAMES), "calib_mode": ["DEGREE"] * 6}
    with pytest.raises(CalibrationFileError, match=r"before 0.3.*recalibrate"):
        load_calibration(write(tmp_path, old))
    with pytest.raises(CalibrationFileError, match=r"JSON object"):
        load_calibration(write(tmp_path, [1, 2]))


def test_validate_collects_every_problem():
    cal = sample_calibration()
    cal["elbow_flex"] = MotorCalibration(3, 0, 3000, 10, 5)
    with pytest.raises(CalibrationFileError) as info:
        validate_calibration(cal, IDS)
    assert len(info.value.problems) == 2


def test_differences_name_the_register():
    file = sample_calibration()
    servos = {**file, "wrist_flex": MotorCalibration(4, 0, 1131, 900, 3222)}
    assert calibration_differences(file, servos) == [
        "wrist_flex (id 4): Min_Position_Limit is 900 in the servo, 902 in the file"
    ]
    assert calibration_differences(file, file) == []


# ------------------------------------------------------------------------------------------------------- procedure
@pytest.fixture
def bus(sim_arm):
    port = serial.serial_for_url(sim_arm.url, baudrate=1_000_000)
    with FeetechBus(port, latency_s=0.005) as b:
        yield b


def run_procedure(sim_arm, bus, sweep=None) -> dict[str, MotorCalibration]:
    person = ScriptedPerson(sim_arm, **({"sweep": sweep} if sweep is not None else {}))
    cal = Calibrator(bus, IDS)
    cal.start()
    person.ask("Move the arm to the middle of its range of motion and press ENTER")
    cal.set_homing()
    while True:
        table = cal.sample_range()
        if person.enter_pressed():
            break
    assert set(table) == set(NAMES) - {"wrist_roll"} and all(isinstance(s, RangeSample) for s in table.values())
    return cal.finish()


def test_procedure_end_to_end_on_an_uncalibrated_arm(sim_arm, bus, tmp_path):
    # a freshly assembled arm: factory calibration registers, horns anywhere
    assert all(sim_arm.reg(n, "Homing_Offset") == 0 for n in NAMES)
    sim_arm.servo("elbow_flex").write_register("Torque_Enable", 1)
    sim_arm.servo("shoulder_pan").write_register("Homing_Offset", 321, persist=True)  # a stale calibration

    calibration = run_procedure(sim_arm, bus)

    assert calibration == sim_arm.expected_calibration()
    assert calibration["wrist_roll"].range_min == 0 and calibration["wrist_roll"].range_max == 4095
    for n in NAMES:  # the middle pose reads 2047 now
        sim_arm.move(n, sim_arm.mids[n])
        assert sim_arm.reg(n, "Present_Position") == 2047 + (sim_arm.mids[n] == 4095)
        assert sim_arm.reg(n, "Torque_Enable") == 0
        assert sim_arm.reg(n, "Operating_Mode") == 0
    path = save_calibration(tmp_path / "my_arm.json", calibration)
    assert json.loads(path.read_text())["shoulder_pan"] == {
        "id": 1,
        "drive_mode": 0,
        "homing_offset": calibration["shoulder_pan"].homing_offset,
        "range_min": calibration["shoulder_pan"].range_min,
        "range_max": calibration["shoulder_pan"].range_max,
    }
    # the EEPROM values survive switching the arm off and on
    sim_arm.bus.power_cycle()
    assert read_servo_calibration(bus, IDS) == calibration
    for n, c in calibration.items():
        assert sim_arm.reg(n, "Homing_Offset") == c.homing_offset
        assert (sim_arm.reg(n, "Min_Position_Limit"), sim_arm.reg(n, "Max_Position_Limit")) == (
            c.range_min,
            c.range_max,
        )


def test_a_joint_that_never_moved_is_named_and_nothing_is_written(sim_arm, bus):
    sweep = tuple(n for n in NAMES if n not in ("wrist_roll", "elbow_flex"))
    with pytest.raises(CalibrationError, match=r"^elbow_flex did not move") as info:
        run_procedure(sim_arm, bus, sweep=sweep)
    assert "nothing was written" in str(info.value)
    assert sim_arm.reg("elbow_flex", "Max_Position_Limit") == 4095  # still reset, not the partial result


def test_homing_at_the_wrap_point_fits_the_register(make_arm):
    arm = make_arm(seed=5, mids={n: 4095 for n in NAMES})
    port = serial.serial_for_url(arm.url, baudrate=1_000_000)
    with FeetechBus(port, latency_s=0.005) as b:
        cal = Calibrator(b, IDS)
        cal.start()
        arm.to_middle()
        offsets = cal.set_homing()
    assert set(offsets.values()) == {2047}  # 4095 - 2047 = 2048 does not fit sign-magnitude bit 11
    assert arm.reg("gripper", "Present_Position") == 2048


def test_the_steps_must_come_in_order(sim_arm, bus):
    cal = Calibrator(bus, IDS)
    with pytest.raises(CalibrationError, match=r"start\(\) -> set_homing\(\)"):
        cal.set_homing()
    cal.start()
    with pytest.raises(CalibrationError):
        cal.sample_range()
    with pytest.raises(CalibrationError):
        cal.finish()
    sim_arm.to_middle()
    first = cal.set_homing()
    assert cal.set_homing() == first  # repeating the middle pose gives the same homing
