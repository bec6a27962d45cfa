"""An evaluation's claim on its output directory: one evaluation at a time, of one thing.

``OUT/run.json`` records what the results in ``OUT`` are of: the samples (a hash of the file's
bytes, or of the reference solutions for ``canonical``), the dataset variant, the language
selection and whether completions were cleaned up. An evaluation of anything else into the same
``OUT`` is refused (its results would be mixed with these, and the report would read both); the
same samples resume as always. A directory from before ``run.json`` existed is adopted.

While an evaluation runs it holds an exclusive ``flock`` on the ``OUT`` directory itself, so a
second evaluation into it stops at once instead of appending to the same ``results.jsonl``; the
kernel releases the lock when the holder exits, ``kill -9`` included.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from geex.errors import UserError
from geex.files import atomic_write, differing

RUN_FORMAT = "geex/humanevalx-run/1"
RUN_FILE = "run.json"
_INFORMATIVE = {"format", "samples"}  # recorded, not compared (the same file may move)


class OutDir:
    """``with OutDir(path, identity):`` — lock ``path`` and check (or record) ``identity``."""

    def __init__(self, path: Path, identity: dict) -> None:
        self.path = path
        self.identity = {"format": RUN_FORMAT, **identity}
        self._fd: int | None = None

    def __enter__(self) -> "OutDir":
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as e:
            raise UserError(f"cannot write the output directory {self.path}: {e.strerror or e}") from None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._release()
            raise UserError(f"{self.path} is in use by another geex evaluation: wait for it to end, "
                            "or use another `out`") from None
        try:
            self._check_or_record()
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._release()

    def _release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None

    def _check_or_record(self) -> None:
        path = self.path / RUN_FILE
        try:
            recorded = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(recorded, dict):
                raise ValueError("not a JSON object")
        except FileNotFoundError:
            recorded = None
        except (OSError, ValueError) as e:
            raise UserError(f"cannot read {path} ({e}): remove {self.path} to start over, or use another `out`") from None
        if recorded is not None:
            differ = differing(recorded, self.identity, ignore=_INFORMATIVE)
            if differ:
                was, now = recorded.get(differ[0]), self.identity.get(differ[0])
                raise UserError(
                    f"{self.path} holds the results of another evaluation ({', '.join(differ)} differ: "
                    f"{differ[0]} was {json.dumps(was)}, now {json.dumps(now)}): use another `out`, "
                    f"or remove {self.path} to start over")
            return
        try:
            atomic_write(path, json.dumps(self.identity, indent=2) + "\n")
        except OSError as e:
            raise UserError(f"cannot write the output directory {self.path}: {e.strerror or e}") from None
