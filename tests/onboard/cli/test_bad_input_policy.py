"""Bad policies through the commands that load one: `onboard run`, `eval` and `demo` on a damaged copy of the shipped
bundle, a text file, a missing or empty folder, an unknown kind: exit code 2 (demo: 2 = could not run, 1 = the task
failed), one line naming the file, no traceback, and nothing run (no episode, no video)."""

from __future__ import annotations

import json

import pytest

from policies.bundle import BUNDLED
from tests.conftest import require
from tests.onboard.cli.badinput import bad_input, run_onboard
from tests.policies.test_bundle_check import ENCODER, TOKENIZER, copy_bundle, damage

# (file, damage, manifest kept): with the manifest the check names it before loading; without (older bundles),
# onnxruntime's or tokenizers' failure is turned into the same kind of line
DAMAGES = [
    ("vla.onnx", "truncated", True),
    ("vla.onnx", "garbage", False),
    ("vla.onnx", "missing", True),
    (ENCODER, "garbage", False),
    (ENCODER, "flipped", True),
    (TOKENIZER, "garbage", False),
    (TOKENIZER, "missing", False),
    ("bundle.json", "garbage", True),
]


def _command(name: str, bundle, tmp_path) -> list:
    if name == "run":
        cal = tmp_path / "cal"
        return [
            "run",
            "--robot.port",
            "sim",
            "--robot.id",
            "a",
            "--robot.calibration_dir",
            cal,
            "--policy.path",
            bundle,
        ]
    if name == "eval":
        return ["eval", "--policy.path", bundle, "--n", "1", "--output_dir", tmp_path / "eval"]
    return ["demo", "--policy-only", "--bundle", bundle, "--out", tmp_path / "demo.mp4"]


@pytest.fixture(autouse=True)
def _needs_onnxruntime():
    require("onnxruntime", "onnx")


@pytest.mark.parametrize("command", ["run", "eval", "demo"])
@pytest.mark.parametrize("name,how,manifest", DAMAGES, ids=lambda v: str(v).replace("/", "_"))
def test_a_damaged_bundle_is_one_line_naming_the_file(capsys, tmp_path, command, name, how, manifest):
    bundle = copy_bundle(tmp_path / "bundle", manifest=manifest)
    damage(bundle / name, how)
    bad_input(capsys, _command(command, bundle, tmp_path), 2, str(bundle / name))
    assert not (tmp_path / "demo.mp4").exists() and not (tmp_path / "eval" / "report.json").exists()


@pytest.mark.parametrize("command", ["run", "eval", "demo"])
@pytest.mark.parametrize("what", ["missing", "text file", "empty folder"])
def test_a_policy_path_that_is_no_policy_says_what_is_accepted(capsys, tmp_path, command, what):
    path = tmp_path / "policy"
    if what == "text file":
        path.write_text("a bundle that is a text file\n")
    elif what == "empty folder":
        path.mkdir()
    line = bad_input(capsys, _command(command, path, tmp_path), 2, str(path))
    if what != "missing" and command != "demo":
        assert "ONNX bundle" in line and "LeRobot checkpoint" in line  # what --policy.path accepts


def test_eval_defaults_to_the_bundled_model_and_says_so(capsys, tmp_path):
    """`onboard eval` without --policy.path runs the shipped bundle (as `onboard demo` does) and prints which."""
    require("mujoco", "sim")
    from onboard.cli import main

    out = tmp_path / "eval"
    assert main(["eval", "--task", "touch", "--n", "1", "--output_dir", str(out)]) == 0
    captured = capsys.readouterr()
    assert f"policy: the bundled model, {BUNDLED} (no --policy.path given)" in captured.out
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["policy_path"] == str(BUNDLED) and report["config"]["policy_type"] == "onnx"
    assert f"--policy.path={BUNDLED}" in report["command"] and report["summary"]["n"] == 1


@pytest.mark.parametrize(
    "argv,needles",
    [
        (["eval", "--policy.type", "vla"], ("--policy.type=vla needs --policy.path",)),
        (["eval", "--policy.type", "nonsense"], ("invalid choice: 'nonsense'",)),
        (["eval", "--n", "0"], ("--n must be >= 1, got 0",)),
        (["eval", "--n", "-1"], ("--n must be >= 1, got -1",)),
        (["eval", "--n", "many"], ("invalid int value: 'many'",)),
        (["eval", "--num_envs", "0"], ("--num_envs must be >= 1",)),
        (["eval", "--task", "nonsense", "--n", "1"], ("nonsense",)),
        (["eval", "--color", "purple"], ("invalid choice: 'purple'",)),
        (["eval", "--latency", "fast", "--n", "1"], ("fast",)),
        (["demo", "--task", "nonsense"], ("invalid choice: 'nonsense'",)),
        (["demo", "--policy-only", "--latency", "fast"], ("fast",)),
        (["run", "--robot.port", "sim", "--robot.id", "a", "--policy.path", BUNDLED, "--policy.type", "x"], ("x",)),
        (["run", "--robot.port", "sim", "--robot.id", "a", "--policy.path", BUNDLED, "--latency", "fast"], ("fast",)),
    ],
    ids=lambda v: " ".join(map(str, v)) if isinstance(v, list) else None,
)
def test_bad_numbers_and_names(capsys, tmp_path, argv, needles):
    argv = [*argv, "--output_dir", tmp_path / "eval"] if argv[0] == "eval" else argv
    if argv[0] == "run":
        argv += ["--robot.calibration_dir", tmp_path / "cal"]
    bad_input(capsys, argv, 2, *needles)
    assert not (tmp_path / "eval" / "report.json").exists()


def test_no_traceback_reaches_the_terminal(tmp_path):
    """As a person runs them: real processes, damaged bundle and a bundle that is a text file."""
    bundle = copy_bundle(tmp_path / "bundle", manifest=False)
    damage(bundle / "vla.onnx", "truncated")
    text = tmp_path / "bundle.txt"
    text.write_text("not a bundle\n")
    run_onboard(_command("run", bundle, tmp_path), 2, str(bundle / "vla.onnx"), "not a loadable ONNX graph")
    run_onboard(_command("eval", text, tmp_path), 2, f"{text} is a file, not a policy folder")
