"""RMSNorm, one program a row, statistics in fp32.

Why a kernel: ``weight * rms_norm(x.float()).to(dtype)`` in eager PyTorch is about seven
launches (cast, square, mean, rsqrt, scale, cast, weight), and a decode step of a Llama model runs
two a layer: ~400 launches of a few µs each in a 28-layer model, whatever the batch. This is one,
rounding where the eager form rounds (normalised in fp32, rounded to the input's dtype, then times
the weight).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from geex.kernels.layer_norm import rows


@triton.jit
def _rms_norm_kernel(x_ptr, w_ptr, y_ptr, N, stride_x, stride_y, eps, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    ok = cols < N
    x = tl.load(x_ptr + row * stride_x + cols, mask=ok, other=0.0).to(tl.float32)
    rstd = 1.0 / tl.sqrt(tl.sum(x * x, axis=0) / N + eps)
    normed = (x * rstd).to(y_ptr.dtype.element_ty).to(tl.float32)
    w = tl.load(w_ptr + cols, mask=ok, other=0.0).to(tl.float32)
    tl.store(y_ptr + row * stride_y + cols, (normed * w).to(y_ptr.dtype.element_ty), mask=ok)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """``weight * F.rms_norm(x.float(), x.shape[-1:], eps=eps).to(x.dtype)`` (``weight`` in x's dtype)."""
    x2, y, block, warps = rows(x)
    _rms_norm_kernel[(x2.shape[0],)](x2, weight, y, x.shape[-1], x2.stride(0), y.stride(0), eps, BLOCK=block,
                                    num_warps=warps)
    return y.reshape(x.shape)
