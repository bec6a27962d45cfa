"""One declaration per option: a config dataclass's field holds the default, the help text and how a
command line spells and parses it; the CLI adds its arguments from the fields and builds the config
from what was parsed (torchtitan's style), so a default or a help text is never written twice and
two commands that take the same option (``evaluate`` and ``run``) cannot drift apart.

The value types raise ``argparse.ArgumentTypeError`` with the accepted range, so a bad value is one
``geex <command>: error: argument --x: ...`` line with exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from dataclasses import MISSING, dataclass, field, fields
from typing import Any


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number: {text}")
    return value


def within(kind: type, low: float, high: float = math.inf, *, above: bool = False, below: bool = False):
    """An argparse type: a ``kind`` (int or float) from ``low`` to ``high`` (``above``/``below``: the
    bound itself excluded), finite; the error says the range."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {'an integer' if kind is int else 'a number'}: {text!r}") from None
        ok = math.isfinite(value) and (value > low if above else value >= low) and \
            (value < high if below else value <= high)
        if not ok:
            lo = f"above {low:g}" if above else f"at least {low:g}"
            hi = "" if high == math.inf else f" and {'below' if below else 'at most'} {high:g}"
            raise argparse.ArgumentTypeError(f"must be {lo}{hi}: {text}")
        return value
    return parse


probability = within(float, 0, 1, above=True)  # (0, 1]
count = within(int, 0)  # 0, 1, 2, ...
fraction = within(float, 0, 1)  # [0, 1]


def k_values(text: str) -> tuple[int, ...]:
    """Comma-separated positive integers, sorted, each once: "10,1,100" -> (1, 10, 100)."""
    try:
        ks = tuple(sorted({int(k) for k in text.split(",") if k.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not ks or ks[0] < 1:
        raise argparse.ArgumentTypeError("k values must be positive")
    return ks


@dataclass(frozen=True)
class Flag:
    """How the command line spells a config field. ``help`` may name ``{default}``: the default a
    user gets, as they would type it. A bool field that defaults to False is a switch that sets it
    (``--greedy``); ``negate``: a switch that sets the field to False (``--no-cache`` for
    ``use_cache``). ``choices``: the only values accepted. ``command_default``: the command line's
    default where it differs on purpose from the library's (sampling: CodeGeeX's pass@1 setting on
    the command line, the OpenAI API's for a caller), both declared here. ``only_if_given``: the
    parsed arguments hold the field only when it was typed, so a command can tell an explicit
    value from the default (``--shots`` without ``--prompt-style few-shot`` is a mistake). ``const``:
    the value is optional, and the flag alone gives ``const`` (``--ray`` or ``--ray HOST:PORT``)."""

    name: str
    help: str
    short: str | None = None
    parse: Callable[[str], Any] | None = None
    negate: bool = False
    metavar: str | None = None
    choices: tuple | None = None
    command_default: Any = None  # None: the field's own default
    only_if_given: bool = False
    const: Any = None  # not None: the value may be left out (``--ray`` alone means ``const``)


def option(default: Any, name: str, help: str, **flag: Any) -> Any:
    """A dataclass field with its command-line spelling (see ``Flag``)."""
    return field(default=default, metadata={"flag": Flag(name, help, **flag)})


def _shown(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return f"{value:g}" if isinstance(value, float) else str(value)


def add_options(parser: argparse.ArgumentParser, config: type, names: Sequence[str]) -> None:
    """Add the arguments of ``config``'s fields ``names``, in that order (their ``dest`` is the field)."""
    declared = {f.name: f for f in fields(config)}
    for name in names:
        f = declared[name]
        flag: Flag = f.metadata["flag"]
        spelled = [flag.name, *([flag.short] if flag.short else [])]
        default = f.default if flag.command_default is None else flag.command_default
        text = flag.help.format(default=_shown(default))
        given = {"default": argparse.SUPPRESS} if flag.only_if_given else {"default": default}
        if flag.negate or (default is False and flag.parse is None):
            parser.add_argument(*spelled, dest=name, action="store_false" if flag.negate else "store_true",
                                help=text, **given)
        else:
            optional = {"nargs": "?", "const": flag.const} if flag.const is not None else {}
            parser.add_argument(*spelled, dest=name, type=flag.parse, help=text, choices=flag.choices,
                                metavar=flag.metavar or (None if flag.choices else
                                                         flag.name.lstrip("-").upper().replace("-", "_")),
                                **given, **optional)


def from_args(config: type, args: argparse.Namespace, **given: Any) -> Any:
    """``config`` from the parsed ``args`` (fields a command does not offer keep their defaults) and
    the values ``given`` by the command itself."""
    values = {}
    for f in fields(config):
        if f.name in given:
            values[f.name] = given[f.name]
        elif "flag" in f.metadata and hasattr(args, f.name):
            values[f.name] = getattr(args, f.name)
        elif f.default is MISSING and f.default_factory is MISSING:
            raise TypeError(f"{config.__name__}.{f.name} needs a value")
    return config(**values)
