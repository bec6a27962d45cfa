"""Where results live: the run's append-only ``results.jsonl`` (resume) and a verdict cache.

``results.jsonl`` gets one line per sample, written with a single ``write`` and flushed as soon as
the sample finishes. After a crash (even ``kill -9``) at most the line being written is torn; it
is dropped on the next open, and samples already recorded are not run again. A line is only valid
for the same sample *and* the same program (hash) and fingerprint: a result never answers for
another program (the samples file itself cannot change under an OUT: ``outdir.py``).

The cache (SQLite, shared by all runs of a machine) maps (program hash, fingerprint) to an outcome
and the number of runs that agreed on it. The fingerprint covers the toolchain, recipes, limits,
isolation and the harness's own code (``identity.py``). A verdict seen once is not trusted yet: the
next evaluation that would reuse it runs the program again (``flaky.py``); once two runs agreed it
is served without running. A program whose runs disagreed is flaky: its entry is dropped, never
frozen. Timeouts and harness errors are never cached: they may be transient.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

from geex.files import Appender, read_log
from geex.humanevalx.execution.verdict import Verdict
from geex.humanevalx.result import Result

_NOT_CACHED = {Verdict.TIMEOUT.value, Verdict.HARNESS_ERROR.value}


class ResultsLog:
    """Append-only JSONL of per-sample results, tolerant of a torn last line (``geex.files``); a
    line that is not a ``Result`` is skipped (its sample runs again)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        log = read_log(path, parse=Result.from_json)
        self.records: dict[str, Result] = {r.sample_id: r for r in log.values}  # the last line of a sample wins
        self.torn_lines = log.rejected
        self._lock = threading.Lock()
        self._log = Appender(path)

    def done(self, sample_id: str, program_sha256: str, fingerprint: str) -> Result | None:
        """The recorded result of this sample, if it was for the same program under the same
        toolchain, recipes, limits and isolation (else it must run again)."""
        rec = self.records.get(sample_id)
        if rec is None or rec.program_sha256 != program_sha256 or rec.fingerprint != fingerprint:
            return None
        return rec

    def append(self, result: Result) -> None:
        with self._lock:
            self._log.write([result.to_json()])
            self.records[result.sample_id] = result

    def close(self) -> None:
        self._log.close()


CONFIRMED_RUNS = 2  # agreeing runs after which a cached verdict is served without running again


class VerdictCache:
    """(program hash, fingerprint) → (outcome dict, agreeing runs), in SQLite (safe across threads and
    processes). Table ``verdicts``; the ``outcomes`` table of earlier versions is left to them."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, timeout=60, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS verdicts (program TEXT, fingerprint TEXT, outcome TEXT, "
            "runs INTEGER NOT NULL, PRIMARY KEY (program, fingerprint))"
        )
        self._lock = threading.Lock()

    def lookup(self, program: str, fingerprint: str) -> tuple[dict, int] | None:
        """The cached outcome and how many runs agreed on it."""
        with self._lock:
            row = self._conn.execute(
                "SELECT outcome, runs FROM verdicts WHERE program = ? AND fingerprint = ?", (program, fingerprint)
            ).fetchone()
        return (json.loads(row[0]), int(row[1])) if row else None

    def get(self, program: str, fingerprint: str) -> dict | None:
        hit = self.lookup(program, fingerprint)
        return hit[0] if hit else None

    def put(self, program: str, fingerprint: str, outcome: dict, runs: int = 1) -> None:
        """Record ``outcome`` as seen by ``runs`` agreeing runs (transient verdicts are not kept)."""
        if outcome["verdict"] in _NOT_CACHED:
            return
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?)",
                (program, fingerprint, json.dumps(outcome), runs),
            )

    def drop(self, program: str, fingerprint: str) -> None:
        """Forget a program's verdict (its runs disagreed)."""
        with self._lock:
            self._conn.execute("DELETE FROM verdicts WHERE program = ? AND fingerprint = ?", (program, fingerprint))

    def close(self) -> None:
        self._conn.close()
