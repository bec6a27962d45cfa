"""Weight-only INT8/INT4 quantization: exact values on hand-made matrices, the round-trip error bound,
QuantizedLinear against a plain matmul, and whole tiny models (quantized, loaded quantized, fused)."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from geex.errors import UserError
from geex.models import ops
from geex.models.build import build_model
from geex.models.codegeex import CodeGeeX
from geex.models.fusion import checkpoint_state_dict
from geex.models.quantize import (
    QuantizedEmbedding,
    QuantizedLinear,
    dequantize_int4,
    dequantize_int8,
    int4_group,
    quantize_int4,
    quantize_int8,
    quantize_model,
    weight_bytes,
)
from tests.models.tiny import random_tiny_codegeex

IDS = torch.randint(0, 500, (2, 11), generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def model() -> CodeGeeX:
    return random_tiny_codegeex(0)


def _logits(m: nn.Module) -> torch.Tensor:
    with torch.no_grad():
        return m(IDS)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


def _linear_shapes(cfg) -> list[tuple[int, int]]:
    """(out, in) of every linear: q, k, v, dense, h->4h, 4h->h in each layer and the top query layer."""
    h = cfg.n_embd
    return [(h, h)] * 4 * (cfg.n_layer + 1) + [(4 * h, h), (h, 4 * h)] * (cfg.n_layer + 1)


# --- INT8 -------------------------------------------------------------------------------------------


def test_int8_hand_computed_values():
    # row maxima 127, 254, 63.5 give the exact scales 1, 2, 0.5; ties round to even (63.5 -> 64, 2.5 -> 2)
    w = torch.tensor([[127.0, -63.5, 2.5, 0.0],
                      [254.0, 1.0, -3.0, 5.0],
                      [0.0, -63.5, 31.75, 1.0]])
    q, scale = quantize_int8(w)
    assert q.dtype == torch.int8 and scale.dtype == torch.float32
    assert q.tolist() == [[127, -64, 2, 0], [127, 0, -2, 2], [0, -127, 64, 2]]
    assert scale.tolist() == [1.0, 2.0, 0.5]
    assert dequantize_int8(q, scale).tolist() == [[127.0, -64.0, 2.0, 0.0], [254.0, 0.0, -4.0, 4.0],
                                                  [0.0, -63.5, 32.0, 1.0]]


def test_int8_negative_maximum_maps_to_minus_127():
    q, scale = quantize_int8(torch.tensor([[-3.0, 1.0, 0.5]]))
    assert q[0, 0].item() == -127
    assert scale.item() == pytest.approx(3.0 / 127, rel=1e-7)


def test_int8_keeps_scale_fp32_for_bf16_weights():
    w = torch.tensor([[127.0, -1.0], [2.0, 254.0]], dtype=torch.bfloat16)
    q, scale = quantize_int8(w)
    assert scale.dtype == torch.float32 and scale.tolist() == [1.0, 2.0]
    assert q.tolist() == [[127, -1], [1, 127]]
    assert dequantize_int8(q, scale, torch.bfloat16).dtype == torch.bfloat16


def test_zero_rows_give_zeros_not_nan():
    w = torch.zeros(3, 8)
    w[1] = torch.linspace(-1, 1, 8)
    q8, s8 = quantize_int8(w)
    q4, s4 = quantize_int4(w, 4)
    for back in (dequantize_int8(q8, s8), dequantize_int4(q4, s4)):
        assert torch.isfinite(back).all()
        assert back[0].eq(0).all() and back[2].eq(0).all()
    assert torch.isfinite(s8).all() and torch.isfinite(s4).all()
    assert q8[0].eq(0).all() and q4[0].eq(0x88).all()  # zero stored as 0 + 8 in both nibbles


# --- INT4 -------------------------------------------------------------------------------------------


def test_int4_unpacks_hand_made_bytes_low_nibble_first():
    # q = [-8, 7, 0, 1] stored as q + 8 = [0, 15, 8, 9]: byte j = low (k = 2j) | high (k = 2j + 1) << 4
    packed = torch.tensor([[0xF0, 0x98]], dtype=torch.uint8)
    assert dequantize_int4(packed, torch.tensor([[1.0]])).tolist() == [[-8.0, 7.0, 0.0, 1.0]]
    assert dequantize_int4(packed, torch.tensor([[0.5]])).tolist() == [[-4.0, 3.5, 0.0, 0.5]]


def test_int4_packs_hand_computed_bytes():
    # max 7 -> scale 1: q = [-7, 7, 0, 1] -> stored [1, 15, 8, 9] -> bytes 0xF1, 0x98
    packed, scale = quantize_int4(torch.tensor([[-7.0, 7.0, 0.0, 1.0]]), 4)
    assert packed.dtype == torch.uint8 and packed.tolist() == [[0xF1, 0x98]]
    assert scale.tolist() == [[1.0]]


def test_int4_groups_have_their_own_scales():
    # groups of 4: maxima 7 and 14 -> scales 1 and 2; -3.5 -> -4 and 1.5 -> 2 (ties to even)
    w = torch.tensor([[7.0, -3.5, 0.0, 1.0, 14.0, 0.0, -2.0, 3.0]])
    packed, scale = quantize_int4(w, 4)
    # q = [7, -4, 0, 1 | 7, 0, -1, 2] -> stored [15, 4, 8, 9 | 15, 8, 7, 10]
    assert packed.tolist() == [[0x4F, 0x98, 0x8F, 0xA7]]
    assert scale.tolist() == [[1.0, 2.0]]
    assert dequantize_int4(packed, scale).tolist() == [[7.0, -4.0, 0.0, 1.0, 14.0, 0.0, -2.0, 4.0]]


def test_int4_group_larger_than_k_becomes_k():
    assert int4_group(64, 128) == 64
    assert int4_group(256, 128) == 128
    packed, scale = quantize_int4(torch.randn(3, 64), 128)
    assert packed.shape == (3, 32) and scale.shape == (3, 1)


def test_a_group_that_does_not_divide_k_becomes_the_largest_power_of_two_that_does():
    assert int4_group(576, 128) == 64  # SmolLM2-135M's hidden size
    assert int4_group(96, 64) == 32
    assert int4_group(96, 128) == 32  # 96 itself is no power of two: the kernels could not tile it
    assert int4_group(1536, 128) == 128
    packed, scale = quantize_int4(torch.randn(3, 576), 128)
    assert packed.shape == (3, 288) and scale.shape == (3, 9)
    assert QuantizedLinear.from_weight(torch.randn(2, 576), None, "int4").group == 64


@pytest.mark.parametrize("k, group", [(100, 32), (12, 5), (5, 5), (80, 64)])
def test_int4_group_that_does_not_divide_k_is_a_user_error(k, group):
    with pytest.raises(UserError):
        int4_group(k, group)
    with pytest.raises(UserError):
        quantize_int4(torch.randn(2, k), group)


def test_int4_scale_keeps_half_precision_dtype():
    _, scale = quantize_int4(torch.randn(2, 8, dtype=torch.bfloat16), 4)
    assert scale.dtype == torch.bfloat16


# --- round trip -------------------------------------------------------------------------------------


@st.composite
def matrices(draw, k_multiple: int = 1) -> torch.Tensor:
    n = draw(st.integers(1, 6))
    k = k_multiple * draw(st.integers(1, 6))
    magnitude = draw(st.sampled_from([1e-6, 1e-2, 1.0, 3e3]))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    w = torch.randn(n, k, generator=g) * magnitude
    if draw(st.booleans()):  # exact zeros and a zero row
        w[torch.rand(n, k, generator=g) < 0.3] = 0.0
        w[draw(st.integers(0, n - 1))] = 0.0
    return w


@settings(max_examples=50, deadline=None)
@given(matrices())
def test_int8_round_trip_error_is_at_most_half_a_step(w):
    q, scale = quantize_int8(w)
    assert q.shape == w.shape and scale.shape == (w.shape[0],)
    assert torch.equal(scale, (w.abs().amax(dim=1) / 127).clamp(min=1e-12 / 127))
    assert q.abs().max() <= 127
    err = (dequantize_int8(q, scale) - w).abs()
    assert (err <= scale[:, None] * (0.5 + 1e-4)).all()


@settings(max_examples=50, deadline=None)
@given(matrices(k_multiple=8), st.sampled_from([2, 4, 8, 1024]))
def test_int4_round_trip_error_is_at_most_half_a_step(w, group_size):
    n, k = w.shape
    group = min(group_size, k)
    packed, scale = quantize_int4(w, group_size)
    assert packed.shape == (n, k // 2) and scale.shape == (n, k // group)
    per_elem = scale.repeat_interleave(group, dim=1)
    err = (dequantize_int4(packed, scale) - w).abs()
    assert (err <= per_elem * (0.5 + 1e-4)).all()


# --- QuantizedLinear --------------------------------------------------------------------------------


@pytest.mark.parametrize("mode, group_size", [("int8", 128), ("int4", 32), ("int4", 128)])
@pytest.mark.parametrize("with_bias", [True, False])
def test_quantized_linear_is_x_times_dequantized_weight_plus_bias(mode, group_size, with_bias):
    g = torch.Generator().manual_seed(3)
    w, b = torch.randn(24, 64, generator=g), torch.randn(24, generator=g) if with_bias else None
    x = torch.randn(2, 5, 64, generator=g)
    lin = QuantizedLinear.from_weight(w, b, mode, group_size)
    assert (lin.in_features, lin.out_features) == (64, 24)
    assert lin.group == (min(group_size, 64) if mode == "int4" else 0)
    deq = lin.dequantized(torch.float64)
    expected = x.double() @ deq.T + (b.double() if with_bias else 0)
    torch.testing.assert_close(lin(x).double(), expected, rtol=1e-5, atol=1e-5)
    # and the dequantized weight is the original one up to half a quantization step
    assert (deq - w.double()).abs().max() <= lin.scale.max().item() * 0.51


def test_quantized_linear_unknown_mode_is_a_user_error():
    with pytest.raises(UserError):
        QuantizedLinear.from_weight(torch.randn(4, 4), None, "int3")


def test_int4_groups_the_kernels_cannot_tile_are_refused():
    with pytest.raises(UserError, match="power of two of at least 32"):
        QuantizedLinear.from_weight(torch.randn(4, 96), None, "int4", 16)
    assert QuantizedLinear.from_weight(torch.randn(4, 96), None, "int4", 48).group == 32  # 48: no power of two


# --- whole models -----------------------------------------------------------------------------------


# measured on this seed: int8 6.1e-3 (1.2e-3 with a float head), int4/32 2.2e-2; a scale off by 3%
# (int8) or halved (int4) fails
@pytest.mark.parametrize("mode, group_size, bound", [("int8", 128, 9e-3), ("int4", 32, 3.5e-2)])
def test_quantize_model_replaces_every_linear_and_logits_stay_close(model, mode, group_size, bound):
    n_linear = sum(isinstance(m, nn.Linear) for m in model.modules())
    q = quantize_model(copy.deepcopy(model), mode, group_size)
    assert not any(isinstance(m, nn.Linear) for m in q.modules())
    quantized = [m for m in q.modules() if isinstance(m, QuantizedLinear)]
    # a layer's qkv, dense and two MLP matrices; the top query layer's query, kv, dense and two MLP ones
    assert len(quantized) == n_linear == 4 * model.config.n_layer + 5
    assert all(m.mode == mode for m in quantized)
    assert isinstance(q.embedding.word_embeddings, QuantizedEmbedding)  # the tied head, INT8 in both modes
    assert isinstance(q.embedding.position_embeddings, nn.Embedding)
    assert _rel(_logits(q), _logits(model)) < bound


def test_quantized_embedding_lookup_and_head_use_the_dequantized_rows(model):
    q = quantize_model(copy.deepcopy(model), "int8")
    emb = q.embedding.word_embeddings
    table = dequantize_int8(*quantize_int8(model.embedding.word_embeddings.weight.detach()))
    ids = torch.tensor([[0, 5, 52223], [7, 7, 1]])
    torch.testing.assert_close(emb(ids), table[ids], rtol=0, atol=0)
    x = torch.randn(2, 3, model.config.n_embd)
    torch.testing.assert_close(ops.tied_head(x, emb), x @ table.T, rtol=1e-6, atol=1e-6)


def test_quantize_model_unknown_mode_is_a_user_error(model):
    with pytest.raises(UserError):
        quantize_model(copy.deepcopy(model), "fp8")


def test_weight_bytes_drop_by_the_exact_amount(model):
    cfg = model.config
    fp32 = weight_bytes(model)
    assert fp32 == 4 * cfg.n_params()
    shapes = _linear_shapes(cfg)
    linear_fp32 = sum(4 * n * k for n, k in shapes)
    v, h = cfg.padded_vocab_size, cfg.n_embd
    embedding = v * h + 4 * v - 4 * v * h  # the word embedding: int8 rows + an fp32 scale a row, in both modes
    int8 = fp32 - linear_fp32 + sum(n * k + 4 * n for n, k in shapes) + embedding  # int8 weights + fp32 scale per row
    int4 = fp32 - linear_fp32 + sum(n * k // 2 + 4 * n * (k // 32) for n, k in shapes) + embedding  # + a scale a group
    assert weight_bytes(quantize_model(copy.deepcopy(model), "int8")) == int8
    assert weight_bytes(quantize_model(copy.deepcopy(model), "int4", 32)) == int4
    assert int4 < int8 < fp32


@pytest.mark.parametrize("mode, group_size", [("int8", 128), ("int4", 32)])
def test_build_model_quantized_at_load_equals_quantize_model(model, mode, group_size):
    sd = {k: v.clone() for k, v in checkpoint_state_dict(model).items()}
    loaded = build_model(model.config, sd, quantize=mode, group_size=group_size)
    reference = quantize_model(copy.deepcopy(model), mode, group_size)
    assert not any(t.is_meta for t in [*loaded.parameters(), *loaded.buffers()])
    assert torch.equal(_logits(loaded), _logits(reference))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("lead", [(1,), (3, 5)])
def test_int8_linear_off_the_gpu_equals_the_dequantized_product(dtype, lead):
    """``int8_linear`` (PyTorch's int8 weight-only kernel for bf16, widen-and-scale for fp32) against
    float64 ``x @ (q * scale).T + bias``; bf16 within its rounding."""
    from geex.models.quantize import int8_linear

    g = torch.Generator().manual_seed(11)
    w, bias = torch.randn(48, 64, generator=g), torch.randn(48, generator=g)
    q, scale = quantize_int8(w)
    x = torch.randn(*lead, 64, generator=g).to(dtype)
    got = int8_linear(x, q, scale, bias.to(dtype))
    want = x.double() @ (q.double() * scale.double()[:, None]).T + bias.to(dtype).double()
    assert got.dtype == dtype and got.shape == (*lead, 48)
    rel = ((got.double() - want).norm() / want.norm()).item()
    assert rel < (1e-6 if dtype == torch.float32 else 1e-2), rel


# --- PyTorch's int4 CPU kernel ------------------------------------------------------------------------

@pytest.mark.parametrize("n, k, group", [(48, 576, 64), (32, 256, 128), (16, 64, 32), (64, 512, 256)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_int4_on_the_cpu_runs_pytorchs_kernel_and_equals_the_dequantized_product(n, k, group, dtype):
    """Against the format's own definition in float64, on the bf16-rounded activations the kernel
    reads (float32 ones are rounded to bf16 for it): only the kernel's bf16 output rounding is left."""
    g = torch.Generator().manual_seed(n + k)
    w, b = torch.randn(n, k, generator=g), torch.randn(n, generator=g)
    layer = QuantizedLinear.from_weight(w, b, "int4", group)
    x = torch.randn(2, 3, k, generator=g).to(dtype)
    want = x.bfloat16().double() @ layer.dequantized(torch.float64).t() + b.double()
    tol = 8e-3  # bf16's half step is 2**-9 ~ 2e-3 of a value
    got = layer(x)
    assert "_cpu_int4" in layer.__dict__  # the kernel ran, not the dequantizing fallback
    assert got.shape == (2, 3, n) and got.dtype == dtype
    assert ((got.double() - want).abs().max() / want.abs().max()) < tol


def test_int4_layouts_the_cpu_kernel_cannot_take_fall_back_to_dequantizing(monkeypatch):
    from geex.models import dispatch

    for n, k, group in [(8, 64, 32), (16, 1024, 512)]:  # N not a multiple of 16; a group of 512
        layer = QuantizedLinear.from_weight(torch.randn(n, k), None, "int4", group)
        x = torch.randn(4, k)
        assert torch.allclose(layer(x), x @ layer.dequantized(torch.float32).t(), atol=1e-4)
        assert "_cpu_int4" not in layer.__dict__
    monkeypatch.setattr(dispatch, "KERNELS", "never")
    layer = QuantizedLinear.from_weight(torch.randn(16, 64), None, "int4", 32)
    layer(torch.randn(1, 64))
    assert "_cpu_int4" not in layer.__dict__


@pytest.mark.parametrize("mode", ["int8", "int4"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_many_rows_on_the_cpu_run_a_dense_product_few_rows_the_weight_only_kernel(mode, dtype, monkeypatch):
    """A prefill (more rows than CPU_WIDEN_ROWS) widens the weight for PyTorch's dense matmul; a decode
    step keeps the weight-only kernel. Both equal the format's definition in float64 within the
    activations' rounding; the kernels are made to fail to show which path ran (positive control at
    the threshold)."""
    from geex.models import quantize

    g = torch.Generator().manual_seed(5)
    n, k = 48, 256
    w, b = torch.randn(n, k, generator=g), torch.randn(n, generator=g)
    layer = QuantizedLinear.from_weight(w, b, mode, 64)
    limit = quantize.CPU_WIDEN_ROWS[mode]
    x = torch.randn(limit + 1, k, generator=g).to(dtype)
    want = x.double() @ layer.dequantized(torch.float64).t() + b.double()

    def kernel_called(*args, **kwargs):
        raise AssertionError("the weight-only kernel ran")

    monkeypatch.setattr(quantize, "int8_linear", kernel_called)
    monkeypatch.setattr(quantize, "int4_linear_cpu", kernel_called)
    got = layer(x)  # limit + 1 rows: dense
    assert got.dtype == dtype and got.shape == (limit + 1, n)
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    assert ((got.double() - want).abs().max() / want.abs().max()) < tol
    with pytest.raises(AssertionError, match="weight-only kernel ran"):
        layer(x[:limit])  # at the threshold: the kernel
