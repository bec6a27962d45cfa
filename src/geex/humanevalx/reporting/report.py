"""``geex humanevalx report DIR...``: evaluated runs side by side, as Markdown, JSON and figures.

Per run and group (generation language, or translation pair): problems, samples, pass@k with a 95%
bootstrap interval over problems; translation pass@1 as a source x target matrix; verdict counts;
budget allocation when a run has generation samples in several languages. Everything is recomputed
from each directory's ``results.jsonl`` (and ``samples.jsonl`` header for the model's name).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from geex.errors import UserError
from geex.humanevalx.reporting import plots
from geex.humanevalx.reporting.analysis import STRATEGIES, Run, budget_table, load_run, pass_at_k_ci

FORMAT = "geex/humanevalx-summary/1"


def _slug(text: str) -> str:
    """A run's name as part of a file name: "model [chat] (dir)" -> "model_chat_dir"."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text).strip("_")[:60] or "run"


def summarize_runs(directories: list[str | Path], out: Path, ks: tuple[int, ...] = (1, 10, 100),
                   budgets: tuple[int, ...] = (1, 2, 3, 4, 6, 8, 12), iterations: int = 1000) -> dict:
    """Write ``out/summary.json``, ``out/summary.md`` and the PNGs; return the summary."""
    runs = [load_run(d) for d in directories]
    if len({r.name for r in runs}) != len(runs):  # same model twice: tell them apart by directory
        model = [r.name for r in runs]
        for label in (lambda r: r.directory.name, lambda r: f"{r.directory.parent.name}/{r.directory.name}",
                      lambda r: f"{r.directory.name} #{runs.index(r) + 1}"):
            for r, m in zip(runs, model):
                r.name = f"{m} ({label(r)})"
            if len({r.name for r in runs}) == len(runs):
                break
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot write {out}: {e.strerror or e}") from None
    summary: dict = {"format": FORMAT, "ks": list(ks), "bootstrap": {"iterations": iterations, "level": 0.95},
                     "runs": [], "figures": []}
    for run in runs:
        entry = {"name": run.name, "directory": str(run.directory), "header": run.header, "groups": {},
                 "verdicts": run.verdicts()}
        for group, counts in run.groups().items():
            row = {"n_problems": len(counts), "n_samples": sum(n for n, _ in counts.values()), "pass@k": {}}
            for k in ks:
                ci = pass_at_k_ci(counts, k, iterations)
                if ci is not None:
                    row["pass@k"][f"pass@{k}"] = {"mean": ci[0], "ci95": [ci[1], ci[2]]}
            entry["groups"][group] = row
        try:
            entry["budget"] = {s: {str(b): v for b, v in t.items()} for s, t in
                               budget_table(run.groups(), list(budgets)).items()}
        except UserError:
            entry["budget"] = None
        summary["runs"].append(entry)
    summary["figures"] = [str(p.name) for p in _figures(runs, summary, out, ks)]
    (out / "summary.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    (out / "summary.md").write_text(to_markdown(summary))
    return summary


def _figures(runs: list[Run], summary: dict, out: Path, ks: tuple[int, ...]) -> list[Path]:
    made = [plots.pass_at_k_bars(runs, k, out / f"pass_at_{k}.png") for k in ks]
    for run, entry in zip(runs, summary["runs"]):
        slug = _slug(run.name)
        made.append(plots.translation_matrix(run, out / f"translation_{slug}.png"))
        made.append(plots.pass_rate_by_problem(run, out / f"pass_rate_by_problem_{slug}.png"))
        made.append(plots.verdict_bars(run, out / f"verdicts_{slug}.png"))
        if entry["budget"]:
            table = {s: {int(b): v for b, v in t.items()} for s, t in entry["budget"].items()}
            made.append(plots.budget_plot(table, f"{run.name}\nbudget allocation", out / f"budget_{slug}.png"))
    return [p for p in made if p is not None]


def _cell(row: dict, key: str) -> str:
    value = row["pass@k"].get(key)
    if value is None:
        return "–"
    lo, hi = value["ci95"]
    return f"{100 * value['mean']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"


def _side_by_side(runs: list[dict], key: str) -> list[str]:
    """One table, a column a run (e.g. the same model under several prompt styles), a row a group."""
    groups = list(dict.fromkeys(g for run in runs for g in run["groups"]))
    lines = [f"{key} of each run side by side (%, 95% interval):", "",
             "| group | " + " | ".join(run["name"] for run in runs) + " |", "|---" * (len(runs) + 1) + "|"]
    for group in groups:
        lines.append(f"| {group} | " + " | ".join(
            _cell(run["groups"][group], key) if group in run["groups"] else "–" for run in runs) + " |")
    return [*lines, ""]


def to_markdown(summary: dict) -> str:
    ks = [f"pass@{k}" for k in summary["ks"]]
    lines = ["# HumanEval-X results", "",
             f"pass@k in %, with 95% bootstrap intervals over problems ({summary['bootstrap']['iterations']} "
             "resamples). Harness errors are excluded.", ""]
    if len(summary["runs"]) > 1:
        lines += _side_by_side(summary["runs"], ks[0])
    for run in summary["runs"]:
        h = run["header"]
        lines += [f"## {run['name']}", ""]
        if h:
            s = h.get("sampling", {})
            how = "greedy" if s.get("greedy") else f"T={s.get('temperature')}, top-p={s.get('top_p')}"
            lines += [f"- backend {h.get('backend')}, task {h.get('task')}, n={h.get('n')}, {how}, "
                      f"max_new_tokens={h.get('max_new_tokens')}, seed={h.get('seed')}, limit={h.get('limit')}", ""]
        lines += ["| group | problems | samples | " + " | ".join(ks) + " |", "|---" * (3 + len(ks)) + "|"]
        for group, row in run["groups"].items():
            lines.append(f"| {group} | {row['n_problems']} | {row['n_samples']} | "
                         + " | ".join(_cell(row, k) for k in ks) + " |")
        pairs = {g: r for g, r in run["groups"].items() if "->" in g}
        if pairs:
            langs = sorted({x for g in pairs for x in g.split("->")},
                           key=lambda x: plots.ORDER.index(x) if x in plots.ORDER else 99)
            lines += ["", "Translation pass@1 (%): rows are sources, columns targets.", "",
                      "| source \\ target | " + " | ".join(langs) + " |", "|---" * (len(langs) + 1) + "|"]
            for src in langs:
                cells = []
                for tgt in langs:
                    row = pairs.get(f"{src}->{tgt}")
                    value = row["pass@k"].get("pass@1") if row else None
                    cells.append(f"{100 * value['mean']:.1f}" if value else "–")
                lines.append(f"| {src} | " + " | ".join(cells) + " |")
        if run.get("budget"):
            budgets = sorted({int(b) for t in run["budget"].values() for b in t})
            lines += ["", "Budget allocation: problems solved (%) with B samples a problem split over languages.",
                      "", "| strategy | " + " | ".join(f"B={b}" for b in budgets) + " |",
                      "|---" * (len(budgets) + 1) + "|"]
            for strategy in STRATEGIES:
                t = run["budget"][strategy]
                lines.append(f"| {strategy} | " + " | ".join(
                    f"{100 * t[str(b)]:.1f}" if str(b) in t else "–" for b in budgets) + " |")
        lines.append("")
    if summary["figures"]:
        lines += ["## Figures", ""] + [f"![{f}]({f})" for f in summary["figures"]]
    return "\n".join(lines) + "\n"
