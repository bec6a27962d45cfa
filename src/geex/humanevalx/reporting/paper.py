"""The paper's table (``geex humanevalx paper``): pass@1 from the samples drawn at temperature 0.2,
pass@10 and pass@100 from those at 0.8 (CodeGeeX's and MultiPL-E's convention), for every
generation language and translation pair, each with a 95% bootstrap interval over problems.
"""

from __future__ import annotations

import json
from pathlib import Path

from geex.humanevalx.reporting.analysis import group_order, load_run, pass_at_k_ci

FORMAT = "geex/humanevalx-paper/1"
TEMPERATURES = {1: 0.2, 10: 0.8, 100: 0.8}  # k -> the temperature its samples are drawn at


def paper_table(runs: dict[float, list[Path]], iterations: int = 1000) -> dict:
    """``runs``: temperature -> evaluated directories (generation, translation). pass@k of each group
    from the runs of k's temperature; a k needs at least k samples a problem (else left out)."""
    loaded = {t: [load_run(d) for d in dirs] for t, dirs in runs.items()}
    groups: dict[str, dict] = {}
    for k, temperature in TEMPERATURES.items():
        for run in loaded.get(temperature, []):
            for group, counts in run.groups().items():
                ci = pass_at_k_ci(counts, k, iterations)
                if ci is not None:
                    groups.setdefault(group, {})[f"pass@{k}"] = {"mean": ci[0], "ci95": [ci[1], ci[2]],
                                                                  "temperature": temperature}
    ordered = {g: groups[g] for g in sorted(groups, key=group_order)}
    return {"format": FORMAT, "temperatures": {f"pass@{k}": t for k, t in TEMPERATURES.items()},
            "bootstrap": {"iterations": iterations, "level": 0.95}, "groups": ordered}


def to_markdown(table: dict, title: str) -> str:
    ks = list(table["temperatures"])
    head = ["group", *(f"{k} (T={table['temperatures'][k]})" for k in ks)]
    lines = [f"# {title}", "", "pass@k in %, [95% bootstrap interval over problems].", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for group, row in table["groups"].items():
        cells = [f"{100 * row[k]['mean']:.2f} [{100 * row[k]['ci95'][0]:.1f}, {100 * row[k]['ci95'][1]:.1f}]"
                 if k in row else "–" for k in ks]
        lines.append("| " + " | ".join([group, *cells]) + " |")
    return "\n".join(lines) + "\n"


def write_paper_table(table: dict, out: Path, title: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "paper.json").write_text(json.dumps(table, indent=2) + "\n")
    (out / "paper.md").write_text(to_markdown(table, title))
