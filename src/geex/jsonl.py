"""Reading JSON Lines that a user gave: one reader, so every input fails the same clear way.

Samples, HumanEval-X problems, corpus sources and shards are all JSON Lines, plain or gzip-compressed
(told by the file's first bytes, not its name: a ``.jsonl`` that is really gzip is read). Lines are
decoded one at a time, so a byte that is not UTF-8, a line that is not JSON, or a value that is not
an object is reported with the file and line (``path:line: ...``) as a ``UserError``.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from geex.errors import UserError

GZIP_MAGIC = b"\x1f\x8b"


def json_kind(value: object) -> str:
    """A JSON value's kind as a user reads it in the file ("an array", "a string" ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object" if isinstance(value, dict) else type(value).__name__


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == GZIP_MAGIC


def open_binary(path: str | Path) -> BinaryIO:
    """The file's bytes, decompressed if it is gzip; a directory or a missing file is a UserError."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a directory, not a JSON Lines file")
    try:
        return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from None


def lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of every line, decoded as UTF-8 one at a time."""
    path = Path(path)
    f = open_binary(path)
    lineno = 0
    try:
        with f:
            for lineno, raw in enumerate(f, 1):
                try:
                    yield lineno, raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise UserError(f"{path}:{lineno}: not UTF-8 text ({e.reason} at byte {e.start + 1} of the "
                                    "line)") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise UserError(f"{path}: truncated or corrupt gzip data after line {lineno} ({e})") from None
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from None


def parse_line(text: str, where: str) -> object:
    """One line's JSON value; ``where`` (``path:line``) names it in the error."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        at = f"column {e.pos + 1}" if e.pos < len(text.rstrip()) else "the end of the line"
        raise UserError(f"{where}: not valid JSON ({e.msg} at {at})") from None


def objects(path: str | Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) of every non-blank line; anything but a JSON object is an error."""
    for lineno, text in lines(path):
        if not text.strip():
            continue
        obj = parse_line(text, f"{path}:{lineno}")
        if not isinstance(obj, dict):
            raise UserError(f"{path}:{lineno}: expected a JSON object, got {json_kind(obj)}")
        yield lineno, obj


def string_field(obj: dict, key: str, where: str, required: bool = True) -> str | None:
    """``obj[key]`` as a string; absent is an error only if ``required``; any other type is one always."""
    value = obj.get(key)
    if value is None:
        if required:
            raise UserError(f"{where}: missing the {key!r} field (a string)")
        return None
    if not isinstance(value, str):
        raise UserError(f"{where}: {key!r} must be a string, got {json_kind(value)}")
    return value
