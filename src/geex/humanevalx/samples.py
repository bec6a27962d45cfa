"""Sample files: what the evaluator reads (see ``docs/formats.md``).

JSON Lines (plain or gzip, told by the content): one object per line, ``task_id`` and the completion
as ``generation`` (CodeGeeX) or ``completion`` (human-eval / bigcode style). Optional:
``completion_id``, and for translation ``source_language`` (the task id names the *target* problem).
A first line with a ``"geex"`` key is the file's header and is skipped. A task id's language prefix
may be spelt in any case or as an alias (``python/0`` is ``Python/0``). Also read: bigcode's
``generations.json`` (a JSON list, one list of strings per task, in dataset order). Errors name the
file and line; nothing is evaluated until the whole file has been read.
"""

from __future__ import annotations

import json
import re
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from geex import jsonl
from geex.errors import UserError
from geex.humanevalx.dataset import load_language
from geex.humanevalx.problem import Problem
from geex.jsonl import json_kind
from geex.languages import HUMANEVALX_LANGUAGES, Language, canonical_task_id, get_language, language_of_task


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


def _parse_line(obj: object, where: str, lineno: int, counters: Counter) -> Sample:
    """One sample from one line's JSON value (``where``: ``path:line`` for messages)."""
    if not isinstance(obj, dict):
        raise UserError(f"{where}: expected a JSON object, got {json_kind(obj)}")
    task_id = obj.get("task_id")
    if not isinstance(task_id, str):
        raise UserError(f"{where}: missing or non-string 'task_id'")
    text = obj.get("generation", obj.get("completion"))
    if not isinstance(text, str):
        raise UserError(f"{where}: needs a string 'generation' or 'completion' field")
    text = _storable(text)
    source = obj.get("source_language", obj.get("src_lang"))
    if source is not None and not isinstance(source, str):
        raise UserError(f"{where}: 'source_language' must be a language name")
    try:
        task_id = canonical_task_id(task_id)
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


def _storable(text: str) -> str:
    """JSON may carry lone surrogates ("\ud800"), which no file or hash can hold: the sample gets "?"
    in their place and is evaluated like any other."""
    return text.encode("utf-8", "replace").decode("utf-8")


def _whole_json(path: Path) -> object | None:
    """The file as one JSON value if it is a JSON array (bigcode's ``generations.json``); None for
    JSON Lines."""
    try:
        with jsonl.open_binary(path) as f:
            if not f.read(4096).lstrip().startswith(b"["):
                return None
        with jsonl.open_binary(path) as f:
            return json.loads(f.read().decode("utf-8"))
    except (ValueError, EOFError, OSError, zlib.error):
        return None  # not one JSON document: read as JSON Lines, which names the line at fault


def read_samples(path: str | Path, languages: list[Language] | None = None, dataset: str | Path | None = None,
                 original: bool = False) -> list[Sample]:
    """All samples of a JSONL file (plain or gzip) or of bigcode's ``generations.json`` (see
    ``read_bigcode``; ``languages``, ``dataset`` and ``original`` are for it). Validated as a whole
    before anything runs; errors name the file and line."""
    path = Path(path)
    if path.is_dir():
        hint = f" (did you mean {path / 'samples.jsonl'}?)" if (path / "samples.jsonl").is_file() else ""
        raise UserError(f"{path} is a directory, not a samples file{hint}")
    if not path.is_file():
        raise UserError(f"samples file {path} does not exist")
    data = _whole_json(path)
    if isinstance(data, list) and any(isinstance(item, list) for item in data):
        return read_bigcode(path, data, languages, dataset, original)
    if isinstance(data, list) and data:
        raise UserError(f"{path} is a JSON array, not JSON Lines: write one sample object per line (bigcode's "
                        "generations.json, a list of lists of strings, is read too)")
    samples: list[Sample] = []
    counters: Counter = Counter()
    seen: set[str] = set()
    for lineno, text in jsonl.lines(path):
        if not text.strip():
            continue
        where = f"{path}:{lineno}"
        obj = jsonl.parse_line(text, where)
        if isinstance(obj, dict) and "geex" in obj and not samples:
            continue  # header line
        sample = _parse_line(obj, where, lineno, counters)
        if sample.sample_id in seen:
            raise UserError(f"{where}: duplicate sample {sample.sample_id}")
        seen.add(sample.sample_id)
        samples.append(sample)
    if not samples:
        raise UserError(f"{path} holds no samples")
    return samples


def read_bigcode(path: Path, data: list, languages: list[Language] | None = None,
                 dataset: str | Path | None = None, original: bool = False) -> list[Sample]:
    """bigcode-evaluation-harness's ``generations.json``: a list with one list of strings per task, in
    the dataset's order, for one language. Task ``i`` is the language's ``i``-th problem; the language
    is the one ``--languages`` names, else the one the file's name or its generations show. The
    harness saves each generation with its prompt in front: a generation that starts with the
    problem's prompt (as fixed or as published, whitespace at its ends aside) has it removed; any
    other is taken as the completion itself."""
    for i, item in enumerate(data):
        bad = next((g for g in item if not isinstance(g, str)), None) if isinstance(item, list) else item
        if not isinstance(item, list) or bad is not None:
            raise UserError(f"{path}: task {i} holds {jsonl.json_kind(bad)}; a bigcode generations file is "
                            "a list of lists of strings (one list per task)")
    language = _bigcode_language(path, data, languages, dataset, original)
    problems = load_language(language, dataset, original)
    if len(data) > len(problems):
        raise UserError(f"{path} holds {len(data)} tasks, but {language.display} has {len(problems)} problems")
    published = problems if original else load_language(language, dataset, original=True)
    samples = []
    for i, generations in enumerate(data):
        prompts = {problems[i].prompt, published[i].prompt}
        for j, text in enumerate(generations):
            samples.append(Sample(problems[i].task_id, language, _storable(_without_prompt(text, prompts)), j))
    if not samples:
        raise UserError(f"{path} holds no samples")
    return samples


def _without_prompt(text: str, prompts: set[str]) -> str:
    """``text`` after the longest of ``prompts`` it starts with (ends' whitespace aside), else ``text``."""
    best = None
    for prompt in prompts:
        for head in (prompt, prompt.rstrip(), prompt.strip()):
            if head and text.startswith(head) and (best is None or len(head) > len(best)):
                best = head
        stripped = prompt.strip()
        if best is None and stripped and text.lstrip().startswith(stripped):
            return text.lstrip()[len(stripped):]
    return text[len(best):] if best is not None else text


def _bigcode_language(path: Path, data: list, languages: list[Language] | None,
                      dataset: str | Path | None, original: bool) -> Language:
    """The one language of a bigcode file: ``languages``, else its name, else its generations."""
    if languages:
        if len(languages) > 1:
            raise UserError(f"{path} is a bigcode generations file, which holds one language: pass exactly one "
                            f"with `languages` (got {', '.join(lang.name for lang in languages)})")
        return languages[0]
    named = list(dict.fromkeys(lang for word in re.split(r"[^a-z0-9+]+", path.stem.lower()) if word
                               for lang in HUMANEVALX_LANGUAGES if word in (lang.name, *lang.aliases)))
    if len(named) == 1:
        return named[0]
    candidates = named or list(HUMANEVALX_LANGUAGES)
    shown = {}
    for lang in candidates:
        try:
            problems = load_language(lang, dataset, original)
        except UserError:
            continue  # a language the data source lacks cannot be this file's
        shown[lang] = sum(1 for p, generations in zip(problems, data)
                          if p.prompt.strip() and any(g.lstrip().startswith(p.prompt.strip()) for g in generations))
    best = max(shown.values(), default=0)
    found = [lang for lang, n in shown.items() if n == best and n > 0]
    if len(found) == 1:
        return found[0]
    hint = f" (its name mentions {', '.join(lang.name for lang in named)})" if named else ""
    raise UserError(f"{path} is a bigcode generations file (a list per task) whose language cannot be told "
                    f"from its name or its generations{hint}: pass it with `languages`, e.g. `languages`=python")


def canonical_samples(problems: dict[str, Problem]) -> list[Sample]:
    """The reference solutions as samples (one per problem)."""
    return [Sample(p.task_id, p.language, p.canonical_solution, 0) for p in problems.values()]


def check_against_problems(samples: list[Sample], problems: dict[str, Problem], path: str) -> None:
    """Every sample must name a loaded problem (its target; a translation's source needs none)."""
    for s in samples:
        if s.task_id not in problems:
            numbers = sorted(p.number for p in problems.values() if p.language == s.language)
            known = (f"{s.language.display}'s are {s.language.task_prefix}/{numbers[0]} .. "
                     f"{s.language.task_prefix}/{numbers[-1]}" if numbers else "none loaded")
            raise UserError(f"{path}:{s.line}: unknown task {s.task_id!r} ({known})")
