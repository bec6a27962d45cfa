"""``geex humanevalx evaluate``: samples → programs → sandboxed runs → results.jsonl → report.

Resume and caching: a sample already in ``OUT/results.jsonl`` with the same program hash and
fingerprint (toolchain, recipes, limits, isolation, the harness's own code) is not run again
(harness errors are retried). Identical programs inside one run share their runs, and a program in
the machine-wide cache under the same fingerprint is served from it, but neither on the word of a
single run: ``flaky.py`` decides how often a program runs and what its copies get.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections import Counter, defaultdict
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from geex.errors import UserError
from geex.files import sha256_of
from geex.humanevalx.assembly import assemble
from geex.humanevalx.config import CANONICAL, EvalConfig
from geex.humanevalx.dataset import load_problems, resolve_dataset_dir
from geex.humanevalx.execution.pool import LocalPool, Pool
from geex.humanevalx.execution.program import Program
from geex.humanevalx.execution.runners import cache_root, get_runner
from geex.humanevalx.execution.sandbox import Sandbox, detect_isolation
from geex.humanevalx.execution.verdict import Verdict
from geex.humanevalx.fixes import FIXES_VERSION
from geex.humanevalx.flaky import ProgramRuns
from geex.humanevalx.identity import verdict_fingerprint
from geex.humanevalx.outdir import OutDir
from geex.humanevalx.reporting.run_report import build_report, write_report
from geex.humanevalx.result import Result
from geex.humanevalx.samples import Sample, canonical_samples, check_against_problems, read_samples
from geex.humanevalx.store import ResultsLog, VerdictCache
from geex.languages import Language, parse_languages


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


def verdict_cache_path() -> Path:
    """The machine's verdict cache (under ``$GEEX_CACHE``), or ``$GEEX_VERDICT_CACHE`` (the test
    suite's own, fresh every session: a warm cache must never answer for the code under test)."""
    env = os.environ.get("GEEX_VERDICT_CACHE")
    return Path(env) if env else cache_root() / "humanevalx" / "verdicts.sqlite"


def _result(sample: Sample, program_sha256: str, outcome: dict, fingerprint: str, runs: ProgramRuns) -> Result:
    return Result.from_outcome(
        outcome=outcome, sample_id=sample.sample_id, task_id=sample.task_id, language=sample.language.name,
        source_language=sample.source_language.name if sample.source_language else None,
        completion_id=sample.completion_id, program_sha256=program_sha256, fingerprint=fingerprint,
        cached=runs.trusted, flaky=runs.flaky, verdicts_seen=runs.verdicts_seen() if runs.flaky else None,
        node=None if runs.trusted else outcome.get("node"))


def _progress(cfg: EvalConfig) -> Progress:
    progress = Progress(
        TextColumn("{task.description:>8}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("[green]✓{task.fields[ok]}[/] [red]✗{task.fields[bad]}[/]"), TimeElapsedColumn(),
        console=cfg.console, disable=not cfg.progress, transient=False,
    )
    return progress


def _identity(cfg: EvalConfig, samples: list[Sample]) -> dict:
    """What the results in OUT are of (``outdir.py``): a new evaluation into OUT must match it."""
    if cfg.samples == CANONICAL:
        digest = hashlib.sha256(json.dumps([[s.sample_id, s.completion] for s in samples]).encode()).hexdigest()
    else:
        digest = sha256_of(cfg.samples)
    return {
        "samples": cfg.samples,
        "samples_sha256": digest,
        "dataset_variant": "original" if cfg.original else FIXES_VERSION,
        "languages": sorted(lang.name for lang in cfg.languages) if cfg.languages else None,
        "cleanup": cfg.clean,
    }


def evaluate(cfg: EvalConfig) -> dict:
    """Run the evaluation described by ``cfg``; returns the report (also written to OUT).

    OUT is locked for the whole evaluation and must hold results of the same evaluation, if any
    (``outdir.py``)."""
    samples, problems = _load(cfg)
    with OutDir(cfg.out_dir, _identity(cfg, samples)):
        try:
            (cfg.out_dir / "results.jsonl").touch()
        except OSError as e:
            raise UserError(f"cannot write the output directory {cfg.out_dir}: {e.strerror or e}") from None
        return _evaluate(cfg, samples, problems)


def _evaluate(cfg: EvalConfig, samples: list[Sample], problems: dict) -> dict:
    """Plan (which programs still need a verdict), execute them, report."""
    with contextlib.ExitStack() as opened:  # closed in reverse: the pool, the cache, the log
        log = ResultsLog(cfg.out_dir / "results.jsonl")
        opened.callback(log.close)
        cache = VerdictCache(verdict_cache_path()) if cfg.use_cache else None
        if cache is not None:
            opened.callback(cache.close)
        pool, where = _pool(cfg, list(dict.fromkeys(s.language for s in samples)))
        opened.callback(pool.close)
        plan = _plan(cfg, samples, problems, where["fingerprints"], log)
        if plan.resumed:
            cfg.console.print(f"resuming: {plan.resumed} of {len(samples)} samples already in {log.path}")
        started = time.monotonic()
        _Execution(cfg, problems, plan, pool, log, cache).run()
        wall_s = time.monotonic() - started
    records = [log.records[s.sample_id] for s, _ in plan.programs]
    meta = {
        "samples": cfg.samples,
        "dataset": {
            "source": str(resolve_dataset_dir(cfg.dataset) or "huggingface-hub"),
            "variant": "original" if cfg.original else FIXES_VERSION,
        },
        **{k: v for k, v in where.items() if k != "fingerprints"},
        "timeout_s": cfg.timeout_s,
        "workers": pool.slots,
        "wall_s": round(wall_s, 2),
        "cleanup": cfg.clean,
        "fingerprints": plan.fingerprints,
    }
    report = build_report(records, cfg.ks, meta)
    write_report(report, cfg.out_dir)
    return report


def _pool(cfg: EvalConfig, languages: list[Language]) -> tuple[Pool, dict]:
    """Where programs run, and what their verdicts are worth there (``fingerprints``, the sandbox,
    the toolchains): this machine's cores, or with ``--ray`` the slots of a Ray cluster's nodes."""
    names = [lang.name for lang in languages]
    if cfg.ray:
        from geex.humanevalx.doctor import hello_program
        from geex.humanevalx.execution.ray_pool import RayPool

        pool = RayPool(cfg.ray, names, cfg.timeout_s, {lang.name: hello_program(lang) for lang in languages},
                       verdict_fingerprint, cfg.console.print, slots_per_node=cfg.workers or None)
        nodes = [{"node": r.name, "cpus": r.cpus, **({"problem": r.problem} if r.problem else {})} for r in pool.nodes]
        return pool, {"isolation": pool.isolation, "memory_limit": pool.memory_limit, "toolchains": pool.versions,
                      "fingerprints": pool.fingerprints, "ray": {"nodes": nodes}}
    isolation = detect_isolation()
    # an allow-list view: the output directory, the dataset, homes and caches are simply not there
    sandbox = Sandbox(isolation=isolation)
    runners = {name: get_runner(name) for name in names}
    workers = cfg.workers or len(os.sched_getaffinity(0)) or 1  # the cores this process may use
    return LocalPool(sandbox, runners, workers, cfg.timeout_s), {
        "isolation": isolation.value, "memory_limit": sandbox.memory_mechanism,
        "toolchains": {name: r.cached_status.version for name, r in runners.items()},
        "fingerprints": {name: verdict_fingerprint(r, sandbox, cfg.timeout_s) for name, r in runners.items()}}


@dataclass
class Plan:
    """What an evaluation has left to do. Only program hashes are kept: programs (prompt +
    completion + test) would need ~0.5 GB at n=200; each unique program is assembled again from its
    first sample when it runs."""

    fingerprints: dict[str, str]  # language → verdict fingerprint
    programs: list[tuple[Sample, str]]  # every sample with its program's hash, in file order
    first_sample: dict[str, Sample]  # program hash → the sample it is assembled from
    pending: dict[str, list[Sample]]  # program hash → the samples waiting for its verdict
    totals: Counter  # language → samples
    done: dict[str, Counter]  # language → Counter(passed) of the samples already in results.jsonl

    @property
    def resumed(self) -> int:
        return sum(sum(c.values()) for c in self.done.values())


def _program(cfg: EvalConfig, problems: dict, s: Sample) -> Program:
    return assemble(problems[s.task_id], s.completion, translation=s.source_language is not None, clean=cfg.clean)


def _plan(cfg: EvalConfig, samples: list[Sample], problems: dict, fingerprints: dict[str, str],
          log: ResultsLog) -> Plan:
    """Each sample's program; those already recorded under the same fingerprint are done (harness
    errors are retried); identical programs wait for one verdict together."""
    plan = Plan(fingerprints, [], {}, defaultdict(list), Counter(s.language.name for s in samples),
                defaultdict(Counter))
    for s in samples:
        sha = _program(cfg, problems, s).sha256
        plan.first_sample.setdefault(sha, s)
        plan.programs.append((s, sha))
        rec = log.done(s.sample_id, sha, fingerprints[s.language.name])
        if rec is not None and rec.verdict is not Verdict.HARNESS_ERROR:
            plan.done[s.language.name][rec.passed] += 1
        else:
            plan.pending[sha].append(s)
    return plan


class _Execution:
    """Runs a plan's pending programs in a pool's slots, each as often as ``flaky.ProgramRuns`` asks,
    serving trusted cached verdicts first; every sample's record is appended to results.jsonl as
    soon as its program's verdict is settled."""

    def __init__(self, cfg: EvalConfig, problems: dict, plan: Plan, pool: Pool, log: ResultsLog,
                 cache: VerdictCache | None) -> None:
        self.cfg, self.problems, self.plan, self.pool = cfg, problems, plan, pool
        self.log, self.cache = log, cache

    def run(self) -> None:
        with _progress(self.cfg) as self.progress:
            languages = dict.fromkeys(s.language.name for s, _ in self.plan.programs)
            self.bars = {lang: self.progress.add_task(lang, total=self.plan.totals[lang],
                                                      completed=sum(self.plan.done[lang].values()),
                                                      ok=self.plan.done[lang][True], bad=self.plan.done[lang][False])
                         for lang in languages}
            self._run_all()

    def _run_all(self) -> None:
        programs: dict[str, ProgramRuns] = {}
        for sha, copies in list(self.plan.pending.items()):
            hit = self.cache.lookup(sha, self._fingerprint(sha)) if self.cache else None
            programs[sha] = ProgramRuns(len(copies), hit)
            if programs[sha].trusted:
                self._settle(sha, programs[sha])
        to_run = [sha for sha, runs in programs.items() if not runs.trusted]
        for problem in self.pool.prepare({self.plan.first_sample[sha].language.name for sha in to_run}):
            self.cfg.console.print(f"[red]HARNESS ERROR[/]: {problem}")
        futures: dict[Future, str] = {}

        def submit(sha: str, n: int) -> set[Future]:
            program = _program(self.cfg, self.problems, self.plan.first_sample[sha])
            new = {self.pool.submit(program) for _ in range(n)}
            futures.update(dict.fromkeys(new, sha))
            return new

        try:
            not_done: set[Future] = set()
            for sha in to_run:
                not_done |= submit(sha, programs[sha].first_runs())
            while not_done:
                finished, not_done = wait(not_done, return_when=FIRST_COMPLETED)
                for fut in finished:
                    sha = futures.pop(fut)
                    runs = programs[sha]
                    more = runs.add(fut.result().as_dict())
                    if more:  # flaky: every copy gets a run of its own
                        not_done |= submit(sha, more)
                    if runs.done:
                        self._settle(sha, runs)
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise

    def _fingerprint(self, sha: str) -> str:
        return self.plan.fingerprints[self.plan.first_sample[sha].language.name]

    def _settle(self, sha: str, runs: ProgramRuns) -> None:
        """The program's verdict is decided: the cache learns it (a flaky one is dropped, never
        frozen) and each waiting sample gets its record."""
        if self.cache is not None and not runs.trusted:
            update = runs.cache_update()
            if update is None:
                self.cache.drop(sha, self._fingerprint(sha))
            elif update is not runs.cached:
                self.cache.put(sha, self._fingerprint(sha), *update)
        lang = self.plan.first_sample[sha].language.name
        done = self.plan.done[lang]
        for s, outcome in zip(self.plan.pending.pop(sha), runs.outcomes()):
            result = _result(s, sha, outcome, self._fingerprint(sha), runs)
            self.log.append(result)
            done[result.passed] += 1
            self.progress.update(self.bars[lang], advance=1, ok=done[True], bad=done[False])
