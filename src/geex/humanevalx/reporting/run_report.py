"""The report ``geex humanevalx evaluate`` writes beside one run's results: ``report.json`` and ``report.md``."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

from geex.humanevalx.execution.verdict import Verdict
from geex.humanevalx.reporting.metrics import mean_pass_at_k
from geex.humanevalx.result import Result

REPORT_FORMAT = "geex/humanevalx-report/1"


def per_problem(records: Iterable[Result]) -> dict[tuple[str, str], tuple[int, int]]:
    """(group, task id) → (samples scored, samples passed): what pass@k is computed from, for this
    report and for ``geex humanevalx report`` alike. Harness errors are left out (not the model's
    fault); a problem is a task *within its group*: CPP/0 generated and CPP/0 translated from Python
    are two problems, so an overall row never pools samples of different tasks."""
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for rec in records:
        if rec.verdict is Verdict.HARNESS_ERROR:
            continue
        nc = counts[(rec.group, rec.task_id)]
        nc[0] += 1
        nc[1] += rec.passed
    return {key: (n, c) for key, (n, c) in counts.items()}


def summarize(records: list[Result], ks: tuple[int, ...]) -> dict:
    """Counts and pass@k for one group of per-sample records."""
    verdicts = Counter(rec.verdict for rec in records)
    problems = {(rec.group, rec.task_id) for rec in records}
    counts = per_problem(records)
    out: dict = {
        "n_problems": len(problems),
        "n_samples": len(records),
        "n_scored_problems": len(counts),
        "pass@k": {},
        "verdicts": {v.value: verdicts.get(v, 0) for v in Verdict},
    }
    for k in ks:
        value = mean_pass_at_k(counts, k)
        if value is not None:
            out["pass@k"][f"pass@{k}"] = value
    return out


def build_report(records: list[Result], ks: tuple[int, ...], meta: dict) -> dict:
    groups: dict[str, list[Result]] = defaultdict(list)
    for rec in records:
        groups[rec.group].append(rec)
    report = {"format": REPORT_FORMAT, **meta, "ks": list(ks)}
    report["groups"] = {key: summarize(recs, ks) for key, recs in sorted(groups.items())}
    report["overall"] = summarize(records, ks)
    harness = report["overall"]["verdicts"][Verdict.HARNESS_ERROR.value]
    report["harness_errors"] = harness
    if "ray" in report:  # who ran what (resumed results keep the node that ran them; cached ones have none)
        report["ray"] = {**report["ray"], "samples_by_node": dict(sorted(Counter(
            rec.node or "verdict cache" for rec in records).items()))}
    flaky = [rec for rec in records if rec.flaky]
    report["flaky"] = {"samples": len(flaky), "task_ids": sorted({rec.task_id for rec in flaky}, key=_task_order)}
    return report


def _task_order(task_id: str) -> tuple:
    prefix, _, number = task_id.rpartition("/")
    return (prefix, int(number)) if number.isdigit() else (task_id, -1)


def to_markdown(report: dict) -> str:
    ks = [f"pass@{k}" for k in report["ks"]]
    verdicts = [v.value for v in Verdict]
    head = ["group", "problems", "samples", *ks, *verdicts]
    lines = [
        f"# HumanEval-X evaluation: {report.get('samples', '')}",
        "",
        f"- dataset: {report.get('dataset', {}).get('variant', '')}",
        f"- isolation: **{report.get('isolation', '')}**",
        f"- memory limit: {report.get('memory_limit', 'rlimit')} (cgroup1/cgroup2: the whole process tree;"
        " rlimit: address space per process)",
        f"- timeout: {report.get('timeout_s')} s per test run",
        *_ray_lines(report.get("ray")),
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]

    def row(name: str, s: dict) -> str:
        cells = [name, str(s["n_problems"]), str(s["n_samples"])]
        cells += [f"{100 * s['pass@k'][k]:.2f}" if k in s["pass@k"] else "–" for k in ks]
        cells += [str(s["verdicts"][v]) for v in verdicts]
        return "| " + " | ".join(cells) + " |"

    for name, s in report["groups"].items():
        lines.append(row(name, s))
    lines.append(row("**overall**", report["overall"]))
    if report.get("harness_errors"):
        lines += ["", f"**{report['harness_errors']} harness errors** (excluded from pass@k): see results.jsonl."]
    flaky = report.get("flaky") or {}
    if flaky.get("samples"):
        lines += ["", f"**{flaky['samples']} flaky samples** in {len(flaky['task_ids'])} tasks (runs of the same "
                  "program gave different verdicts; each sample was run and kept its own verdict): "
                  + ", ".join(flaky["task_ids"])]
    lines += ["", "## Toolchains", ""]
    lines += [f"- {lang}: {ver}" for lang, ver in report.get("toolchains", {}).items()]
    return "\n".join(lines) + "\n"


def _ray_lines(ray: dict | None) -> list[str]:
    if not ray:
        return []
    ran = ray.get("samples_by_node", {})
    nodes = [f"{n['node']} ({n['cpus']} CPUs, {ran.get(n['node'], 0)} samples"
             + (f"; no programs: {n['problem']}" if n.get("problem") else "") + ")" for n in ray["nodes"]]
    return [f"- Ray: {len(nodes)} nodes: " + ", ".join(nodes)]


def write_report(report: dict, out_dir: Path) -> None:
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    (out_dir / "report.md").write_text(to_markdown(report))
