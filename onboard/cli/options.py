"""Command-line options derived from config dataclasses: one source of truth for every option.

A config is a (frozen) dataclass. Each field is one option; its default and its help live in the dataclass, the
parser is derived from it, and the parsed arguments are turned back into the dataclass::

    @dataclass(frozen=True)
    class ServeConfig:
        seed: int = field(default=0, metadata={"help": "draws the horn offsets"})

    add_options(parser, ServeConfig)            # --seed N    (help: "draws the horn offsets (default: 0)")
    config = config_from(args, ServeConfig)     # ServeConfig(seed=...)

Field metadata (all optional): ``help``; ``flag`` (the spelling, instead of ``--<prefix><name>``); ``aliases``
(other spellings that keep working); ``positional`` (a positional argument; a tuple field takes any number);
``choices``; ``metavar``; ``cli=False`` (not an option: the command fills it in). The field's type decides the rest:
a nested dataclass adds its fields under a dotted prefix (``--augment.shift``, like LeRobot's draccus); ``bool`` is a
flag that flips the default (``--resume``; a field that defaults to True needs a ``flag`` such as
``--no-wire-time``); ``tuple[X, ...]`` is repeatable (``--dataset.root a --dataset.root b`` or ``--rates 30 100``);
``Literal[...]`` gives the choices; ``X | None`` parses as X. The argparse ``dest`` is the dotted name with
underscores (``augment_shift``), so a command keeps reading ``args.<dest>`` where it must.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import types
import typing
from typing import Any, Literal

MISSING = dataclasses.MISSING


class OptionError(ValueError):
    """The options parsed, but the config they describe is invalid (its ``__post_init__`` said why)."""


def _fields(cls: type) -> list[tuple[dataclasses.Field, Any]]:
    """(field, resolved type) of each field of the dataclass ``cls`` that is an option."""
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls) if f.init and f.metadata.get("cli", True)]


def _default(f: dataclasses.Field, parent: Any = None) -> Any:
    if parent is not None:
        return getattr(parent, f.name)
    if f.default is not MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not MISSING else MISSING


def _unwrap(tp: Any) -> Any:
    """``X | None`` -> X."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return tp


def _is_tuple(tp: Any) -> bool:
    return typing.get_origin(tp) is tuple


def _dest(name: str) -> str:
    """The argparse dest of the option ``name``: ``augment.shift`` -> ``augment_shift``."""
    return name.replace(".", "_").replace("-", "_")


def _text(value: Any) -> str:
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)  # 30.0 -> "30", 0.3 -> "0.3", no rounding
    if isinstance(value, tuple):
        return " ".join(_text(v) for v in value)
    return str(value)


def add_options(parser: argparse.ArgumentParser, cls: type, prefix: str = "", parent: Any = None) -> None:
    """Add one argument per field of the dataclass ``cls`` (nested dataclasses under ``<prefix><name>.``)."""
    for f, tp in _fields(cls):
        tp, default, meta = _unwrap(tp), _default(f, parent), f.metadata
        name = prefix + f.name
        if dataclasses.is_dataclass(tp):
            add_options(parser, tp, f"{name}.", None if default is MISSING else default)
            continue
        kwargs: dict[str, Any] = {"help": meta.get("help", "")}
        if default is not MISSING and default is not None and not isinstance(default, bool) and default != ():
            kwargs["help"] = f"{kwargs['help']} (default: {_text(default)})".lstrip()
        kwargs["help"] = kwargs["help"].replace("%", "%%")
        item = typing.get_args(tp)[0] if _is_tuple(tp) else tp
        choices = meta.get("choices")
        if typing.get_origin(item) is Literal:
            choices = choices or typing.get_args(item)
            item = type(choices[0])
        if choices is not None:
            kwargs["choices"] = list(choices)
        if "metavar" in meta:
            kwargs["metavar"] = meta["metavar"]
        if tp is bool:
            kwargs["action"] = "store_false" if default is True else "store_true"
        else:
            kwargs["type"] = item
        # the parsed value is None when the option is not given; config_from then keeps the dataclass's default
        kwargs["default"] = None if _is_tuple(tp) or default is MISSING else default
        dest = _dest(name)
        if meta.get("positional"):
            if _is_tuple(tp) or default is not MISSING:
                kwargs["nargs"] = "*" if _is_tuple(tp) else "?"
            parser.add_argument(dest, **kwargs)
            continue
        if _is_tuple(tp):
            kwargs["action"], kwargs["nargs"] = "extend", "+"
        if default is MISSING:
            kwargs["required"] = True
        if tp is not bool and choices is None:
            kwargs.setdefault("metavar", f.name.upper())
        flags = [meta.get("flag", f"--{name}"), *meta.get("aliases", ())]
        parser.add_argument(*flags, dest=dest, **kwargs)


def config_from(args: Any, cls: type, prefix: str = "") -> Any:
    """The dataclass ``cls`` from parsed ``args`` (a namespace, or any object with the dests as attributes); an
    option that is absent or None keeps the dataclass's default. Raises OptionError if the config is invalid."""
    values: dict[str, Any] = {}
    for f, tp in _fields(cls):
        tp, name = _unwrap(tp), prefix + f.name
        if dataclasses.is_dataclass(tp):
            values[f.name] = config_from(args, tp, f"{name}.")
            continue
        value = getattr(args, _dest(name), None)
        if value is not None:
            values[f.name] = tuple(value) if _is_tuple(tp) else value
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise OptionError(str(exc)) from exc


def command_line(command: str, config: Any, prefix: str = "") -> str:
    """``command`` followed by the options that give ``config`` (every option that has a value), for reports."""
    words: list[str] = []
    for f, tp in _fields(type(config)):
        value, meta = getattr(config, f.name), f.metadata
        if dataclasses.is_dataclass(_unwrap(tp)):
            words.append(command_line("", value, f"{prefix}{f.name}.").strip())
            continue
        flag = meta.get("flag", f"--{prefix}{f.name}")
        if value is None or value == () or (isinstance(value, bool) and value == _default(f)):
            continue
        if meta.get("positional"):
            words.extend(shlex.quote(_text(v)) for v in (value if isinstance(value, tuple) else (value,)))
        elif isinstance(value, bool):
            words.append(flag)
        else:
            words += [flag, *(shlex.quote(_text(v)) for v in (value if isinstance(value, tuple) else (value,)))]
    return " ".join(w for w in [command, *words] if w)
