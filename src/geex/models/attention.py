"""What every architecture's attention shares: positions and masks of a step, and attending through
the static KV cache (the fused one-token GPU kernel, or SDPA).

A step is ``ids[B, T]`` at cache slots ``start..start+T-1``. With ``pad`` (left padding per row, for
batched prompts of different lengths) a row's positions start at its first real token and it never
attends to its padding. A 0-dim tensor ``start`` makes a *static* step: attention spans every cache
slot under a mask, so shapes and control flow do not depend on the position (one CUDA graph serves
every step; a 1-element tensor is the same). A tensor ``start[B]`` of B > 1 positions gives every
row *its own* position (continuous batching: rows hold unrelated requests, each at its own length);
attention spans the slots up to the furthest row (every slot, for a cache view made ``static``: what
a CUDA graph captures), each row masked to its own.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from geex.models import ops
from geex.models.cache import KVCache, LayerCache


def step_inputs(ids: torch.Tensor, cache: KVCache | None, start: int | torch.Tensor, pad: torch.Tensor | None,
                n_positions: int, dtype: torch.dtype
                ) -> tuple[torch.Tensor, torch.Tensor | None, int | torch.Tensor]:
    """``(positions, mask, at)``: positions [T] or [B, T]; the additive mask [B, 1, T, keys] in
    ``dtype`` (None: plain causal attention); ``at``, what each layer gets as its start (a static
    step's slots, computed once)."""
    b, t = ids.shape
    if isinstance(start, torch.Tensor) and start.dim() == 1 and start.numel() == b > 1:
        return _per_row_inputs(ids, cache, start, pad, dtype)
    static = isinstance(start, torch.Tensor)
    if static and cache is None:
        raise ValueError("a static step (tensor start) needs a cache")
    limit = cache.max_len if cache is not None else n_positions
    if not static and start + t > limit:
        raise ValueError(f"sequence of {start + t} tokens exceeds the context of {limit}")
    slots = torch.arange(t, device=ids.device) + start
    if pad is None and not static:
        return slots, None, start
    pad = pad if pad is not None else torch.zeros(b, dtype=torch.long, device=ids.device)
    pos = (slots[None, :] - pad[:, None]).clamp(min=0)  # [B, T]
    keys = torch.arange(cache.max_len if static else start + t, device=ids.device)
    allowed = (keys[None, None, :] <= slots[None, :, None]) & (keys[None, None, :] >= pad[:, None, None])
    allowed |= keys[None, None, :] == slots[None, :, None]  # padding slots see themselves: no NaN
    # additive, made once: attention then converts nothing in every layer
    mask = torch.zeros((b, 1, t, keys.numel()), dtype=dtype, device=ids.device)
    mask.masked_fill_(~allowed[:, None], float("-inf"))
    return pos, mask, slots if static else start


def _per_row_inputs(ids: torch.Tensor, cache: KVCache | None, start: torch.Tensor, pad: torch.Tensor | None,
                    dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``step_inputs`` for per-row positions ``start[B]`` (one a row: ``step_inputs`` checked): each
    row writes slots start[r]..+T-1 and attends to its own slots up to its position (from ``pad[r]``
    on, if given); ``at`` is the slots [B, T]."""
    b, t = ids.shape
    if cache is None:
        raise ValueError("per-row positions need a cache")
    slots = start[:, None] + torch.arange(t, device=ids.device)  # [B, T]
    if cache.static:  # fixed shapes (a CUDA graph): every slot, under the mask
        span = cache.max_len
    else:
        span = int(slots.max()) + 1
        if span > cache.max_len:
            raise ValueError(f"sequence of {span} tokens exceeds the context of {cache.max_len}")
    keys = torch.arange(span, device=ids.device)
    allowed = keys[None, None, :] <= slots[:, :, None]
    pos = slots
    if pad is not None:
        pos = (slots - pad[:, None]).clamp(min=0)
        allowed &= keys[None, None, :] >= pad[:, None, None]
        allowed |= keys[None, None, :] == slots[:, :, None]
    mask = torch.zeros((b, 1, t, span), dtype=dtype, device=ids.device)
    mask.masked_fill_(~allowed[:, None], float("-inf"))
    return pos, mask, slots


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cache: LayerCache | None,
           start: int | torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Attention of ``q[B, H, T, D]`` over the cached keys/values plus the new ``k, v[B, Hkv, T, D]``
    (stored into ``cache``); ``H`` a multiple of ``Hkv`` (grouped-query attention). Returns
    [B, T, H * D], heads concatenated, ready for the output projection."""
    b, h, t, d = q.shape
    if cache is not None and isinstance(start, torch.Tensor) and t == 1:  # a decode step: static or per row
        y = ops.cached_attention_step(q, k, v, cache, start, mask)
        if y is not None:
            return y
    if cache is not None:
        k_all, v_all = cache.store(k, v, start)
        if isinstance(start, torch.Tensor) or start > 0:
            k, v = k_all, v_all
    gqa = k.shape[1] != h
    if mask is not None:
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=gqa)
    elif start == 0:
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
    else:  # new positions start..start+t-1 attend to every cached key up to their own
        causal = None if t == 1 else torch.ones(t, start + t, dtype=torch.bool, device=q.device).tril(start)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=causal, enable_gqa=gqa)
    return y.transpose(1, 2).reshape(b, t, h * d)
