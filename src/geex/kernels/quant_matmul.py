"""Weight-only quantized matmul, ``y = x @ dequant(w).T + bias``, dequantizing in registers.

Why a kernel: at decode time a linear layer is a matrix-vector product whose cost is reading the
weights. Stock PyTorch dequantizes into a full bf16 copy first (reading the int8 weights, writing and
re-reading twice their size in bf16), which is slower than plain bf16. Here each tile of int8 or
packed int4 weights is loaded once and widened in registers.

Two kernels: for one row of x (decode, ``M <= GEMV_MAX_M``) a GEMV that gives each program a
handful of weight rows and one row of x, sums each lane's 16-byte slice of a row in the lane, keeps
those fp32 partial sums per lane and reduces across lanes once at the end (a reduction per step
would serialise the warps); for more rows, tensor-core tiles
(``tl.dot``).
The GEMV widens integers with the float "magic number" trick (``bits(2^23) + u`` is the float
``2^23 + u``) instead of int-to-float conversions, which run at a quarter of the ALU rate.

Both kernels end with the decoder's element-wise work, so a decode step launches fewer kernels:
bias, then FastGELU (``act="gelu"``), then a residual add, in fp32 before the single rounding.

Layouts (``geex.models.quantize`` makes them): INT8 ``w[N, K]`` int8 with ``scale[N]``; INT4
``w[N, K/2]`` uint8, byte j of a row holding k = 2j in its low and k = 2j + 1 in its high nibble, each
stored as q + 8 (q in -8..7), with ``scale[N, K/group]``. The INT4 GEMV reads a row as 32-bit words:
nibble i of word j is k = 8j + i, so the 8 inputs a word needs are one contiguous 16-byte load.
``scale=None``: float weights (the GEMV also serves bf16 decoding: it beats cuBLAS at one row).
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
GEMV_MAX_M = 1  # up to this many rows of x, the GEMV kernel; more, tensor-core tiles (faster from 2 rows on, measured)
FLOAT, INT8, INT4 = 16, 8, 4  # weight modes


@triton.jit
def _widen(v, SHIFT: tl.constexpr, OFFSET: tl.constexpr):
    """Integers with ``0 <= v + SHIFT < 2^23`` -> float32 ``v + SHIFT - OFFSET``, exactly, without an
    I2F conversion: the bits of 2^23 plus n are the float 2^23 + n."""
    return (v.to(tl.int32) + (0x4B000000 + SHIFT)).to(tl.float32, bitcast=True) - (8388608.0 + OFFSET)


@triton.jit
def _weight_rows(w_ptr, rn, n_ok, row_len, cols, EVEN: tl.constexpr):
    """``w[rn, cols]`` of a row-major ``w[N, row_len]``; columns past ``row_len`` read as 0 unless
    ``EVEN`` says there are none."""
    if EVEN:
        return tl.load(w_ptr + rn[:, None] * row_len + cols[None, :], mask=n_ok[:, None], other=0)
    return tl.load(w_ptr + rn[:, None] * row_len + cols[None, :], mask=n_ok[:, None] & (cols < row_len)[None, :],
                   other=0)


@triton.jit
def _weight_rows3(w_ptr, rows, n_ok, row_len, cols, EVEN: tl.constexpr):
    """``w[rows, cols]`` for ``rows[BLOCK_N, 1, 1]`` and ``cols[BLOCK_V, V]``."""
    if EVEN:
        return tl.load(w_ptr + rows * row_len + cols[None, :, :], mask=n_ok[:, None, None], other=0)
    return tl.load(w_ptr + rows * row_len + cols[None, :, :], mask=n_ok[:, None, None] & (cols < row_len)[None, :, :],
                   other=0)


@triton.jit
def _epilogue(out, rm, rn, m_ok, n_ok, b_ptr, r_ptr, y_ptr, stride_rm, stride_ym,
              HAS_BIAS: tl.constexpr, ACT: tl.constexpr, HAS_RES: tl.constexpr):
    """``out[BLOCK_M, BLOCK_N]`` (fp32) + bias, FastGELU, + residual; one rounding to y's dtype."""
    if HAS_BIAS:
        out += tl.load(b_ptr + rn, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    if ACT == 1:  # FastGELU, x * sigmoid(1.702 x)
        out = out / (1.0 + tl.exp(-1.702 * out))
    if HAS_RES:
        out += tl.load(r_ptr + rm[:, None] * stride_rm + rn[None, :], mask=m_ok[:, None] & n_ok[None, :],
                       other=0.0).to(tl.float32)
    tl.store(y_ptr + rm[:, None] * stride_ym + rn[None, :], out.to(y_ptr.dtype.element_ty),
             mask=m_ok[:, None] & n_ok[None, :])


@triton.jit
def _wq_gemv_kernel(
    x_ptr, w_ptr, s_ptr, b_ptr, r_ptr, y_ptr,
    M, N, K, stride_xm, stride_rm, stride_ym,
    MODE: tl.constexpr, GROUP: tl.constexpr, HAS_BIAS: tl.constexpr, ACT: tl.constexpr, HAS_RES: tl.constexpr,
    EVEN_K: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, PREFETCH: tl.constexpr,
):
    """One row of x a program (grid: N blocks x M). x is loaded per weight row, in the weights'
    register layout, so weights, inputs and partial sums share one layout: the compiler adds no
    shared-memory shuffles inside the loop. Float/INT8 steps are [BLOCK_N, BLOCK_K / V, V], V inputs
    (16 bytes of weights) a lane, summed in the lane: one partial sum per 16 bytes, not per weight,
    keeps registers low (INT8: 62 -> 44 at 2 x 512, 1 warp) and so occupancy high. ``PREFETCH``: load the next step's
    weights before computing this one's, so loads stay in flight while the ALUs unpack."""
    rn = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    pid_m = tl.program_id(1)
    n_ok = rn < N
    x_row = x_ptr + pid_m * stride_xm
    if MODE == 4:  # w: int32 words [N, K/8]; a step is BLOCK_W words of every row
        BLOCK_W: tl.constexpr = BLOCK_K // 8
        rw = tl.arange(0, BLOCK_W)
        kw = K // 8
        acc = tl.zeros((BLOCK_N, BLOCK_W), dtype=tl.float32)
        if PREFETCH:
            ahead = _weight_rows(w_ptr, rn, n_ok, kw, rw, False)
        for w0 in tl.range(0, kw, BLOCK_W):
            k8 = (w0 + rw)[:, None] * 8 + tl.arange(0, 8)[None, :]  # [BLOCK_W, 8]: one 16-byte load a word
            if PREFETCH:  # the last prefetch lies past the row: masked, no traffic
                words = ahead
                ahead = _weight_rows(w_ptr, rn, n_ok, kw, w0 + BLOCK_W + rw, False)
            else:
                words = _weight_rows(w_ptr, rn, n_ok, kw, w0 + rw, EVEN_K)
            if EVEN_K:
                x8 = tl.load(x_row + k8)
            else:
                x8 = tl.load(x_row + k8, mask=k8 < K, other=0.0)
            scale = tl.load(s_ptr + rn[:, None] * (K // GROUP) + ((w0 + rw) * 8 // GROUP)[None, :],
                            mask=n_ok[:, None] & ((w0 + rw) < kw)[None, :], other=0.0).to(tl.float32)  # a scale a word
            # deinterleave the 8 inputs of each word in registers: nibble i = 4 b2 + 2 b1 + b0
            x_b0, x_b1 = tl.split(tl.reshape(x8.to(tl.float32), (BLOCK_W, 2, 2, 2)))
            x0, x2 = tl.split(x_b0)
            x1, x3 = tl.split(x_b1)
            xs = tl.split(x0) + tl.split(x1) + tl.split(x2) + tl.split(x3)  # nibbles 0, 4, 1, 5, 2, 6, 3, 7
            part = tl.zeros((BLOCK_N, BLOCK_W), dtype=tl.float32)
            for j in tl.static_range(8):
                nib = ((words >> (4 * ((j % 2) * 4 + j // 2))) & 0xF) | 0x4B000000  # the float 2^23 + (q + 8)
                part += xs[j][None, :] * (nib.to(tl.float32, bitcast=True) - 8388616.0)
            acc += part * scale
        out = tl.sum(acc, axis=1)
    else:  # a step is [BLOCK_N, BLOCK_V, V]: V inputs (16 bytes of weights) a lane, summed in the lane
        V: tl.constexpr = 16 if MODE == 8 else 8
        BLOCK_V: tl.constexpr = BLOCK_K // V
        cols = tl.arange(0, BLOCK_V)[:, None] * V + tl.arange(0, V)[None, :]
        rows = rn[:, None, None]
        acc = tl.zeros((BLOCK_N, BLOCK_V), dtype=tl.float32)
        if PREFETCH:
            ahead = _weight_rows3(w_ptr, rows, n_ok, K, cols, False)
        for k0 in tl.range(0, K, BLOCK_K):
            if PREFETCH:
                w = ahead
                ahead = _weight_rows3(w_ptr, rows, n_ok, K, k0 + BLOCK_K + cols, False)
            else:
                w = _weight_rows3(w_ptr, rows, n_ok, K, k0 + cols, EVEN_K)
            if EVEN_K:
                x = tl.load(x_row + k0 + cols[None, :, :] + 0 * rows)
            else:
                x = tl.load(x_row + k0 + cols[None, :, :] + 0 * rows, mask=((k0 + cols) < K)[None, :, :], other=0.0)
            wf = _widen(w, 128, 128) if MODE == 8 else w.to(tl.float32)
            acc += tl.sum(x.to(tl.float32) * wf, axis=2)  # x is loaded per row (cache hits) in the weights' layout
        out = tl.sum(acc, axis=1)
        if MODE == 8:
            out *= tl.load(s_ptr + rn, mask=n_ok, other=0.0).to(tl.float32)
    rm = pid_m + tl.arange(0, 1)
    _epilogue(out[None, :], rm, rn, rm < M, n_ok, b_ptr, r_ptr, y_ptr, stride_rm, stride_ym, HAS_BIAS, ACT, HAS_RES)


@triton.jit
def _wq_tiles_kernel(
    x_ptr, w_ptr, s_ptr, b_ptr, r_ptr, y_ptr,
    M, N, K, stride_xm, stride_rm, stride_ym,
    M_BUCKET,  # noqa: ARG001 - the autotuning key for the batch size (a power of two)
    MODE: tl.constexpr, GROUP: tl.constexpr, HAS_BIAS: tl.constexpr, ACT: tl.constexpr, HAS_RES: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid_n = tl.program_id(0)
    pid_m = tl.program_id(1)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    m_ok = rm < M
    n_ok = rn < N
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    if MODE == 4:  # BLOCK_K divides GROUP: one scale per column of the tile per step
        HALF: tl.constexpr = BLOCK_K // 2
        rh = tl.arange(0, HALF)
        rk = tl.arange(0, BLOCK_K)
        for k0 in tl.range(0, K, BLOCK_K):
            packed = tl.load(w_ptr + rn[None, :] * (K // 2) + (k0 // 2 + rh)[:, None], mask=n_ok[None, :], other=0)
            x = tl.load(x_ptr + rm[:, None] * stride_xm + (k0 + rk)[None, :], mask=m_ok[:, None], other=0.0)
            # rows 2j, 2j + 1 of the tile are byte j's low and high nibbles: x is read contiguously
            # (strided even/odd loads cannot be copied asynchronously, so they stalled the pipeline)
            nibbles = tl.join((packed & 0xF).to(tl.int8) - 8, (packed >> 4).to(tl.int8) - 8)  # [HALF, BLOCK_N, 2]
            w = tl.reshape(tl.permute(nibbles, (0, 2, 1)), (BLOCK_K, BLOCK_N))
            part = tl.dot(x, w.to(x.dtype))
            scale = tl.load(s_ptr + rn * (K // GROUP) + k0 // GROUP, mask=n_ok, other=0.0).to(tl.float32)
            acc += part * scale[None, :]
    else:
        rk = tl.arange(0, BLOCK_K)
        for k0 in tl.range(0, K, BLOCK_K):
            k_ok = (k0 + rk) < K
            w = tl.load(w_ptr + rn[None, :] * K + (k0 + rk)[:, None], mask=n_ok[None, :] & k_ok[:, None], other=0)
            x = tl.load(x_ptr + rm[:, None] * stride_xm + (k0 + rk)[None, :], mask=m_ok[:, None] & k_ok[None, :],
                        other=0.0)
            acc += tl.dot(x, w.to(x.dtype))
        if MODE == 8:
            acc *= tl.load(s_ptr + rn, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    _epilogue(acc, rm, rn, m_ok, n_ok, b_ptr, r_ptr, y_ptr, stride_rm, stride_ym, HAS_BIAS, ACT, HAS_RES)


def _tiles_configs() -> list[triton.Config]:
    return [
        triton.Config({"BLOCK_N": bn, "BLOCK_K": bk}, num_warps=w, num_stages=s)
        for bn, bk, w, s in [
            (32, 128, 4, 4), (32, 256, 4, 3), (64, 128, 4, 4), (64, 256, 8, 3),
            (16, 256, 4, 4), (128, 128, 8, 3), (32, 512, 8, 2), (64, 64, 4, 5), (32, 32, 4, 4), (64, 32, 4, 5),
        ]
    ]


def _arg(named_args: dict, kwargs: dict, name: str):
    return kwargs[name] if name in kwargs else named_args[name]


def _prune_tiles(configs, named_args, **kwargs):
    """INT4 tiles must not straddle scale groups: BLOCK_K <= GROUP (groups are powers of two >= 32)."""
    mode, group = _arg(named_args, kwargs, "MODE"), _arg(named_args, kwargs, "GROUP")
    return [c for c in configs if mode != INT4 or c.kwargs["BLOCK_K"] <= group]


_KEY = ["M_BUCKET", "N", "K", "MODE", "GROUP"]
_tuned_tiles = triton.autotune(configs=_tiles_configs(), key=_KEY,
                               prune_configs_by={"early_config_prune": _prune_tiles})(_wq_tiles_kernel)


def gemv_config(mode: int, n: int, k: int) -> tuple[int, int, int, bool]:
    """``(BLOCK_N, BLOCK_K, num_warps, PREFETCH)`` of the GEMV for ``w[n, k]``. Fixed, not autotuned:
    the best configurations measured in a CUDA graph on an H100 at the 13B shapes
    (``benchmarks/gemv_sweep.py``; the autotuner, timing kernels alone, picked ones up to 15% slower),
    and a fixed choice keeps results bitwise reproducible. Short outputs (``n < 8192``) take two rows a
    program, so each program has more bytes in flight."""
    if INTERPRET:  # no timing matters: small blocks, so tests cover several steps and partial blocks
        return 4, 64, 4, k > 128
    short = n < 8192
    if mode == FLOAT:
        config = ((2, 512, 2) if short else (1, 1024, 2)) if k <= 8192 else (1, 4096, 8)
    elif mode == INT8:
        config = ((2, 1024, 1) if short else (1, 1024, 1)) if k <= 8192 else (2, 4096, 4)
    else:
        config = (4, 1024, 2)
    block_n, block_k, warps = config
    return block_n, max(64, min(block_k, triton.next_power_of_2(k))), warps, mode == INT4


def _tile_rows(m: int) -> int:
    """BLOCK_M of the tile kernel."""
    return 16 if m <= 16 else 32 if m <= 32 else 64 if m <= 64 else 128


ACTIVATIONS = {None: 0, "gelu": 1}


def wq_matmul(x: torch.Tensor, w: torch.Tensor, scale: torch.Tensor | None, bias: torch.Tensor | None,
              group: int = 0, kernel: str = "auto", act: str | None = None,
              residual: torch.Tensor | None = None) -> torch.Tensor:
    """``act(x @ W.T + bias) + residual`` for ``x[..., K]`` and a weight that is float (``scale is
    None``), INT8 (``group == 0``) or packed INT4 (``group`` = scale group size). Returns ``[..., N]``
    in x's dtype. ``kernel``: auto, gemv, tiles; ``act``: None or "gelu" (FastGELU)."""
    mode = FLOAT if scale is None else INT4 if group > 0 else INT8
    n = w.shape[0]
    k = w.shape[1] * 2 if mode == INT4 else w.shape[1]
    if x.shape[-1] != k:
        raise ValueError(f"input has {x.shape[-1]} features, the weight expects {k}")
    if act not in ACTIVATIONS:
        raise ValueError(f"unknown activation {act!r} (known: {', '.join(map(str, ACTIVATIONS))})")
    lead = x.shape[:-1]
    x2 = x.reshape(-1, k)
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    m = x2.shape[0]
    y = torch.empty((m, n), device=x.device, dtype=x.dtype)
    if m == 0:
        return y.reshape(*lead, n)
    r2 = None
    if residual is not None:
        if residual.shape != (*lead, n):
            raise ValueError(f"residual of shape {tuple(residual.shape)}, the output is {(*lead, n)}")
        r2 = residual.reshape(m, n)
        if r2.stride(-1) != 1:
            r2 = r2.contiguous()
    gemv = m <= GEMV_MAX_M if kernel == "auto" else kernel == "gemv"
    if mode == FLOAT and not gemv:
        raise ValueError("float weights use the GEMV kernel only (cuBLAS serves larger batches)")
    scale_arg = scale if scale is not None else w
    flags = dict(MODE=mode, GROUP=group if mode == INT4 else 1, HAS_BIAS=bias is not None,
                 ACT=ACTIVATIONS[act], HAS_RES=r2 is not None)
    tail = (bias if bias is not None else scale_arg, r2 if r2 is not None else y, y, m, n, k, x2.stride(0),
            r2.stride(0) if r2 is not None else 0, y.stride(0))
    if gemv:
        if mode == INT4:
            w = w.contiguous().view(torch.int32)  # 8 nibbles a word; K is a multiple of the group (>= 32)
        block_n, block_k, warps, prefetch = gemv_config(mode, n, k)
        _wq_gemv_kernel[(triton.cdiv(n, block_n), m)](
            x2, w, scale_arg, *tail, **flags, EVEN_K=k % block_k == 0, BLOCK_N=block_n, BLOCK_K=block_k,
            PREFETCH=prefetch, num_warps=warps)
        return y.reshape(*lead, n)
    block_m = _tile_rows(m)
    tail = (*tail, triton.next_power_of_2(min(m, 256)))  # M_BUCKET
    if INTERPRET:  # no timing to tune on: one small, valid configuration
        block_k = min(64, group) if mode == INT4 else 64
        _wq_tiles_kernel[(triton.cdiv(n, 32), triton.cdiv(m, block_m))](
            x2, w, scale_arg, *tail, **flags, BLOCK_M=block_m, BLOCK_N=32, BLOCK_K=block_k)
    else:
        grid = lambda meta: (triton.cdiv(n, meta["BLOCK_N"]), triton.cdiv(m, block_m))  # noqa: E731
        _tuned_tiles[grid](x2, w, scale_arg, *tail, **flags, BLOCK_M=block_m)
    return y.reshape(*lead, n)
