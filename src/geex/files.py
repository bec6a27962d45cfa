"""Files that outlive a crash: one place for the rules every resumable component follows.

- ``atomic_write``: a file is replaced whole (a sibling temporary file, fsynced, renamed over it):
  after a crash it holds the old contents or the new, never part of either.
- ``read_log`` / ``Appender``: an append-only JSON Lines log (results, samples). Each append is
  flushed and fsynced before it returns, so whatever the caller reported done is on disk; after a
  crash (``kill -9``, power loss) at most the line being written is torn, and reading the log cuts
  that tail off so the next append starts on a line boundary.
- ``sha256_of``: a file's SHA-256, read in blocks (a samples file may be large).
- ``differing``: the keys in which an output directory's recorded identity differs from the
  current run's — the check behind "this directory holds another run: choose another --out".

Reading files a user gave (plain or gzip, with line-numbered errors) is ``geex.jsonl``'s job.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path


def atomic_write(path: Path, data: str | bytes) -> None:
    """Replace ``path`` with ``data`` (text as UTF-8) all at once."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


@dataclass(frozen=True)
class Log:
    """What an append-only JSON Lines file holds after a possible crash."""

    values: list  # what ``parse`` made of each complete line it accepted, in file order
    rejected: int  # lines left out: complete lines that are not JSON or that ``parse`` refused, and a torn tail
    torn: bool  # whether the file ended inside a line (even one that parses: its end may be missing)


def read_log(path: Path, parse: Callable[[object], object] = lambda v: v, repair: bool = True) -> Log:
    """The lines of ``path`` (none if it does not exist), each line's JSON value turned into a record
    by ``parse``, which raises ``ValueError`` for a value that is not one (the line is rejected). With
    ``repair`` the file is cut after its last accepted line: a torn tail, and rejected lines after the
    last good one, are gone before the next append (rejected lines between good ones stay: they are
    left out, not lost)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Log([], 0, False)
    values: list = []
    rejected, good_end, pos = 0, 0, 0
    torn = bool(data) and not data.endswith(b"\n")
    for raw in data.splitlines(keepends=True):
        pos += len(raw)
        try:
            if not raw.endswith(b"\n"):
                raise ValueError("torn")
            value = parse(json.loads(raw))
        except ValueError:
            rejected += 1
            continue
        values.append(value)
        good_end = pos
    if repair and good_end < len(data):
        with open(path, "r+b") as f:
            f.truncate(good_end)
    return Log(values, rejected, torn)


def json_lines(values: Iterable[object]) -> str:
    """The values as JSON lines (UTF-8 as is, one line each, each ended)."""
    return "".join(json.dumps(v, ensure_ascii=False) + "\n" for v in values)


class Appender:
    """Appends JSON lines to a log; each ``write`` is on disk when it returns. Thread-safe."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, values: Iterable[object]) -> None:
        text = json_lines(values)
        with self._lock:
            self._file.write(text)
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Appender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sha256_of(path: Path | str) -> str:
    """The hex SHA-256 of a file's bytes, read 1 MiB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def differing(recorded: Mapping, current: Mapping, ignore: Iterable[str] = ()) -> list[str]:
    """The keys (sorted) whose values differ between a recorded identity and the current one, a key
    missing on one side counting as a difference; ``ignore`` lists keys that only inform."""
    skip = set(ignore)
    return sorted(k for k in (set(recorded) | set(current)) - skip if recorded.get(k) != current.get(k))
