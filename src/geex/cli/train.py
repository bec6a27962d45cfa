"""``geex train``: pretraining (``geex.train``). The command and its interrupt report read the run's
settings through the same ``_train_overrides``, so the report names the checkpoint directory the
run really writes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from geex.errors import UserError


def _train_overrides(args: argparse.Namespace) -> list[str]:
    """``--set`` items, with ``--out DIR`` as ``run.out=DIR`` (last, so it wins)."""
    return [*args.overrides, *([f"run.out={args.out}"] if args.out else [])]


def _cmd_train(args: argparse.Namespace) -> int:
    from geex.train.config import load_config
    from geex.train.loop import train

    cfg = load_config(args.config, _train_overrides(args))
    last = train(cfg, progress=not args.quiet)
    print(f"step {last.get('step')}: loss {last.get('loss', float('nan')):.4f}; logs and checkpoint in {cfg.run.out}",
          file=sys.stderr)
    return 0


def _kept_train(args: argparse.Namespace) -> str:
    from geex.train import checkpoint
    from geex.train.config import load_config

    try:
        out = Path(load_config(args.config, _train_overrides(args)).run.out)
    except UserError:
        return "nothing kept"
    found = checkpoint.latest(out)
    if found is None:
        return f"no checkpoint in {out} yet"
    return f"the newest checkpoint is {found.name} in {found.parent}"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``geex train``."""
    tr = subparsers.add_parser(
        "train", help="pretrain a CodeGeeX model on packed data (one process, or FSDP2 under torchrun)",
        description="Train with CodeGeeX's recipe (AdamW 0.9/0.95, weight decay 0.1 but not on biases and "
                    "LayerNorms, warm-up + cosine, clipping, accumulation) on a `geex data pack` directory. The "
                    "config is TOML with sections [model] [data] [optim] [run] (every field documented in "
                    "geex/train/config.py; examples in configs/); --set section.field=value overrides. Several "
                    "processes: `torchrun --nproc_per_node N -m geex train ...` shards the model with FSDP2 "
                    "(data.batch_size is per data-parallel process; run.tensor_parallel=K splits each layer "
                    "over K of them). Checkpoints (torch.distributed.checkpoint) go to OUT/checkpoints; "
                    "re-running the same command continues with bitwise the same losses, and a run may also "
                    "continue on another number of processes (resharded) if the global batch stays the same. "
                    "Logs: OUT/log.jsonl, OUT/tensorboard (loss, lr, tokens/s, MFU, memory), OUT/loss.png.")
    tr.add_argument("--config", help="TOML file of settings, sections [model] [data] [optim] [run] (default: "
                    "geex's defaults)")
    tr.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                    help="override one setting, e.g. optim.lr=1e-4 or run.compile=true (repeatable)")
    tr.add_argument("--out", "-o", metavar="DIR", help="checkpoints and logs (the same as --set run.out=DIR)")
    tr.add_argument("--quiet", "-q", action="store_true", help="no log lines on stdout")
    tr.set_defaults(func=_cmd_train, kept=_kept_train)
