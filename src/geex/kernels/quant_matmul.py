"""Weight-only quantized matmul, ``y = x @ dequant(w).T * scale + bias``, dequantizing in registers.

Why a kernel: at decode time a linear layer is a matrix-vector product whose cost is reading the
weights. Stock PyTorch dequantizes into a full bf16 copy first (reading the int8 weights, writing and
re-reading twice their size in bf16), which is slower than plain bf16. Here each tile of int8 or
packed int4 weights is loaded once, widened in registers and fed to the tensor cores; the per-channel
(INT8) or per-group (INT4) scales are applied to the fp32 partial sums.

Layouts (``geex.models.quantize`` makes them): INT8 ``w[N, K]`` int8 with ``scale[N]``; INT4
``w[N, K/2]`` uint8, byte j of a row holding k = 2j in its low and k = 2j + 1 in its high nibble, each
stored as q + 8 (q in -8..7), with ``scale[N, K/group]``.
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
GEMV_MAX_M = 8  # up to this many rows of x, the GEMV kernel; more, tensor-core tiles


@triton.jit
def _wq_matmul_kernel(
    x_ptr, w_ptr, s_ptr, b_ptr, y_ptr,
    M, N, K, stride_xm, stride_ym,
    M_BUCKET,  # noqa: ARG001 - the autotuning key for the batch size (a power of two)
    INT4: tl.constexpr, GROUP: tl.constexpr, HAS_BIAS: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    pid_n = tl.program_id(0)  # N tiles first: at decode time there is a single M tile
    pid_m = tl.program_id(1)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    m_ok = rm < M
    n_ok = rn < N
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    if INT4:
        HALF: tl.constexpr = BLOCK_K // 2
        rh = tl.arange(0, HALF)
        for k0 in tl.range(0, K, BLOCK_K):
            packed = tl.load(w_ptr + rn[None, :] * (K // 2) + (k0 // 2 + rh)[:, None], mask=n_ok[None, :], other=0)
            lo = ((packed & 0xF).to(tl.int8) - 8).to(x_ptr.dtype.element_ty)  # [HALF, BLOCK_N]
            hi = ((packed >> 4).to(tl.int8) - 8).to(x_ptr.dtype.element_ty)
            x_even = tl.load(x_ptr + rm[:, None] * stride_xm + (k0 + 2 * rh)[None, :], mask=m_ok[:, None], other=0.0)
            x_odd = tl.load(x_ptr + rm[:, None] * stride_xm + (k0 + 2 * rh + 1)[None, :], mask=m_ok[:, None], other=0.0)
            part = tl.dot(x_even, lo) + tl.dot(x_odd, hi)
            scale = tl.load(s_ptr + rn * (K // GROUP) + k0 // GROUP, mask=n_ok, other=0.0).to(tl.float32)
            acc += part * scale[None, :]
    else:
        rk = tl.arange(0, BLOCK_K)
        for k0 in tl.range(0, K, BLOCK_K):
            k_ok = (k0 + rk) < K
            w = tl.load(w_ptr + rn[None, :] * K + (k0 + rk)[:, None], mask=n_ok[None, :] & k_ok[:, None], other=0)
            x = tl.load(x_ptr + rm[:, None] * stride_xm + (k0 + rk)[None, :], mask=m_ok[:, None] & k_ok[None, :],
                        other=0.0)
            acc += tl.dot(x, w.to(x_ptr.dtype.element_ty))
        acc *= tl.load(s_ptr + rn, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    if HAS_BIAS:
        acc += tl.load(b_ptr + rn, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    tl.store(y_ptr + rm[:, None] * stride_ym + rn[None, :], acc.to(y_ptr.dtype.element_ty),
             mask=m_ok[:, None] & n_ok[None, :])


@triton.jit
def _wq_gemv_kernel(
    x_ptr, w_ptr, s_ptr, b_ptr, y_ptr,
    M, N, K, stride_xm, stride_ym,
    M_BUCKET,  # noqa: ARG001 - the autotuning key for the batch size (a power of two)
    INT4: tl.constexpr, GROUP: tl.constexpr, HAS_BIAS: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """Few rows of x (decode): a handful of weight rows per program, so there are thousands of
    programs streaming the weights -- the tensor-core tiling above leaves most of the memory system
    idle when N is only 5120. Products on the CUDA cores, fp32 sums."""
    rn = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    rm = tl.arange(0, BLOCK_M)
    n_ok = rn < N
    m_ok = rm < M
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    if INT4:
        HALF: tl.constexpr = BLOCK_K // 2
        GROUPS: tl.constexpr = BLOCK_K // GROUP
        rh = tl.arange(0, HALF)
        rg = tl.arange(0, GROUPS)
        for k0 in tl.range(0, K, BLOCK_K):
            h_ok = (k0 // 2 + rh) < K // 2
            packed = tl.load(w_ptr + rn[:, None] * (K // 2) + (k0 // 2 + rh)[None, :],
                             mask=n_ok[:, None] & h_ok[None, :], other=0)
            lo = ((packed & 0xF).to(tl.int8) - 8).to(tl.float32)  # [BLOCK_N, HALF]
            hi = ((packed >> 4).to(tl.int8) - 8).to(tl.float32)
            xm = rm[:, None] * stride_xm + (k0 + 2 * rh)[None, :]
            x_mask = m_ok[:, None] & h_ok[None, :]
            x_even = tl.load(x_ptr + xm, mask=x_mask, other=0.0).to(tl.float32)
            x_odd = tl.load(x_ptr + xm + 1, mask=x_mask, other=0.0).to(tl.float32)
            prod = x_even[:, None, :] * lo[None, :, :] + x_odd[:, None, :] * hi[None, :, :]
            per_group = tl.sum(tl.reshape(prod, (BLOCK_M, BLOCK_N, GROUPS, GROUP // 2)), axis=3)
            g_ok = (k0 // GROUP + rg) < K // GROUP
            scale = tl.load(s_ptr + rn[:, None] * (K // GROUP) + (k0 // GROUP + rg)[None, :],
                            mask=n_ok[:, None] & g_ok[None, :], other=0.0).to(tl.float32)
            acc += tl.sum(per_group * scale[None, :, :], axis=2)
    else:
        rk = tl.arange(0, BLOCK_K)
        for k0 in tl.range(0, K, BLOCK_K):
            k_ok = (k0 + rk) < K
            w = tl.load(w_ptr + rn[:, None] * K + (k0 + rk)[None, :], mask=n_ok[:, None] & k_ok[None, :],
                        other=0).to(tl.float32)
            x = tl.load(x_ptr + rm[:, None] * stride_xm + (k0 + rk)[None, :], mask=m_ok[:, None] & k_ok[None, :],
                        other=0.0).to(tl.float32)
            acc += tl.sum(x[:, None, :] * w[None, :, :], axis=2)
        acc *= tl.load(s_ptr + rn, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    if HAS_BIAS:
        acc += tl.load(b_ptr + rn, mask=n_ok, other=0.0).to(tl.float32)[None, :]
    tl.store(y_ptr + rm[:, None] * stride_ym + rn[None, :], acc.to(y_ptr.dtype.element_ty),
             mask=m_ok[:, None] & n_ok[None, :])


def _configs() -> list[triton.Config]:
    return [
        triton.Config({"BLOCK_N": bn, "BLOCK_K": bk}, num_warps=w, num_stages=s)
        for bn, bk, w, s in [
            (32, 128, 4, 4), (32, 256, 4, 3), (64, 128, 4, 4), (64, 256, 8, 3),
            (16, 256, 4, 4), (128, 128, 8, 3), (32, 512, 8, 2), (64, 64, 4, 5),
        ]
    ]


def _gemv_configs() -> list[triton.Config]:
    return [
        triton.Config({"BLOCK_N": bn, "BLOCK_K": bk}, num_warps=w, num_stages=s)
        for bn, bk, w, s in [
            (2, 1024, 4, 3), (4, 512, 4, 3), (4, 1024, 4, 2), (4, 1024, 8, 3), (8, 512, 4, 3),
            (8, 256, 4, 4), (2, 2048, 8, 2), (1, 2048, 4, 3), (16, 256, 8, 3),
        ]
    ]


def _prune(configs, named_args, **kwargs):
    """INT4 blocks must hold whole scale groups: BLOCK_K <= GROUP (tiles), BLOCK_K >= GROUP (GEMV)."""
    group = kwargs.get("GROUP", named_args.get("GROUP"))
    int4 = kwargs.get("INT4", named_args.get("INT4"))
    gemv = kwargs.get("BLOCK_M", named_args.get("BLOCK_M")) <= GEMV_MAX_M
    keep = [c for c in configs if not int4 or (c.kwargs["BLOCK_K"] >= group if gemv else c.kwargs["BLOCK_K"] <= group)]
    return keep or configs[:1]


_KEY = ["M_BUCKET", "N", "K", "INT4", "GROUP"]
_tuned = triton.autotune(configs=_configs(), key=_KEY, prune_configs_by={"early_config_prune": _prune})(_wq_matmul_kernel)
_tuned_gemv = triton.autotune(configs=_gemv_configs(), key=_KEY,
                              prune_configs_by={"early_config_prune": _prune})(_wq_gemv_kernel)
def _block_m(m: int) -> int:
    if m <= GEMV_MAX_M:
        return triton.next_power_of_2(m)
    return 16 if m <= 16 else 32 if m <= 32 else 64 if m <= 64 else 128


def wq_matmul(x: torch.Tensor, w: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None,
              group: int = 0) -> torch.Tensor:
    """``x[..., K]`` times an INT8 (``group == 0``) or packed INT4 weight; returns ``[..., N]`` in x's dtype."""
    int4 = group > 0
    n = w.shape[0]
    k = w.shape[1] * 2 if int4 else w.shape[1]
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
    block_m = _block_m(m)
    args = (x2, w, scale, bias if bias is not None else scale, y, m, n, k, x2.stride(0), y.stride(0),
            triton.next_power_of_2(min(m, 256)))
    flags = dict(INT4=int4, GROUP=group if int4 else 1, HAS_BIAS=bias is not None, BLOCK_M=block_m)
    gemv = m <= GEMV_MAX_M
    if INTERPRET:  # no timing to tune on: one small, valid configuration
        if gemv:
            block_n, block_k = 4, (max(64, group) if int4 else 64)
        else:
            block_n, block_k = 32, (min(64, group) if int4 else 64)
        grid = (triton.cdiv(n, block_n), triton.cdiv(m, block_m))
        kernel = _wq_gemv_kernel if gemv else _wq_matmul_kernel
        kernel[grid](*args, **flags, BLOCK_N=block_n, BLOCK_K=block_k)
    else:
        grid = lambda meta: (triton.cdiv(n, meta["BLOCK_N"]), triton.cdiv(m, block_m))  # noqa: E731
        (_tuned_gemv if gemv else _tuned)[grid](*args, **flags)
    return y.reshape(*lead, n)
