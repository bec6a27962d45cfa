"""Rotary position embedding ("rotate half") of the queries and keys, in place, one launch.

Why a kernel: ``x * cos + cat(-x2, x1) * sin`` is five launches for q and five for k in every
layer: ~280 of a 28-layer model's decode step. Here one program rotates one head of one token,
queries and keys alike, reading them where the fused q/k/v projection wrote them. It rounds where
the eager form rounds (each product to the input's dtype, then their sum).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _rotary_kernel(x_ptr, cos_ptr, sin_ptr, T, stride_xr, stride_xh, stride_cb, stride_ct,
                   HALF: tl.constexpr):
    r = tl.program_id(0)  # token (row b * T + t)
    h = tl.program_id(1)  # head (queries, then keys)
    b = r // T
    t = r % T
    d = tl.arange(0, HALF)
    base = x_ptr + r * stride_xr + h * stride_xh
    x1 = tl.load(base + d)
    x2 = tl.load(base + HALF + d)
    cs = cos_ptr + b * stride_cb + t * stride_ct
    sn = sin_ptr + b * stride_cb + t * stride_ct
    c1 = tl.load(cs + d).to(tl.float32)
    c2 = tl.load(cs + HALF + d).to(tl.float32)
    s1 = tl.load(sn + d).to(tl.float32)
    s2 = tl.load(sn + HALF + d).to(tl.float32)
    ty = x1.dtype
    x1 = x1.to(tl.float32)
    x2 = x2.to(tl.float32)
    out1 = (x1 * c1).to(ty).to(tl.float32) + (-x2 * s1).to(ty).to(tl.float32)
    out2 = (x2 * c2).to(ty).to(tl.float32) + (x1 * s2).to(ty).to(tl.float32)
    tl.store(base + d, out1.to(ty))
    tl.store(base + HALF + d, out2.to(ty))


def supported(head_dim: int) -> bool:
    return head_dim >= 16 and head_dim & (head_dim - 1) == 0


def rotate_heads_(x: torch.Tensor, heads: int, head_dim: int, cos: torch.Tensor, sin: torch.Tensor) -> None:
    """Rotate the first ``heads`` heads of ``x[B, T, >= heads * head_dim]`` (the fused projection's
    output: queries then keys) in place; ``cos, sin``: [T, D] or [B, T, D] in x's dtype."""
    b, t, width = x.shape
    if width < heads * head_dim or x.stride(-1) != 1 or x.stride(0) != t * x.stride(1):
        raise ValueError("rotate_heads_ needs [B, T, heads * D ...] with contiguous rows")
    if cos.dim() == 2:
        cos, sin = cos[None], sin[None]
    if cos.stride(-1) != 1 or sin.stride() != cos.stride():
        cos, sin = cos.contiguous(), sin.contiguous()
    stride_cb = cos.stride(0) if cos.shape[0] > 1 else 0
    _rotary_kernel[(b * t, heads)](x, cos, sin, t, x.stride(1), head_dim, stride_cb, cos.stride(1),
                                   HALF=head_dim // 2, num_warps=1)
