"""LayerNorm of a few rows (decode): one program a row, statistics in fp32.

Why a kernel: PyTorch's LayerNorm spends ~10 µs on one 5120-wide row (on an H100), and a decode
step of CodeGeeX-13B runs 81 of them: 0.8 ms a token, 7% of the step. This one takes a few µs.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _layer_norm_kernel(x_ptr, w_ptr, b_ptr, y_ptr, N, stride_x, stride_y, eps, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    ok = cols < N
    x = tl.load(x_ptr + row * stride_x + cols, mask=ok, other=0.0).to(tl.float32)
    mean = tl.sum(x, axis=0) / N
    centered = tl.where(ok, x - mean, 0.0)
    rstd = 1.0 / tl.sqrt(tl.sum(centered * centered, axis=0) / N + eps)
    w = tl.load(w_ptr + cols, mask=ok, other=0.0).to(tl.float32)
    b = tl.load(b_ptr + cols, mask=ok, other=0.0).to(tl.float32)
    tl.store(y_ptr + row * stride_y + cols, (centered * rstd * w + b).to(y_ptr.dtype.element_ty), mask=ok)


def rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """A row-wise kernel's launch: ``x`` as rows [R, N] with a unit last stride, an empty output
    like them, the block (N rounded up to a power of two) and the warps (16: fastest for one wide
    row on an H100)."""
    n = x.shape[-1]
    x2 = x.reshape(-1, n)
    if x2.stride(-1) != 1:
        x2 = x2.contiguous()
    block = triton.next_power_of_2(n)
    return x2, torch.empty(x2.shape, device=x.device, dtype=x.dtype), block, 16 if block >= 4096 else 4


def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """``F.layer_norm(x, x.shape[-1:], weight, bias, eps)``."""
    x2, y, block, warps = rows(x)
    _layer_norm_kernel[(x2.shape[0],)](x2, weight, bias, y, x.shape[-1], x2.stride(0), y.stride(0), eps, BLOCK=block,
                                      num_warps=warps)
    return y.reshape(x.shape)
