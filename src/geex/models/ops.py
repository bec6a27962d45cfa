"""The decoder's operations, each with a fused GPU path for decoding and the plain PyTorch one.

A decode step at batch 1 is ~40 layers of matrix-vector products plus small element-wise kernels;
on a GPU each small kernel costs a few µs whatever its size, which adds up to a tenth of the step.
So on CUDA a linear layer at one row of input runs geex's GEMV with the bias, FastGELU and the
residual add in its epilogue (quantized layers run geex's kernels, same epilogue, at any row
count), LayerNorm of up to 64 rows a kernel of one program a row, and a static step's attention one
kernel that also stores the new key/value. On the CPU, under autograd, and for float layers with
more rows, the same call is the plain PyTorch sequence: the reference the fused path is tested
against.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from geex.models import dispatch
from geex.models.dispatch import fusable
from geex.models.quantize import QuantizedEmbedding, QuantizedLinear, int8_linear, scale_as

DECODE_ROWS = 1  # up to this many rows the GEMV path (beyond, cuBLAS or the quantized tile kernel)
LAYER_NORM_ROWS = 64  # up to this many rows geex's LayerNorm kernel (beyond, PyTorch's)


def fast_gelu(x: torch.Tensor) -> torch.Tensor:
    """CodeGeeX's GELU: ``x * sigmoid(1.702 x)`` (not the tanh or erf form)."""
    return x * torch.sigmoid(1.702 * x)


def _rows(x: torch.Tensor) -> int:
    return x.numel() // x.shape[-1] if x.shape[-1] else 0


def linear(module: nn.Module, x: torch.Tensor, act: str | None = None,
           residual: torch.Tensor | None = None) -> torch.Tensor:
    """``act(module(x)) + residual`` for an ``nn.Linear`` or a ``QuantizedLinear``; ``act``: None or
    "gelu"."""
    quantized = isinstance(module, QuantizedLinear)
    weight = module.qweight if quantized else module.weight
    if fusable(x, weight, module.bias) and (quantized or _rows(x) <= DECODE_ROWS):
        from geex.kernels.quant_matmul import wq_matmul

        if quantized:
            return wq_matmul(x, weight, module.scale, module.bias, module.group, act=act, residual=residual)
        return wq_matmul(x, weight, None, module.bias, kernel="gemv", act=act, residual=residual)
    if (residual is not None and act is None and not quantized and module.bias is None and fusable(x, weight)
            and residual.shape[:-1] == x.shape[:-1]):
        # one cuBLAS call adds the residual in its epilogue (a decode step's o/down projections at
        # several rows): one launch fewer each, and the sum is rounded once
        out = torch.addmm(residual.reshape(-1, residual.shape[-1]), x.reshape(-1, x.shape[-1]), weight.t())
        return out.view(*x.shape[:-1], weight.shape[0])
    y = module(x)
    if act == "gelu":
        y = fast_gelu(y)
    elif act is not None:
        raise ValueError(f"unknown activation {act!r}")
    return y if residual is None else y + residual


def layer_norm(module: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    affine = module.weight is not None and module.bias is not None
    if affine and fusable(x, module.weight, module.bias) and _rows(x) <= LAYER_NORM_ROWS:
        from geex.kernels.layer_norm import layer_norm as kernel

        return kernel(x, module.weight, module.bias, module.eps)
    return module(x)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """``weight * rms_norm(x)``: normalised in fp32, rounded to x's dtype before the weight (as
    ``transformers``)."""
    if fusable(x, weight):
        from geex.kernels.rms_norm import rms_norm as kernel

        return kernel(x, weight, eps)
    return weight * F.rms_norm(x.float(), weight.shape, eps=eps).to(x.dtype)


def rotate_half(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding of ``x[B, H, T, D]`` ("rotate half": dimension i pairs with i + D/2)."""
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


def qkv_heads(qkv: torch.Tensor, group: int, head_dim: int, cos: torch.Tensor | None = None,
              sin: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``q[B, H, T, D], k, v[B, Hkv, T, D]`` of a fused projection's output ``qkv[B, T, Hkv * (group +
    2) * D]`` (``geex.models.fusion``'s layout: per key/value head its ``group`` query heads, its key,
    its value); with ``cos, sin`` ([T, D] or [B, T, D]), q and k rotated. On a GPU the rotation is
    one launch that writes the queries contiguous and rotates the keys in place."""
    b, t, _ = qkv.shape
    heads = qkv.view(b, t, -1, group + 2, head_dim)
    k, v = heads[:, :, :, group].transpose(1, 2), heads[:, :, :, group + 1].transpose(1, 2)
    if cos is not None and fusable(qkv, cos):
        from geex.kernels.rotary import rotate_qk, supported

        if supported(head_dim) and cos.shape[-1] == head_dim and qkv.is_contiguous():
            return rotate_qk(qkv, group, head_dim, cos, sin).transpose(1, 2), k, v
    q = heads[:, :, :, :group].reshape(b, t, -1, head_dim).transpose(1, 2)  # a view when group is 1
    if cos is None:
        return q, k, v
    if cos.dim() == 3:  # per-row positions (padded batches): [B, T, D] -> [B, 1, T, D]
        cos, sin = cos[:, None], sin[:, None]
    return rotate_half(q, cos, sin), rotate_half(k, cos, sin), v


def swiglu(gate_up: torch.Tensor) -> torch.Tensor:
    """``silu(gate) * up`` of a fused gate/up projection's output (rows interleaved: gate 0, up 0,
    gate 1, ...; ``geex.models.fusion``)."""
    if fusable(gate_up):
        from geex.kernels.swiglu import swiglu as kernel

        return kernel(gate_up)
    gate, up = gate_up.unflatten(-1, (-1, 2)).unbind(-1)
    return F.silu(gate) * up


def cached_attention_step(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cache, slots: torch.Tensor,
                          mask: torch.Tensor | None) -> torch.Tensor | None:
    """One new token per row (``q, k, v``: [B, H, 1, D]) attending over its layer's ``cache`` (a
    ``LayerCache``) and stored into it, as one kernel: the output [B, 1, H * D]. ``slots``: one
    element (a static step: every row at that slot) or B (each row at its own). None where the fused
    path does not apply (the caller then stores and runs SDPA)."""
    if not (fusable(q, k, v) and q.shape[2] == 1 and mask is not None and mask.is_floating_point()
            and slots.numel() in (1, q.shape[0]) and cache.counts is not None):
        return None
    from geex.kernels.decode_attention import decode_attention, supported

    if not supported(q.shape[-1]):
        return None
    return decode_attention(q, k, v, cache.k, cache.v, cache.counts, slots, mask)


def tied_head(x: torch.Tensor, embedding: nn.Module) -> torch.Tensor:
    """Logits ``x @ E.T``: the output head is the word embedding ``E`` (an ``nn.Embedding`` or, in
    quantized models, a ``QuantizedEmbedding``)."""
    if isinstance(embedding, QuantizedEmbedding):
        if fusable(x):
            from geex.kernels.quant_matmul import wq_matmul

            return wq_matmul(x, embedding.qweight, embedding.scale, None)
        if dispatch.KERNELS == "never":
            return x @ embedding.dequantized(x.dtype).T
        return int8_linear(x, embedding.qweight, scale_as(embedding, x.dtype), None)
    weight = embedding.weight
    if fusable(x, weight) and _rows(x) <= DECODE_ROWS:
        from geex.kernels.quant_matmul import wq_matmul

        return wq_matmul(x, weight, None, None, kernel="gemv")
    return x @ weight.T
