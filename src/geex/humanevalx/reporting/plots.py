"""The report's figures (matplotlib, written as PNG): pass@k per language, the translation pass@1
matrix, per-problem pass rate across languages, verdicts per language, budget allocation."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed
import matplotlib.pyplot as plt  # noqa: E402

from geex.humanevalx.execution.verdict import Verdict  # noqa: E402
from geex.humanevalx.reporting.analysis import Run, pass_at_k_ci  # noqa: E402
from geex.languages import LANGUAGE_NAMES  # noqa: E402

ORDER = list(LANGUAGE_NAMES)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def pass_at_k_bars(runs: list[Run], k: int, path: Path) -> Path | None:
    """pass@k per generation language, runs side by side, with 95% bootstrap intervals."""
    langs = [lang for lang in ORDER if any(lang in r.groups() for r in runs)]
    if not langs:
        return None
    fig, ax = plt.subplots(figsize=(1.3 * len(langs) + 2, 4))
    width = 0.8 / len(runs)
    for i, run in enumerate(runs):
        groups = run.groups()
        xs, ys, errs = [], [], [[], []]
        for j, lang in enumerate(langs):
            ci = pass_at_k_ci(groups[lang], k) if lang in groups else None
            if ci is not None:
                xs.append(j + i * width)
                ys.append(100 * ci[0])
                errs[0].append(100 * (ci[0] - ci[1]))
                errs[1].append(100 * (ci[2] - ci[0]))
        ax.bar(xs, ys, width, yerr=errs, capsize=3, label=run.name)
    ax.set_xticks([j + width * (len(runs) - 1) / 2 for j in range(len(langs))], langs)
    ax.set_ylabel(f"pass@{k} (%)")
    ax.set_title(f"HumanEval-X generation, pass@{k}")
    ax.legend(fontsize="small")
    return _save(fig, path)


def translation_matrix(run: Run, path: Path) -> Path | None:
    """pass@1 of every source -> target pair as a heat map."""
    groups = {g: v for g, v in run.groups().items() if "->" in g}
    if not groups:
        return None
    langs = [lang for lang in ORDER if any(lang in g.split("->") for g in groups)]
    grid = [[float("nan")] * len(langs) for _ in langs]
    for g, counts in groups.items():
        src, tgt = g.split("->")
        ci = pass_at_k_ci(counts, 1)
        if ci is not None:
            grid[langs.index(src)][langs.index(tgt)] = 100 * ci[0]
    fig, ax = plt.subplots(figsize=(1.1 * len(langs) + 2, 1.0 * len(langs) + 1.5))
    image = ax.imshow(grid, cmap="viridis", vmin=0)
    for i in range(len(langs)):
        for j in range(len(langs)):
            if grid[i][j] == grid[i][j]:  # not NaN
                ax.text(j, i, f"{grid[i][j]:.1f}", ha="center", va="center", color="w", fontsize=8)
    ax.set_xticks(range(len(langs)), langs)
    ax.set_yticks(range(len(langs)), langs)
    ax.set_xlabel("target")
    ax.set_ylabel("source")
    ax.set_title(f"{run.name}\ntranslation pass@1 (%)", fontsize=9)
    fig.colorbar(image, ax=ax)
    return _save(fig, path)


def pass_rate_by_problem(run: Run, path: Path) -> Path | None:
    """Each problem's pass rate in each language (the paper's "pass rate vs language" figure),
    problems ordered by their mean pass rate."""
    groups = {g: v for g, v in run.groups().items() if "->" not in g}
    langs = [lang for lang in ORDER if lang in groups]
    if not langs:
        return None
    problems = sorted(set.union(*(set(groups[lang]) for lang in langs)))
    rate = {(lang, p): c / n for lang in langs for p, (n, c) in groups[lang].items()}
    problems.sort(key=lambda p: -sum(rate.get((lang, p), 0.0) for lang in langs))
    grid = [[rate.get((lang, p), float("nan")) for p in problems] for lang in langs]
    fig, ax = plt.subplots(figsize=(min(18, 2 + 0.08 * len(problems)), 0.5 * len(langs) + 1.5))
    image = ax.imshow(grid, aspect="auto", cmap="Greens", vmin=0, vmax=1, interpolation="nearest")
    ax.set_yticks(range(len(langs)), langs)
    ax.set_xlabel("problems (ordered by mean pass rate)")
    ax.set_title(f"{run.name}\npass rate per problem and language", fontsize=9)
    fig.colorbar(image, ax=ax, label="pass rate")
    return _save(fig, path)


def verdict_bars(run: Run, path: Path) -> Path | None:
    """Share of each verdict per group (stacked)."""
    verdicts = run.verdicts()
    if not verdicts:
        return None
    names = list(verdicts)
    fig, ax = plt.subplots(figsize=(max(5, 0.6 * len(names) + 3), 4))
    bottom = [0.0] * len(names)
    for v in Verdict:
        shares = [verdicts[g][v.value] / max(1, sum(verdicts[g].values())) for g in names]
        ax.bar(range(len(names)), shares, bottom=bottom, label=v.value)
        bottom = [b + s for b, s in zip(bottom, shares)]
    ax.set_xticks(range(len(names)), names, rotation=45 if len(names) > 6 else 0, ha="right" if len(names) > 6 else "center")
    ax.set_ylabel("share of samples")
    ax.set_title(f"{run.name}\nverdicts", fontsize=9)
    ax.legend(fontsize="x-small", ncol=2)
    return _save(fig, path)


def budget_plot(table: dict[str, dict[int, float]], title: str, path: Path) -> Path | None:
    if not any(table.values()):
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for strategy, points in table.items():
        if points:
            ax.plot(list(points), [100 * v for v in points.values()], marker="o", label=strategy)
    ax.set_xlabel("samples per problem (total over languages)")
    ax.set_ylabel("problems solved (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize="small")
    return _save(fig, path)
