"""The preallocated (static) key/value cache every architecture decodes with.

Allocated once for ``max_len`` positions, so decoding never re-allocates and a CUDA graph can
capture a step. A config describes its cache through four attributes: ``cache_layers`` (CodeGeeX
counts its top query layer), ``n_kv_head`` (fewer than the query heads under grouped-query
attention), ``head_dim`` and ``n_positions`` (the longest context).
"""

from __future__ import annotations

from typing import Protocol

import torch


class CacheShape(Protocol):
    cache_layers: int
    n_kv_head: int
    head_dim: int
    n_positions: int


class LayerCache:
    """One layer's slice: [batch, kv heads, max_len, head_dim] (``counts``: scratch counters of the GPU
    decode-attention kernel)."""

    def __init__(self, k: torch.Tensor, v: torch.Tensor, counts: torch.Tensor | None = None,
                 static: bool = False) -> None:
        self.k, self.v, self.counts, self.static = k, v, counts, static

    def store(self, k: torch.Tensor, v: torch.Tensor, start: int | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the new positions; return keys/values of positions 0..start+t-1 -- or, for a tensor
        ``start`` (a static step, as CUDA graphs need: the slots of the new positions, which the
        model computes once a step), of every slot: shapes never change; for per-row slots
        ``start[B, T]`` (continuous batching), of slots 0..max(start)."""
        if isinstance(start, torch.Tensor) and start.dim() == 2:  # per-row slots [B, T]
            rows = torch.arange(k.shape[0], device=k.device)[:, None]
            self.k[rows, :, start] = k.transpose(1, 2)
            self.v[rows, :, start] = v.transpose(1, 2)
            if self.static:
                return self.k, self.v
            span = int(start.max()) + 1
            return self.k[:, :, :span], self.v[:, :, :span]
        if isinstance(start, torch.Tensor):
            self.k.index_copy_(2, start, k)
            self.v.index_copy_(2, start, v)
            return self.k, self.v
        end = start + k.shape[2]
        self.k[:, :, start:end] = k
        self.v[:, :, start:end] = v
        return self.k[:, :, :end], self.v[:, :, :end]


class KVCache:
    """Keys and values of every cached layer for ``batch`` rows and ``max_len`` positions."""

    def __init__(self, cfg: CacheShape, batch: int, max_len: int, device=None, dtype=torch.float32) -> None:
        if max_len > cfg.n_positions:
            raise ValueError(f"cache of {max_len} positions exceeds the context of {cfg.n_positions}")
        shape = (cfg.cache_layers, batch, cfg.n_kv_head, max_len, cfg.head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        # per (row, query head) counters for geex.kernels.decode_attention, zero between steps; made
        # here, outside any CUDA graph capture, so every replay finds them where it left them
        heads = getattr(cfg, "n_head", cfg.n_kv_head)
        self.counts = torch.zeros(cfg.cache_layers, batch * heads, device=device, dtype=torch.int32)
        self.max_len = max_len
        self.static = False  # per-row steps attend over every slot (fixed shapes for a CUDA graph)

    def layer(self, i: int) -> LayerCache:
        return LayerCache(self.k[i], self.v[i], self.counts[i], self.static)

    def rows(self, first: int, end: int, static: bool = False) -> "KVCache":
        """Rows ``first..end-1`` as a cache of their own that shares this one's memory (a view: what
        a step writes through it lands here). The engine's scheduler steps only the rows it needs;
        ``static``: per-row steps through the view have fixed shapes (CUDA graphs)."""
        view = object.__new__(KVCache)
        view.k, view.v = self.k[:, first:end], self.v[:, first:end]
        heads = self.counts.shape[1] // self.k.shape[1]
        view.counts = self.counts[:, first * heads:end * heads]
        view.max_len = self.max_len
        view.static = static
        return view

    def copy_prefix(self, src: int, dst: int, length: int) -> None:
        """Row ``dst`` gets row ``src``'s first ``length`` positions (a shared prompt prefix: a copy
        costs far less than computing it again)."""
        self.k[:, dst, :, :length] = self.k[:, src, :, :length]
        self.v[:, dst, :, :length] = self.v[:, src, :, :length]
