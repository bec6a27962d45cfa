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
    """How the command line spells a config field. ``help`` may name ``{default}``: the field's
    default, as a user types it. ``negate``: a switch that sets the field to False (``--no-cache``
    for ``use_cache``)."""

    name: str
    help: str
    short: str | None = None
    parse: Callable[[str], Any] | None = None
    negate: bool = False
    metavar: str | None = None


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
        text = flag.help.format(default=_shown(f.default))
        if flag.negate:
            parser.add_argument(*spelled, dest=name, action="store_false", help=text)
        else:
            parser.add_argument(*spelled, dest=name, type=flag.parse, default=f.default, help=text,
                                metavar=flag.metavar or flag.name.lstrip("-").upper().replace("-", "_"))


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
