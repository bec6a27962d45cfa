"""Training throughput and MFU of CodeGeeX-architecture models: geex's training step against a
compiled nanoGPT-style GPT of the same size, in the same run, on the same GPU(s).

What is timed: whole optimizer steps (``--accum`` micro-batches of ``--batch`` sequences of
``--seq`` tokens, forward + backward, gradient clipping, fused AdamW), random tokens, after
``--warmup`` untimed steps (compilation). tokens/s counts every process's tokens; MFU is PaLM's
(``geex.train.flops``: 6N + 12LHQT a token, N without the position tables) over the datasheet
peak of every device used (H100 SXM: 989 TFLOP/s dense bf16).

Variants:
- ``geex``: ``geex.train.loop.Trainee`` as ``geex train`` builds it (bf16, ``run.compile``: each
  layer and the loss compiled), so what is measured is what trains;
- ``geex+eager``: the same without torch.compile; ``geex+ac``: with activation checkpointing (memory
  for recompute; MFU counts no recompute), ``geex+ac2`` of every other layer; across GPUs
  ``geex+keep`` keeps gathered weights from the forward to the backward, ``geex+lastsync`` reduces
  gradients once a step, ``geex+offload`` keeps the shards in host memory, ``geex+tp2`` splits
  every layer over 2 GPUs (tensor parallel; FSDP2 over the rest) (``GEEX_FLAGS``);
- ``nanogpt``: nanoGPT's model and recipe (pre-LN GPT-2 blocks, fused qkv, GELU, tied head, no
  biases, whole model under ``torch.compile``, bf16 autocast, fused AdamW) with the same width,
  depth (layers + CodeGeeX's top query layer), vocabulary and sequence: the peer the issue names.

Under ``torchrun --nproc_per_node N`` the geex variants run FSDP2 over N GPUs (bf16 gathers, fp32
reduction), the same per-GPU micro-batch: tokens/s against one GPU's is the scaling.

Each row also has the step-time split (forward, backward, optimizer; CUDA events) and the losses of
the warm-up steps. ``--device cpu`` runs the script itself on a tiny preset (the tests do, under
torchrun with gloo).

Usage: PYTHONPATH=src python benchmarks/train_mfu.py --presets codegeex-350m,codegeex-1.3b
       [--variants geex,nanogpt] [--batch 350m=16,1.3b=8] [--accum 2] [--out results.jsonl]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import gc
import json
import math
import os
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from geex.models.codegeex import get_config
from geex.train.config import load_config
from geex.train.distributed import setup, teardown
from geex.train.flops import flops_per_token, peak_flops
from geex.train.loop import Trainee

VOCAB = 50400  # the CodeGeeX tokenizer's
PADDED = -(-VOCAB // 64) * 64  # the embedding rows geex train makes (50432; the official 13B has 52224)


class NanoBlock(nn.Module):
    def __init__(self, h: int, heads: int) -> None:
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(h, bias=False), nn.LayerNorm(h, bias=False)
        self.c_attn, self.attn_proj = nn.Linear(h, 3 * h, bias=False), nn.Linear(h, h, bias=False)
        self.c_fc, self.mlp_proj = nn.Linear(h, 4 * h, bias=False), nn.Linear(4 * h, h, bias=False)
        self.heads = heads

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, h = x.shape
        q, k, v = (z.view(b, t, self.heads, h // self.heads).transpose(1, 2)
                   for z in self.c_attn(self.ln_1(x)).split(h, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, h)
        x = x + self.attn_proj(y)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))


class NanoGPT(nn.Module):
    """nanoGPT's ``model.py`` (Karpathy), dropout 0 and bias False as its ``train.py`` defaults."""

    def __init__(self, layers: int, h: int, heads: int, vocab: int, seq: int) -> None:
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, h), nn.Embedding(seq, h)
        self.h = nn.ModuleList(NanoBlock(h, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(h, bias=False)
        self.lm_head = nn.Linear(h, vocab, bias=False)
        self.lm_head.weight = self.wte.weight
        for name, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith("proj.weight") else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))


def nanogpt_step_fn(preset: str, seq: int, device: torch.device):
    cfg = get_config(preset, vocab_size=VOCAB, padded_vocab_size=PADDED)
    model = NanoGPT(cfg.n_layer + 1, cfg.n_embd, cfg.n_head, PADDED, seq).to(device)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=1e-4, betas=(0.9, 0.95), fused=True)
    compiled = torch.compile(model)

    def loss(batch: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            return compiled(batch[:, :-1], batch[:, 1:])

    def finish() -> None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    return loss, lambda loss, last: loss.backward(), finish, cfg


GEEX_FLAGS = {"eager": ("run.compile=false",), "ac": ("run.activation_checkpointing=true",),
              "ac2": ("run.activation_checkpointing=true", "run.activation_checkpointing_every=2"),
              "keep": ("run.reshard_after_forward=false",), "lastsync": ("run.reduce_last_micro_batch=true",),
              "offload": ("run.cpu_offload=true",),
              "tp2": ("run.tensor_parallel=2",), "tp4": ("run.tensor_parallel=4",), "tp8": ("run.tensor_parallel=8",)}


def geex_step_fn(preset: str, seq: int, variant: str, topo, lr: float = 3e-4):
    """``variant``: geex plus ``+flag``s of GEEX_FLAGS (e.g. ``geex+keep+lastsync``)."""
    sets = [f"model.preset={preset}", "run.dtype=bfloat16", f"run.device={topo.device.type}", "run.compile=true",
            f"optim.lr={lr}"]
    sets += [item for flag in variant.split("+")[1:] for item in GEEX_FLAGS[flag]]
    trainee = Trainee(load_config(None, sets), VOCAB, seq, topo)
    steps = [0]

    def finish() -> None:  # geex train's optimizer step, its lr schedule included
        trainee.optimizer_step(steps[0])
        steps[0] += 1

    return trainee.loss, trainee.backward, finish, trainee.model_config


class PhaseClock:
    """Time of each phase of a step (forward, backward, optimizer), summed over the timed steps: CUDA
    events on a GPU (read once at the end, so nothing waits), wall time on a CPU."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.marks: list[tuple[str, object]] = []

    def mark(self, phase: str) -> None:
        """The phase that starts now ("" ends the last one)."""
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append((phase, event))
        else:
            self.marks.append((phase, time.perf_counter()))

    def totals(self) -> dict[str, float]:
        if self.cuda:
            torch.cuda.synchronize()
        out: dict[str, float] = {}
        for (phase, start), (_, end) in zip(self.marks, self.marks[1:]):
            if phase:
                took = start.elapsed_time(end) / 1e3 if self.cuda else end - start
                out[phase] = out.get(phase, 0.0) + took
        return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(preset: str, variant: str, batch: int, accum: int, seq: int, steps: int, warmup: int, topo,
            lr: float = 3e-4) -> dict:
    tp = next((int(f[2:]) for f in variant.split("+")[1:] if f.startswith("tp")), 1)
    topo = dataclasses.replace(topo, tp=tp)  # a tensor-parallel group shares its data
    torch.manual_seed(topo.dp_rank)
    cuda = topo.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    if variant == "nanogpt":
        loss_fn, backward, finish, cfg = nanogpt_step_fn(preset, seq, topo.device)
    else:
        loss_fn, backward, finish, cfg = geex_step_fn(preset, seq, variant, topo, lr)
    data = torch.randint(0, cfg.vocab_size, (accum, batch, seq + 1), device=topo.device)

    def step(clock: PhaseClock | None = None) -> torch.Tensor:
        mark = clock.mark if clock is not None else (lambda phase: None)
        total = 0.0
        for micro in range(accum):
            mark("forward")
            loss = loss_fn(data[micro])
            mark("backward")
            backward(loss / accum, micro == accum - 1)
            total += loss.detach()
        mark("optimizer")
        finish()
        mark("")
        return total

    t0 = time.perf_counter()
    losses = [float(step()) / accum for _ in range(warmup)]  # the same batch again: memorised
    _sync(topo.device)
    warm_s = time.perf_counter() - t0
    if topo.distributed:
        torch.distributed.barrier()
    clock = PhaseClock(topo.device)
    t0 = time.perf_counter()
    for _ in range(steps):
        last = step(clock)
    _sync(topo.device)
    seconds = (time.perf_counter() - t0) / steps
    split = {phase: round(took / steps, 4) for phase, took in clock.totals().items()}
    tokens = batch * accum * seq * topo.dp_world
    flops = flops_per_token(cfg, seq)  # of the model that ran (its padded vocabulary included)
    peak = peak_flops(topo.device)
    result = {"preset": preset, "variant": variant, "gpus": topo.world, "tp": topo.tp, "batch": batch,
              "accum": accum, "seq": seq, "params": cfg.n_params(), "step_s": round(seconds, 4),
              "step_split_s": split, "tokens_per_s": round(tokens / seconds, 1),
              "tokens_per_s_gpu": round(tokens / seconds / topo.world, 1),
              "tflops_gpu": round(tokens / seconds * flops / topo.world / 1e12, 1),
              "mfu": round(tokens / seconds * flops / (peak * topo.world), 4) if peak else None,
              "peak_memory_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None,
              "warmup_s": round(warm_s, 1), "loss": round(float(last) / accum, 3),
              "warmup_losses": [round(x, 3) for x in losses]}
    del loss_fn, backward, finish, data
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    torch._dynamo.reset()
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default="codegeex-350m,codegeex-1.3b")
    ap.add_argument("--variants", default="geex,nanogpt")
    ap.add_argument("--batch", default="350m=16,1.3b=8,125m=32,13b=2", help="micro-batch per preset suffix")
    ap.add_argument("--accum", type=int, default=2)
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--lr", type=float, default=3e-4,
                    help="geex variants' peak lr (the schedule warms up over 100 steps)")
    ap.add_argument("--device", default="cuda", help="cuda, or cpu for a smoke run of the script itself")
    ap.add_argument("--commit", default=os.environ.get("GEEX_COMMIT", "unknown"))
    ap.add_argument("--out", help="append one JSON line per measurement")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("train_mfu.py needs a CUDA GPU (or --device cpu for a smoke run)", file=sys.stderr)
        return 2
    topo = setup(args.device, cpu_offload=any("offload" in v.split("+") for v in args.variants.split(",")))
    batches = dict(item.split("=") for item in args.batch.split(","))
    rows = []
    try:
        for preset in args.presets.split(","):
            batch = int(batches[preset.removeprefix("codegeex-")])
            for variant in args.variants.split(","):
                if variant == "nanogpt" and topo.distributed:
                    continue  # the peer runs on one GPU
                r = measure(preset, variant, batch, args.accum, args.seq, args.steps, args.warmup, topo, args.lr)
                name = torch.cuda.get_device_name() if topo.device.type == "cuda" else "cpu"
                r.update(device=name, torch=torch.__version__, commit=args.commit,
                         date=dt.date.today().isoformat())
                rows.append(r)
                if topo.main:
                    print(json.dumps(r), flush=True)
                    if args.out:
                        with open(args.out, "a") as f:
                            f.write(json.dumps(r) + "\n")
    except BaseException:
        teardown(topo)
        raise
    teardown(topo, synchronize=True)
    if topo.main:
        print(f"\n{'preset':14} {'variant':10} {'gpus':>4} {'tok/s':>10} {'tok/s/gpu':>10} {'TFLOP/s':>8} "
              f"{'MFU':>6} {'mem GB':>7}  step split (s): forward, backward, optimizer")
        for r in rows:
            mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "-"
            mem = f"{r['peak_memory_gb']:.2f}" if r["peak_memory_gb"] is not None else "-"
            split = " ".join(f"{k[:3]} {v:.3f}" for k, v in r["step_split_s"].items())
            print(f"{r['preset']:14} {r['variant']:10} {r['gpus']:>4} {r['tokens_per_s']:>10.0f} "
                  f"{r['tokens_per_s_gpu']:>10.0f} {r['tflops_gpu']:>8.1f} {mfu:>6} {mem:>7}  {split}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
