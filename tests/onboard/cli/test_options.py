"""The option adapter (onboard/cli/options.py): options derived from config dataclasses, and the whole `onboard`
parser: every flag spelled before the redesign (flags_v0.txt) is still accepted, and every `--help` works."""

from __future__ import annotations

import argparse
import ast
import dataclasses
import shlex
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import pytest

import onboard.cli as cli
from onboard.cli.options import OptionError, add_options, command_line, config_from

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Inner:
    n: int = field(default=10, metadata={"help": "episodes"})
    task: str = field(default="pick", metadata={"help": "task", "aliases": ["--eval_task"]})


@dataclass(frozen=True)
class Example:
    roots: tuple[str, ...] = field(metadata={"help": "repeatable", "flag": "--dataset.root"})
    steps: int = field(default=20_000, metadata={"help": "optimizer steps"})
    rates: tuple[float, ...] = field(default=(30.0, 100.0), metadata={"help": "rates in Hz"})
    amp: Literal["none", "bf16"] = field(default="none", metadata={"help": "autocast"})
    baud: int = field(default=1_000_000, metadata={"help": "baud", "choices": [115_200, 1_000_000]})
    resume: bool = field(default=False, metadata={"help": "continue"})
    wire_time: bool = field(default=True, metadata={"help": "answer at once", "flag": "--no-wire-time"})
    duration: float | None = field(default=None, metadata={"help": "seconds"})
    eval: Inner = field(default_factory=Inner)
    hidden: tuple[tuple[str, ...], ...] = field(default=(), metadata={"cli": False})

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")


@dataclass(frozen=True)
class WithPositionals:
    name: str = field(metadata={"help": "register name", "positional": True})
    value: int = field(metadata={"help": "value", "positional": True})
    names: tuple[str, ...] = field(default=(), metadata={"help": "more names", "positional": True})


def parse(cls, *argv: str):
    parser = argparse.ArgumentParser(prog="t", exit_on_error=False)
    add_options(parser, cls)
    return parser, parser.parse_args(list(argv))


def test_defaults_come_from_the_dataclass():
    parser, args = parse(Example, "--dataset.root", "a")
    assert config_from(args, Example) == Example(roots=("a",))
    text = parser.format_help()
    assert "optimizer steps (default: 20000)" in text and "rates in Hz (default: 30 100)" in text
    assert "(default: none)" in text and "episodes (default: 10)" in text
    assert "--hidden" not in text and "seconds" in text and "(default: None)" not in text


def test_flags_nest_repeat_flip_and_choose():
    argv = "--dataset.root a --dataset.root b --rates 10 20 --amp bf16 --baud 115200 --resume --no-wire-time"
    _, args = parse(Example, *shlex.split(argv), "--eval.n", "3", "--eval_task", "place", "--duration", "1.5")
    cfg = config_from(args, Example)
    assert cfg.roots == ("a", "b") and cfg.rates == (10.0, 20.0) and cfg.amp == "bf16" and cfg.baud == 115_200
    assert cfg.resume and not cfg.wire_time and cfg.duration == 1.5
    assert cfg.eval == Inner(n=3, task="place")
    assert args.eval_n == 3 and args.roots == ["a", "b"]  # argparse dests: the dotted names with underscores


@pytest.mark.parametrize(
    "argv", [[], ["--dataset.root", "a", "--amp", "fp8"], ["--dataset.root", "a", "--baud", "9600"]]
)
def test_parse_errors(argv):
    with pytest.raises((argparse.ArgumentError, SystemExit)):
        parse(Example, *argv)


def test_an_invalid_config_is_an_option_error():
    _, args = parse(Example, "--dataset.root", "a", "--steps", "0")
    with pytest.raises(OptionError, match="steps must be >= 1"):
        config_from(args, Example)
    with pytest.raises(OptionError):
        config_from(argparse.Namespace(), Example)  # roots is required


def test_a_plain_namespace_gets_the_defaults():
    assert config_from(argparse.Namespace(roots=["x"], eval_n=4), Example) == Example(roots=("x",), eval=Inner(n=4))


def test_positionals():
    _, args = parse(WithPositionals, "P_Coefficient", "16")
    assert config_from(args, WithPositionals) == WithPositionals("P_Coefficient", 16)
    _, args = parse(WithPositionals, "a", "1", "b", "c")
    assert config_from(args, WithPositionals).names == ("b", "c")


def test_command_line_gives_the_config_back():
    cfg = Example(roots=("a b", "c"), steps=5, rates=(0.5,), resume=True, wire_time=False, eval=Inner(task="place"))
    line = command_line("prog", cfg)
    assert line.startswith("prog --dataset.root 'a b' c --steps 5 --rates 0.5 --amp none")
    _, args = parse(Example, *shlex.split(line)[1:])
    assert config_from(args, Example) == cfg
    assert command_line("prog", WithPositionals("x", 3, ("y",))) == "prog x 3 y"


@dataclass(frozen=True)
class Arm:
    type: str = field(metadata={"help": "arm type"})
    id: str = field(metadata={"help": "arm id"})
    port: str | None = field(default=None, metadata={"help": "port"})


@dataclass(frozen=True, kw_only=True)
class Words:
    resume: bool = field(default=False, metadata={"value": "optional", "help": "continue"})
    capture_time: bool = field(default=False, metadata={"value": "required", "help": "also the time"})
    safety: bool = field(default=True, metadata={"value": ("on", "off"), "help": "clamps"})
    bus_only: bool = field(default=False, metadata={"flag": "--bus-only", "group": "part"})
    policy_only: bool = field(default=False, metadata={"flag": "--policy-only", "group": "part"})
    kind: str | None = field(default=None, metadata={"choices": lambda: ("a", "b")})
    robot: Arm = field(metadata={"defaults": {"type": "follower"}})
    teleop: Arm = field(metadata={"defaults": {"type": "leader", "id": None}})
    task: str = field(metadata={"cli": False})


def test_bool_words_groups_registry_choices_and_nested_defaults():
    parser, args = parse(Words, "--robot.id", "f")
    cfg = config_from(args, Words, task="t")
    assert cfg == Words(robot=Arm("follower", "f"), teleop=Arm("leader", None), task="t")
    assert "(default: on)" in parser.format_help() and "{on,off}" in parser.format_help()
    argv = "--robot.id f --resume --capture_time=TRUE --safety off --bus-only --kind b --teleop.type x --teleop.id l"
    _, args = parse(Words, *shlex.split(argv))
    cfg = config_from(args, Words, task="t")
    assert cfg.resume and cfg.capture_time and not cfg.safety and cfg.bus_only and cfg.kind == "b"
    assert cfg.teleop == Arm("x", "l") and cfg.robot == Arm("follower", "f")
    _, args = parse(Words, "--robot.id", "f", "--resume=no", "--capture_time", "0", "--safety=on")
    cfg = config_from(args, Words, task="t")
    assert not cfg.resume and not cfg.capture_time and cfg.safety
    arms = "--robot.type follower --robot.id f --teleop.type leader"
    assert command_line("p", cfg) == f"p {arms}"
    assert (
        command_line("p", replace(cfg, safety=False, capture_time=True)) == f"p --capture_time true --safety off {arms}"
    )


@pytest.mark.parametrize(
    "argv",
    [
        [],  # --robot.id is required: its Arm field has no default in this use
        ["--robot.id", "f", "--bus-only", "--policy-only"],
        ["--robot.id", "f", "--safety", "true"],
        ["--robot.id", "f", "--capture_time"],
        ["--robot.id", "f", "--resume", "maybe"],
        ["--robot.id", "f", "--kind", "c"],
    ],
)
def test_bool_words_and_groups_reject(argv):
    with pytest.raises((argparse.ArgumentError, SystemExit)):
        parse(Words, *argv)


# ----------------------------------------------------------------------------------------- the `onboard` parser
def _subparsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(path, parser) of the root and of every subcommand, depth first."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _subparsers(child, (*path, name))


def _accepted(parser: argparse.ArgumentParser) -> set[str]:
    out = set(parser._option_string_actions)
    out |= {f"<{a.dest}>" for a in parser._actions if not a.option_strings and a.dest != argparse.SUPPRESS}
    return out


def _rows() -> list[tuple[str, str]]:
    rows = []
    for line in (HERE / "flags_v0.txt").read_text().splitlines():
        if line.strip():
            path, flag = line.split("\t")
            rows.append((path, flag))
    return rows


def test_every_flag_spelled_before_the_redesign_is_still_accepted():
    rows = _rows()
    assert len(rows) == 222
    parsers = {" ".join(path): p for path, p in _subparsers(cli.build_parser())}
    missing = [f"{path} {flag}" for path, flag in rows if path not in parsers or flag not in _accepted(parsers[path])]
    assert not missing, missing


@pytest.mark.parametrize("path", sorted({path for path, _ in _rows()} | {"sim", "bench", "bus", "dataset"}))
def test_help_works(path, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main([*path.split(), "--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("usage: onboard")


CONVERTED = (
    "bus",
    "dagger",
    "calibrate",
    "console",
    "find",
    "sim",
    "serve",
    "train",
    "dataset",
    "bench",
    "record",
    "run",
    "rigs",
    "eval",
    "generate",
    "demo",
    "serve_policy",
)


def test_every_command_module_is_converted():
    """Every module of onboard/cli/ but the adapter itself, the root parser's (-v, --debug) and the error mapping is
    in CONVERTED."""
    names = {p.stem for p in Path(cli.__file__).parent.glob("*.py")} - {"options", "__init__", "__main__", "errors"}
    assert names == set(CONVERTED)


@pytest.mark.parametrize("name", CONVERTED)
def test_converted_commands_take_their_options_from_configs(name):
    """No hand-written add_argument (and so no default written twice) in the converted command groups."""
    tree = ast.parse((Path(cli.__file__).parent / f"{name}.py").read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "add_argument"]
    assert not calls


def test_the_root_module_keeps_only_the_root_parser_and_main():
    tree = ast.parse(Path(cli.__file__).read_text())
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert functions == {"build_parser", "main"}
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "add_argument"]
    assert len(calls) == 1  # one loop: -v/--verbose and --debug


def test_bench_commands_pass_a_config():
    from onboard.bench.config import LoopBenchConfig

    args = cli.build_parser().parse_args(["bench", "loop", "--seconds", "0.5", "--rates", "30", "--arm", "thread"])
    assert config_from(args, LoopBenchConfig) == LoopBenchConfig(seconds=0.5, rates=(30.0,), arm="thread")
    assert (
        command_line("onboard bench loop", LoopBenchConfig())
        == "onboard bench loop --seconds 10 --rates 30 100 --arm both"
    )
    assert dataclasses.is_dataclass(LoopBenchConfig)
