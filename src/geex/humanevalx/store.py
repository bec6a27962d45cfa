"""Where results live: the run's append-only ``results.jsonl`` (resume) and a verdict cache.

``results.jsonl`` gets one line per sample, written with a single ``write`` and flushed as soon as
the sample finishes. After a crash (even ``kill -9``) at most the line being written is torn; it
is dropped on the next open, and samples already recorded are not run again. A line is only valid
for the same sample *and* the same program (hash), so editing the samples file re-runs what changed.

The cache (SQLite, shared by all runs of a machine) maps (program hash, toolchain fingerprint) to an
outcome, so a program seen before (duplicates at low temperature, a re-run into a new directory)
is not executed again. Timeouts and harness errors are never cached: they may be transient.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from pathlib import Path

from geex.humanevalx.verdict import Verdict

_NOT_CACHED = {Verdict.TIMEOUT.value, Verdict.HARNESS_ERROR.value}


class ResultsLog:
    """Append-only JSONL of per-sample results, tolerant of a torn last line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: dict[str, dict] = {}
        self.torn_lines = 0
        if path.exists():
            self._load()
        self._lock = threading.Lock()
        self._file = open(path, "a", encoding="utf-8")

    def _load(self) -> None:
        data = self.path.read_bytes()
        good_end = 0
        pos = 0
        for raw in data.splitlines(keepends=True):
            pos += len(raw)
            try:
                if not raw.endswith(b"\n"):
                    raise ValueError("torn")
                rec = json.loads(raw)
                self.records[rec["sample_id"]] = rec  # the last line for a sample wins
                good_end = pos
            except (ValueError, KeyError, TypeError):
                self.torn_lines += 1
                if pos == len(data):
                    break  # a torn final line: cut it off below
        if good_end < len(data) and self.torn_lines:
            with open(self.path, "r+b") as f:
                f.truncate(good_end)

    def done(self, sample_id: str, program_sha256: str, fingerprint: str) -> dict | None:
        """The recorded result of this sample, if it was for the same program under the same
        toolchain, recipes, limits and isolation (else it must run again)."""
        rec = self.records.get(sample_id)
        if rec is None or rec.get("program_sha256") != program_sha256 or rec.get("fingerprint") != fingerprint:
            return None
        return rec if isinstance(rec.get("verdict"), str) and isinstance(rec.get("passed"), bool) else None

    def append(self, record: dict) -> None:
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()
            os.fsync(self._file.fileno())
            self.records[record["sample_id"]] = record

    def close(self) -> None:
        self._file.close()


class VerdictCache:
    """(program hash, fingerprint) → outcome dict, in SQLite (safe across threads and processes)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(path, timeout=60, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS outcomes (program TEXT, fingerprint TEXT, outcome TEXT, "
            "PRIMARY KEY (program, fingerprint))"
        )
        self._lock = threading.Lock()

    def get(self, program: str, fingerprint: str) -> dict | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT outcome FROM outcomes WHERE program = ? AND fingerprint = ?", (program, fingerprint)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, program: str, fingerprint: str, outcome: dict) -> None:
        if outcome["verdict"] in _NOT_CACHED:
            return
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO outcomes VALUES (?, ?, ?)", (program, fingerprint, json.dumps(outcome))
            )

    def close(self) -> None:
        self._conn.close()
