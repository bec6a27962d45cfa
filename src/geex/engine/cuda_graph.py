"""The one-token decode step, captured once as a CUDA graph and replayed for every new token.

At batch 1 a decode step of a 13B model is ~500 small kernel launches; launched one by one from
Python the GPU idles between them. A graph replays them back to back. Capturing needs fixed shapes
and addresses: the step reads its token ids, slot and padding from buffers owned here and attends
over every slot of the static cache under a mask (the model's ``forward`` with a tensor ``start``).
"""

from __future__ import annotations

import torch
from torch import nn

from geex.models.cache import KVCache


class GraphedDecodeStep:
    """``step(ids[B], slot) -> logits[B, V]`` for a fixed model, cache and padding."""

    def __init__(self, model: nn.Module, cache: KVCache, pad: torch.Tensor | None, warmup: int = 2) -> None:
        device = cache.k.device
        batch = cache.k.shape[1]
        self.ids = torch.zeros(batch, 1, dtype=torch.long, device=device)
        # Warm-up and capture write keys/values into the last slot: a real step overwrites it before
        # any query may attend to it (a slot is visible only to queries at or after it).
        self.slot = torch.full((), cache.max_len - 1, dtype=torch.long, device=device)
        self.pad = pad  # None: no padding (the model then masks nothing but the unwritten slots)
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):  # warm-up: lazy initialisation and kernel autotuning happen here
            for _ in range(warmup):
                model(self.ids, cache, start=self.slot, pad=self.pad)
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.logits = model(self.ids, cache, start=self.slot, pad=self.pad)[:, -1]

    def __call__(self, ids: torch.Tensor, slot: int) -> torch.Tensor:
        self.ids.copy_(ids.view(-1, 1))
        self.slot.fill_(slot)
        self.graph.replay()
        return self.logits


class GraphedRowsStep:
    """``step(ids[B], starts[B]) -> logits[B, V]``: one token for each of rows 0..B-1 of a static
    cache view, each at its own position (continuous batching), captured once and replayed. The
    scheduler keeps one for each batch-size bucket."""

    def __init__(self, model: nn.Module, view: KVCache, warmup: int = 2) -> None:
        device = view.k.device
        batch = view.k.shape[1]
        self.ids = torch.zeros(batch, 1, dtype=torch.long, device=device)
        # warm-up and capture write into each row's last slot: never read before it is written
        self.start = torch.full((batch,), view.max_len - 1, dtype=torch.long, device=device)
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            for _ in range(warmup):
                model(self.ids, view, start=self.start)
        torch.cuda.current_stream(device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.logits = model(self.ids, view, start=self.start)[:, -1]

    def __call__(self, ids: torch.Tensor, starts: torch.Tensor) -> torch.Tensor:
        self.ids.copy_(ids.view(-1, 1))
        self.start.copy_(starts)
        self.graph.replay()
        return self.logits
