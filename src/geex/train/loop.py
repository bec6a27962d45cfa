"""``geex train``: CodeGeeX's recipe on packed data, one process (CPU or one GPU), resumed exactly.

AdamW (β 0.9/0.95, weight decay 0.1, none on biases and LayerNorms), linear warm-up then cosine to
``min_lr``, gradient accumulation and clipping, optional bf16 autocast. Loss: cross-entropy of the
next token over every position (EOS included, as the original trained). A checkpoint holds the
model, optimizer, schedule, data position and RNG states, written atomically, so a run stopped at
any point and started again with the same command continues with bitwise the same losses.
Logs: ``OUT/log.jsonl`` (step, loss, lr, grad norm, tokens/s; eval loss on the first
``eval_sequences`` held-out sequences).

Not yet here (issue 6): FSDP2 across processes (torchrun), torch.distributed.checkpoint,
torch.compile, activation checkpointing, TensorBoard and MFU.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from geex.data.pack import PackedDataset
from geex.errors import UserError
from geex.models.codegeex import get_config
from geex.train.config import TrainConfig

CHECKPOINT = "checkpoint.pt"


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate of optimizer step ``step`` (0-based): linear warm-up, then cosine to min_lr."""
    o = cfg.optim
    if step < o.warmup_steps:
        return o.lr * (step + 1) / o.warmup_steps
    progress = min(1.0, (step - o.warmup_steps) / max(1, o.max_steps - o.warmup_steps))
    return o.min_lr + 0.5 * (o.lr - o.min_lr) * (1 + math.cos(math.pi * progress))


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if name.endswith("bias") or "layernorm" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _build(cfg: TrainConfig, vocab: int, seq_len: int) -> torch.nn.Module:
    padded = -(-vocab // 64) * 64  # the embedding rounded up, as CodeGeeX pads its vocabulary
    mcfg = get_config(cfg.model.preset, vocab_size=vocab, padded_vocab_size=padded)
    if seq_len > mcfg.n_positions:
        raise UserError(f"sequences of {seq_len} tokens exceed {cfg.model.preset}'s context of {mcfg.n_positions}")
    torch.manual_seed(cfg.run.seed)
    model = mcfg.build()
    model.init_weights(torch.Generator().manual_seed(cfg.run.seed))
    return model.to(cfg.run.device)


def _loss(model, batch: torch.Tensor, vocab: int, autocast: bool, device: str) -> torch.Tensor:
    x, y = batch[:, :-1], batch[:, 1:]
    with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=autocast):
        logits = model(x)
    return F.cross_entropy(logits[..., :vocab].float().reshape(-1, vocab), y.reshape(-1))


@torch.no_grad()
def evaluate(model, valid: PackedDataset, n: int, batch: int, vocab: int, autocast: bool, device: str) -> float:
    model.eval()
    total, count = 0.0, 0
    for start in range(0, min(n, len(valid)), batch):
        rows = [valid.sequence(i) for i in range(start, min(start + batch, n, len(valid)))]
        b = torch.from_numpy(np.stack(rows)).to(device)
        total += _loss(model, b, vocab, autocast, device).item() * len(rows)
        count += len(rows)
    model.train()
    return total / count


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])


def train(cfg: TrainConfig, max_steps: int | None = None, progress: bool = True) -> dict:
    """Train (or continue) into ``cfg.run.out``; stop after ``max_steps`` steps of this call if given
    (as if interrupted). Returns the last log record."""
    if not cfg.data.path:
        raise UserError("data.path: a `geex data pack` output directory is required")
    if cfg.run.dtype not in ("float32", "bfloat16"):
        raise UserError(f"run.dtype must be float32 or bfloat16, got {cfg.run.dtype!r}")
    if cfg.run.device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("run.device cuda: no CUDA device is available here")
    train_data = PackedDataset(cfg.data.path, "train", seed=cfg.data.seed)
    valid_data = PackedDataset(cfg.data.path, "valid", seed=0) if cfg.run.eval_every else None
    seq_len, vocab = train_data.seq_len, train_data.index["vocab_size"]
    if cfg.model.seq_len and cfg.model.seq_len != seq_len:
        raise UserError(f"model.seq_len {cfg.model.seq_len} differs from the packed data's {seq_len}")
    model = _build(cfg, vocab, seq_len)
    opt = torch.optim.AdamW(_param_groups(model, cfg.optim.weight_decay), lr=cfg.optim.lr,
                            betas=tuple(cfg.optim.betas), eps=cfg.optim.eps)
    out = Path(cfg.run.out)
    out.mkdir(parents=True, exist_ok=True)
    step, autocast, device = 0, cfg.run.dtype == "bfloat16", cfg.run.device
    ckpt = out / CHECKPOINT
    if ckpt.is_file():
        state = torch.load(ckpt, map_location=device, weights_only=False)
        if state["config"] != cfg.as_dict():
            raise UserError(f"{out} holds a run with another configuration: choose another run.out")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        train_data.load_state_dict(state["data"])
        _set_rng_state(state["rng"])
        step = state["step"]
    else:
        (out / "config.json").write_text(json.dumps(cfg.as_dict(), indent=2) + "\n")
    (out / "log.jsonl").touch()
    _truncate_log(out / "log.jsonl", step)  # lines past the checkpoint belong to a run that died
    log = open(out / "log.jsonl", "a", encoding="utf-8")
    last: dict = {}
    stop = cfg.optim.max_steps if max_steps is None else min(cfg.optim.max_steps, step + max_steps)
    tokens = cfg.data.batch_size * cfg.optim.grad_accum * seq_len
    model.train()
    clock, logged = time.perf_counter(), step
    while step < stop:
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg)
        loss_sum = 0.0
        for _ in range(cfg.optim.grad_accum):
            batch = torch.from_numpy(train_data.next_batch(cfg.data.batch_size)).to(device)
            loss = _loss(model, batch, vocab, autocast, device)
            (loss / cfg.optim.grad_accum).backward()
            loss_sum += loss.item()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip or float("inf"))
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        record = {"step": step, "loss": loss_sum / cfg.optim.grad_accum, "lr": lr_at(step - 1, cfg),
                  "grad_norm": float(norm)}
        if cfg.run.eval_every and step % cfg.run.eval_every == 0:
            record["eval_loss"] = evaluate(model, valid_data, cfg.run.eval_sequences, cfg.data.batch_size, vocab,
                                           autocast, device)
        if step % cfg.run.log_every == 0 or "eval_loss" in record or step == stop:
            now = time.perf_counter()
            record["tokens_per_s"] = round(tokens * (step - logged) / max(now - clock, 1e-9), 1)
            clock, logged = now, step
            log.write(json.dumps(record) + "\n")
            log.flush()
            if progress:
                print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()),
                      flush=True)
        last = record
        if step % cfg.run.checkpoint_every == 0 or step == stop:
            _save(ckpt, {"step": step, "config": cfg.as_dict(), "model": model.state_dict(),
                         "optimizer": opt.state_dict(), "data": train_data.state_dict(), "rng": _rng_state()})
    log.close()
    return last


def _save(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _truncate_log(path: Path, step: int) -> None:
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    keep = [line for line in lines if json.loads(line)["step"] <= step]
    if len(keep) != len(lines):
        path.write_text("".join(line + "\n" for line in keep), encoding="utf-8")
