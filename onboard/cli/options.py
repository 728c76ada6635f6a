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
``choices`` (or a function that returns them when the parser is built, e.g. a registry's names); ``metavar``;
``group`` (options of one group name exclude each other, e.g. ``--bus-only`` / ``--policy-only``); ``cli=False`` (not
an option: the command fills it in, ``config_from(args, Cls, name=value)``). The field's type decides the rest: a
nested dataclass adds its fields under a dotted prefix (``--augment.shift``, like LeRobot's draccus), and its field's
``defaults`` metadata sets the nested fields' defaults for this use (``{"type": "so101_leader"}``); ``bool`` is a flag
that flips the default (``--resume``; a field that defaults to True needs a ``flag`` such as ``--no-wire-time``), or,
with ``value`` metadata, an option that takes a word: ``"required"`` (``--dataset.capture_time=true``; true/false,
yes/no, on/off, 1/0), ``"optional"`` (``--resume`` alone means true, ``--resume=false`` works too), or the pair of
words it takes, true's first (``("on", "off")``: ``--safety off``); ``tuple[X, ...]`` is repeatable (``--dataset.root a
--dataset.root b`` or ``--rates 30 100``); ``Literal[...]`` gives the choices; ``X | None`` parses as X. The argparse
``dest`` is the dotted name with underscores (``augment_shift``), so a command keeps reading ``args.<dest>`` where it
must.
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


def _default(f: dataclasses.Field, defaults: dict[str, Any] | None = None) -> Any:
    if defaults and f.name in defaults:
        return defaults[f.name]
    if f.default is not MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not MISSING else MISSING


def _nested_defaults(f: dataclasses.Field, default: Any) -> dict[str, Any]:
    """The defaults of the fields of the nested dataclass of ``f``: its default instance's values, then the field's
    ``defaults`` metadata."""
    values = {}
    if default is not MISSING and default is not None:
        values = {g.name: getattr(default, g.name) for g in dataclasses.fields(default) if g.init}
    return {**values, **f.metadata.get("defaults", {})}


TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def parse_bool(text: str) -> bool:
    """A yes/no word (``true``, ``false``, ``yes``, ``no``, ``on``, ``off``, ``1``, ``0``; any case) -> bool."""
    if text.lower() in TRUE_WORDS:
        return True
    if text.lower() in FALSE_WORDS:
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _word_pair(words: tuple[str, str]):
    """The argparse type of a bool option spelled with exactly these two words (true's first)."""

    def parse(text: str) -> bool:
        if text not in words:
            raise argparse.ArgumentTypeError(
                f"invalid choice: {text!r} (choose from {', '.join(repr(w) for w in words)})"
            )
        return text == words[0]

    return parse


def _bool_value(kwargs: dict[str, Any], value: Any) -> None:
    """argparse settings of a bool option that takes a word (field metadata ``value``)."""
    if value == "required":
        kwargs["type"] = parse_bool
    elif value == "optional":
        kwargs.update(type=parse_bool, nargs="?", const=True)
    else:
        kwargs.update(type=_word_pair(tuple(value)), metavar="{" + ",".join(value) + "}")


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


def _bool_text(value: bool, spelling: Any) -> str:
    """How a bool option that takes a word spells ``value``."""
    if spelling in ("required", "optional"):
        return "true" if value else "false"
    return spelling[0] if value else spelling[1]


def add_options(
    parser: argparse.ArgumentParser, cls: type, prefix: str = "", defaults: dict[str, Any] | None = None
) -> None:
    """Add one argument per field of the dataclass ``cls`` (nested dataclasses under ``<prefix><name>.``);
    ``defaults``: {field name: default} instead of the dataclass's, for this use."""
    groups: dict[str, Any] = {}
    for f, tp in _fields(cls):
        tp, default, meta = _unwrap(tp), _default(f, defaults), f.metadata
        name = prefix + f.name
        if dataclasses.is_dataclass(tp):
            add_options(parser, tp, f"{name}.", _nested_defaults(f, default))
            continue
        kwargs: dict[str, Any] = {"help": meta.get("help", "")}
        shown = default if not isinstance(default, bool) or "value" not in meta else _bool_text(default, meta["value"])
        if shown is not MISSING and shown is not None and not isinstance(shown, bool) and shown != ():
            kwargs["help"] = f"{kwargs['help']} (default: {_text(shown)})".lstrip()
        kwargs["help"] = kwargs["help"].replace("%", "%%")
        item = typing.get_args(tp)[0] if _is_tuple(tp) else tp
        choices = meta.get("choices")
        if callable(choices):
            choices = choices()
        if typing.get_origin(item) is Literal:
            choices = choices or typing.get_args(item)
            item = type(choices[0])
        if choices is not None:
            kwargs["choices"] = list(choices)
        if "metavar" in meta:
            kwargs["metavar"] = meta["metavar"]
        if tp is bool and "value" in meta:
            _bool_value(kwargs, meta["value"])
        elif tp is bool:
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
        if (tp is not bool or "value" in meta) and choices is None:
            kwargs.setdefault("metavar", f.name.upper())
        flags = [meta.get("flag", f"--{name}"), *meta.get("aliases", ())]
        target = parser
        if "group" in meta:
            if meta["group"] not in groups:
                groups[meta["group"]] = parser.add_mutually_exclusive_group()
            target = groups[meta["group"]]
        target.add_argument(*flags, dest=dest, **kwargs)


def config_from(args: Any, cls: type, prefix: str = "", **given: Any) -> Any:
    """The dataclass ``cls`` from parsed ``args`` (a namespace, or any object with the dests as attributes); an
    option that is absent or None keeps its default. ``given``: values of fields the command fills in (``cli=False``
    ones, or ones it resolved itself). Raises OptionError if the config is invalid."""
    return _config(args, cls, prefix, None, given)


def _config(args: Any, cls: type, prefix: str, defaults: dict[str, Any] | None, given: dict[str, Any]) -> Any:
    values: dict[str, Any] = {}
    for f, tp in _fields(cls):
        tp, name = _unwrap(tp), prefix + f.name
        if f.name in given:
            continue
        if dataclasses.is_dataclass(tp):
            values[f.name] = _config(args, tp, f"{name}.", _nested_defaults(f, _default(f, defaults)), {})
            continue
        value = getattr(args, _dest(name), None)
        if value is not None:
            values[f.name] = tuple(value) if _is_tuple(tp) else value
        elif defaults and f.name in defaults:
            values[f.name] = defaults[f.name]
    try:
        return cls(**values, **given)
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
        elif isinstance(value, bool) and "value" in meta:
            words += [flag, _bool_text(value, meta["value"])]
        elif isinstance(value, bool):
            words.append(flag)
        else:
            words += [flag, *(shlex.quote(_text(v)) for v in (value if isinstance(value, tuple) else (value,)))]
    return " ".join(w for w in [command, *words] if w)
