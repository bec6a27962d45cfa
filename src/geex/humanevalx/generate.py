"""``geex humanevalx generate``: a model's samples for the HumanEval-X benchmark, resumable.

Prompts (``geex.humanevalx.prompts``) are by default the original's: generation = the language tag
line + the problem's prompt; translation = CodeGeeX's translation prompt (source declaration +
solution, target declaration; docstring left out) for any ordered pair of the six languages; the
language's stop rule ends a sample while it is decoded (``geex.languages.cleanup``, the rule the
evaluator cuts with). ``--prompt-style chat`` asks through the model's chat template and takes the
code out of the answer (``geex.humanevalx.extraction``); ``few-shot`` puts worked examples of other
problems before the completion prompt.

Work is a fixed list of units (language or pair, problem, sample index) cut into fixed batches of
one target language; batch ``i`` is generated with seed ``seed + i`` and appended to the file as a
whole, then flushed. A re-run with the same settings keeps the complete batches already in the
file, drops a batch cut short by a crash, and continues: the finished file is the file of an
uninterrupted run, line for line.

File (``docs/formats.md``): a header ``{"geex": "samples/1", ...settings}``, then one object a sample:
``task_id`` (the problem whose test runs: the target for translation), ``language``,
``source_language`` (translation), ``completion_id``, ``prompt``, ``raw`` (the model's text),
``completion`` (cut where the function ends, with the helpers it uses), ``finish_reason``, ``batch``;
chat: ``extraction`` (how the completion was found in the answer: ``method``, ``block``, ``fence``);
few-shot: ``shots`` (the task ids of the worked examples). The header's ``prompt_style`` (absent for
completion prompts) records the instructions, the system message or the examples' seeded rule.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from geex.errors import UserError
from geex.files import Appender, Log, atomic_write, differing, json_lines, read_log
from geex.humanevalx import prompts
from geex.humanevalx.assembly import generation_prompt
from geex.humanevalx.backends import Backend
from geex.humanevalx.config import TASKS, GenerateConfig
from geex.humanevalx.dataset import load_problems
from geex.humanevalx.extraction import extract
from geex.humanevalx.problem import Problem
from geex.humanevalx.prompts import Prompt
from geex.languages import Language, get_language
from geex.languages.cleanup import cleanup

FORMAT = "samples/1"
PROMPT_TEMPLATE = "codegeex-humanevalx/1"  # generation: tag line + prompt; translation: CodeGeeX's format
TEMPLATES = {"completion": PROMPT_TEMPLATE, "chat": "chat/1", "few-shot": "few-shot/1"}


def samples_header(cfg: GenerateConfig, backend: Backend) -> dict:
    """What the samples depend on: a re-run must match it to resume."""
    header = {"geex": FORMAT, "task": cfg.task, "backend": backend.name, "model": backend.model,
              "sampling": asdict(cfg.params), "max_new_tokens": cfg.max_new_tokens, "n": cfg.n,
              "seed": cfg.seed, "batch_size": cfg.batch_size, "limit": cfg.limit,
              "languages": [lang.name for lang in cfg.languages] if cfg.task == "generation" else None,
              "pairs": [f"{s.name}:{t.name}" for s, t in cfg.pairs] if cfg.task == "translation" else None,
              "template": TEMPLATES[cfg.style.name],
              "dataset": "humaneval-x-original" if cfg.original else "humaneval-x-fixed"}
    style = prompts.style_header(cfg.style, cfg.seed)
    return header if style is None else {**header, "prompt_style": style}


@dataclass(frozen=True)
class Unit:
    task_id: str
    language: Language
    completion_id: int
    prompt: Prompt
    source_language: Language | None = None
    context: str = ""  # the code the completion continues (prompt or target declaration), for cleanup


def parse_pairs(spec: str) -> list[tuple[Language, Language]]:
    """``all`` (the 30 ordered pairs of the six languages) or ``SRC:TGT,SRC:TGT``."""
    from geex.languages import HUMANEVALX_LANGUAGES

    if spec.strip() == "all":
        return [(s, t) for s in HUMANEVALX_LANGUAGES for t in HUMANEVALX_LANGUAGES if s != t]
    pairs = []
    for part in spec.split(","):
        src, sep, tgt = part.strip().partition(":")
        if not sep:
            raise UserError(f"`pairs`: {part!r} is not SRC:TGT (e.g. python:cpp) or 'all'")
        s, t = get_language(src), get_language(tgt)
        if s == t:
            raise UserError(f"`pairs`: {part!r} translates a language into itself")
        pairs.append((s, t))
    return list(dict.fromkeys(pairs))  # a pair named twice is generated once


def units(cfg: GenerateConfig) -> list[Unit]:
    """Every sample to generate, in file order."""
    if cfg.task not in TASKS:
        raise UserError(f"unknown task {cfg.task!r} (known: {', '.join(TASKS)})")
    langs = cfg.languages if cfg.task == "generation" else list(dict.fromkeys(x for p in cfg.pairs for x in p))
    problems = load_problems(langs, cfg.dataset, cfg.original)
    by_lang: dict[str, list[Problem]] = {}
    for p in problems.values():
        by_lang.setdefault(p.language.name, []).append(p)
    every = {lang: sorted(ps, key=lambda p: p.number) for lang, ps in by_lang.items()}  # few-shot examples
    out: list[Unit] = []
    if cfg.task == "generation":
        for lang in cfg.languages:
            pool = {p.task_id: p for p in every[lang.name]}
            for p in every[lang.name][: cfg.limit]:
                prompt = prompts.generation(p, cfg.style, pool, cfg.seed)
                out += [Unit(p.task_id, lang, i, prompt, context=generation_prompt(p)) for i in range(cfg.n)]
        return out
    for src, tgt in cfg.pairs:
        sources = {p.number: p for p in every[src.name]}
        pool = {t.task_id: (sources[t.number], t) for t in every[tgt.name] if t.number in sources}
        for target in every[tgt.name][: cfg.limit]:
            if target.number in sources:
                prompt = prompts.translation(sources[target.number], target, cfg.style, pool, cfg.seed)
                out += [Unit(target.task_id, tgt, i, prompt, src, target.declaration) for i in range(cfg.n)]
    return out


def batches(todo: list[Unit], size: int) -> list[list[Unit]]:
    """Consecutive units of one target language, at most ``size`` a batch (the stop rule is a batch's)."""
    out: list[list[Unit]] = []
    for unit in todo:
        if out and len(out[-1]) < size and out[-1][0].language == unit.language:
            out[-1].append(unit)
        else:
            out.append([unit])
    return out


def _record(unit: Unit, raw: str, finish: str, batch: int) -> dict:
    rec = {"task_id": unit.task_id, "language": unit.language.name}
    if unit.source_language is not None:
        rec["source_language"] = unit.source_language.name
    rec.update(completion_id=unit.completion_id, prompt=unit.prompt.text, raw=raw)
    if unit.prompt.messages:  # a chat answer: the code is taken out of it
        found = extract(unit.language, raw, unit.context)
        rec.update(completion=found.completion, extraction=found.record())
    else:
        rec["completion"] = cleanup(unit.language, raw, unit.context)
    if unit.prompt.shots:
        rec["shots"] = list(unit.prompt.shots)
    rec.update(finish_reason=finish, batch=batch)
    return rec


def object_line(value: object) -> dict:
    """A samples-file line's value, which must be a JSON object."""
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def recorded(path: Path, header: dict) -> Log | None:
    """``path``'s lines (read, never changed: not ours until the header says so), or None for no file or
    an empty one; a file that is not a samples file of these settings is refused."""
    if not path.exists() or path.stat().st_size == 0:
        return None
    log = read_log(path, parse=object_line, repair=False)
    found = log.values[0] if log.values else None
    if not isinstance(found, dict) or found.get("geex") != FORMAT:
        raise UserError(f"{path} exists but is not a geex samples file: choose another `out`")
    if found != header:
        raise UserError(f"{path} was generated with other settings ({', '.join(differing(found, header))}): "
                        "choose another `out`, or delete it to start over")
    return log


def resume(path: Path, header: dict, plan: list[list[Unit]]) -> int:
    """Batches already complete in ``path`` (the file is rewritten without a torn tail or an unfinished
    batch); 0 if new."""
    log = recorded(path, header)
    if log is None:
        return 0
    done = log.values[1:]
    complete = complete_prefix(done, plan)
    keep = [r for r in done if r.get("batch", -1) < complete]
    if log.rejected or len(keep) != len(done):
        atomic_write(path, json_lines([header, *keep]))
    return complete


def complete_prefix(records: list[dict], plan: list[list[Unit]]) -> int:
    """How many of the plan's first batches ``records`` hold whole."""
    sizes = Counter(r.get("batch") for r in records)
    complete = 0
    while complete < len(plan) and sizes[complete] == len(plan[complete]):
        complete += 1
    return complete


def run_generate(cfg: GenerateConfig, backend: Backend, out: Path, progress: bool = True,
                 console: Console | None = None) -> Path:
    """Generate (or finish generating) ``out``; returns it."""
    if cfg.n < 1 or cfg.batch_size < 1 or cfg.max_new_tokens < 1:
        raise UserError("`n`, `batch_size` and `max_new_tokens` must be at least 1")
    if cfg.task == "translation" and not cfg.pairs:
        raise UserError("translation needs `pairs` (SRC:TGT,... or all)")
    plan = batches(units(cfg), cfg.batch_size)
    header = samples_header(cfg, backend)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        start = resume(out, header, plan)
        if start == 0:
            atomic_write(out, json_lines([header]))  # never a torn header
    except OSError as e:
        raise UserError(f"cannot write {out}: {e.strerror or e}") from None
    total = sum(len(b) for b in plan)
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=console or Console(stderr=True), disable=not progress)
    with bar, Appender(out) as log:
        task = bar.add_task("generate", total=total, completed=sum(len(b) for b in plan[:start]))
        for i in range(start, len(plan)):
            log.write(generate_batch(cfg, backend, plan[i], i))
            bar.advance(task, len(plan[i]))
    return out


def generate_batch(cfg: GenerateConfig, backend: Backend, batch: list[Unit], i: int) -> list[dict]:
    """The records of batch ``i`` (sampled with seed ``seed + i``: the same whoever makes it)."""
    if cfg.style.name == "chat":
        results = backend.chat([u.prompt.conversation() for u in batch], cfg.params, cfg.max_new_tokens,
                               cfg.seed + i)
    else:
        results = backend.complete([u.prompt.text for u in batch], batch[0].language, cfg.params,
                                   cfg.max_new_tokens, cfg.seed + i)
    return [_record(u, r.text, r.finish_reason, i) for u, r in zip(batch, results)]


def iter_samples(path: Path) -> Iterator[dict]:
    """The sample records of a samples file (the header skipped)."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            obj = json.loads(line)
            if "geex" not in obj:
                yield obj
