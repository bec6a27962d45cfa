"""A training run's loss curve (train and held-out loss against tokens seen), from its log.jsonl."""

from __future__ import annotations

import json
from pathlib import Path


def plot_log(log: str | Path, png: str | Path, title: str = "") -> Path:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in Path(log).read_text(encoding="utf-8").splitlines() if line.strip()]
    train = [(r["tokens"] / 1e6, r["loss"]) for r in rows if "loss" in r and "tokens" in r]
    held = [(r["tokens"] / 1e6, r["eval_loss"]) for r in rows if "eval_loss" in r and "tokens" in r]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    if train:
        ax.plot(*zip(*train), lw=1, alpha=0.8, label="train loss")
    if held:
        ax.plot(*zip(*held), "o-", ms=3, lw=1.5, label="held-out loss")
    ax.set_xlabel("tokens seen (millions)")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%.1f"))
    ax.yaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%.1f"))
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax.set_title(title or Path(log).parent.name)
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)
    return Path(png)
