"""The Triton decode-attention kernel (store one new key/value per row, attend over the cache; split-K
over chunks of ``CHUNK`` slots merged by the last program of each (row, head), found with counters),
run on the CPU by Triton's interpreter, against the cache written by hand and float64 SDPA."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("triton")

from geex.kernels import quant_matmul  # noqa: E402
from geex.kernels.decode_attention import CHUNK, decode_attention, supported  # noqa: E402

if not quant_matmul.INTERPRET:  # tests/conftest.py chooses the interpreter when there is no GPU
    pytest.skip("these tests run the kernels on the CPU through Triton's interpreter (TRITON_INTERPRET=1)",
                allow_module_level=True)


def _qkv(b: int, h: int, d: int, dtype: torch.dtype, g: torch.Generator, fused: bool = True):
    """q, k, v [B, H, 1, D]: strided views of one [B, 1, 3 H D] projection (as the model makes them),
    or contiguous tensors."""
    if fused:
        qkv = torch.randn(b, 1, 3 * h * d, generator=g).to(dtype)
        return tuple(t.view(b, 1, h, d).transpose(1, 2) for t in qkv.split(h * d, dim=-1))
    return tuple(torch.randn(b, h, 1, d, generator=g).to(dtype) for _ in range(3))


def _counts(b: int, h: int) -> torch.Tensor:
    return torch.zeros(b * h, dtype=torch.int32)


def _attend(q, k, v, k_cache, v_cache, slot: int, mask) -> torch.Tensor:
    """The kernel with fresh counters, which it must leave at zero."""
    counts = _counts(q.shape[0], q.shape[1])
    y = decode_attention(q, k, v, k_cache, v_cache, counts, torch.tensor([slot]), mask)
    assert not counts.any()
    return y


def _pad_mask(pad: list[int], slot: int, s: int, dtype: torch.dtype) -> torch.Tensor:
    """Additive [B, 1, 1, S]: key j allowed iff pad[b] <= j <= slot, and the slot itself always."""
    j = torch.arange(s)
    pad_t = torch.tensor(pad)
    allowed = ((j[None] >= pad_t[:, None]) & (j[None] <= slot)) | (j[None] == slot)
    return torch.zeros(len(pad), 1, 1, s, dtype=dtype).masked_fill(~allowed[:, None, None], float("-inf"))


def _reference(q, k, v, k_cache, v_cache, slot: int, mask):
    """The caches with k/v written at ``slot``, and SDPA (float64) over slots 0..slot."""
    kc, vc = k_cache.clone(), v_cache.clone()
    kc[:, :, slot] = k[:, :, 0]
    vc[:, :, slot] = v[:, :, 0]
    b, h, _, d = q.shape
    keys = slot + 1
    y = F.scaled_dot_product_attention(q.double(), kc[:, :, :keys].double(), vc[:, :, :keys].double(),
                                       attn_mask=mask[..., :keys].double(), enable_gqa=q.shape[1] != kc.shape[1])
    return y.transpose(1, 2).reshape(b, 1, h * d), kc, vc


def _run_case(b, h, d, s, slot, pad, dtype, seed=0, fused=True, mask=None):
    g = torch.Generator().manual_seed(seed)
    q, k, v = _qkv(b, h, d, dtype, g, fused)
    k_cache = torch.randn(b, h, s, d, generator=g).to(dtype)
    v_cache = torch.randn(b, h, s, d, generator=g).to(dtype)
    if mask is None:
        mask = _pad_mask(pad, slot, s, dtype)
    expected, kc, vc = _reference(q, k, v, k_cache, v_cache, slot, mask)
    y = _attend(q, k, v, k_cache, v_cache, slot, mask)
    return y, expected, (k_cache, v_cache), (kc, vc)


def _assert_close(y, expected, dtype):
    assert y.dtype == dtype and y.shape == expected.shape
    rel = ((y.double() - expected).norm() / expected.norm()).item()
    # fp32: accumulation error; bf16: the output's rounding (toward zero in the interpreter: < 2^-7)
    assert rel < (1e-5 if dtype == torch.float32 else 1e-2), rel
    if dtype == torch.float32:
        torch.testing.assert_close(y.double(), expected, rtol=1e-5, atol=1e-6)
    else:
        assert ((y.double() - expected).abs() <= 2 ** -7 * expected.abs() + 2e-3).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("b, h, d, s, slot, pad", [
    (3, 2, 16, 80, 70, [0, 5, 70]),   # several key blocks (64 a block for D <= 64); one row all padding
    (2, 2, 16, 20, 9, [0, 3]),         # one partial block, left padding
    (2, 1, 32, 12, 0, [0, 0]),         # slot 0: only the new token itself
    (2, 2, 16, 12, 0, [0, 4]),         # slot 0 inside a row's padding: still itself
    (2, 2, 16, 24, 23, [2, 7]),        # the last slot of the cache
    (2, 2, 128, 40, 37, [1, 6]),       # D = 128: key blocks of 32
    (1, 3, 64, 65, 64, [0]),           # the first slot of a second block
])
def test_matches_sdpa_over_the_written_cache(dtype, b, h, d, s, slot, pad):
    y, expected, caches, ref_caches = _run_case(b, h, d, s, slot, pad, dtype)
    _assert_close(y, expected, dtype)
    assert torch.equal(caches[0], ref_caches[0]) and torch.equal(caches[1], ref_caches[1])



@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_each_row_at_its_own_slot(dtype):
    """Continuous batching: one slot a row (chunk boundaries crossed, one row at slot 0, one at the
    cache's last slot). Every row equals the kernel run on that row alone at its slot, and the
    float64 reference; each row writes its key/value at its own slot and nowhere else; rows
    past a short row's slot hold huge values the row must never read."""
    g = torch.Generator().manual_seed(11)
    b, h, hkv, d, s = 4, 4, 2, 32, 2 * CHUNK + 8
    slots = [5, CHUNK + 3, 0, s - 1]
    q = torch.randn(b, h, 1, d, generator=g).to(dtype)
    k, v = (torch.randn(b, hkv, 1, d, generator=g).to(dtype) for _ in range(2))
    k_cache = torch.randn(b, hkv, s, d, generator=g).to(dtype)
    v_cache = torch.randn(b, hkv, s, d, generator=g).to(dtype)
    for r, slot in enumerate(slots):  # beyond each row's slot: garbage a correct kernel never reads
        k_cache[r, :, slot + 1:] = 1e4
        v_cache[r, :, slot + 1:] = 1e4
    j = torch.arange(s)
    allowed = j[None] <= torch.tensor(slots)[:, None]
    mask = torch.zeros(b, 1, 1, s, dtype=dtype).masked_fill(~allowed[:, None, None], float("-inf"))
    kc, vc = k_cache.clone(), v_cache.clone()
    counts = _counts(b, h)
    y = decode_attention(q, k, v, kc, vc, counts, torch.tensor(slots), mask)
    assert not counts.any()
    for r, slot in enumerate(slots):
        one = [t[r:r + 1] for t in (q, k, v, k_cache, v_cache)]
        expected, kr, vr = _reference(*one, slot, mask[r:r + 1])
        _assert_close(y[r:r + 1], expected, dtype)
        assert torch.equal(kc[r], kr[0]) and torch.equal(vc[r], vr[0])
        alone = _attend(*one, slot, mask[r:r + 1])
        assert torch.equal(y[r:r + 1], alone)
    with pytest.raises(ValueError, match="3 slots for 4 rows"):
        decode_attention(q, k, v, kc, vc, counts, torch.tensor(slots[:3]), mask)

@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_contiguous_inputs(dtype):
    y, expected, caches, ref_caches = _run_case(2, 2, 32, 30, 17, [0, 9], dtype, seed=3, fused=False)
    _assert_close(y, expected, dtype)
    assert torch.equal(caches[0], ref_caches[0]) and torch.equal(caches[1], ref_caches[1])


def test_slot_zero_returns_the_new_value():
    """Only the new token to attend to: the output is its value, whatever q, k and the cache hold."""
    g = torch.Generator().manual_seed(4)
    q, k, v = _qkv(2, 2, 16, torch.float32, g)
    k_cache, v_cache = torch.randn(2, 2, 8, 16, generator=g), torch.randn(2, 2, 8, 16, generator=g)
    y = _attend(q, k, v, k_cache, v_cache, 0, _pad_mask([0, 3], 0, 8, torch.float32))
    torch.testing.assert_close(y, v.transpose(1, 2).reshape(2, 1, 32), rtol=1e-6, atol=1e-6)


def test_padding_keys_are_ignored():
    """Row 1's padded slots hold huge keys and values; the mask must keep them out entirely, so the
    row equals the same row computed with those slots zeroed."""
    g = torch.Generator().manual_seed(5)
    q, k, v = _qkv(2, 2, 16, torch.float32, g)
    k_cache, v_cache = torch.randn(2, 2, 16, 16, generator=g), torch.randn(2, 2, 16, 16, generator=g)
    mask = _pad_mask([0, 4], 10, 16, torch.float32)
    clean = _attend(q, k, v, k_cache.clone(), v_cache.clone(), 10, mask)
    k_cache[1, :, :4] = 1e4
    v_cache[1, :, :4] = 1e4
    dirty = _attend(q, k, v, k_cache, v_cache, 10, mask)
    assert torch.equal(dirty, clean)
    assert clean.abs().max() < 10


def test_only_slots_up_to_the_new_one_are_read():
    """Slots after ``slot`` (not yet written) may hold anything, NaN included: they are never read,
    and stay as they were."""
    g = torch.Generator().manual_seed(6)
    q, k, v = _qkv(2, 2, 16, torch.float32, g)
    k_cache, v_cache = torch.randn(2, 2, 80, 16, generator=g), torch.randn(2, 2, 80, 16, generator=g)
    k_cache[:, :, 12:] = float("nan")
    v_cache[:, :, 12:] = float("nan")
    mask = _pad_mask([0, 2], 11, 80, torch.float32)
    expected, kc, vc = _reference(q, k, v, k_cache, v_cache, 11, mask)
    y = _attend(q, k, v, k_cache, v_cache, 11, mask)
    assert not y.isnan().any()
    _assert_close(y, expected, torch.float32)
    torch.testing.assert_close(k_cache, kc, rtol=0, atol=0, equal_nan=True)
    torch.testing.assert_close(v_cache, vc, rtol=0, atol=0, equal_nan=True)


def test_additive_mask_values_are_added_to_the_scores():
    """Not only 0 / -inf: a finite bias shifts the scores, as SDPA's float mask does."""
    b, h, d, s, slot = 2, 2, 16, 20, 13
    bias = torch.randn(b, 1, 1, s, generator=torch.Generator().manual_seed(7))
    mask = _pad_mask([0, 3], slot, s, torch.float32) + bias
    y, expected, caches, ref_caches = _run_case(b, h, d, s, slot, [0, 3], torch.float32, seed=8, mask=mask)
    _assert_close(y, expected, torch.float32)
    # and the bias matters: without it the result is different
    y0, _, _, _ = _run_case(b, h, d, s, slot, [0, 3], torch.float32, seed=8)
    assert (y - y0).abs().max() > 1e-3


def test_cache_written_exactly_at_the_slot():
    """bf16 caches, fp32 keys/values: the slot gets k, v rounded to the cache's dtype; nothing else changes."""
    g = torch.Generator().manual_seed(9)
    q, k, v = _qkv(2, 2, 16, torch.float32, g)
    k_cache = torch.randn(2, 2, 10, 16, generator=g).bfloat16()
    v_cache = torch.randn(2, 2, 10, 16, generator=g).bfloat16()
    before_k, before_v = k_cache.clone(), v_cache.clone()
    _attend(q, k, v, k_cache, v_cache, 6, _pad_mask([0, 1], 6, 10, torch.float32))
    others = [i for i in range(10) if i != 6]
    assert torch.equal(k_cache[:, :, others], before_k[:, :, others])
    assert torch.equal(v_cache[:, :, others], before_v[:, :, others])
    # the interpreter rounds toward zero, a GPU to nearest: within one bf16 ulp of k, v
    torch.testing.assert_close(k_cache[:, :, 6].float(), k[:, :, 0], rtol=2 ** -7, atol=0)
    torch.testing.assert_close(v_cache[:, :, 6].float(), v[:, :, 0], rtol=2 ** -7, atol=0)
    assert not torch.equal(k_cache[:, :, 6], before_k[:, :, 6])


def test_inputs_are_not_modified():
    g = torch.Generator().manual_seed(10)
    q, k, v = _qkv(2, 2, 16, torch.float32, g)
    mask = _pad_mask([0, 2], 5, 8, torch.float32)
    saved = [t.clone() for t in (q, k, v, mask)]
    _attend(q, k, v, torch.zeros(2, 2, 8, 16), torch.zeros(2, 2, 8, 16), 5, mask)
    assert all(torch.equal(a, b) for a, b in zip((q, k, v, mask), saved))


@pytest.mark.parametrize("d, ok", [(16, True), (32, True), (64, True), (128, True), (256, True),
                                   (8, False), (1, False), (0, False), (24, False), (48, False), (80, False),
                                   (96, False), (160, False)])
def test_supported_head_dims(d, ok):
    assert supported(d) is ok


def test_non_contiguous_last_dim_raises():
    g = torch.Generator().manual_seed(11)
    q, k, v = _qkv(2, 2, 16, torch.float32, g)
    k_cache, v_cache = torch.zeros(2, 2, 8, 16), torch.zeros(2, 2, 8, 16)
    counts, slot, mask = _counts(2, 2), torch.tensor([3]), _pad_mask([0, 1], 3, 8, torch.float32)
    strided_q = torch.randn(2, 2, 1, 32, generator=g)[..., ::2]
    assert strided_q.shape == q.shape and strided_q.stride(-1) == 2
    with pytest.raises(ValueError):
        decode_attention(strided_q, k, v, k_cache, v_cache, counts, slot, mask)
    with pytest.raises(ValueError):
        decode_attention(q, k, strided_q, k_cache, v_cache, counts, slot, mask)
    transposed = torch.zeros(2, 2, 16, 8).transpose(2, 3)  # [B, H, S, D] with D strided
    with pytest.raises(ValueError):
        decode_attention(q, k, v, transposed, transposed.clone(), counts, slot, mask)
    # caches of different layouts
    with pytest.raises(ValueError):
        decode_attention(q, k, v, k_cache, torch.zeros(2, 8, 2, 16).transpose(1, 2), counts, slot, mask)
    assert not k_cache.any() and not v_cache.any()  # nothing written before the error


def test_bad_counters_raise():
    g = torch.Generator().manual_seed(12)
    q, k, v = _qkv(2, 2, 16, torch.float32, g)
    k_cache, v_cache = torch.zeros(2, 2, 8, 16), torch.zeros(2, 2, 8, 16)
    slot, mask = torch.tensor([3]), _pad_mask([0, 1], 3, 8, torch.float32)
    for counts in (torch.zeros(3, dtype=torch.int32), torch.zeros(4, dtype=torch.int64), torch.zeros(4)):
        with pytest.raises(ValueError):
            decode_attention(q, k, v, k_cache, v_cache, counts, slot, mask)
    assert not k_cache.any() and not v_cache.any()
    more = torch.zeros(6, dtype=torch.int32)  # more counters than needed is fine
    expected, kc, vc = _reference(q, k, v, k_cache, v_cache, 3, mask)
    y = decode_attention(q, k, v, k_cache, v_cache, more, slot, mask)
    assert not more.any() and torch.equal(k_cache, kc) and torch.equal(v_cache, vc)
    _assert_close(y, expected, torch.float32)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_a_whole_decode_loop(dtype):
    """Steps at slots 0, 1, ..., S - 1 into one cache with one set of counters (as a decode loop and
    a replayed CUDA graph use them), across the chunk boundary: each output matches the reference over
    what the earlier steps stored, and the cache ends up holding every step's key and value."""
    b, h, d, s = 2, 1, 16, CHUNK + 3
    pad = [0, 5]
    g = torch.Generator().manual_seed(13)
    k_cache, v_cache = torch.zeros(b, h, s, d, dtype=dtype), torch.zeros(b, h, s, d, dtype=dtype)
    counts = _counts(b, h)
    keys, values = [], []
    for slot in range(s):
        q, k, v = _qkv(b, h, d, dtype, g)
        mask = _pad_mask(pad, slot, s, dtype)
        expected, kc, vc = _reference(q, k, v, k_cache, v_cache, slot, mask)
        y = decode_attention(q, k, v, k_cache, v_cache, counts, torch.tensor([slot]), mask)
        assert not counts.any()
        _assert_close(y, expected, dtype)
        assert torch.equal(k_cache, kc) and torch.equal(v_cache, vc)
        keys.append(k[:, :, 0])
        values.append(v[:, :, 0])
    assert torch.equal(k_cache, torch.stack(keys, dim=2)) and torch.equal(v_cache, torch.stack(values, dim=2))


@pytest.mark.parametrize("h, hkv", [(6, 2), (4, 1)])
def test_grouped_query_heads_share_their_key_value_head(h, hkv):
    """Grouped-query attention: query head i reads key/value head i // (h / hkv); the new key/value
    is stored once per key/value head. Against float64 SDPA with the key/value heads repeated."""
    b, d, s, slot = 2, 16, 80, 70
    g = torch.Generator().manual_seed(3)
    q = torch.randn(b, h, 1, d, generator=g)
    k, v = (torch.randn(b, hkv, 1, d, generator=g) for _ in range(2))
    k_cache, v_cache = (torch.randn(b, hkv, s, d, generator=g) for _ in range(2))
    mask = _pad_mask([0, 9], slot, s, torch.float32)
    rep = h // hkv
    expected, kc, vc = _reference(q, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1),
                                  k_cache.repeat_interleave(rep, 1), v_cache.repeat_interleave(rep, 1), slot, mask)
    y = _attend(q, k, v, k_cache, v_cache, slot, mask)
    _assert_close(y, expected, torch.float32)
    assert torch.equal(k_cache, kc[:, ::rep]) and torch.equal(v_cache, vc[:, ::rep])


def test_query_heads_not_a_multiple_of_key_value_heads_raise():
    q = torch.randn(1, 3, 1, 16)
    k = v = torch.randn(1, 2, 1, 16)
    cache = torch.zeros(1, 2, 8, 16)
    with pytest.raises(ValueError, match="cannot share"):
        decode_attention(q, k, v, cache, cache.clone(), torch.zeros(3, dtype=torch.int32), torch.tensor([1]),
                         torch.zeros(1, 1, 1, 8))
