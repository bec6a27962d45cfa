"""Rotary position embedding ("rotate half") of the queries and keys, one launch.

Why a kernel: ``x * cos + cat(-x2, x1) * sin`` is five launches for q and five for k in every
layer: ~280 of a 28-layer model's decode step. Here one program rotates one head of one token,
queries and keys alike, reading them where the fused q/k/v projection wrote them (group-interleaved:
``geex.models.fusion``); the queries are written out contiguous, as attention reads them, the keys
back in place. It rounds where the eager form rounds (each product to the input's dtype, then their
sum).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _rotary_kernel(x_ptr, q_ptr, cos_ptr, sin_ptr, T, stride_xr, stride_qr, stride_cb, stride_ct,
                   GROUP: tl.constexpr, HALF: tl.constexpr):
    r = tl.program_id(0)  # token (row b * T + t)
    i = tl.program_id(1)  # head to rotate: per key/value group its GROUP query heads, then its key
    g = i // (GROUP + 1)
    j = i % (GROUP + 1)
    b = r // T
    t = r % T
    d = tl.arange(0, HALF)
    src = x_ptr + r * stride_xr + (g * (GROUP + 2) + j) * (2 * HALF)
    x1 = tl.load(src + d)
    x2 = tl.load(src + HALF + d)
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
    if j < GROUP:  # a query: to its place among the contiguous queries
        dst = q_ptr + r * stride_qr + (g * GROUP + j) * (2 * HALF)
        tl.store(dst + d, out1.to(ty))
        tl.store(dst + HALF + d, out2.to(ty))
    else:  # the key: back where it was
        tl.store(src + d, out1.to(ty))
        tl.store(src + HALF + d, out2.to(ty))


def supported(head_dim: int) -> bool:
    return head_dim >= 16 and head_dim & (head_dim - 1) == 0


def rotate_qk(qkv: torch.Tensor, group: int, head_dim: int, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """The rotated queries ``[B, T, H, D]`` (contiguous) of a fused projection's output ``qkv[B, T,
    Hkv * (group + 2) * D]`` (per key/value head its ``group`` query heads, its key, its value:
    ``geex.models.fusion``), whose keys are rotated in place; ``cos, sin``: [T, D] or [B, T, D]."""
    b, t, width = qkv.shape
    kv_heads = width // ((group + 2) * head_dim)
    if width != kv_heads * (group + 2) * head_dim or not qkv.is_contiguous():
        raise ValueError("rotate_qk needs a contiguous [B, T, Hkv * (group + 2) * D]")
    if cos.dim() == 2:
        cos, sin = cos[None], sin[None]
    if cos.stride(-1) != 1 or sin.stride() != cos.stride():
        cos, sin = cos.contiguous(), sin.contiguous()
    q = torch.empty(b, t, kv_heads * group, head_dim, device=qkv.device, dtype=qkv.dtype)
    stride_cb = cos.stride(0) if cos.shape[0] > 1 else 0
    _rotary_kernel[(b * t, kv_heads * (group + 1))](qkv, q, cos, sin, t, qkv.stride(1), q.stride(1), stride_cb,
                                                      cos.stride(1), GROUP=group, HALF=head_dim // 2, num_warps=1)
    return q
