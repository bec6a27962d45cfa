"""``geex humanevalx evaluate``: samples → programs → sandboxed runs → results.jsonl → report.

Resume and caching: a sample already in ``OUT/results.jsonl`` with the same program hash and
fingerprint (toolchain, recipes, limits, isolation) is not run again (harness errors are retried);
a program already in the machine-wide cache under the same fingerprint is not run again either;
identical programs inside one run are run once.
"""

from __future__ import annotations

import hashlib
import os
import queue
import shutil
import time
from collections import Counter, defaultdict
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from geex.errors import UserError
from geex.humanevalx.assembly import Program, assemble
from geex.humanevalx.dataset import load_problems, resolve_dataset_dir
from geex.humanevalx.fixes import FIXES_VERSION
from geex.humanevalx.report import build_report, write_report
from geex.humanevalx.runners import Outcome, RunContext, cache_root, get_runner, make_jobs_root
from geex.humanevalx.samples import Sample, canonical_samples, check_against_problems, read_samples
from geex.humanevalx.sandbox import Sandbox, detect_isolation
from geex.humanevalx.store import ResultsLog, VerdictCache
from geex.humanevalx.verdict import Verdict
from geex.languages import Language, parse_languages

CANONICAL = "canonical"


@dataclass
class EvalConfig:
    samples: str  # a JSONL path, or "canonical"
    out_dir: Path
    languages: list[Language] | None = None
    workers: int = 0  # 0: all cores
    ks: tuple[int, ...] = (1, 10, 100)
    timeout_s: float = 10.0
    dataset: str | None = None
    original: bool = False
    use_cache: bool = True
    clean: bool = True
    progress: bool = True
    console: Console = field(default_factory=lambda: Console(stderr=True))


def _load(cfg: EvalConfig) -> tuple[list[Sample], dict]:
    if cfg.samples == CANONICAL:
        languages = cfg.languages or parse_languages(None)
        problems = load_problems(languages, cfg.dataset, cfg.original)
        return canonical_samples(problems), problems
    samples = read_samples(cfg.samples, cfg.languages, cfg.dataset, cfg.original)
    if cfg.languages:
        wanted = set(cfg.languages)
        samples = [s for s in samples if s.language in wanted]
        if not samples:
            raise UserError(f"{cfg.samples} holds no samples of {', '.join(l.name for l in cfg.languages)}")
    needed = list(dict.fromkeys(s.language for s in samples))
    problems = load_problems(needed, cfg.dataset, cfg.original)
    check_against_problems(samples, problems, cfg.samples)
    return samples, problems


def _record(sample: Sample, program_sha256: str, outcome: dict, fingerprint: str, cached: bool) -> dict:
    return {
        "sample_id": sample.sample_id,
        "task_id": sample.task_id,
        "language": sample.language.name,
        "source_language": sample.source_language.name if sample.source_language else None,
        "completion_id": sample.completion_id,
        "program_sha256": program_sha256,
        **outcome,
        "passed": outcome["verdict"] == Verdict.PASSED.value,
        "fingerprint": fingerprint,
        "cached": cached,
    }


def _progress(cfg: EvalConfig) -> Progress:
    progress = Progress(
        TextColumn("{task.description:>8}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("[green]✓{task.fields[ok]}[/] [red]✗{task.fields[bad]}[/]"), TimeElapsedColumn(),
        console=cfg.console, disable=not cfg.progress, transient=False,
    )
    return progress


def evaluate(cfg: EvalConfig) -> dict:
    """Run the evaluation described by ``cfg``; returns the report (also written to OUT)."""
    samples, problems = _load(cfg)
    try:
        cfg.out_dir.mkdir(parents=True, exist_ok=True)
        (cfg.out_dir / "results.jsonl").touch()
    except OSError as e:
        raise UserError(f"cannot write the output directory {cfg.out_dir}: {e.strerror or e}") from None
    sandbox_isolation = detect_isolation()
    dataset_dir = resolve_dataset_dir(cfg.dataset)
    hide = [Path.home(), cfg.out_dir.resolve(), cache_root()]
    if dataset_dir is not None:
        hide.append(dataset_dir.resolve())
    # never mount an empty tmpfs over / or a system directory (HOME=/ or --out /usr/...)
    hide = [p for p in hide if len(p.parts) > 2 or p.parts[1:2] in (("home",), ("root",))]
    sandbox = Sandbox(hide=hide, isolation=sandbox_isolation)

    languages = list(dict.fromkeys(s.language.name for s in samples))
    runners = {lang: get_runner(lang) for lang in languages}
    # a verdict is reusable only under the same toolchain, recipe, limits *and* isolation
    fingerprints = {
        lang: hashlib.sha256(f"{r.fingerprint(cfg.timeout_s)}|{sandbox_isolation.value}".encode()).hexdigest()[:16]
        for lang, r in runners.items()
    }

    def program_of(s: Sample) -> Program:
        problem = problems[s.task_id]
        return assemble(problem, s.completion, translation=s.source_language is not None, clean=cfg.clean)

    # Only hashes are kept: programs (prompt + completion + test) would need ~0.5 GB at n=200;
    # each unique program is assembled again from its first sample when it runs.
    first_sample: dict[str, Sample] = {}
    sample_program: list[tuple[Sample, str]] = []
    for s in samples:
        sha = program_of(s).sha256
        first_sample.setdefault(sha, s)
        sample_program.append((s, sha))

    log = ResultsLog(cfg.out_dir / "results.jsonl")
    cache = VerdictCache(cache_root() / "humanevalx" / "verdicts.sqlite") if cfg.use_cache else None
    pending: dict[str, list[Sample]] = defaultdict(list)  # program → samples waiting for it
    totals: Counter = Counter(s.language.name for s in samples)
    done_counts: dict[str, Counter] = defaultdict(Counter)
    for s, sha in sample_program:
        rec = log.done(s.sample_id, sha, fingerprints[s.language.name])
        if rec is not None and rec["verdict"] != Verdict.HARNESS_ERROR.value:  # those are retried
            done_counts[s.language.name][rec["passed"]] += 1
        else:
            pending[sha].append(s)

    resumed = sum(sum(c.values()) for c in done_counts.values())
    if resumed:
        cfg.console.print(f"resuming: {resumed} of {len(samples)} samples already in {log.path}")

    workers = cfg.workers or len(os.sched_getaffinity(0)) or 1  # the cores this process may use
    jobs_root = make_jobs_root()
    contexts: queue.Queue[RunContext] = queue.Queue()
    for slot in range(workers):
        contexts.put(RunContext(sandbox, jobs_root, slot, cfg.timeout_s))

    def run_one(sha: str) -> Outcome:
        program = program_of(first_sample[sha])
        ctx = contexts.get()
        try:
            return runners[program.language.name].execute(program, ctx)
        except Exception as e:  # a harness bug must not stop the run: record it loudly
            return Outcome(Verdict.HARNESS_ERROR, "harness", detail=f"internal error: {type(e).__name__}: {e}")
        finally:
            contexts.put(ctx)

    started = time.monotonic()
    try:
        with _progress(cfg) as progress:
            bars = {
                lang: progress.add_task(
                    lang, total=totals[lang], completed=sum(done_counts[lang].values()),
                    ok=done_counts[lang][True], bad=done_counts[lang][False],
                )
                for lang in languages
            }

            def finish(sha: str, outcome: dict, cached: bool) -> None:
                lang = first_sample[sha].language.name
                for s in pending.pop(sha):
                    rec = _record(s, sha, outcome, fingerprints[lang], cached)
                    log.append(rec)
                    done_counts[lang][rec["passed"]] += 1
                    progress.update(bars[lang], advance=1, ok=done_counts[lang][True], bad=done_counts[lang][False])

            to_run = []
            for sha in list(pending):
                hit = cache.get(sha, fingerprints[first_sample[sha].language.name]) if cache else None
                if hit is not None:
                    finish(sha, hit, cached=True)
                else:
                    to_run.append(sha)
            for lang in {first_sample[sha].language.name for sha in to_run}:
                try:
                    runners[lang].prepare(sandbox)
                except RuntimeError as e:
                    cfg.console.print(f"[red]HARNESS ERROR[/]: {e}")
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="geex-eval") as pool:
                futures: dict[Future, str] = {pool.submit(run_one, sha): sha for sha in to_run}
                try:
                    not_done = set(futures)
                    while not_done:
                        finished, not_done = wait(not_done, return_when=FIRST_COMPLETED)
                        for fut in finished:
                            sha = futures[fut]
                            outcome = fut.result().as_dict()
                            if cache is not None:
                                cache.put(sha, fingerprints[first_sample[sha].language.name], outcome)
                            finish(sha, outcome, cached=False)
                except BaseException:
                    for fut in futures:
                        fut.cancel()
                    raise
    finally:
        while not contexts.empty():
            contexts.get().close()
        shutil.rmtree(jobs_root, ignore_errors=True)
        log.close()
        if cache is not None:
            cache.close()

    records = [log.records[s.sample_id] for s, _ in sample_program]
    meta = {
        "samples": cfg.samples,
        "dataset": {
            "source": str(dataset_dir) if dataset_dir else "huggingface-hub",
            "variant": "original" if cfg.original else FIXES_VERSION,
        },
        "isolation": sandbox_isolation.value,
        "timeout_s": cfg.timeout_s,
        "workers": workers,
        "wall_s": round(time.monotonic() - started, 2),
        "cleanup": cfg.clean,
        "toolchains": {lang: r.cached_status.version for lang, r in runners.items()},
        "fingerprints": fingerprints,
    }
    report = build_report(records, cfg.ks, meta)
    write_report(report, cfg.out_dir)
    return report
