"""Prompt-lookup speculative decoding against plain decoding, on HumanEval-X prompts, same run.

The embedded default model (or ``--model``) on this machine's CPU (or ``--device cuda``), greedy,
batch 1, up to ``--max-new-tokens`` or EOS (no language stop rule: the instruct default model ends
most completion prompts' functions at once, which would time prefills): for each prompt, plain ``generate`` and ``generate(...,
speculate=K)`` for each K; the tokens must be identical (the script fails otherwise), and it
reports tokens/s, the speed-up and the tokens each forward yielded. Two prompt sets: completion
(HumanEval-X generation prompts) and translation (CodeGeeX's translation prompts, which show the
model the source program).

Writes ``benchmarks/results/speculative_<device>.{json,md}`` with the machine, date and commit.
Usage: PYTHONPATH=src python benchmarks/speculative.py [--problems 10] [--k 4,8] [--commit REV]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from geex.engine.generate import generate
from geex.humanevalx.generate import GenerateConfig, parse_pairs, units
from geex.languages import get_language
from geex.models import registry

ROOT = Path(__file__).resolve().parents[1]


class CountingModel:
    """The model, counting its forwards (prefill included)."""

    def __init__(self, model) -> None:
        self.model, self.calls = model, 0
        self.config, self.device, self.dtype = model.config, model.device, model.dtype

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.model(*args, **kwargs)


def prompt_sets(problems: int) -> dict[str, list]:
    completion = units(GenerateConfig("generation", [get_language("python"), get_language("cpp")], limit=problems))
    translation = units(GenerateConfig("translation", [], pairs=parse_pairs("python:cpp,cpp:python"), limit=problems))
    return {"completion": completion, "translation": translation}


def run_one(model, tokenizer, unit, new: int, k: int) -> dict:
    counting = CountingModel(model)
    start = time.perf_counter()
    (out,) = generate(counting, tokenizer, [unit.prompt], new, speculate=k)
    seconds = time.perf_counter() - start
    return {"tokens": out.token_ids, "seconds": seconds, "forwards": counting.calls}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="default: the embedded SmolLM2-135M-Instruct")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--problems", type=int, default=10, help="the first N problems of each language or pair")
    ap.add_argument("--k", default="4,8", help="draft lengths to compare, comma-separated")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--commit", default="unknown")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks/results")
    args = ap.parse_args()
    ks = [int(k) for k in args.k.split(",")]
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    loaded = registry.load(args.model, dtype=dtype, device=args.device)
    model = loaded.model
    tokenizer = loaded.tokenizer
    sets = prompt_sets(args.problems)
    run_one(model, tokenizer, sets["completion"][0], 8, 0)  # warm-up
    result = {"benchmark": "speculative", "date": dt.date.today().isoformat(), "commit": args.commit,
              "machine": torch.cuda.get_device_name() if args.device.startswith("cuda") else
              f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} threads",
              "model": loaded.name, "dtype": str(dtype), "max_new_tokens": args.max_new_tokens, "sets": {}}
    for name, todo in sets.items():
        rows = []
        for unit in todo:
            plain = run_one(model, tokenizer, unit, args.max_new_tokens, 0)
            row = {"task_id": unit.task_id, "source": unit.source_language.name if unit.source_language else None,
                   "tokens": len(plain["tokens"]), "plain_s": round(plain["seconds"], 4)}
            for k in ks:
                fast = run_one(model, tokenizer, unit, args.max_new_tokens, k)
                if fast["tokens"] != plain["tokens"]:
                    raise SystemExit(f"{unit.task_id} (k={k}): speculative tokens differ from plain decoding")
                row[f"k{k}_s"] = round(fast["seconds"], 4)
                row[f"k{k}_tokens_per_forward"] = round(len(fast["tokens"]) / max(1, fast["forwards"] - 1), 3)
            rows.append(row)
            print(name, row, flush=True)
        total_tokens = sum(r["tokens"] for r in rows)
        summary = {"prompts": len(rows), "tokens": total_tokens,
                   "plain_tokens_per_s": round(total_tokens / sum(r["plain_s"] for r in rows), 2)}
        for k in ks:
            summary[f"k{k}_tokens_per_s"] = round(total_tokens / sum(r[f"k{k}_s"] for r in rows), 2)
            summary[f"k{k}_speedup"] = round(sum(r["plain_s"] for r in rows) / sum(r[f"k{k}_s"] for r in rows), 3)
            summary[f"k{k}_median_tokens_per_forward"] = statistics.median(r[f"k{k}_tokens_per_forward"] for r in rows)
        result["sets"][name] = {"summary": summary, "rows": rows}
    tag = "cuda" if args.device.startswith("cuda") else "cpu"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"speculative_{tag}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{'set':12} {'tokens':>7} {'plain tok/s':>11}" + "".join(f" {'K=' + str(k) + ' tok/s':>11} {'speed-up':>8}"
                                                             for k in ks))
    for name, s in result["sets"].items():
        s = s["summary"]
        print(f"{name:12} {s['tokens']:>7} {s['plain_tokens_per_s']:>11}"
              + "".join(f" {s[f'k{k}_tokens_per_s']:>11} {s[f'k{k}_speedup']:>8}" for k in ks))


if __name__ == "__main__":
    main()
