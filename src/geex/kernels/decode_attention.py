"""Attention of one new token per row over a static KV cache, storing the token's key and value.

Why a kernel: a static decode step (one CUDA graph for every position) gives SDPA the whole cache
under a mask, so it reads every slot, used or not, and the new key/value need two ``index_copy_``
launches first. Here, in one launch (split-K "flash decoding"):
1. one program per (row, head, chunk of CHUNK slots) scores its slots below the new one and keeps an
   online-softmax partial (max, sum, weighted values) in fp32; chunks past the current slot (read
   from the slot tensor the graph replays with) exit at once, so the work follows the sequence, not
   the cache size;
2. the last program of a (row, head) to finish (a per-(row, head) counter) stores the new key/value,
   adds the new token's own score and merges the partials.
The additive mask applies as in SDPA (left padding). The slot is one for every row (a batch of
prompts decoded together) or one a row (continuous batching: unrelated requests, each at its own
length); either way a row reads only the chunks below its own slot.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

CHUNK = 64  # slots a partial program reads
NUM_WARPS = 2  # with CHUNK, the best of 1-8 warps x 16-128 slots on an H100 (decode_profile.py --attention)


@triton.jit
def _attention(
    q_ptr, k_ptr, v_ptr, kc_ptr, vc_ptr, mask_ptr, slot_ptr, m_ptr, l_ptr, acc_ptr, count_ptr, y_ptr,
    H, NSPLIT, stride_slot, stride_qb, stride_qh, stride_kb, stride_kh, stride_vb, stride_vh,
    stride_cb, stride_ch, stride_cs, stride_mb, stride_ms, stride_yb, scale,
    D: tl.constexpr, CHUNK: tl.constexpr, SPLITS: tl.constexpr, GROUP: tl.constexpr,
):
    bh = tl.program_id(0)
    split = tl.program_id(1)
    b = bh // H
    h = bh % H
    hkv = h // GROUP  # grouped-query attention: GROUP query heads share a key/value head
    slot = tl.load(slot_ptr + b * stride_slot)  # stride 0: one slot for every row
    used = tl.maximum(tl.cdiv(slot, CHUNK), 1)  # chunks holding slots before the new one (at least one)
    if split < used:
        d = tl.arange(0, D)
        q = tl.load(q_ptr + b * stride_qb + h * stride_qh + d).to(tl.float32) * scale
        # 1. this chunk's partial softmax over its cached slots (all masked: max -inf, sums 0)
        s = split * CHUNK + tl.arange(0, CHUNK)
        ok = s < slot
        cache = b * stride_cb + hkv * stride_ch + s[:, None] * stride_cs + d[None, :]
        keys = tl.load(kc_ptr + cache, mask=ok[:, None], other=0.0)
        values = tl.load(vc_ptr + cache, mask=ok[:, None], other=0.0)  # in flight with the keys
        bias = tl.load(mask_ptr + b * stride_mb + s * stride_ms, mask=ok, other=0.0).to(tl.float32)
        scores = tl.where(ok, tl.sum(keys.to(tl.float32) * q[None, :], axis=1) + bias, float("-inf"))
        m = tl.max(scores, axis=0)
        p = tl.exp(scores - tl.where(m == float("-inf"), 0.0, m))
        values = values.to(tl.float32)
        part = bh * NSPLIT + split
        tl.store(m_ptr + part, m)
        tl.store(l_ptr + part, tl.sum(p, axis=0))
        tl.store(acc_ptr + part * D + d, tl.sum(p[:, None] * values, axis=0))
        # 2. the last chunk of this (row, head) to finish merges them: a counter, released after the
        # stores above and acquired before reading the others' (past L1, which is not coherent)
        tl.debug_barrier()
        if tl.atomic_add(count_ptr + bh, 1, sem="acq_rel", scope="gpu") == used - 1:
            tl.atomic_xchg(count_ptr + bh, 0, sem="relaxed", scope="gpu")  # ready for the next step
            k_new = tl.load(k_ptr + b * stride_kb + hkv * stride_kh + d)
            v_new = tl.load(v_ptr + b * stride_vb + hkv * stride_vh + d)
            new = b * stride_cb + hkv * stride_ch + slot * stride_cs + d  # GROUP heads store the same values
            tl.store(kc_ptr + new, k_new.to(kc_ptr.dtype.element_ty))
            tl.store(vc_ptr + new, v_new.to(vc_ptr.dtype.element_ty))
            m_self = tl.sum(q * k_new.to(tl.float32), axis=0) + tl.load(
                mask_ptr + b * stride_mb + slot * stride_ms).to(tl.float32)  # it sees itself: finite
            sp = tl.arange(0, SPLITS)
            mine = sp < used
            ms = tl.load(m_ptr + bh * NSPLIT + sp, mask=mine, other=float("-inf"), cache_modifier=".cg")
            ls = tl.load(l_ptr + bh * NSPLIT + sp, mask=mine, other=0.0, cache_modifier=".cg")
            accs = tl.load(acc_ptr + (bh * NSPLIT + sp)[:, None] * D + d[None, :], mask=mine[:, None], other=0.0,
                           cache_modifier=".cg")
            top = tl.maximum(tl.max(ms, axis=0), m_self)
            w = tl.exp(ms - top)
            w_self = tl.exp(m_self - top)
            num = tl.sum(w[:, None] * accs, axis=0) + w_self * v_new.to(tl.float32)
            den = tl.sum(w * ls, axis=0) + w_self
            tl.store(y_ptr + b * stride_yb + h * D + d, (num / den).to(y_ptr.dtype.element_ty))


def supported(head_dim: int) -> bool:
    return head_dim >= 16 and head_dim & (head_dim - 1) == 0


def decode_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, k_cache: torch.Tensor,
                     v_cache: torch.Tensor, counts: torch.Tensor, slot: torch.Tensor, mask: torch.Tensor,
                     chunk: int = CHUNK, num_warps: int = NUM_WARPS) -> torch.Tensor:
    """``q``: [B, H, 1, D], ``k, v``: [B, Hkv, 1, D] (any strides, last dim contiguous; H a multiple of
    Hkv); caches [B, Hkv, S, D]; ``counts``:
    B * H int32 zeros (left at zero after each call; ``KVCache`` owns them); ``slot``: a long tensor
    of one element (every row's slot) or of B (each row's), where the new key/value go; ``mask``:
    additive, [B, 1, 1, S]. Returns the attention
    output as [B, 1, H * D] (heads concatenated, ready for the output projection)."""
    b, h, _, d = q.shape
    hkv = k.shape[1]
    if h % hkv or v.shape[1] != hkv or k_cache.shape[1] != hkv:
        raise ValueError(f"{h} query heads cannot share {hkv} key/value heads")
    if any(t.stride(-1) != 1 for t in (q, k, v, k_cache, v_cache)) or k_cache.stride() != v_cache.stride():
        raise ValueError("decode_attention needs contiguous head dimensions and caches of one layout")
    if counts.numel() < b * h or counts.dtype != torch.int32:
        raise ValueError(f"decode_attention needs {b * h} int32 counters")
    if slot.numel() not in (1, b):
        raise ValueError(f"{slot.numel()} slots for {b} rows (one for all, or one a row)")
    slot = slot.reshape(-1).contiguous()
    nsplit = triton.cdiv(k_cache.shape[2], chunk)
    m = torch.empty(b * h * nsplit, device=q.device, dtype=torch.float32)
    l_ = torch.empty_like(m)
    acc = torch.empty(b * h * nsplit, d, device=q.device, dtype=torch.float32)
    y = torch.empty(b, 1, h * d, device=q.device, dtype=q.dtype)
    _attention[(b * h, nsplit)](
        q, k, v, k_cache, v_cache, mask, slot, m, l_, acc, counts, y, h, nsplit, 0 if slot.numel() == 1 else 1,
        q.stride(0), q.stride(1),
        k.stride(0), k.stride(1), v.stride(0), v.stride(1), k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
        mask.stride(0), mask.stride(-1), y.stride(0), 1.0 / d ** 0.5,
        D=d, CHUNK=chunk, SPLITS=triton.next_power_of_2(nsplit), GROUP=h // hkv, num_warps=num_warps)
    return y
