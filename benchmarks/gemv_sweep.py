"""Matrix-vector products at 13B shapes, timed as a decode step runs them: 40 weights (one per layer,
8 GB and more, so nothing stays in L2) captured back to back in one CUDA graph. cuBLAS against the
GEMV kernel at every block configuration, to choose configurations and see the ceiling.

Usage: PYTHONPATH=src python benchmarks/gemv_sweep.py [--mode bf16|int8|int4] [--top 5]
"""

from __future__ import annotations

import argparse
import itertools

import torch
import torch.nn.functional as F
import triton

from decode_profile import graph_ms  # noqa: E402 - run from benchmarks/ or with it on sys.path
from geex.kernels import quant_matmul as qm
from geex.models.quantize import quantize_int4, quantize_int8

SHAPES = [(15360, 5120), (5120, 5120), (20480, 5120), (5120, 20480)]


def graph_us(fn, calls: int) -> float:
    """µs a call of ``fn``'s ``calls`` launches, captured once as a CUDA graph and replayed."""
    return graph_ms(fn, reps=10) * 1e3 / calls


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mode", default="bf16", choices=["bf16", "int8", "int4"])
    ap.add_argument("--layers", type=int, default=40)
    ap.add_argument("--top", type=int, default=5)
    ap.add_argument("--prefetch", action="store_true", help="also try prefetching the next weight tile")
    ap.add_argument("--shapes", default=",".join(f"{n}x{k}" for n, k in SHAPES), help="N x K, comma-separated")
    args = ap.parse_args()
    for n, k in (tuple(int(d) for d in shape.split("x")) for shape in args.shapes.split(",")):
        ws = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) * 0.02 for _ in range(args.layers)]
        bias = torch.randn(n, device="cuda", dtype=torch.bfloat16)
        x = torch.randn(1, k, device="cuda", dtype=torch.bfloat16)
        y = torch.empty(1, n, device="cuda", dtype=torch.bfloat16)
        if args.mode == "bf16":
            packed = [(w, w, 0) for w in ws]
            nbytes = n * k * 2
        elif args.mode == "int8":
            packed = [(*quantize_int8(w), 0) for w in ws]
            nbytes = n * k
        else:
            packed = [(*quantize_int4(w, 128), 128) for w in ws]
            nbytes = n * k // 2
        del ws
        mode = {"bf16": qm.FLOAT, "int8": qm.INT8, "int4": qm.INT4}[args.mode]
        rows = []
        if args.mode == "bf16":
            us = graph_us(lambda: [F.linear(x, w, bias) for w, _, _ in packed], len(packed))
            rows.append((us, "cuBLAS"))
        us = graph_us(lambda: [qm.wq_matmul(x, w, None if mode == qm.FLOAT else s, bias, g) for w, s, g in packed],
                      len(packed))
        rows.append((us, "wq_matmul (its fixed configuration)"))
        words = [(w.view(torch.int32) if mode == qm.INT4 else w, s, g) for w, s, g in packed]
        for bn, bk, warps, prefetch in itertools.product((1, 2, 4, 8), (256, 512, 1024, 2048, 4096), (1, 2, 4, 8),
                                                         (False, True) if args.prefetch else (False,)):
            sums = bn * bk // (8 if mode == qm.INT4 else 1)  # partial sums a program keeps
            if not 4 * 32 * warps <= sums <= 128 * 32 * warps:
                continue
            grid, stages = (triton.cdiv(n, bn), 1), 1

            def run() -> None:
                for w, s, g in words:
                    qm._wq_gemv_kernel[grid](x, w, s, bias, y, y, 1, n, k, k, 0, n, MODE=mode, GROUP=max(g, 1),
                                             HAS_BIAS=True, ACT=0, HAS_RES=False, EVEN_K=k % bk == 0, BLOCK_N=bn,
                                             BLOCK_K=bk, PREFETCH=prefetch, num_warps=warps,
                                             num_stages=stages)

            try:
                us = graph_us(run, len(packed))
            except Exception as e:  # noqa: BLE001 - a configuration that does not compile is skipped
                print(f"skip {bn} {bk} {warps} {prefetch}: {type(e).__name__}")
                continue
            rows.append((us, f"gemv BLOCK_N={bn} BLOCK_K={bk} warps={warps} prefetch={prefetch}"))
        rows.sort()
        print(f"\n{args.mode} {n} x {k}")
        for us, name in rows[: args.top] + [r for r in rows if not r[1].startswith("gemv")]:
            print(f"  {us:7.1f} µs {nbytes / us / 1e6:5.2f} TB/s  {name}")
        del packed
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
