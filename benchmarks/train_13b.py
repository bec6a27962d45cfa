"""CodeGeeX-13B training on one multi-GPU host: sharding layouts compared, and a checkpoint resumed on
another number of GPUs.

``layouts``: each layout is one ``torchrun --nproc_per_node N benchmarks/train_mfu.py`` of the
``codegeex-13b`` preset (bf16, sequence 2048, torch.compile, random tokens) with the same global batch
(``--global-batch`` sequences a step), so the rows differ only in how the model is split:

- ``fsdp``: FSDP2 over all GPUs, every layer recomputed in the backward, micro-batch 2;
- ``fsdp-mb4``: the same with micro-batch 4 (half the weight gathers a step);
- ``fsdp-ac2``: every other layer recomputed (``run.activation_checkpointing_every=2``);
  ``fsdp-ac2-mb4`` with micro-batch 4 (the best on 4 H100s: 42.6 % MFU);
- ``fsdp-noac``: nothing recomputed (expected not to fit 4 H100s; 8 GPUs halve the sharded state);
- ``fsdp-tp2``: 2-way tensor parallelism inside each pair of GPUs, FSDP2 across the pairs (on 2
  GPUs tensor parallelism alone);
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
links. Run it again with other targets and it reuses the first run (if its settings are the same).

Usage: python benchmarks/train_13b.py layouts --gpus 4 [--layouts fsdp,fsdp-tp2] [--out rows.jsonl]
       python benchmarks/train_13b.py reshard --gpus 4 --data DIR --work /big/disk --to 2:offload,4:tp2
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
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


def _env(gpus: int, **extra: str) -> dict:
    """Children see src/, the first ``gpus`` of the visible GPUs, and cores / processes threads
    each (torchrun would set 1; an offloaded AdamW runs on them)."""
    path = os.pathsep.join(p for p in (str(ROOT / "src"), os.environ.get("PYTHONPATH", "")) if p)
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", ",".join(str(i) for i in range(gpus))).split(",")
    threads = str(max(1, (os.cpu_count() or 8) // gpus))
    return {**os.environ, "PYTHONPATH": path, "CUDA_VISIBLE_DEVICES": ",".join(visible[:gpus]),
            "OMP_NUM_THREADS": threads, **extra}


def _torchrun(gpus: int, args: list[str], log: Path, timeout: int) -> str | None:
    """Run ``torchrun --nproc_per_node gpus ARGS`` into ``log``; None, or why it failed. On a timeout
    torchrun is sent SIGTERM, which it passes on to its workers (they run in sessions of their own,
    out of reach of a kill of torchrun alone), so no worker keeps its GPU for the next run."""
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={gpus}", "--master_addr=127.0.0.1",
           f"--master_port={_free_port()}", *args]
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=_env(gpus))
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            return f"did not finish in {timeout} s"
    return None if rc == 0 else _tail_error(log.read_text(errors="replace"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail_error(text: str) -> str:
    """The telling line of a failed run's output: out of memory, else a worker's last exception
    (not torchrun's ChildFailedError summary)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if re.search(r"\b\w*(Error|Exception): ", line) and "ChildFailedError" not in line]
    memory = [line for line in errors if "OutOfMemoryError" in line or "out of memory" in line]
    found = memory or errors or lines[-1:] or ["no output"]
    return found[-1][:300]


def _tensor_parallel(variant: str) -> int:
    return next((int(flag[2:]) for flag in variant.split("+") if re.fullmatch(r"tp\d+", flag)), 1)


def measure_layout(name: str, args: argparse.Namespace) -> dict:
    """One layout's train_mfu.py record (in its own torchrun: an out-of-memory rank cannot hang the
    next layout), or its error."""
    variant, micro = LAYOUTS[name]
    tp = _tensor_parallel(variant)
    if args.device == "cpu":
        variant += "+eager"  # a smoke run: compiling would take longer than it measures
    if args.gpus % tp:
        return {"layout": name, "error": f"{tp}-way tensor parallelism needs a multiple of {tp} GPUs"}
    dp = args.gpus // tp
    accum, rest = divmod(args.global_batch, micro * dp)
    if rest or accum < 1:
        return {"layout": name, "error": f"global batch {args.global_batch} is not micro-batch {micro} x "
                                         f"{dp} data-parallel ranks x an accumulation"}
    with tempfile.TemporaryDirectory() as tmp:
        part = Path(tmp) / "row.jsonl"  # train_mfu.py's record
        t0 = time.perf_counter()
        batch = f"{args.preset.removeprefix('codegeex-')}={micro}"
        error = _torchrun(args.gpus, [str(ROOT / "benchmarks" / "train_mfu.py"), "--presets", args.preset,
                                      "--variants", variant, "--batch", batch, "--accum", str(accum),
                                      "--seq", str(args.seq), "--steps", str(args.steps), "--warmup", str(args.warmup),
                                      "--device", args.device, "--commit", args.commit, "--out", str(part)],
                          Path(tmp) / "log", args.timeout)
        row = json.loads(part.read_text().splitlines()[-1]) if part.is_file() and part.read_text().strip() else {}
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
MICRO, ACCUM = 2, 2  # the first run's; targets keep ACCUM and the global batch
TARGET = re.compile(r"(\d+)(?::(offload|tp\d+))?")


def _train_args(args: argparse.Namespace, out: Path, micro: int, extra: list[str]) -> list[str]:
    sets = [f"model.preset={args.preset}", f"data.path={args.data}", f"data.batch_size={micro}",
            f"optim.grad_accum={ACCUM}", f"optim.lr={args.lr}", f"optim.min_lr={args.lr / 10}",
            "optim.warmup_steps=2", f"optim.max_steps={STEPS}", f"run.device={args.device}", "run.dtype=bfloat16",
            f"run.compile={args.device == 'cuda'}", "run.activation_checkpointing=true",
            f"run.checkpoint_every={SAVE_AT}", "run.checkpoint_at_end=false", "run.keep_checkpoints=1",
            f"run.eval_every={STEPS}", "run.eval_sequences=32", "run.log_every=1", "run.tensorboard=false",
            f"run.out={out}", *extra]
    return ["-m", "geex", "train", "--quiet", *(arg for s in sets for arg in ("--set", s))]


def _geex_train(gpus: int, args: argparse.Namespace, out: Path, micro: int, extra: list[str]) -> float:
    t0 = time.perf_counter()
    log = out.parent / f"{out.name}.log"
    error = _torchrun(gpus, _train_args(args, out, micro, extra), log, args.timeout)
    if error:
        raise SystemExit(f"geex train on {gpus} GPUs failed ({log}): {error}")
    return round(time.perf_counter() - t0, 1)


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def _size_gb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e9, 1)


def _targets(args: argparse.Namespace) -> list[tuple[str, int, int, list[str], int]]:
    """(name, GPUs, tensor-parallel size, config overrides, micro-batch) of each --to target,
    checked before the first run spends minutes and 155 GB."""
    out = []
    global_batch = MICRO * ACCUM * args.gpus
    for target in filter(None, args.to.split(",")):
        m = TARGET.fullmatch(target)
        if not m:
            raise SystemExit(f"--to {target!r}: expected GPUS, GPUS:offload or GPUS:tpK (e.g. 2:offload, 4:tp2)")
        gpus, option = int(m[1]), m[2] or ""
        tp = int(option[2:]) if option.startswith("tp") else 1
        extra = ["run.cpu_offload=true"] if option == "offload" else [f"run.tensor_parallel={tp}"]
        micro, rest = divmod(global_batch, max(1, gpus // tp) * ACCUM)
        if gpus < 1 or gpus % tp or rest or micro < 1:
            raise SystemExit(f"--to {target}: the global batch of {global_batch} sequences does not split over "
                             f"{gpus} GPUs as {tp}-way tensor parallel x {ACCUM} micro-batches")
        out.append((target, gpus, tp, extra, micro))
    return out


def _print_log(title: str, log: list[dict]) -> None:
    print(title)
    for r in log:
        print(f"  step {r['step']}: loss {r['loss']:.4f}  grad norm {r['grad_norm']:.4f}"
              + (f"  eval {r['eval_loss']:.4f}" if "eval_loss" in r else "")
              + f"  {r.get('tokens_per_s', 0):.0f} tok/s  {r.get('memory_gb', '-')} GB")


def run_reshard(args: argparse.Namespace) -> int:
    targets = _targets(args)
    work = Path(args.work)
    first = work / f"gpus{args.gpus}"
    saved = first / "checkpoints" / f"step-{SAVE_AT:08d}"
    result_path = work / "reshard.json"
    settings = {"gpus": args.gpus, "preset": args.preset, "device": args.device, "data": str(args.data),
                "lr": args.lr, "micro_batch": MICRO, "grad_accum": ACCUM, "global_batch": MICRO * ACCUM * args.gpus}
    result = json.loads(result_path.read_text()) if result_path.is_file() else {}
    if result.get("first", {}).get("settings") != settings or not saved.is_dir():  # (re)run the first run
        shutil.rmtree(first, ignore_errors=True)
        first.mkdir(parents=True)
        result_path.unlink(missing_ok=True)
        wall = _geex_train(args.gpus, args, first, MICRO, [])
        result = {"first": {"settings": settings, "layout": "fsdp", "wall_s": wall, "checkpoint_gb": _size_gb(saved),
                            "log": _rows(first)}}
        result_path.write_text(json.dumps(result, indent=1) + "\n")
    for target, gpus, tp, extra, micro in targets:
        out = work / target.replace(":", "-")
        shutil.rmtree(out, ignore_errors=True)
        (out / "checkpoints" / saved.name).mkdir(parents=True)
        shutil.copy(first / "config.json", out / "config.json")
        (out / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in result["first"]["log"][:SAVE_AT]))
        for f in saved.iterdir():  # hard links: the 155 GB are not copied
            os.link(f, out / "checkpoints" / saved.name / f.name)
        try:
            wall = _geex_train(gpus, args, out, micro, extra)
        finally:
            shutil.rmtree(out / "checkpoints")
        mine, theirs = _rows(out)[SAVE_AT:], result["first"]["log"][SAVE_AT:]
        compare = {key: [(a.get(key), b.get(key)) for a, b in zip(mine, theirs)] for key in ("loss", "grad_norm",
                                                                                           "eval_loss")}
        worst = {key: max((abs(x - y) / abs(y) for x, y in pairs if x is not None and y is not None), default=None)
                 for key, pairs in compare.items()}
        result[target] = {"gpus": gpus, "tp": tp, "overrides": extra, "micro_batch": micro, "grad_accum": ACCUM,
                          "wall_s": wall, "steps": [r["step"] for r in mine], "vs_uninterrupted": compare,
                          "max_relative_difference": worst, "log": mine}
        result_path.write_text(json.dumps(result, indent=1) + "\n")
    f = result["first"]
    _print_log(f"\nfirst run: {args.gpus} GPUs, checkpoint at step {SAVE_AT} ({f['checkpoint_gb']} GB)", f["log"])
    for target, r in result.items():
        if target != "first":
            _print_log(f"resumed on {target}: steps {r['steps']}, wall {r['wall_s']} s, max relative difference "
                       + ", ".join(f"{k} {v:.2e}" for k, v in r["max_relative_difference"].items() if v is not None),
                       r["log"])
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    lay = sub.add_parser("layouts", help="throughput, MFU and memory of sharding layouts",
                         description="Each layout in its own torchrun of train_mfu.py, one global batch for all.")
    lay.add_argument("--gpus", type=int, default=8, help="GPUs (processes) each layout runs on")
    lay.add_argument("--layouts", default=DEFAULT_LAYOUTS, help=f"comma-separated, of: {', '.join(LAYOUTS)}")
    lay.add_argument("--global-batch", type=int, help="sequences a step (default: 4 a GPU)")
    lay.add_argument("--seq", type=int, default=2048, help="tokens a sequence")
    lay.add_argument("--steps", type=int, default=6, help="timed steps a layout")
    lay.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation)")
    lay.add_argument("--timeout", type=int, default=300, help="seconds a layout may take")
    lay.add_argument("--commit", default=os.environ.get("GEEX_COMMIT", "unknown"), help="recorded in each row")
    lay.add_argument("--out", help="append one JSON line a layout")
    res = sub.add_parser("reshard", help="save a checkpoint on --gpus GPUs, continue it on others",
                         description="geex train: 5 steps on --gpus GPUs with a checkpoint at step 3, then "
                                     "steps 4-5 again from it on each --to target, compared.")
    res.add_argument("--gpus", type=int, default=8, help="GPUs of the first, uninterrupted run")
    res.add_argument("--data", required=True, help="a `geex data pack` directory of sequence 2048")
    res.add_argument("--work", required=True, help="run directories (the 13B checkpoint needs ~155 GB)")
    res.add_argument("--to", default="4,2:offload",
                     help="targets, comma-separated: GPUS (FSDP2), GPUS:offload (run.cpu_offload) or GPUS:tpK "
                          "(K-way tensor parallel, FSDP2 over the rest)")
    res.add_argument("--timeout", type=int, default=900, help="seconds a geex train run may take")
    res.add_argument("--lr", type=float, default=1e-6,
                     help="peak lr, reached after 2 warm-up steps: 13B's loss spikes from 1e-5 up "
                          "(a real run warms up over thousands of steps)")
    for p in (lay, res):
        p.add_argument("--preset", default=PRESET, help="a CodeGeeX preset (default: %(default)s)")
        p.add_argument("--device", default="cuda", help="cuda, or cpu for a smoke run of the script (processes)")
    args = ap.parse_args()
    if args.mode == "layouts":
        args.global_batch = args.global_batch or 4 * args.gpus
        return run_layouts(args)
    return run_reshard(args)


if __name__ == "__main__":
    sys.exit(main())
