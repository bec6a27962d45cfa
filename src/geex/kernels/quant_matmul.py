"""Weight-only quantized matmul, ``y = x @ dequant(w).T + bias``, dequantizing in registers.

Why a kernel: at decode time a linear layer is a matrix-vector product whose cost is reading the
weights. Stock PyTorch dequantizes into a full bf16 copy first (reading the int8 weights, writing and
re-reading twice their size in bf16), which is slower than plain bf16. Here each tile of int8 or
packed int4 weights is loaded once and widened in registers.

Two kernels: for a few rows of x (decode, ``M <= GEMV_MAX_M``) a GEMV that gives each program a
handful of weight rows, keeps fp32 partial products per lane and reduces once at the end (a
reduction per step would serialise the warps); for more rows, tensor-core tiles (``tl.dot``).
The GEMV widens integers with the float "magic number" trick (``bits(2^23) + u`` is the float
``2^23 + u``) instead of int-to-float conversions, which run at a quarter of the ALU rate.

Layouts (``geex.models.quantize`` makes them): INT8 ``w[N, K]`` int8 with ``scale[N]``; INT4
``w[N, K/2]`` uint8, byte j of a row holding k = 2j in its low and k = 2j + 1 in its high nibble, each
stored as q + 8 (q in -8..7), with ``scale[N, K/group]``. ``scale=None``: float weights (the GEMV
also serves bf16 decoding).
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
def _wq_gemv_kernel(
    x_ptr, w_ptr, s_ptr, b_ptr, y_ptr,
    M, N, K, stride_xm, stride_ym,
    M_BUCKET,  # noqa: ARG001 - the autotuning key for the batch size (a power of two)
    MODE: tl.constexpr, GROUP: tl.constexpr, HAS_BIAS: tl.constexpr, EVEN_K: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    rn = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    rm = tl.arange(0, BLOCK_M)
    n_ok = rn < N
    m_ok = rm < M
    if MODE == 4:  # one scale group per step: BLOCK_K is GROUP
        HALF: tl.constexpr = GROUP // 2
        rh = tl.arange(0, HALF)
        acc = tl.zeros((BLOCK_M, BLOCK_N, HALF), dtype=tl.float32)
        for k0 in tl.range(0, K, GROUP):
            packed = tl.load(w_ptr + rn[:, None] * (K // 2) + (k0 // 2 + rh)[None, :], mask=n_ok[:, None], other=0)
            scale = tl.load(s_ptr + rn * (K // GROUP) + k0 // GROUP, mask=n_ok, other=0.0).to(tl.float32)
            lo = _widen(packed & 0xF, 0, 8) * scale[:, None]  # [BLOCK_N, HALF]
            hi = _widen(packed >> 4, 0, 8) * scale[:, None]
            xm = x_ptr + rm[:, None] * stride_xm + (k0 + 2 * rh)[None, :]
            x_even = tl.load(xm, mask=m_ok[:, None], other=0.0).to(tl.float32)
            x_odd = tl.load(xm + 1, mask=m_ok[:, None], other=0.0).to(tl.float32)
            acc += x_even[:, None, :] * lo[None, :, :] + x_odd[:, None, :] * hi[None, :, :]
        out = tl.sum(acc, axis=2)
    else:
        rk = tl.arange(0, BLOCK_K)
        acc = tl.zeros((BLOCK_M, BLOCK_N, BLOCK_K), dtype=tl.float32)
        for k0 in tl.range(0, K, BLOCK_K):
            if EVEN_K:
                w = tl.load(w_ptr + rn[:, None] * K + (k0 + rk)[None, :], mask=n_ok[:, None], other=0)
                x = tl.load(x_ptr + rm[:, None] * stride_xm + (k0 + rk)[None, :], mask=m_ok[:, None], other=0.0)
            else:
                k_ok = (k0 + rk) < K
                w = tl.load(w_ptr + rn[:, None] * K + (k0 + rk)[None, :], mask=n_ok[:, None] & k_ok[None, :], other=0)
                x = tl.load(x_ptr + rm[:, None] * stride_xm + (k0 + rk)[None, :], mask=m_ok[:, None] & k_ok[None, :],
                            other=0.0)
            wf = _widen(w, 128, 128) if MODE == 8 else w.to(tl.float32)
            acc += x.to(tl.float32)[:, None, :] * wf[None, :, :]
        out = tl.sum(acc, axis=2)
        if MODE == 8:
            out *= tl.load(s_ptr + rn, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    if HAS_BIAS:
        out += tl.load(b_ptr + rn, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    tl.store(y_ptr + rm[:, None] * stride_ym + rn[None, :], out.to(y_ptr.dtype.element_ty),
             mask=m_ok[:, None] & n_ok[None, :])


@triton.jit
def _wq_tiles_kernel(
    x_ptr, w_ptr, s_ptr, b_ptr, y_ptr,
    M, N, K, stride_xm, stride_ym,
    M_BUCKET,  # noqa: ARG001
    MODE: tl.constexpr, GROUP: tl.constexpr, HAS_BIAS: tl.constexpr,
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
        for k0 in tl.range(0, K, BLOCK_K):
            packed = tl.load(w_ptr + rn[None, :] * (K // 2) + (k0 // 2 + rh)[:, None], mask=n_ok[None, :], other=0)
            lo = (packed & 0xF).to(tl.int8) - 8
            hi = (packed >> 4).to(tl.int8) - 8
            x_even = tl.load(x_ptr + rm[:, None] * stride_xm + (k0 + 2 * rh)[None, :], mask=m_ok[:, None], other=0.0)
            x_odd = tl.load(x_ptr + rm[:, None] * stride_xm + (k0 + 2 * rh + 1)[None, :], mask=m_ok[:, None], other=0.0)
            part = tl.dot(x_even, lo.to(x_even.dtype)) + tl.dot(x_odd, hi.to(x_odd.dtype))
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
    if HAS_BIAS:
        acc += tl.load(b_ptr + rn, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    tl.store(y_ptr + rm[:, None] * stride_ym + rn[None, :], acc.to(y_ptr.dtype.element_ty),
             mask=m_ok[:, None] & n_ok[None, :])


def _tiles_configs() -> list[triton.Config]:
    return [
        triton.Config({"BLOCK_N": bn, "BLOCK_K": bk}, num_warps=w, num_stages=s)
        for bn, bk, w, s in [
            (32, 128, 4, 4), (32, 256, 4, 3), (64, 128, 4, 4), (64, 256, 8, 3),
            (16, 256, 4, 4), (128, 128, 8, 3), (32, 512, 8, 2), (64, 64, 4, 5), (32, 32, 4, 4), (64, 32, 4, 5),
        ]
    ]


def _gemv_configs() -> list[triton.Config]:
    return [
        triton.Config({"BLOCK_N": bn, "BLOCK_K": bk}, num_warps=w, num_stages=s)
        for bn in (1, 2, 4, 8, 16) for bk in (128, 256, 512, 1024) for w in (4, 8) for s in (1, 3)
    ]


def _arg(named_args: dict, kwargs: dict, name: str):
    return kwargs[name] if name in kwargs else named_args[name]


def _prune_gemv(configs, named_args, **kwargs):
    """Keep ~32 fp32 partial sums a thread; INT4 steps are one scale group wide (BLOCK_K is ignored)."""
    block_m, mode = _arg(named_args, kwargs, "BLOCK_M"), _arg(named_args, kwargs, "MODE")
    group = _arg(named_args, kwargs, "GROUP")
    seen, keep = set(), []
    for c in configs:
        width = group // 2 if mode == INT4 else c.kwargs["BLOCK_K"]
        sig = (c.kwargs["BLOCK_N"], width, c.num_warps, c.num_stages)
        if 8 * 32 * c.num_warps <= block_m * c.kwargs["BLOCK_N"] * width <= 64 * 32 * c.num_warps and sig not in seen:
            seen.add(sig)
            keep.append(c)
    return keep or configs[:1]


def _prune_tiles(configs, named_args, **kwargs):
    """INT4 tiles must not straddle scale groups: BLOCK_K <= GROUP (groups are powers of two >= 32)."""
    mode, group = _arg(named_args, kwargs, "MODE"), _arg(named_args, kwargs, "GROUP")
    return [c for c in configs if mode != INT4 or c.kwargs["BLOCK_K"] <= group]


_KEY = ["M_BUCKET", "N", "K", "MODE", "GROUP"]
_even_k = triton.heuristics({"EVEN_K": lambda a: a["K"] % a["BLOCK_K"] == 0})
_tuned_gemv = triton.autotune(configs=_gemv_configs(), key=_KEY,
                              prune_configs_by={"early_config_prune": _prune_gemv})(_even_k(_wq_gemv_kernel))
_tuned_tiles = triton.autotune(configs=_tiles_configs(), key=_KEY,
                               prune_configs_by={"early_config_prune": _prune_tiles})(_wq_tiles_kernel)


def _block_m(m: int, gemv: bool) -> int:
    if gemv:
        return triton.next_power_of_2(m)
    return 16 if m <= 16 else 32 if m <= 32 else 64 if m <= 64 else 128


def wq_matmul(x: torch.Tensor, w: torch.Tensor, scale: torch.Tensor | None, bias: torch.Tensor | None,
              group: int = 0, kernel: str = "auto") -> torch.Tensor:
    """``x[..., K]`` times a weight: float (``scale is None``), INT8 (``group == 0``) or packed INT4
    (``group`` = scale group size). Returns ``[..., N]`` in x's dtype. ``kernel``: auto, gemv, tiles."""
    mode = FLOAT if scale is None else INT4 if group > 0 else INT8
    n = w.shape[0]
    k = w.shape[1] * 2 if mode == INT4 else w.shape[1]
    if x.shape[-1] != k:
        raise ValueError(f"input has {x.shape[-1]} features, the weight expects {k}")
    lead = x.shape[:-1]
    x2 = x.reshape(-1, k)
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    m = x2.shape[0]
    y = torch.empty((m, n), device=x.device, dtype=x.dtype)
    if m == 0:
        return y.reshape(*lead, n)
    gemv = m <= GEMV_MAX_M if kernel == "auto" else kernel == "gemv"
    if mode == FLOAT and not gemv:
        raise ValueError("float weights use the GEMV kernel only (cuBLAS serves larger batches)")
    block_m = _block_m(m, gemv)
    scale_arg = scale if scale is not None else w
    args = (x2, w, scale_arg, bias if bias is not None else scale_arg, y, m, n, k, x2.stride(0), y.stride(0),
            triton.next_power_of_2(min(m, 256)))
    flags = dict(MODE=mode, GROUP=group if mode == INT4 else 1, HAS_BIAS=bias is not None, BLOCK_M=block_m)
    if INTERPRET:  # no timing to tune on: one small, valid configuration
        block_n, block_k = (4, 64) if gemv else (32, min(64, group) if mode == INT4 else 64)
        grid = (triton.cdiv(n, block_n), 1 if gemv else triton.cdiv(m, block_m))
        if gemv:
            _wq_gemv_kernel[grid](*args, **flags, EVEN_K=k % block_k == 0, BLOCK_N=block_n, BLOCK_K=block_k)
        else:
            _wq_tiles_kernel[grid](*args, **flags, BLOCK_N=block_n, BLOCK_K=block_k)
    else:
        grid = lambda meta: (triton.cdiv(n, meta["BLOCK_N"]), 1 if gemv else triton.cdiv(m, block_m))  # noqa: E731
        (_tuned_gemv if gemv else _tuned_tiles)[grid](*args, **flags)
    return y.reshape(*lead, n)
