"""What several evaluated runs say: pass@k with bootstrap confidence intervals, per-problem pass
rates across languages, and the paper's multilingual budget allocation.

Input is an evaluation directory (``results.jsonl``, and ``samples.jsonl`` when ``geex humanevalx
run`` wrote it; either may be gzipped), so every number can be re-derived from the saved files alone. Harness errors are
left out, as in pass@k everywhere else.

Budget allocation: given samples of the same problems in several languages, a budget of B samples
per problem is split across languages by a strategy; a problem counts as solved if any allocated
sample passes. With n_l samples observed in language l, c_l of them passing, and k_l allocated,
P(solved) = 1 - prod_l C(n_l - c_l, k_l) / C(n_l, k_l) (the pass@k estimator, over languages).
Strategies: the best single language; a uniform split; a split weighted by each language's pass rate.
"""

from __future__ import annotations

import io
import json
import random
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from geex import jsonl
from geex.errors import UserError
from geex.files import sha256_of
from geex.humanevalx.execution.verdict import Verdict
from geex.humanevalx.reporting.metrics import pass_at_k
from geex.humanevalx.reporting.run_report import per_problem
from geex.humanevalx.result import Result
from geex.languages import LANGUAGE_NAMES

STRATEGIES = ("best single language", "uniform", "weighted by pass rate")


def group_order(group: str) -> tuple:
    """Generation groups in HumanEval-X's language order, then translation pairs by source, target."""
    order = LANGUAGE_NAMES
    rank = [(order.index(x) if x in order else len(order), x) for x in group.split("->")]
    return (len(rank), *rank)


@dataclass
class Run:
    name: str
    directory: Path
    records: list[Result]
    header: dict = field(default_factory=dict)

    def groups(self) -> dict[str, dict[int, tuple[int, int]]]:
        """Group ("python", "python->cpp") -> problem number -> (samples, passed); harness errors out."""
        counts: dict[str, dict[int, tuple[int, int]]] = defaultdict(dict)
        for (group, task_id), nc in per_problem(self.records).items():
            counts[group][int(task_id.split("/")[1])] = nc
        return {g: dict(sorted(counts[g].items())) for g in sorted(counts, key=group_order)}

    def verdicts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = defaultdict(lambda: {v.value: 0 for v in Verdict})
        for rec in self.records:
            out[rec.group][rec.verdict.value] += 1
        return {g: out[g] for g in sorted(out, key=group_order)}


def load_run(directory: str | Path) -> Run:
    """An evaluation directory; the last line of a sample wins (as in the evaluator's report)."""
    directory = Path(directory)
    path = _plain_or_gz(directory / "results.jsonl")
    if path is None:
        raise UserError(f"{directory} has no results.jsonl (evaluate samples into it first)")
    latest: dict[str, Result] = {}
    with _open_text(path) as f:
        lines = f.read().split("\n")
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = Result.from_json(json.loads(line))
        except ValueError as e:
            if i == len(lines):  # an unfinished last line (an evaluation still running, or killed)
                break
            raise UserError(f"{path}:{i}: not a results line: {e}") from None
        latest[rec.sample_id] = rec
    header: dict = {}
    samples = _plain_or_gz(directory / "samples.jsonl") or _evaluated_samples(directory)
    if samples is not None:
        with _open_text(samples) as f:
            try:
                first = json.loads(f.readline() or "{}")
            except ValueError:
                raise UserError(f"{samples}:1: not a samples header") from None
            header = first if isinstance(first, dict) and "geex" in first else {}
    name = (header.get("model") or directory.name) + prompt_style_label(header)
    return Run(name, directory, list(latest.values()), header)


def prompt_style_label(header: dict) -> str:
    """`` [chat]`` or `` [3-shot]`` for runs with those prompts (``geex.humanevalx.prompts``); ""
    for CodeGeeX's completion prompts."""
    style = header.get("prompt_style")
    if not isinstance(style, dict):
        return ""
    if style.get("style") == "few-shot":
        return f" [{style.get('shots')}-shot]"
    return f" [{style.get('style')}]"


def _evaluated_samples(directory: Path) -> Path | None:
    """The samples file that ``evaluate`` recorded in the directory's ``run.json`` (samples kept
    elsewhere), if it is still there and still the file that was evaluated (its SHA-256)."""
    try:
        recorded = json.loads((directory / "run.json").read_text(encoding="utf-8"))
        path = Path(recorded["samples"])
        if recorded["samples"] == "canonical" or not path.is_file():
            return None
        digest = sha256_of(path)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return path if digest == recorded.get("samples_sha256") else None


def _plain_or_gz(path: Path) -> Path | None:
    """``path``, or ``path.gz`` (how finished runs are stored in docs/results), or None."""
    for p in (path, path.with_name(path.name + ".gz")):
        if p.is_file():
            return p
    return None


def _open_text(path: Path) -> io.TextIOWrapper:
    """``path`` as UTF-8 text, decompressed if it is gzip (told by its bytes, as ``geex.jsonl`` does)."""
    return io.TextIOWrapper(jsonl.open_binary(path), encoding="utf-8")


def pass_at_k_ci(counts: dict[int, tuple[int, int]], k: int, iterations: int = 1000, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float, float] | None:
    """(mean pass@k, low, high): a percentile bootstrap over problems; None if a problem has < k samples."""
    values = [pass_at_k(n, c, k) for n, c in counts.values() if n >= k]
    if not values or len(values) != len(counts):
        return None
    rng = random.Random(seed)
    means = sorted(sum(rng.choices(values, k=len(values))) / len(values) for _ in range(iterations))
    lo = means[int((1 - level) / 2 * (iterations - 1))]
    hi = means[int((1 + level) / 2 * (iterations - 1))]
    return sum(values) / len(values), lo, hi


def _fail_all(n: int, c: int, k: int) -> float:
    """P(k samples drawn without replacement from n, c passing, all fail)."""
    return 1.0 if k == 0 else 1.0 - pass_at_k(n, c, k)


def solved_share(counts: dict[str, dict[int, tuple[int, int]]], allocation: dict[str, int]) -> float:
    """Expected share of problems solved when language l gets ``allocation[l]`` samples a problem."""
    problems = sorted(set.intersection(*(set(per) for per in counts.values())))
    if not problems:
        raise UserError("no problem has samples in every language")
    total = 0.0
    for p in problems:
        fail = 1.0
        for lang, k in allocation.items():
            n, c = counts[lang][p]
            fail *= _fail_all(n, c, k)
        total += 1.0 - fail
    return total / len(problems)


def allocate(strategy: str, budget: int, rates: dict[str, float]) -> dict[str, int]:
    """Samples per language for a budget: the languages in ``rates`` order (ties kept in order)."""
    langs = list(rates)
    if strategy == "best single language":
        best = max(langs, key=lambda lang: rates[lang])
        return {lang: budget if lang == best else 0 for lang in langs}
    weights = {lang: 1.0 for lang in langs} if strategy == "uniform" else dict(rates)
    if sum(weights.values()) == 0:
        weights = {lang: 1.0 for lang in langs}
    total = sum(weights.values())
    exact = {lang: budget * w / total for lang, w in weights.items()}
    out = {lang: int(v) for lang, v in exact.items()}
    for lang in sorted(langs, key=lambda x: (-(exact[x] - out[x]), -rates[x]))[: budget - sum(out.values())]:
        out[lang] += 1  # largest remainders first, then the higher pass rate
    return out


def budget_table(counts: dict[str, dict[int, tuple[int, int]]], budgets: list[int]) -> dict[str, dict[int, float]]:
    """Strategy -> budget -> expected share of problems solved. Languages: the generation groups
    with every problem of the others; a budget needs at most the observed samples per language."""
    langs = {g: per for g, per in counts.items() if "->" not in g}
    if len(langs) < 2:
        raise UserError("budget allocation needs generation samples in at least two languages")
    common = set.intersection(*(set(per) for per in langs.values()))
    if not common:
        raise UserError("budget allocation needs problems that have samples in every language")
    langs = {g: {p: per[p] for p in common} for g, per in langs.items()}
    rates = {g: sum(c / n for n, c in per.values()) / len(per) for g, per in langs.items()}
    least = {g: min(n for n, _ in per.values()) for g, per in langs.items()}  # samples observed, per language
    out: dict[str, dict[int, float]] = {s: {} for s in STRATEGIES}
    for strategy in STRATEGIES:
        for b in budgets:
            alloc = allocate(strategy, b, rates)
            if all(k <= least[g] for g, k in alloc.items()):
                out[strategy][b] = solved_share(langs, alloc)
    return out
