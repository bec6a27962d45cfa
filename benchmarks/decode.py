"""Decode speed on one GPU: geex's engine against a baseline measured in the same run, and the floor.

Two families. ``--preset codegeex-13b`` (default): CodeGeeX-13B shapes against the original's naive
recipe. ``--shapes qwen2.5-coder-1.5b,qwen2.5-coder-7b,smollm2-135m`` (the Llama family, shapes from
``serve.SHAPES``): geex against ``transformers`` (its static cache, ``generate`` compiling the decode
step where it can: the ``hf`` variant), weights from ``init_weights`` (seeded). Every row prints the
bandwidth floor: the bytes a step must read (every weight but an untied input embedding, plus the
KV cache at the step's length) over the card's measured copy bandwidth.

What is timed: batch B, a 128-token prompt (prefilled, not timed), then 256 new tokens, greedy, the
engine's loop (``sample`` + host read of the ids each step, as ``generate`` does); ms/token is the
decode wall time over 256. Weights are random (seeded, N(0, 0.02)), made directly on the GPU one
tensor at a time through ``build_model`` (so quantized variants never hold the bf16 model).

Variants (same process, same card):
- ``naive-fp16``: the reference-style decode -- [seq, batch, hidden] layout, K/V grown with
  ``torch.cat`` every step, matmul + softmax attention, no graphs, fp16 (the original's recipe);
- ``bf16-eager``: geex's model, static cache, launched op by op from Python;
- ``bf16`` / ``int8`` / ``int4``: geex's model (fused q/k/v), decode step replayed as a CUDA graph;
  INT8/INT4 are weight-only (``geex.models.quantize``, fused Triton dequantize-matmul).
Peak GPU memory is ``max_memory_allocated`` over building the model and decoding at batch 1.

Per-kernel views: ``decode_profile.py`` (where a step's GPU time goes) and ``gemv_sweep.py`` (the
matrix-vector products alone, in a CUDA graph, against cuBLAS). The kernels' correctness against
float64 is in ``tests/engine/test_cuda.py``.

Each variant runs in a process of its own. Usage: PYTHONPATH=src python benchmarks/decode.py --out DIR
[--variants ...] [--batches "1,8,32;int4:1,8"] [--shapes NAME,...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch
import torch.nn.functional as F

from geex.engine.generate import decode_step
from geex.engine.sampling import SamplingParams, sample
from geex.models.build import build_model
from geex.models.cache import KVCache
from geex.models.codegeex import CodeGeeX, CodeGeeXConfig, fast_gelu, get_config
from geex.models.fusion import checkpoint_state_dict
from geex.models.quantize import quantize_model, weight_bytes

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve import SHAPES  # noqa: E402 - benchmarks/ is on sys.path

GREEDY = SamplingParams(greedy=True)


class RandomWeights(Mapping):
    """A state dict whose tensors are made on demand on the GPU (seeded per name): N(0, 0.02) weights
    and biases, LayerNorm weights 1 + N(0, 0.02)."""

    def __init__(self, cfg: CodeGeeXConfig, dtype: torch.dtype, device: str = "cuda", seed: int = 0) -> None:
        with torch.device("meta"):  # the checkpoint's names (q/k/v apart), as a file gives them
            self.shapes = {k: v.shape for k, v in checkpoint_state_dict(CodeGeeX(cfg)).items()}
        self.dtype, self.device, self.seed = dtype, device, seed

    def __getitem__(self, name: str) -> torch.Tensor:
        g = torch.Generator(device=self.device).manual_seed(self.seed + sum(map(ord, name)) * 7919 + len(name))
        t = torch.randn(self.shapes[name], generator=g, device=self.device, dtype=self.dtype) * 0.02
        return t + 1 if "layernorm.weight" in name else t

    def __iter__(self) -> Iterator[str]:
        return iter(self.shapes)

    def __len__(self) -> int:
        return len(self.shapes)


def sync() -> None:
    torch.cuda.synchronize()


@torch.no_grad()
def time_engine(model: CodeGeeX, batch: int, prompt: int, new: int, step_mode: str, repeats: int = 3) -> float:
    """Median ms per decode step (each step yields ``batch`` tokens)."""
    cfg = model.config
    dtype = model.dtype
    ids = torch.randint(0, cfg.vocab_size, (batch, prompt), device="cuda")
    cache = KVCache(cfg, batch, prompt + new, device="cuda", dtype=dtype)
    first = model(ids, cache, start=0)[:, -1]
    step = decode_step(model, cache, None, step_mode)

    def run() -> None:
        logits = first
        for i in range(new):
            nxt = sample(logits, GREEDY, vocab_size=cfg.vocab_size)
            nxt.tolist()  # the engine reads every step's ids on the host (stop rules, streaming)
            logits = step(nxt, prompt + i)

    run()
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        run()
        sync()
        times.append((time.perf_counter() - t0) * 1e3 / new)
    return statistics.median(times)


@torch.no_grad()
def naive_forward(m: CodeGeeX, sd: dict[str, torch.Tensor], ids: torch.Tensor, start: int, past: list | None
                  ) -> tuple[torch.Tensor, list]:
    """The original's inference recipe: [seq, batch, hidden], K/V concatenated onto the past each step,
    separate q, k, v projections (``sd``: the checkpoint's tensors)."""
    cfg = m.config
    s, b = ids.shape[1], ids.shape[0]
    heads, d = cfg.n_head, cfg.head_dim
    pos = torch.arange(start, start + s, device=ids.device)
    x = (m.embedding.word_embeddings.weight[ids] + m.embedding.position_embeddings.weight[pos]).transpose(0, 1)
    new_past = []

    def attend(layer, prefix, q_in, kv_in, past_kv):
        a = layer.attention

        def proj(name: str, x: torch.Tensor) -> torch.Tensor:
            return F.linear(x, sd[f"{prefix}.attention.{name}.weight"], sd[f"{prefix}.attention.{name}.bias"])

        q, k, v = (proj(n, x).view(s, b * heads, d).transpose(0, 1)
                   for n, x in (("query", q_in), ("key", kv_in), ("value", kv_in)))
        if past_kv is not None:
            k, v = torch.cat((past_kv[0], k), dim=1), torch.cat((past_kv[1], v), dim=1)
        new_past.append((k, v))
        scores = torch.matmul(q, k.transpose(1, 2)) / math.sqrt(d)
        if s > 1:
            causal = torch.ones(s, k.shape[1], dtype=torch.bool, device=ids.device).tril(k.shape[1] - s)
            scores = scores.masked_fill(~causal, -10000.0)
        probs = torch.softmax(scores.float(), dim=-1).to(q.dtype)
        ctx = torch.matmul(probs, v).transpose(0, 1).reshape(s, b, heads * d)
        return F.linear(ctx, a.dense.weight, a.dense.bias)

    def block(layer, prefix, h, query, past_kv):
        ln = F.layer_norm(h, (cfg.n_embd,), layer.input_layernorm.weight, layer.input_layernorm.bias, cfg.layernorm_eps)
        h = h + attend(layer, prefix, ln if query is None else query, ln, past_kv)
        ln2 = F.layer_norm(h, (cfg.n_embd,), layer.post_attention_layernorm.weight,
                           layer.post_attention_layernorm.bias, cfg.layernorm_eps)
        mid = fast_gelu(F.linear(ln2, layer.mlp.dense_h_to_4h.weight, layer.mlp.dense_h_to_4h.bias))
        return h + F.linear(mid, layer.mlp.dense_4h_to_h.weight, layer.mlp.dense_4h_to_h.bias)

    for i, layer in enumerate(m.transformer.layers):
        x = block(layer, f"transformer.layers.{i}", x, None, past[i] if past else None)
    fin = m.transformer.final_layernorm
    f = F.layer_norm(x, (cfg.n_embd,), fin.weight, fin.bias, cfg.layernorm_eps)
    query = m.topQueryEmbedding.top_query_embeddings.weight[pos][:, None].expand_as(f)
    out = block(m.transformer.topQueryLayer, "transformer.topQueryLayer", f, query, past[-1] if past else None)
    return (out @ m.embedding.word_embeddings.weight.T).transpose(0, 1), new_past


@torch.no_grad()
def time_naive(model: CodeGeeX, batch: int, prompt: int, new: int, repeats: int = 3) -> float:
    cfg = model.config
    ids = torch.randint(0, cfg.vocab_size, (batch, prompt), device="cuda")
    sd = checkpoint_state_dict(model)  # q/k/v apart, as the original holds them

    def run() -> None:
        logits, past = naive_forward(model, sd, ids, 0, None)
        logits = logits[:, -1]
        sync()
        t0 = time.perf_counter()
        for i in range(new):
            nxt = sample(logits, GREEDY, vocab_size=cfg.vocab_size)
            nxt.tolist()
            logits, past = naive_forward(model, sd, nxt[:, None], prompt + i, past)
            logits = logits[:, -1]
        sync()
        times.append((time.perf_counter() - t0) * 1e3 / new)

    times: list[float] = []
    run()
    times.clear()
    for _ in range(repeats):
        run()
    return statistics.median(times)


def copy_bandwidth() -> float:
    """TB/s of a device-to-device copy, counting bytes read plus written."""
    src = torch.empty(2 << 30, dtype=torch.uint8, device="cuda")
    src.random_(0, 255)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    sync()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(10):
        dst.copy_(src)
    end.record()
    sync()
    return 2 * src.numel() * 10 / (start.elapsed_time(end) / 1e3) / 1e12


def run_variant(name: str, cfg: CodeGeeXConfig, batches: list[int], prompt: int, new: int) -> list[dict]:
    dtype = torch.float16 if name == "naive-fp16" else torch.bfloat16
    quant = name if name in ("int8", "int4") else None
    torch.manual_seed(0)
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    model = build_model(cfg, RandomWeights(cfg, dtype), device="cuda", quantize=quant)
    sync()
    load_s = time.perf_counter() - t0
    nbytes = weight_bytes(model)
    rows = []
    for batch in batches if name not in ("naive-fp16", "bf16-eager") else [1]:
        if name == "naive-fp16":
            ms = time_naive(model, batch, prompt, new)
        else:
            ms = time_engine(model, batch, prompt, new, "eager" if name == "bf16-eager" else "graph")
        row = {"variant": name, "batch": batch, "ms_per_step": round(ms, 3), "tokens_per_s": round(batch * 1e3 / ms, 1),
               "weight_GB": round(nbytes / 1e9, 3), "weight_TBps": round(nbytes / (ms / 1e3) / 1e12, 3),
               "build_s": round(load_s, 1)}
        if batch == 1:
            row["peak_GB"] = round(torch.cuda.max_memory_allocated() / 1e9, 2)
        rows.append(row)
        print(row, flush=True)
    return rows


LLAMA_VARIANTS = ("hf", "bf16-eager", "bf16", "int8", "int4")


def llama_model(shape: str, quant: str | None):
    """A Llama of ``serve.SHAPES[shape]`` on the GPU (seeded ``init_weights`` in fp32, then bf16: the
    7B shape's 30 GB fit), its projections fused, quantized if asked."""
    from geex.models.llama import LlamaConfig

    cfg = LlamaConfig(n_positions=4096, **SHAPES[shape])
    with torch.device("cuda"):
        model = cfg.build()
    model.init_weights(torch.Generator(device="cuda").manual_seed(0))
    model = model.to(torch.bfloat16).eval()
    if quant:
        quantize_model(model, quant)
    torch.cuda.empty_cache()
    return model


def step_bytes(model, batch: int, context: int) -> int:
    """Bytes one decode step must read: every weight except an input embedding that is not also the
    head (a step reads one row of it), and the K/V of ``context`` positions of every row."""
    cfg = model.config
    total = weight_bytes(model)
    if not getattr(cfg, "tie_embeddings", True):
        emb = model.model.embed_tokens.weight
        total -= emb.numel() * emb.element_size()
    kv = 2 * cfg.cache_layers * cfg.n_kv_head * cfg.head_dim * context * batch * 2  # bf16 K and V
    return total + kv


@torch.no_grad()
def time_hf(shape: str, batch: int, prompt: int, new: int, repeats: int = 3) -> float:
    """ms per decode step of ``transformers`` ``generate`` (static cache, greedy): the time of ``new``
    tokens less that of one (the prefill), over ``new - 1`` steps."""
    import transformers

    sh = SHAPES[shape]
    common = dict(hidden_size=sh["n_embd"], num_hidden_layers=sh["n_layer"], num_attention_heads=sh["n_head"],
                  num_key_value_heads=sh["n_kv_head"], intermediate_size=sh["intermediate_size"],
                  vocab_size=sh["vocab_size"], rope_theta=sh["rope_theta"], tie_word_embeddings=sh["tie_embeddings"],
                  max_position_embeddings=4096)
    if sh["qkv_bias"]:
        model_cls, cfg = transformers.Qwen2ForCausalLM, transformers.Qwen2Config(**common)
    else:
        model_cls, cfg = transformers.LlamaForCausalLM, transformers.LlamaConfig(**common)
    with torch.device("cuda"):
        model = model_cls(cfg).to(torch.bfloat16).eval()
    ids = torch.randint(1, min(30000, sh["vocab_size"]), (batch, prompt), device="cuda")

    def run(n: int) -> float:
        kw = dict(max_new_tokens=n, min_new_tokens=n, do_sample=False, cache_implementation="static", pad_token_id=0)
        sync()
        t0 = time.perf_counter()
        model.generate(ids, **kw)
        sync()
        return time.perf_counter() - t0

    run(new)  # compiles and builds the static cache of this length
    run(1)
    times = [(run(new) - run(1)) * 1e3 / (new - 1) for _ in range(repeats)]
    return statistics.median(times)


def run_llama_variant(name: str, shape: str, batches: list[int], prompt: int, new: int, copy_tbps: float
                      ) -> list[dict]:
    torch.manual_seed(0)
    torch.cuda.reset_peak_memory_stats()
    model = None if name == "hf" else llama_model(shape, name if name in ("int8", "int4") else None)
    rows = []
    for batch in batches if name != "bf16-eager" else [1]:
        if name == "hf":
            ms = time_hf(shape, batch, prompt, new)
            nbytes = None
        else:
            ms = time_engine(model, batch, prompt, new, "eager" if name == "bf16-eager" else "graph")
            nbytes = step_bytes(model, batch, prompt + new // 2)
        row = {"shape": shape, "variant": name, "batch": batch, "ms_per_step": round(ms, 3),
               "tokens_per_s": round(batch * 1e3 / ms, 1)}
        if nbytes is not None:
            floor = nbytes / (copy_tbps * 1e12) * 1e3
            row.update(step_GB=round(nbytes / 1e9, 3), floor_ms=round(floor, 3), of_floor=round(floor / ms, 3))
        if batch == 1:
            row["peak_GB"] = round(torch.cuda.max_memory_allocated() / 1e9, 2)
        rows.append(row)
        print(row, flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--preset", default="codegeex-13b")
    ap.add_argument("--shapes", help=f"Llama-family shapes instead of the preset, of {', '.join(SHAPES)}")
    ap.add_argument("--variants", help="default: naive-fp16,bf16-eager,bf16,int8,int4 (CodeGeeX); "
                                       f"{','.join(LLAMA_VARIANTS)} (--shapes)")
    ap.add_argument("--batches", default="1,8,32", help="batch sizes; VARIANT:B,B overrides one variant's")
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--new", type=int, default=256)
    ap.add_argument("--commit", default="unknown")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one variant, print its rows as JSON
    ap.add_argument("--copy-tbps", type=float, help=argparse.SUPPRESS)  # internal: the parent's measurement
    args = ap.parse_args()
    variants = args.variants or (",".join(LLAMA_VARIANTS) if args.shapes else
                                 "naive-fp16,bf16-eager,bf16,int8,int4")
    batches = {"*": [1, 8, 32]}
    for part in args.batches.split(";"):
        key, _, value = part.rpartition(":")
        batches[key or "*"] = [int(b) for b in value.split(",")]
    if args.one:
        if args.shapes:
            rows = run_llama_variant(args.one, args.shapes, batches.get(args.one, batches["*"]), args.prompt,
                                     args.new, args.copy_tbps)
        else:
            rows = run_variant(args.one, get_config(args.preset), batches.get(args.one, batches["*"]), args.prompt,
                               args.new)
        print("ROWS " + json.dumps(rows), flush=True)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    import triton

    result = {"benchmark": "decode", "date": dt.date.today().isoformat(), "commit": args.commit,
              "card": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__,
              "prompt_tokens": args.prompt, "new_tokens": args.new, "copy_TBps": round(copy_bandwidth(), 3),
              "variants": []}
    if args.shapes:
        import transformers

        result.update(shapes={name: SHAPES[name] for name in args.shapes.split(",")},
                      transformers=transformers.__version__)
    else:
        result.update(preset=args.preset, params=get_config(args.preset).n_params())
    print(f"{result['card']}: device-to-device copy {result['copy_TBps']} TB/s", flush=True)
    torch.cuda.empty_cache()
    # One process a variant: after a variant that launches op by op, a graph variant in the same
    # process measured up to 1.8x slower (seen on an H100), so variants never share a process.
    for shape in args.shapes.split(",") if args.shapes else [None]:
        for name in variants.split(","):
            cmd = [sys.executable, __file__, "--out", str(args.out), "--preset", args.preset, "--batches", args.batches,
                   "--prompt", str(args.prompt), "--new", str(args.new), "--one", name,
                   "--copy-tbps", str(result["copy_TBps"])] + (["--shapes", shape] if shape else [])
            done = subprocess.run(cmd, capture_output=True, text=True)
            rows = [line for line in done.stdout.splitlines() if line.startswith("ROWS ")]
            if done.returncode != 0 or not rows:
                print(f"{shape or args.preset} {name} failed:\n{done.stderr[-2000:]}", flush=True)
                result["variants"].append({"shape": shape, "variant": name, "error": done.stderr[-600:]})
                continue
            result["variants"] += json.loads(rows[-1][5:])
            print(f"{shape or args.preset} {name}: done", flush=True)
    name = "decode_llama.json" if args.shapes else "decode.json"
    (args.out / name).write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n{'shape':18} {'variant':12} {'batch':>5} {'ms/step':>8} {'tok/s':>8} {'floor ms':>8} {'of floor':>8} "
          f"{'peak GB':>8}")
    for r in result["variants"]:
        if "error" in r:
            print(f"{str(r['shape']):18} {r['variant']:12} failed")
            continue
        print(f"{str(r.get('shape', args.preset)):18} {r['variant']:12} {r['batch']:>5} {r['ms_per_step']:>8.2f} "
              f"{r['tokens_per_s']:>8.1f} {r.get('floor_ms', ''):>8} {r.get('of_floor', ''):>8} {r.get('peak_GB', ''):>8}")


if __name__ == "__main__":
    main()
