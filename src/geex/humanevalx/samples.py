"""Sample files: what the evaluator reads (see ``docs/formats.md``).

One JSON object per line: ``task_id`` and the completion as ``generation`` (CodeGeeX) or
``completion`` (human-eval / bigcode style). Optional: ``completion_id``, and for translation
``source_language`` (the task id names the *target* problem). A first line with a ``"geex"`` key is
the file's header and is skipped. Errors name the file and line; nothing is evaluated until the
whole file has been read.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from geex.errors import UserError
from geex.humanevalx.dataset import Problem
from geex.languages import Language, get_language, language_of_task


@dataclass(frozen=True)
class Sample:
    """One completion to evaluate."""

    task_id: str  # the problem whose test runs (the target for translation)
    language: Language
    completion: str
    completion_id: int
    source_language: Language | None = None  # set for translation samples
    line: int = 0  # 1-based line in the samples file (0 for canonical)

    @property
    def sample_id(self) -> str:
        """Stable identity across runs: the resume key (with the program hash)."""
        src = f"{self.source_language.name}->" if self.source_language else ""
        return f"{src}{self.task_id}#{self.completion_id}"


def _open(path: Path):
    """Binary: lines are decoded one at a time, so that a decoding error can name its line."""
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _parse_line(obj: object, path: Path, lineno: int, counters: Counter) -> Sample:
    where = f"{path}:{lineno}"
    if not isinstance(obj, dict):
        raise UserError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    task_id = obj.get("task_id")
    if not isinstance(task_id, str):
        raise UserError(f"{where}: missing or non-string 'task_id'")
    text = obj.get("generation", obj.get("completion"))
    if not isinstance(text, str):
        raise UserError(f"{where}: needs a string 'generation' or 'completion' field")
    # JSON may carry lone surrogates ("\ud800"), which no file or hash can hold: the sample gets
    # "?" in their place and is evaluated like any other
    text = text.encode("utf-8", "replace").decode("utf-8")
    source = obj.get("source_language", obj.get("src_lang"))
    if source is not None and not isinstance(source, str):
        raise UserError(f"{where}: 'source_language' must be a language name")
    try:
        language = language_of_task(task_id)
        source_language = get_language(source) if source else None
        declared = obj.get("language")
        declared_language = get_language(declared) if isinstance(declared, str) else None
    except UserError as e:
        raise UserError(f"{where}: {e}") from None
    if declared_language is not None and declared_language != language:
        raise UserError(f"{where}: 'language' {declared!r} contradicts task id {task_id!r}")
    key = (source_language.name if source_language else "", task_id)
    cid = obj.get("completion_id")
    if cid is None:
        cid = counters[key]
    elif not isinstance(cid, int) or isinstance(cid, bool) or cid < 0:
        raise UserError(f"{where}: 'completion_id' must be a non-negative integer")
    counters[key] = max(counters[key], cid) + 1
    return Sample(task_id, language, text, cid, source_language, lineno)


def read_samples(path: str | Path) -> list[Sample]:
    """All samples of a JSONL (or .jsonl.gz) file, validated; raises UserError naming the line."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"samples file {path} does not exist")
    samples: list[Sample] = []
    counters: Counter = Counter()
    seen: set[str] = set()
    try:
        with _open(path) as f:
            for lineno, raw in enumerate(f, 1):
                where = f"{path}:{lineno}"
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise UserError(f"{where}: not UTF-8 text ({e.reason} at byte {e.start + 1})") from None
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise UserError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
                if isinstance(obj, dict) and "geex" in obj and not samples:
                    continue  # header line
                sample = _parse_line(obj, path, lineno, counters)
                if sample.sample_id in seen:
                    raise UserError(f"{where}: duplicate sample {sample.sample_id}")
                seen.add(sample.sample_id)
                samples.append(sample)
    except (OSError, EOFError) as e:
        raise UserError(f"cannot read {path}: {e}") from None
    if not samples:
        raise UserError(f"{path} holds no samples")
    return samples


def canonical_samples(problems: dict[str, Problem]) -> list[Sample]:
    """The reference solutions as samples (one per problem)."""
    return [Sample(p.task_id, p.language, p.canonical_solution, 0) for p in problems.values()]


def check_against_problems(samples: list[Sample], problems: dict[str, Problem], path: str) -> None:
    """Every sample must name a loaded problem (its target; a translation's source needs none)."""
    for s in samples:
        if s.task_id not in problems:
            raise UserError(f"{path}:{s.line}: unknown task {s.task_id!r} (not in the loaded problems)")
