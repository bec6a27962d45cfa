"""Where a decode step's GPU time goes: kernel times by kind.

Profiles one static decode step of a 13B-shaped model (random weights, as ``decode.py``) and sums
kernel time per step by kind (GEMV/GEMM, attention, LayerNorm, elementwise ...), then replays the
step as a CUDA graph: graph time minus the sum of kernel times is what launching costs.
``--attention`` / ``--layernorm`` time those kernels alone in a graph (against SDPA and PyTorch's
LayerNorm); the matrix-vector products alone are ``gemv_sweep.py``'s.

``--rows qwen2.5-coder-1.5b`` (a ``serve.py`` shape): the continuous-batching step instead, rows at
their own positions (the scheduler's ``GraphedRowsStep``) against the same batch at one shared
position (``generate``'s static step), at ``--batches``, with the kernel breakdown of one row step.

Usage: PYTHONPATH=src python benchmarks/decode_profile.py [--quantize int8|int4] [--attention] [--layernorm]
       PYTHONPATH=src python benchmarks/decode_profile.py --rows qwen2.5-coder-1.5b [--batches 1,8,32,64]
"""

from __future__ import annotations

import argparse
import itertools
import re
from collections import defaultdict

import torch
import torch.nn.functional as F
from decode import RandomWeights, sync  # noqa: E402 - run from benchmarks/ or with it on sys.path

from geex.engine.cuda_graph import GraphedDecodeStep
from geex.models.build import build_model
from geex.models.cache import KVCache
from geex.models.codegeex import get_config

KINDS = [
    ("matmul", re.compile(r"gemv|gemm|wq_|cutlass|xmma|splitK|sm90|Kernel2", re.I)),
    ("attention", re.compile(r"attention|fmha|flash|softmax", re.I)),
    ("layernorm", re.compile(r"layer_norm|LayerNorm", re.I)),
    ("copy/index", re.compile(r"index|copy|gather|scatter|cat|Memcpy|memset", re.I)),
    ("elementwise", re.compile(r"elementwise|vectorized|reduce|triton_", re.I)),
]


def kind(name: str) -> str:
    return next((k for k, pat in KINDS if pat.search(name)), "other")


def replay_ms(g: torch.cuda.CUDAGraph, reps: int = 20) -> float:
    g.replay()
    sync()
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    for _ in range(reps):
        g.replay()
    b.record()
    sync()
    return a.elapsed_time(b) / reps


def graph_ms(fn, reps: int = 20) -> float:
    """ms of ``fn`` captured once as a CUDA graph and replayed."""
    g = torch.cuda.CUDAGraph()
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        fn()
    torch.cuda.current_stream().wait_stream(s)
    with torch.cuda.graph(g):
        fn()
    return replay_ms(g, reps)


def kernel_table(step, reps: int = 3, top: int = 25) -> float:
    """Print the kernels of ``step`` (eager) by time and by kind; the kernel time of one step (ms)."""
    for _ in range(3):
        step()
    sync()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        for _ in range(reps):
            step()
        sync()
    per_kernel: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for ev in prof.events():
        if ev.device_type == torch.autograd.DeviceType.CUDA:
            per_kernel[ev.name][0] += 1
            per_kernel[ev.name][1] += ev.device_time_total if hasattr(ev, "device_time_total") else ev.cuda_time_total
    by_kind: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for name, (n, us) in per_kernel.items():
        by_kind[kind(name)][0] += n / reps
        by_kind[kind(name)][1] += us / reps
    print("\ntop kernels (per step): count, µs")
    for name, (n, us) in sorted(per_kernel.items(), key=lambda kv: -kv[1][1])[:top]:
        print(f"{n / reps:8.0f} {us / reps:10.1f}  {name[:110]}")
    print("\nby kind (per step): kernels, µs")
    for k, (n, us) in sorted(by_kind.items(), key=lambda kv: -kv[1][1]):
        print(f"{k:12} {n:8.0f} {us:10.1f}")
    return sum(us for _, us in by_kind.values()) / 1e3


@torch.no_grad()
def rows_main(shape_name: str, batches: list[int], ctx: int, prompt: int) -> None:
    """Rows at their own positions (continuous batching) against one shared position, per batch."""
    from serve import SHAPES  # noqa: E402 - benchmarks/ is on sys.path

    from geex.engine.cuda_graph import GraphedRowsStep
    from geex.models.llama import LlamaConfig

    cfg = LlamaConfig(n_positions=max(ctx, 4096), **SHAPES[shape_name])
    with torch.device("cuda"):
        model = cfg.build()
    model.init_weights(torch.Generator(device="cuda").manual_seed(0))
    model = model.to(torch.bfloat16).eval()
    table = []
    for b in batches:
        cache = KVCache(cfg, b, ctx, device="cuda", dtype=torch.bfloat16)
        lengths = torch.randint(prompt // 2, prompt + 1, (b,)).tolist()
        for r, n in enumerate(lengths):  # each row's prompt, as the scheduler reads them
            model(torch.randint(0, 30000, (1, n), device="cuda"), cache.rows(r, r + 1), start=0, last_only=True)
        ids = torch.randint(0, 30000, (b,), device="cuda")
        starts = torch.tensor(lengths, device="cuda")
        rows = GraphedRowsStep(model, cache.rows(0, b, static=True))
        a, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        rows(ids, starts)
        sync()
        a.record()
        for _ in range(20):
            rows(ids, starts)
        e.record()
        sync()
        rows_ms = a.elapsed_time(e) / 20
        shared = GraphedDecodeStep(model, cache, None)
        shared.ids.copy_(ids.view(-1, 1))
        shared.slot.fill_(max(lengths))
        shared_ms = replay_ms(shared.graph)
        kernel_ms = None
        if b == 32 or b == batches[-1]:
            print(f"\n== {shape_name}, {b} rows at their own positions (eager, the graph's kernels) ==")
            view = cache.rows(0, b, static=True)
            kernel_ms = kernel_table(lambda: model(ids[:, None], view, start=starts))
        table.append((b, rows_ms, shared_ms, kernel_ms))
        del rows, shared, cache
        torch.cuda.empty_cache()
    print(f"\n{shape_name}, ctx {ctx}, prompts {prompt // 2}..{prompt} tokens: ms a step")
    print("| rows | own positions (graph) | one position (graph) | kernel sum (eager) |")
    print("|---|---|---|---|")
    for b, r, sh, k in table:
        print(f"| {b} | {r:.2f} | {sh:.2f} | {'' if k is None else f'{k:.2f}'} |")


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="codegeex-13b")
    ap.add_argument("--quantize", choices=["int8", "int4"])
    ap.add_argument("--slots", type=int, default=384)
    ap.add_argument("--attention", action="store_true", help="time the decode-attention kernel against SDPA")
    ap.add_argument("--layernorm", action="store_true", help="time the one-row LayerNorm kernel's warp counts")
    ap.add_argument("--rows", metavar="SHAPE", help="a serve.py shape: the continuous-batching step")
    ap.add_argument("--batches", default="1,8,32,64")
    ap.add_argument("--ctx", type=int, default=648)
    ap.add_argument("--prompt", type=int, default=512)
    args = ap.parse_args()
    if args.rows:
        return rows_main(args.rows, [int(b) for b in args.batches.split(",")], args.ctx, args.prompt)
    cfg = get_config(args.preset)
    model = build_model(cfg, RandomWeights(cfg, torch.bfloat16), device="cuda", quantize=args.quantize)
    cache = KVCache(cfg, 1, args.slots, device="cuda", dtype=torch.bfloat16)
    model(torch.randint(0, cfg.vocab_size, (1, 128), device="cuda"), cache, start=0)
    ids = torch.zeros(1, 1, dtype=torch.long, device="cuda")
    slot = torch.full((), 200, dtype=torch.long, device="cuda")
    step = lambda: model(ids, cache, start=slot)  # noqa: E731
    total_ms = kernel_table(step)
    g = GraphedDecodeStep(model, cache, None)
    ms = replay_ms(g.graph)
    print(f"\nkernel sum {total_ms:.2f} ms; graph replay {ms:.2f} ms; launch gaps {ms - total_ms:.2f} ms")

    if args.attention:
        from geex.kernels.decode_attention import decode_attention

        h, d = cfg.n_head, cfg.head_dim
        caches = [(torch.randn(1, h, args.slots, d, device="cuda", dtype=torch.bfloat16),
                   torch.randn(1, h, args.slots, d, device="cuda", dtype=torch.bfloat16)) for _ in range(40)]
        q, k, v = (torch.randn(1, h, 1, d, device="cuda", dtype=torch.bfloat16) for _ in range(3))
        mask = torch.zeros(1, 1, 1, args.slots, device="cuda", dtype=torch.bfloat16)
        print(f"\ndecode attention at slot {int(slot)} of {args.slots} (µs a layer)")
        counts = torch.zeros(h, device="cuda", dtype=torch.int32)
        for chunk, warps in itertools.product((16, 32, 64, 128), (1, 2, 4, 8)):
            us = graph_ms(lambda: [decode_attention(q, k, v, kc, vc, counts, slot, mask, chunk, warps)
                                   for kc, vc in caches]) * 1e3 / 40
            print(f"geex (split over {chunk}-slot chunks, {warps} warps) {us:6.1f} µs")

        def sdpa() -> None:
            for kc, vc in caches:
                kc.index_copy_(2, slot.view(1), k)
                vc.index_copy_(2, slot.view(1), v)
                F.scaled_dot_product_attention(q, kc, vc, attn_mask=mask)

        print(f"index_copy + SDPA                   {graph_ms(sdpa) * 1e3 / 40:6.1f} µs")

    if args.layernorm:
        from geex.kernels.layer_norm import _layer_norm_kernel

        n = cfg.n_embd
        xs = [torch.randn(1, n, device="cuda", dtype=torch.bfloat16) for _ in range(81)]
        w, b = torch.ones(n, device="cuda", dtype=torch.bfloat16), torch.zeros(n, device="cuda", dtype=torch.bfloat16)
        out = torch.empty(1, n, device="cuda", dtype=torch.bfloat16)
        print("\none-row LayerNorm (µs a call, 81 in a graph)")
        for warps in (2, 4, 8, 16):
            us = graph_ms(lambda: [_layer_norm_kernel[(1,)](x, w, b, out, n, n, n, 1e-5, BLOCK=8192, num_warps=warps)
                                   for x in xs]) * 1e3 / len(xs)
            print(f"warps={warps:2} {us:5.2f} µs")
        us = graph_ms(lambda: [F.layer_norm(x, (n,), w, b, 1e-5) for x in xs]) * 1e3 / len(xs)
        print(f"PyTorch  {us:5.2f} µs")


if __name__ == "__main__":
    main()
