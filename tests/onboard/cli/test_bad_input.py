"""Bad input to every command group: missing, empty, truncated and wrong-type files (a calibration that is a list, a
dataset folder that is a file), out-of-range numbers, unknown names. Each case asserts the exit code (2: cannot run
as asked), one ``error:`` line and no traceback (tests/onboard/cli/badinput.py). Policies and bundles:
test_bad_input_policy.py; the bus tools' ids and baud rates: test_cli_bus.py; signals: test_signals.py."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.conftest import require
from tests.onboard.cli.badinput import bad_input, run_onboard

GOOD = {"id": 1, "drive_mode": 0, "homing_offset": 0, "range_min": 1000, "range_max": 3000}


@pytest.fixture(scope="module")
def calibration(tmp_path_factory):
    """A folder with f.json (the simulated follower's calibration, as `onboard run --robot.port=sim` saves it) and
    l.json (the same for the simulated leader, whose horns sit where the follower's do)."""
    require("mujoco", "sim")
    from sim.rigs.follower import build_sim_follower_rig

    folder = tmp_path_factory.mktemp("calibration")
    build_sim_follower_rig(robot_calibration=folder / "f.json").close()
    shutil.copyfile(folder / "f.json", folder / "l.json")
    return folder


def _teleop_args(cal, *, robot_id: str = "f") -> list:
    return [
        *("--robot.port", "sim", "--robot.id", robot_id, "--robot.calibration_dir", cal),
        *("--teleop.port", "sim", "--teleop.id", "l", "--teleop.calibration_dir", cal),
    ]


# ---------------------------------------------------------------------------------------------------- calibration
CALIBRATION_FILES = {
    "a list": ("[1, 2]", "got list"),
    "empty": ("", "is not valid JSON"),
    "truncated": ('{"shoulder_pan": {"id": 1, "drive_mo', "is not valid JSON"),
    "without gripper": (None, "no entry for gripper"),
    "a string for an integer": (None, "range_min must be an integer"),
}


def _calibration_text(kind: str, good: dict) -> str:
    text, _ = CALIBRATION_FILES[kind]
    if text is not None:
        return text
    data = json.loads(json.dumps(good))
    if kind == "without gripper":
        del data["gripper"]
    else:
        data["elbow_flex"]["range_min"] = "1000"
    return json.dumps(data)


@pytest.mark.parametrize("kind", list(CALIBRATION_FILES))
def test_calibration_import_of_a_bad_file(capsys, tmp_path, calibration, kind):
    good = json.loads((calibration / "f.json").read_text())
    src = tmp_path / "in.json"
    src.write_text(_calibration_text(kind, good))
    argv = ["calibration", "import", src, "--robot.type", "so101_follower", "--robot.id", "a"]
    bad_input(capsys, [*argv, "--robot.calibration_dir", tmp_path / "cal"], 2, str(src), CALIBRATION_FILES[kind][1])
    assert not (tmp_path / "cal" / "a.json").exists()


def test_calibration_import_of_a_missing_file(capsys, tmp_path):
    argv = ["calibration", "import", tmp_path / "nowhere.json", "--robot.type", "so101_follower", "--robot.id", "a"]
    bad_input(capsys, [*argv, "--robot.calibration_dir", tmp_path], 2, "nowhere.json")


@pytest.mark.parametrize("kind", ["a list", "without gripper", "a string for an integer"])
def test_the_simulated_arm_checks_its_calibration_file_as_a_real_port_does(capsys, tmp_path, calibration, kind):
    """`--robot.port=sim` used to install any file it could parse: a file without gripper was KeyError: 'gripper'."""
    good = json.loads((calibration / "f.json").read_text())
    (tmp_path / "f.json").write_text(_calibration_text(kind, good))
    shutil.copyfile(calibration / "l.json", tmp_path / "l.json")
    needle = CALIBRATION_FILES[kind][1]
    run = ["run", "--robot.port", "sim", "--robot.id", "f", "--robot.calibration_dir", tmp_path]
    bad_input(capsys, [*run, "--policy.path", _bundle(), "--duration_s", "0.1"], 2, needle)
    record = ["record", *_teleop_args(tmp_path), "--dataset.root", tmp_path / "ds", "--dataset.num_episodes", "1"]
    bad_input(capsys, record, 2, needle)
    assert not (tmp_path / "ds").exists()


def _bundle():
    from policies.bundle import BUNDLED

    return BUNDLED


# ---------------------------------------------------------------------------------------- record, teleop, replay
@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--dataset.fps", "0"], "--dataset.fps must be a positive integer, got 0"),
        (["--dataset.num_episodes", "-1"], "--dataset.num_episodes must be >= 0, got -1"),
        (["--dataset.num_episodes", "two"], "invalid int value: 'two'"),
        (["--sim.task", "nonsense"], "nonsense"),
    ],
)
def test_record_bad_numbers_and_names(capsys, tmp_path, calibration, extra, needle):
    argv = ["record", *_teleop_args(calibration), "--dataset.root", tmp_path / "ds", *extra]
    bad_input(capsys, argv, 2, needle)
    assert not (tmp_path / "ds").exists()


def test_record_into_a_file_or_a_foreign_folder(capsys, tmp_path, calibration):
    for root in (tmp_path / "file.txt", tmp_path / "photos"):
        if root.name == "file.txt":
            root.write_text("not a dataset\n")
        else:
            root.mkdir()
            (root / "cat.jpg").write_bytes(b"\xff\xd8")
        argv = ["record", *_teleop_args(calibration), "--dataset.root", root, "--dataset.num_episodes", "1"]
        bad_input(capsys, argv, 2, str(root))


def test_an_unknown_camera_type_is_refused_before_any_port_opens(capsys, tmp_path):
    cams = "{front: {type: nonsense, index_or_path: 0}}"
    argv = ["record", "--robot.port", tmp_path / "no-such-port", "--robot.id", "f", "--robot.cameras", cams]
    argv += ["--teleop.port", tmp_path / "no-such-port", "--teleop.id", "l", "--dataset.root", tmp_path / "ds"]
    bad_input(capsys, argv, 2, "type 'nonsense' is not supported")


@pytest.mark.parametrize("fps,needle", [("0", "--fps must be a positive number"), ("fast", "invalid float value")])
def test_teleoperate_bad_rate(capsys, calibration, fps, needle):
    bad_input(capsys, ["teleoperate", *_teleop_args(calibration), "--fps", fps], 2, needle)


@pytest.mark.parametrize("what", ["missing", "a file"])
def test_replay_of_a_dataset_that_is_not_there(capsys, tmp_path, calibration, what):
    root = tmp_path / "ds"
    if what == "a file":
        root.write_text("not a dataset\n")
    argv = ["replay", "--robot.port", "sim", "--robot.id", "f", "--robot.calibration_dir", calibration]
    bad_input(capsys, [*argv, "--dataset.root", root, "--dataset.episode", "0"], 2, str(root))


def test_an_unknown_arm_type(capsys, tmp_path):
    argv = ["calibrate", "--robot.type", "so102_follower", "--robot.port", "sim", "--robot.id", "a"]
    bad_input(capsys, [*argv, "--robot.calibration_dir", tmp_path], 2, "unknown arm type 'so102_follower'")


# ----------------------------------------------------------------------------------------------------- datasets
@pytest.mark.parametrize("what", ["missing", "a file", "an empty folder", "garbage info.json"])
def test_train_on_a_non_dataset_names_it_and_leaves_no_output_dir(capsys, tmp_path, what):
    """Checked before anything is written: no empty output_dir left behind (it used to be a traceback)."""
    require("torch", "train")
    root = tmp_path / "data"
    if what == "a file":
        root.write_text("not a dataset\n")
    elif what == "an empty folder":
        root.mkdir()
    elif what == "garbage info.json":
        (root / "meta").mkdir(parents=True)
        (root / "meta" / "info.json").write_text("{truncated")
    out = tmp_path / "run"
    line = bad_input(capsys, ["train", "--dataset.root", root, "--output_dir", out, "--steps", "1"], 2, str(root))
    assert "meta/info.json" in line
    assert not out.exists()


def test_train_phrasings_without_paraphrase_says_to_pass_both(capsys, tmp_path):
    out = tmp_path / "run"
    argv = ["train", "--dataset.root", tmp_path / "data", "--output_dir", out, "--augment.phrasings", "composed"]
    bad_input(capsys, argv, 2, "--augment.paraphrase")
    assert not out.exists()


@pytest.mark.parametrize("what", ["missing", "a file"])
def test_dataset_info_of_a_folder_that_is_not_a_dataset(capsys, tmp_path, what):
    root = tmp_path / "ds"
    if what == "a file":
        root.write_text("not a dataset\n")
    bad_input(capsys, ["dataset", "info", root], 2, str(root))


# ---------------------------------------------------------------------------------------------------- processes
def test_no_traceback_reaches_the_terminal(tmp_path):
    """Real `onboard` processes, as a person runs them: the broadcast write, an out-of-range id, a bad baud rate."""
    run_onboard(["bus", "write", "--port", "sim", "--id", "254", "Goal_Position", "1000"], 2, "broadcast id")
    run_onboard(["bus", "read", "--port", "sim", "--id", "-1"], 2, "servo ids are 0-253")
    run_onboard(["bus", "scan", "--port", "sim", "--baud", "12345"], 2, "1000000, 500000")
