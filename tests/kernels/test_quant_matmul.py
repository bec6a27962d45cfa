"""The Triton weight-only matmul kernels, run on the CPU by Triton's interpreter, against a float64
``x @ dequant(w).T + bias``."""

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


def _check(y: torch.Tensor, x: torch.Tensor, deq: torch.Tensor, b: torch.Tensor | None) -> None:
    expected = x.double() @ deq.double().T + (b.double() if b is not None else 0)
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
