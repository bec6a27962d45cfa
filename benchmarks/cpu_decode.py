"""CPU decode speed of the embedded default model (SmolLM2-135M-Instruct): geex against Hugging Face
``transformers`` ``generate``, in the same run, on the same machine and threads.

Batch 1, a code prompt, greedy, ``--new`` tokens (EOS ignored, so every variant decodes the same
count). tokens/s counts new tokens over the whole call (prefill included, as a user sees it). Both
load the same GGUF file and dequantize it to float; a variant is one (library, dtype, weights)
triple, timed ``--repeats`` times (the best is kept: other processes only ever slow a run down).
``same_tokens_as_fp32``: for how many tokens a variant's greedy text equals transformers' fp32 text
(bf16 and INT8 round differently, so greedy paths part sooner or later). ``prefill_tokens_per_s``:
prompt tokens read a second for a ``--prefill``-token prompt (this file's own source, cut there) into
an empty cache, best of ``--repeats`` -- what decides time-to-first-token for a completion request;
transformers' is one forward over the prompt with its cache (``use_cache=True``, logits of the last
position only, as generate computes them).

Variants: ``geex-fp32``, ``geex-bf16``, ``geex-bf16-int8`` (weights re-quantized to INT8 per channel
at load time; PyTorch's int8 weight-only CPU kernel), ``geex-bf16-int4`` (INT4 in groups of up to
128; PyTorch's int4 CPU kernel), ``hf-fp32``, ``hf-bf16``.

Usage: PYTHONPATH=src python benchmarks/cpu_decode.py [--out benchmarks/results] [--new 128]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import torch

from geex.engine.generate import generate, prefill
from geex.engine.sampling import SamplingParams
from geex.models import registry
from geex.models.cache import KVCache

PROMPT = '''import math


def is_prime(n: int) -> bool:
    """Return True if n is a prime number."""
'''
PROMPT_TOKENS: list[int] = []
VARIANTS = {"geex-fp32": (torch.float32, None), "geex-bf16": (torch.bfloat16, None),
            "geex-bf16-int8": (torch.bfloat16, "int8"), "geex-bf16-int4": (torch.bfloat16, "int4"), "hf-fp32": (torch.float32, None),
            "hf-bf16": (torch.bfloat16, None)}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def best_tokens_per_s(run, new: int, repeats: int) -> tuple[float, list[int]]:
    run(8)  # warm-up: allocator, thread pools, lazy initialisation
    best, ids = 0.0, []
    for _ in range(repeats):
        start = time.perf_counter()
        ids = run(new)
        best = max(best, len(ids) / (time.perf_counter() - start))
    return best, ids


def best_prefill_per_s(run, tokens: int, repeats: int) -> float:
    run()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return tokens / best


def long_prompt(encode, tokens: int) -> list[int]:
    ids = encode(Path(__file__).read_text(encoding="utf-8"))
    while len(ids) < tokens:
        ids = ids + ids
    return ids[:tokens]


def time_geex(dtype: torch.dtype, quantize: str | None, new: int, repeats: int, prefill_tokens: int
              ) -> tuple[float, list[int], float]:
    loaded = registry.load(dtype=dtype, quantize=quantize)
    model = loaded.model
    PROMPT_TOKENS.append(len(loaded.tokenizer.encode(PROMPT)))

    def run(n: int) -> list[int]:
        (out,) = generate(model, loaded.tokenizer, [PROMPT], n, SamplingParams(greedy=True), ignore_eos=True)
        return out.token_ids

    ids = torch.tensor([long_prompt(loaded.tokenizer.encode, prefill_tokens)])
    cache = KVCache(model.config, 1, prefill_tokens, dtype=model.dtype)

    @torch.inference_mode()
    def read() -> None:
        prefill(model, ids, cache, None)

    return (*best_tokens_per_s(run, new, repeats), best_prefill_per_s(read, prefill_tokens, repeats))


def time_hf(dtype: torch.dtype, new: int, repeats: int, prefill_tokens: int) -> tuple[float, list[int], float]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = registry.default_model_path()
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=dtype).eval()
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    ids = tok(PROMPT, return_tensors="pt").input_ids

    @torch.no_grad()
    def run(n: int) -> list[int]:
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                             do_sample=False, pad_token_id=tok.eos_token_id)
        return out[0, ids.shape[1]:].tolist()

    long = torch.tensor([long_prompt(lambda text: tok(text).input_ids, prefill_tokens)])

    @torch.no_grad()
    def read() -> None:
        model(long, use_cache=True, logits_to_keep=1)

    return (*best_tokens_per_s(run, new, repeats), best_prefill_per_s(read, prefill_tokens, repeats))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--prefill", type=int, default=512, help="prompt tokens of the prefill measurement")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    rows = {}
    for name in args.variants.split(","):
        dtype, quantize = VARIANTS[name]
        if name.startswith("geex"):
            tps, ids, pps = time_geex(dtype, quantize, args.new, args.repeats, args.prefill)
        else:
            tps, ids, pps = time_hf(dtype, args.new, args.repeats, args.prefill)
        rows[name] = {"tokens_per_s": round(tps, 2), "prefill_tokens_per_s": round(pps, 1), "ids": ids}
        print(f"{name:16} {tps:7.2f} tokens/s, prefill {pps:7.1f} tokens/s", flush=True)
    reference = rows.get("hf-fp32", rows.get("geex-fp32", {})).get("ids")
    for r in rows.values():  # greedy agreement with fp32: how far the text stays the same
        ids = r.pop("ids")
        if reference is not None:
            r["same_tokens_as_fp32"] = next((i for i, (a, b) in enumerate(zip(ids, reference)) if a != b), len(ids))
    hf_best = max((r["tokens_per_s"] for n, r in rows.items() if n.startswith("hf")), default=None)
    for name, r in rows.items():
        same = rows.get("hf-" + name.split("-")[1]) if name.startswith("geex") else None
        if same:
            r["vs_hf_same_dtype"] = round(r["tokens_per_s"] / same["tokens_per_s"], 2)
        if hf_best and name.startswith("geex"):
            r["vs_hf_best"] = round(r["tokens_per_s"] / hf_best, 2)
    result = {"benchmark": "cpu_decode", "date": dt.date.today().isoformat(), "commit": commit, "cpu": cpu_name(),
              "threads": args.threads, "torch": torch.__version__, "model": registry.DEFAULT_MODEL,
              "prompt_tokens": PROMPT_TOKENS[0] if PROMPT_TOKENS else None, "new_tokens": args.new,
              "prefill_tokens": args.prefill, "variants": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cpu_decode.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{'variant':16} {'tokens/s':>9} {'vs hf same dtype':>17} {'vs hf best':>11} {'= fp32 for':>11} "
          f"{'prefill tok/s':>14}")
    for name, r in rows.items():
        print(f"{name:16} {r['tokens_per_s']:>9.2f} {r.get('vs_hf_same_dtype', ''):>17} {r.get('vs_hf_best', ''):>11} "
              f"{r.get('same_tokens_as_fp32', ''):>11} {r['prefill_tokens_per_s']:>14.1f}")


if __name__ == "__main__":
    main()
