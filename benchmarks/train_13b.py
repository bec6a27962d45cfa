"""CodeGeeX-13B training on one multi-GPU host: sharding layouts compared, and a checkpoint resumed on
another number of GPUs.

``layouts``: each layout is one ``torchrun --nproc_per_node N benchmarks/train_mfu.py`` of the
``codegeex-13b`` preset (bf16, sequence 2048, torch.compile, random tokens) with the same global batch
(``--global-batch`` sequences a step), so the rows differ only in how the model is split:

- ``fsdp``: FSDP2 over all GPUs, every layer recomputed in the backward, micro-batch 2;
- ``fsdp-mb4``: the same with micro-batch 4 (half the weight gathers a step);
- ``fsdp-ac2``: every other layer recomputed (``run.activation_checkpointing_every=2``);
  ``fsdp-ac2-mb4`` with micro-batch 4 (the best on 4 H100s: 42.6 % MFU);
- ``fsdp-noac``: nothing recomputed (does not fit 4 H100s; 8 GPUs halve the sharded state);
- ``fsdp-tp2``: 2-way tensor parallelism inside each pair of GPUs, FSDP2 across the pairs;
- ``fsdp-keep``, ``tp4``, ``fsdp-offload``: further options (``--layouts``).

Each row: tokens/s, MFU (PaLM's formula, recompute not counted), peak memory a GPU, the step-time split
(forward, backward, optimizer) — train_mfu.py's record plus the layout. A layout that does not fit
(out of memory) or does not finish in ``--timeout`` seconds is a row with its error.

``reshard``: ``geex train`` of codegeex-13b on packed data (``--data``, a ``geex data pack`` output of
sequence 2048): N GPUs train 5 steps with a torch.distributed.checkpoint at step 3; each ``--to``
target continues that checkpoint for steps 4–5 on another number of GPUs or another layout
(``2:offload``: 2 GPUs with the shards in host memory, since 13B's weights and AdamW state, 206 GB,
do not fit two 80 GB GPUs; ``4:tp2``: 2 data- x 2 tensor-parallel). The continued losses, gradient
norms and step-5 held-out loss are compared with the uninterrupted N-GPU run's. The checkpoint
(~155 GB: fp32 weights and both AdamW moments) is written once; the targets read it through hard
links. Run it again with other targets and it reuses the first run.

Usage: python benchmarks/train_13b.py layouts --gpus 4 [--layouts fsdp,fsdp-tp2] [--out rows.jsonl]
       python benchmarks/train_13b.py reshard --gpus 4 --data DIR --work /big/disk --to 2:offload,4:tp2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRESET = "codegeex-13b"

# layout -> (train_mfu.py variant, micro-batch)
LAYOUTS = {
    "fsdp": ("geex+ac", 2),
    "fsdp-mb4": ("geex+ac", 4),
    "fsdp-ac2": ("geex+ac2", 2),
    "fsdp-tp2": ("geex+ac+tp2", 4),
    "fsdp-ac2-mb4": ("geex+ac2", 4),
    "fsdp-noac": ("geex", 2),
    "fsdp-keep": ("geex+ac+keep", 2),
    "fsdp-offload": ("geex+ac+offload", 4),
    "tp4": ("geex+ac+tp4", 8),
}
DEFAULT_LAYOUTS = "fsdp,fsdp-mb4,fsdp-ac2,fsdp-ac2-mb4,fsdp-noac,fsdp-tp2"


def _env(**extra: str) -> dict:
    path = os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def _torchrun(gpus: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={gpus}", "--standalone"]


def _tail_error(text: str) -> str:
    """The telling line of a failed run's output (out of memory first)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for needle in ("OutOfMemoryError", "CUDA out of memory", "Error", "error"):
        found = [line for line in lines if needle in line]
        if found:
            return found[-1][:300]
    return lines[-1][:300] if lines else "no output"


def measure_layout(name: str, args: argparse.Namespace) -> dict:
    """One layout's train_mfu.py record (in its own torchrun: an out-of-memory rank cannot hang the
    next layout), or its error."""
    variant, micro = LAYOUTS[name]
    tp = next((int(f[2:]) for f in variant.split("+") if f.startswith("tp")), 1)
    if args.device == "cpu":
        variant += "+eager"  # a smoke run: compiling would take longer than it measures
    if args.gpus % tp:
        return {"layout": name, "error": f"{tp}-way tensor parallelism needs a multiple of {tp} GPUs"}
    dp = args.gpus // tp
    accum, rest = divmod(args.global_batch, micro * dp)
    if rest or accum < 1:
        return {"layout": name, "error": f"global batch {args.global_batch} is not micro-batch {micro} x "
                                         f"{dp} data-parallel ranks x an accumulation"}
    fd, part = tempfile.mkstemp(suffix=".jsonl")  # train_mfu.py's row
    os.close(fd)
    part = Path(part)
    cmd = _torchrun(args.gpus) + [str(ROOT / "benchmarks" / "train_mfu.py"), "--presets", args.preset,
                                  "--variants", variant, "--batch", f"{args.preset.removeprefix('codegeex-')}={micro}",
                                  "--accum", str(accum), "--seq", str(args.seq), "--steps", str(args.steps),
                                  "--warmup", str(args.warmup), "--device", args.device, "--commit", args.commit,
                                  "--out", str(part)]
    t0 = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=_env(OMP_NUM_THREADS="8"),
                              timeout=args.timeout)
        error = None if done.returncode == 0 else _tail_error(done.stdout + done.stderr)
    except subprocess.TimeoutExpired:
        error = f"did not finish in {args.timeout} s"
    row = json.loads(part.read_text().splitlines()[-1]) if part.is_file() and part.read_text().strip() else {}
    part.unlink(missing_ok=True)
    row = {"layout": name, **row, "wall_s": round(time.perf_counter() - t0, 1)}
    if error or not row.get("step_s"):
        row.update(variant=variant, batch=micro, accum=accum, error=error or "no measurement")
    return row


def run_layouts(args: argparse.Namespace) -> int:
    unknown = [name for name in args.layouts.split(",") if name not in LAYOUTS]
    if unknown:
        print(f"unknown layout {', '.join(unknown)} (known: {', '.join(LAYOUTS)})", file=sys.stderr)
        return 2
    rows = []
    for name in args.layouts.split(","):
        row = measure_layout(name, args)
        rows.append(row)
        print(json.dumps(row), flush=True)
        if args.out:
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
    print(f"\n{'layout':14} {'gpus':>4} {'tp':>2} {'mb':>3} {'acc':>3} {'tok/s':>8} {'MFU':>6} {'mem GB':>7}  "
          f"step split (s): forward, backward, optimizer")
    for r in rows:
        if r.get("error"):
            print(f"{r['layout']:14} {args.gpus:>4}  -- {r['error']}")
            continue
        split = " ".join(f"{k[:3]} {v:.3f}" for k, v in r["step_split_s"].items())
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "-"
        mem = f"{r['peak_memory_gb']:.2f}" if r["peak_memory_gb"] is not None else "-"
        print(f"{r['layout']:14} {r['gpus']:>4} {r['tp']:>2} {r['batch']:>3} {r['accum']:>3} {r['tokens_per_s']:>8.0f} "
              f"{mfu:>6} {mem:>7}  {split}")
    return 0


STEPS, SAVE_AT = 5, 3


def _train_sets(args: argparse.Namespace, out: Path, micro: int, accum: int, extra: list[str]) -> list[str]:
    cuda = args.device == "cuda"
    sets = [f"model.preset={args.preset}", f"data.path={args.data}", f"data.batch_size={micro}",
            f"optim.grad_accum={accum}", f"optim.lr={args.lr}", f"optim.min_lr={args.lr / 10}", "optim.warmup_steps=2",
            f"optim.max_steps={STEPS}", f"run.device={args.device}", "run.dtype=bfloat16", f"run.compile={cuda}",
            "run.activation_checkpointing=true",
            f"run.checkpoint_every={SAVE_AT}", "run.checkpoint_at_end=false", "run.keep_checkpoints=1",
            f"run.eval_every={STEPS}", "run.eval_sequences=32", "run.log_every=1", "run.tensorboard=false",
            f"run.out={out}", *extra]
    return [arg for s in sets for arg in ("--set", s)]


def _geex_train(gpus: int, sets: list[str], log: Path, timeout: int, **env: str) -> float:
    cmd = _torchrun(gpus) + ["-m", "geex", "train", "--quiet", *sets]
    t0 = time.perf_counter()
    with open(log, "w") as f:
        done = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=_env(**env), timeout=timeout)
    if done.returncode:
        raise SystemExit(f"geex train failed ({log}): {_tail_error(log.read_text())}")
    return round(time.perf_counter() - t0, 1)


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def _size_gb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e9, 1)


def run_reshard(args: argparse.Namespace) -> int:
    work = Path(args.work)
    first = work / f"gpus{args.gpus}"
    micro, accum = 2, 2
    global_batch = micro * accum * args.gpus
    result_path = work / "reshard.json"
    result = json.loads(result_path.read_text()) if result_path.is_file() else {}
    saved = first / "checkpoints" / f"step-{SAVE_AT:08d}"
    if not (first / "log.jsonl").is_file() or len(_rows(first)) < STEPS:
        shutil.rmtree(first, ignore_errors=True)
        first.mkdir(parents=True)
        result = {}  # targets continued an earlier first run
        wall = _geex_train(args.gpus, _train_sets(args, first, micro, accum, []), work / "first.log",
                           args.timeout, OMP_NUM_THREADS="8")
        result["first"] = {"gpus": args.gpus, "layout": "fsdp", "lr": args.lr, "micro_batch": micro,
                           "grad_accum": accum, "global_batch": global_batch, "wall_s": wall,
                           "checkpoint_gb": _size_gb(saved), "log": _rows(first)}
    for target in filter(None, args.to.split(",")):
        gpus, _, option = target.partition(":")
        gpus = int(gpus)
        tp = int(option[2:]) if option.startswith("tp") else 1
        dp = gpus // tp
        extra = {"": [], "offload": ["run.cpu_offload=true"]}.get(option, [f"run.tensor_parallel={tp}"])
        b, rest = divmod(global_batch, dp * accum)
        if rest:
            raise SystemExit(f"--to {target}: the global batch {global_batch} does not split over {dp} ranks")
        out = work / target.replace(":", "-")
        shutil.rmtree(out, ignore_errors=True)
        (out / "checkpoints" / saved.name).mkdir(parents=True)
        shutil.copy(first / "config.json", out / "config.json")
        (out / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows(first)[:SAVE_AT]))
        for f in saved.iterdir():  # hard links: the 155 GB are not copied
            os.link(f, out / "checkpoints" / saved.name / f.name)
        threads = str(max(1, (os.cpu_count() or 8) // gpus))  # host-side AdamW with offload
        visible = ",".join(str(i) for i in range(gpus))
        wall = _geex_train(gpus, _train_sets(args, out, b, accum, extra), work / f"{out.name}.log", args.timeout,
                           OMP_NUM_THREADS=threads, CUDA_VISIBLE_DEVICES=visible)
        mine, theirs = _rows(out)[SAVE_AT:], result["first"]["log"][SAVE_AT:]
        compare = {key: [(a.get(key), b_.get(key)) for a, b_ in zip(mine, theirs)]
                   for key in ("loss", "grad_norm", "eval_loss")}
        worst = {key: max((abs(x - y) / abs(y) for x, y in pairs if x is not None and y is not None), default=None)
                 for key, pairs in compare.items()}
        result[target] = {"gpus": gpus, "tp": tp, "option": option or "fsdp", "micro_batch": b, "grad_accum": accum,
                          "wall_s": wall, "steps": [r["step"] for r in mine], "vs_uninterrupted": compare,
                          "max_relative_difference": worst, "log": mine}
        shutil.rmtree(out / "checkpoints")
        result_path.write_text(json.dumps(result, indent=1) + "\n")
    result_path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nfirst run: {args.gpus} GPUs, checkpoint at step {SAVE_AT} ({result['first']['checkpoint_gb']} GB)")
    for step in result["first"]["log"]:
        print(f"  step {step['step']}: loss {step['loss']:.4f}  grad norm {step['grad_norm']:.4f}"
              + (f"  eval {step['eval_loss']:.4f}" if "eval_loss" in step else "")
              + f"  {step.get('tokens_per_s', 0):.0f} tok/s  {step.get('memory_gb', 0)} GB")
    for target, r in result.items():
        if target == "first":
            continue
        print(f"resumed on {target}: steps {r['steps']}, wall {r['wall_s']} s, max relative difference "
              + ", ".join(f"{k} {v:.2e}" for k, v in r["max_relative_difference"].items() if v is not None))
        for step in r["log"]:
            print(f"  step {step['step']}: loss {step['loss']:.4f}  grad norm {step['grad_norm']:.4f}"
                  + (f"  eval {step['eval_loss']:.4f}" if "eval_loss" in step else "")
                  + f"  {step.get('tokens_per_s', 0):.0f} tok/s  {step.get('memory_gb', 0)} GB")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    lay = sub.add_parser("layouts", help="throughput, MFU and memory of sharding layouts")
    lay.add_argument("--gpus", type=int, default=8)
    lay.add_argument("--seq", type=int, default=2048)
    lay.add_argument("--layouts", default=DEFAULT_LAYOUTS, help=f"comma-separated, of: {', '.join(LAYOUTS)}")
    lay.add_argument("--global-batch", type=int, help="sequences of 2048 a step (default: 4 a GPU)")
    lay.add_argument("--steps", type=int, default=6)
    lay.add_argument("--warmup", type=int, default=3)
    lay.add_argument("--timeout", type=int, default=300, help="seconds a layout may take")
    lay.add_argument("--commit", default=os.environ.get("GEEX_COMMIT", "unknown"))
    lay.add_argument("--out", help="append one JSON line a layout")
    res = sub.add_parser("reshard", help="save a checkpoint on --gpus GPUs, continue it on others")
    res.add_argument("--gpus", type=int, default=8)
    res.add_argument("--data", required=True, help="a `geex data pack` directory of sequence 2048")
    res.add_argument("--work", required=True, help="run directories (the checkpoint needs ~155 GB)")
    res.add_argument("--to", default="4,2:offload", help="GPUS[:offload|:tpK] targets, comma-separated")
    res.add_argument("--timeout", type=int, default=900, help="seconds a geex train run may take")
    res.add_argument("--lr", type=float, default=1e-6,
                     help="peak lr, reached after 2 warm-up steps: 13B's loss spikes from 1e-5 up "
                          "(a real run warms up over thousands of steps)")
    for p in (lay, res):
        p.add_argument("--preset", default=PRESET)
        p.add_argument("--device", default="cuda", help="cuda, or cpu for a smoke run of the script (processes)")
    args = ap.parse_args()
    if args.mode == "layouts":
        args.global_batch = args.global_batch or 4 * args.gpus
        return run_layouts(args)
    return run_reshard(args)


if __name__ == "__main__":
    sys.exit(main())
