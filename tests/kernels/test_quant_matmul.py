"""The Triton weight-only matmul kernels, run on the CPU by Triton's interpreter, against a float64
``act(x @ dequant(w).T + bias) + residual``."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("triton")

from geex.kernels import quant_matmul  # noqa: E402
from geex.kernels.quant_matmul import wq_matmul  # noqa: E402
from geex.models.quantize import dequantize_int4, dequantize_int8, quantize_int4, quantize_int8  # noqa: E402

if not quant_matmul.INTERPRET:  # tests/conftest.py chooses the interpreter when there is no GPU
    pytest.skip("these tests run the kernels on the CPU through Triton's interpreter (TRITON_INTERPRET=1)",
                allow_module_level=True)


def _case(m: int, n: int, k: int, bias: bool, seed: int = 0, lead: tuple[int, ...] | None = None):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*(lead or (m,)), k, generator=g)
    w = torch.randn(n, k, generator=g)
    b = torch.randn(n, generator=g) if bias else None
    return x, w, b


def _check(y: torch.Tensor, x: torch.Tensor, deq: torch.Tensor, b: torch.Tensor | None, act: str | None = None,
           residual: torch.Tensor | None = None) -> None:
    expected = x.double() @ deq.double().T + (b.double() if b is not None else 0)
    if act == "gelu":  # FastGELU, x * sigmoid(1.702 x)
        expected = expected / (1 + torch.exp(-1.702 * expected))
    if residual is not None:
        expected = expected + residual.double()
    assert y.dtype == x.dtype and y.shape == expected.shape
    rel = ((y.double() - expected).norm() / expected.norm()).item()
    assert rel < 1e-5, rel


# (M, N, K, bias): N not a multiple of the block, K not a multiple of 64
SHAPES = [(1, 40, 96, True), (2, 33, 70, False), (5, 40, 70, True), (17, 33, 96, False)]


@pytest.mark.parametrize("kernel", ["gemv", "tiles", "auto"])
@pytest.mark.parametrize("m, n, k, bias", SHAPES)
def test_int8(kernel, m, n, k, bias):
    x, w, b = _case(m, n, k, bias)
    q, scale = quantize_int8(w)
    _check(wq_matmul(x, q, scale, b, kernel=kernel), x, dequantize_int8(q, scale), b)


@pytest.mark.parametrize("kernel", ["gemv", "tiles", "auto"])
@pytest.mark.parametrize("group, m, n, k, bias", [
    (32, 1, 40, 128, True), (32, 5, 33, 64, False),
    (64, 2, 33, 192, True), (64, 17, 40, 128, False),
    (128, 1, 33, 256, False), (128, 5, 40, 128, True),
])
def test_int4(kernel, group, m, n, k, bias):
    x, w, b = _case(m, n, k, bias)
    packed, scale = quantize_int4(w, group)
    _check(wq_matmul(x, packed, scale, b, group, kernel=kernel), x, dequantize_int4(packed, scale), b)


@pytest.mark.parametrize("m, n, k, bias", SHAPES)
def test_float_weights_gemv(m, n, k, bias):
    x, w, b = _case(m, n, k, bias)
    _check(wq_matmul(x, w, None, b, kernel="gemv"), x, w, b)


def test_float_weights_auto_for_one_row():
    x, w, b = _case(1, 33, 70, True)
    _check(wq_matmul(x, w, None, b), x, w, b)


@pytest.mark.parametrize("kernel", ["gemv", "tiles"])
def test_leading_batch_dims(kernel):
    x, w, b = _case(0, 33, 64, True, lead=(2, 3))
    q, scale = quantize_int8(w)
    _check(wq_matmul(x, q, scale, b, kernel=kernel), x, dequantize_int8(q, scale), b)
    packed, scale4 = quantize_int4(w, 32)
    _check(wq_matmul(x, packed, scale4, b, 32, kernel=kernel), x, dequantize_int4(packed, scale4), b)


def test_input_with_non_unit_last_stride():
    _, w, b = _case(1, 33, 70, True)
    x = torch.randn(70, 3, generator=torch.Generator().manual_seed(5)).T  # [3, 70], strides (1, 3)
    assert x.stride(-1) != 1
    q, scale = quantize_int8(w)
    _check(wq_matmul(x, q, scale, b, kernel="gemv"), x, dequantize_int8(q, scale), b)


def test_wrong_k_raises():
    x, w, _ = _case(2, 33, 64, False)
    q, scale = quantize_int8(w)
    with pytest.raises(ValueError):
        wq_matmul(x[:, :63], q, scale, None)
    packed, scale4 = quantize_int4(w, 32)
    with pytest.raises(ValueError):
        wq_matmul(x[:, :32], packed, scale4, None, 32)  # packed holds K/2 bytes: 32 features is wrong


def test_float_weights_with_tiles_raise():
    x, w, _ = _case(2, 33, 64, False)
    with pytest.raises(ValueError):
        wq_matmul(x, w, None, None, kernel="tiles")


# --- the epilogue: act(x @ W.T + bias) + residual ---------------------------------------------------

def _residual(shape: tuple[int, ...], seed: int = 1) -> torch.Tensor:
    return 3 * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


EPILOGUES = [("gelu", False), (None, True), ("gelu", True)]  # (act, residual)


# the main loops are covered above: a row and a few, partial blocks of N and (for INT8) K
EPILOGUE_SHAPES = [(1, 40, 96, True), (5, 33, 70, False)]


@pytest.mark.parametrize("act, res", EPILOGUES)
@pytest.mark.parametrize("kernel", ["gemv", "tiles"])
@pytest.mark.parametrize("m, n, k, bias", EPILOGUE_SHAPES)
def test_int8_epilogue(act, res, kernel, m, n, k, bias):
    x, w, b = _case(m, n, k, bias)
    q, scale = quantize_int8(w)
    r = _residual((m, n)) if res else None
    _check(wq_matmul(x, q, scale, b, kernel=kernel, act=act, residual=r), x, dequantize_int8(q, scale), b, act, r)


@pytest.mark.parametrize("act, res", EPILOGUES)
@pytest.mark.parametrize("kernel", ["gemv", "tiles"])
@pytest.mark.parametrize("group, m, n, k, bias", [(32, 1, 40, 128, True), (64, 3, 33, 128, False)])
def test_int4_epilogue(act, res, kernel, group, m, n, k, bias):
    x, w, b = _case(m, n, k, bias)
    packed, scale = quantize_int4(w, group)
    r = _residual((m, n)) if res else None
    _check(wq_matmul(x, packed, scale, b, group, kernel=kernel, act=act, residual=r), x,
           dequantize_int4(packed, scale), b, act, r)


@pytest.mark.parametrize("act, res", EPILOGUES)
@pytest.mark.parametrize("m, n, k, bias", EPILOGUE_SHAPES)
def test_float_weights_gemv_epilogue(act, res, m, n, k, bias):
    x, w, b = _case(m, n, k, bias)
    r = _residual((m, n)) if res else None
    _check(wq_matmul(x, w, None, b, kernel="gemv", act=act, residual=r), x, w, b, act, r)


def test_gelu_is_the_fast_gelu_not_erf_or_tanh():
    """Known values of x * sigmoid(1.702 x): 1 -> 0.845796..., -1 -> -0.154203..., 0 -> 0."""
    eye = torch.eye(3)
    x = torch.tensor([[1.0, -1.0, 0.0]])
    y = wq_matmul(x, eye, None, None, kernel="gemv", act="gelu")
    torch.testing.assert_close(y, torch.tensor([[0.8457957, -0.1542043, 0.0]]), rtol=1e-6, atol=1e-6)


def test_gelu_saturates_without_nan():
    """Large pre-activations: exp(-1.702 x) overflows to inf for x << 0, which must give -0, not NaN."""
    x, w, b = _case(1, 33, 64, True)
    x = x * 200
    y = wq_matmul(x, w, None, b, kernel="gemv", act="gelu")
    assert torch.isfinite(y).all()
    _check(y, x, w, b, "gelu")


@pytest.mark.parametrize("kernel", ["gemv", "tiles"])
def test_epilogue_with_leading_dims_and_strided_residual(kernel):
    """x [2, 3, K], residual [2, 3, N] as a non-contiguous view; neither input is modified."""
    x, w, b = _case(0, 33, 64, True, lead=(2, 3))
    r = _residual((33, 3, 2)).permute(2, 1, 0)  # [2, 3, 33], last stride 6
    assert r.stride(-1) != 1
    saved_x, saved_r = x.clone(), r.clone()
    q, scale = quantize_int8(w)
    _check(wq_matmul(x, q, scale, b, kernel=kernel, act="gelu", residual=r), x, dequantize_int8(q, scale), b, "gelu", r)
    packed, scale4 = quantize_int4(w, 32)
    _check(wq_matmul(x, packed, scale4, b, 32, kernel=kernel, residual=r), x, dequantize_int4(packed, scale4), b,
           None, r)
    assert torch.equal(x, saved_x) and torch.equal(r, saved_r)


def test_residual_may_be_the_input():
    """A square layer with the residual being x itself (as in ``x + f(x)``): read, not overwritten."""
    x, w, b = _case(1, 64, 64, True)
    q, scale = quantize_int8(w)
    saved = x.clone()
    _check(wq_matmul(x, q, scale, b, kernel="gemv", residual=x), saved, dequantize_int8(q, scale), b, None, saved)
    assert torch.equal(x, saved)


def test_unknown_activation_raises():
    x, w, b = _case(1, 33, 64, True)
    q, scale = quantize_int8(w)
    for act in ("relu", "GELU", "tanh"):
        with pytest.raises(ValueError):
            wq_matmul(x, q, scale, b, act=act)
        with pytest.raises(ValueError):
            wq_matmul(x, w, None, b, kernel="gemv", act=act)


@pytest.mark.parametrize("shape", [(1, 34), (2, 33), (33,), (1, 1, 33), (33, 1)])
def test_residual_of_wrong_shape_raises(shape):
    """The residual must have the output's shape exactly: no broadcasting."""
    x, w, b = _case(1, 33, 64, True)
    q, scale = quantize_int8(w)
    r = torch.zeros(shape)
    for kernel in ("gemv", "tiles"):
        with pytest.raises(ValueError):
            wq_matmul(x, q, scale, b, kernel=kernel, residual=r)
    with pytest.raises(ValueError):
        wq_matmul(x, w, None, b, kernel="gemv", residual=r)


@pytest.mark.parametrize("k", [96, 160])  # 160: with the interpreter's prefetching (K > 128)
def test_int4_gemv_uneven_k_reads_only_its_own_scales(k):
    """K not a multiple of the interpreter's BLOCK_K of 64 (groups of 32). The scales live in a larger
    buffer whose next elements are inf: a kernel that read scales of groups past K (for the last row,
    past the tensor) would turn its zero partial sums into NaN."""
    x, w, b = _case(1, 33, k, True)
    packed, scale = quantize_int4(w, 32)
    buffer = torch.full((scale.numel() + 64,), float("inf"))
    buffer[:scale.numel()] = scale.flatten()
    y = wq_matmul(x, packed, buffer[:scale.numel()].view(scale.shape), b, 32, kernel="gemv")
    _check(y, x, dequantize_int4(packed, scale), b)
