"""Attention through the static KV cache against a naive oracle: every query's keys picked one slot at
a time by the rule the module's docstring states (a row attends to its own slots from its first real
token up to the query's own; a padding slot only to itself), softmax written out in float64, grouped
heads mapped by hand. Every kind of step the engine takes is covered: prefill, continuation, one-token
decode, left-padded batches, static (CUDA-graph) steps and per-row positions (continuous batching)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch

from geex.models.attention import attend, step_inputs
from geex.models.cache import KVCache

H, HKV, D, MAX_LEN = 4, 2, 8, 16


@dataclass
class Shape:
    cache_layers: int = 1
    n_kv_head: int = HKV
    n_head: int = H
    head_dim: int = D
    n_positions: int = MAX_LEN


class Oracle:
    """Every key and value ever stored, by (row, slot); answers a query by the stated rule."""

    def __init__(self, pad: list[int]) -> None:
        self.pad = pad
        self.kv: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def step(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, slots: list[list[int]]) -> torch.Tensor:
        b, _, t, _ = q.shape
        for r in range(b):
            for i in range(t):
                self.kv[(r, slots[r][i])] = (k[r, :, i].double(), v[r, :, i].double())
        out = torch.zeros(b, t, H * D, dtype=torch.float64)
        for r in range(b):
            for i in range(t):
                s = slots[r][i]
                keys = [s] if s < self.pad[r] else list(range(self.pad[r], s + 1))
                for h in range(H):
                    g = h // (H // HKV)
                    scores = torch.stack([q[r, h, i].double() @ self.kv[(r, j)][0][g] for j in keys]) / math.sqrt(D)
                    weights = torch.softmax(scores, dim=0)
                    out[r, i, h * D:(h + 1) * D] = sum(w * self.kv[(r, j)][1][g] for w, j in zip(weights, keys))
        return out


def _qkv(b: int, t: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return (torch.randn(b, H, t, D, generator=gen), torch.randn(b, HKV, t, D, generator=gen),
            torch.randn(b, HKV, t, D, generator=gen))


def _run(steps: list[tuple[int, object]], pad: list[int] | None, b: int, static_view: bool = False,
         prefill: list[int] | None = None) -> None:
    """Each step: (new tokens T, start as the engine passes it); ``prefill``: each row's prompt length,
    written first one row at a time through a one-row view of the cache (as the scheduler admits
    requests). Checks positions and outputs."""
    gen = torch.Generator().manual_seed(0)
    whole = KVCache(Shape(), b, MAX_LEN)
    cache = whole.rows(0, b, static=True) if static_view else whole
    pad_t = torch.tensor(pad) if pad is not None else None
    oracle = Oracle(pad or [0] * b)
    for r, n in enumerate(prefill or []):
        q, k, v = _qkv(1, n, gen)
        row = whole.rows(r, r + 1)
        pos, mask, at = step_inputs(torch.zeros(1, n, dtype=torch.long), row, 0, None, MAX_LEN, torch.float32)
        got = attend(q, k, v, row.layer(0), at, mask)
        row_oracle = Oracle([0])
        torch.testing.assert_close(got.double(), row_oracle.step(q, k, v, [list(range(n))]), atol=1e-5, rtol=1e-5)
        oracle.kv.update({(r, s): kv for (_, s), kv in row_oracle.kv.items()})
    for t, start in steps:
        q, k, v = _qkv(b, t, gen)
        ids = torch.zeros(b, t, dtype=torch.long)
        pos, mask, at = step_inputs(ids, cache, start, pad_t, MAX_LEN, torch.float32)
        if isinstance(start, torch.Tensor) and start.dim() == 1 and start.numel() == b > 1:
            slots = [[int(start[r]) + i for i in range(t)] for r in range(b)]
        else:
            slots = [[int(start) + i for i in range(t)] for _ in range(b)]
        want_pos = torch.tensor([[max(0, s - (pad[r] if pad else 0)) for s in slots[r]] for r in range(b)])
        assert torch.equal(pos.expand(b, t), want_pos), (start, pos, want_pos)
        got = attend(q, k, v, cache.layer(0), at, mask)
        want = oracle.step(q, k, v, slots)
        torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-5)


def test_prefill_continuation_and_decode_with_int_starts() -> None:
    _run([(5, 0), (3, 5), (1, 8), (1, 9)], None, b=2)


def test_short_steps_and_a_batch_as_large_as_the_head_count() -> None:
    """A one-token prompt, continued at position 1 by 3 tokens, then 2, then 1; four rows (as many
    as query heads, so the batch cannot stand in for the head count)."""
    _run([(1, 0), (3, 1), (2, 4), (1, 6)], None, b=H)


def test_left_padded_batch_never_attends_to_its_padding() -> None:
    _run([(6, 0), (2, 6), (1, 8)], [0, 3], b=2)


def test_static_steps_attend_over_every_slot_under_the_mask() -> None:
    _run([(4, 0), (1, torch.tensor(4)), (1, torch.tensor(5)), (1, torch.tensor([6]))], [1, 0], b=2)


@pytest.mark.parametrize("static_view", [False, True])
def test_per_row_positions_each_row_at_its_own_length(static_view: bool) -> None:
    _run([(2, torch.tensor([3, 7])), (1, torch.tensor([5, 9])), (1, torch.tensor([6, 10]))],
         None, b=2, static_view=static_view, prefill=[3, 7])


def test_per_row_positions_with_left_padding() -> None:
    # a row's padding is slots before its first real token: row 0 wrote 2 padding slots first
    _run([(1, torch.tensor([4, 7])), (1, torch.tensor([5, 8]))], [2, 0], b=2, prefill=[4, 7])


def test_per_row_prompts_of_a_left_padded_batch() -> None:
    """Per-row positions from slot 0 over left padding: the padding slots' queries (positions
    clamped to 0) attend only to themselves, real tokens from their row's first real slot on."""
    _run([(4, torch.tensor([0, 0])), (1, torch.tensor([4, 4]))], [2, 0], b=2)


def test_per_row_step_ending_at_the_context_edge() -> None:
    _run([(1, torch.tensor([MAX_LEN - 1, 5]))], None, b=2, prefill=[MAX_LEN - 1, 5])


def test_three_rows_per_row_decode() -> None:
    _run([(1, torch.tensor([2, 4, 3])), (1, torch.tensor([3, 5, 4]))], None, b=3, prefill=[2, 4, 3])


def test_a_step_past_the_context_is_refused() -> None:
    cache = KVCache(Shape(), 1, 8)
    ids = torch.zeros(1, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="sequence of 9 tokens exceeds the context of 8"):
        step_inputs(ids, cache, 6, None, MAX_LEN, torch.float32)
    step_inputs(ids, cache, 5, None, MAX_LEN, torch.float32)  # ends exactly at the edge: fine
    with pytest.raises(ValueError, match="sequence of 9 tokens exceeds the context of 8"):
        step_inputs(torch.zeros(2, 1, dtype=torch.long), KVCache(Shape(), 2, 8), torch.tensor([3, 8]), None,
                    MAX_LEN, torch.float32)
    with pytest.raises(ValueError, match="sequence of 17 tokens exceeds the context of 16"):
        step_inputs(torch.zeros(1, 17, dtype=torch.long), None, 0, None, MAX_LEN, torch.float32)


def test_malformed_steps_are_refused() -> None:
    ids = torch.zeros(2, 1, dtype=torch.long)
    with pytest.raises(ValueError, match="static step"):
        step_inputs(ids, None, torch.tensor(3), None, MAX_LEN, torch.float32)
    with pytest.raises(ValueError, match="per-row positions need a cache"):
        step_inputs(ids, None, torch.tensor([3, 4]), None, MAX_LEN, torch.float32)


def test_without_a_cache_positions_are_plain_and_attention_causal() -> None:
    gen = torch.Generator().manual_seed(1)
    q, k, v = _qkv(1, 5, gen)
    pos, mask, at = step_inputs(torch.zeros(1, 5, dtype=torch.long), None, 0, None, MAX_LEN, torch.float32)
    assert torch.equal(pos, torch.arange(5)) and mask is None and at == 0
    want = Oracle([0]).step(q, k, v, [list(range(5))])
    torch.testing.assert_close(attend(q, k, v, None, at, mask).double(), want, atol=1e-5, rtol=1e-5)


def test_the_fused_decode_kernel_is_asked_for_exactly_the_one_token_cached_steps(monkeypatch) -> None:
    """The fused GPU kernel serves one new token a row over the cache at tensor positions (static or
    per row), nothing else; here it declines every time (as on a CPU) and the calls are recorded."""
    from geex.models import attention

    asked: list[tuple[int, str]] = []

    def declining(q, k, v, cache, start, mask):
        asked.append((q.shape[2], "per-row" if start.numel() > 1 else "static"))
        return None

    monkeypatch.setattr(attention.ops, "cached_attention_step", declining)
    _run([(4, 0), (1, 4), (1, torch.tensor(5)), (2, torch.tensor([6, 6])), (1, torch.tensor([8, 8]))], None, b=2)
    assert asked == [(1, "static"), (1, "per-row")]
    gen = torch.Generator().manual_seed(2)
    q, k, v = _qkv(1, 1, gen)
    attend(q, k, v, None, torch.tensor(0), None)  # no cache: nothing to ask for
    assert asked == [(1, "static"), (1, "per-row")]
