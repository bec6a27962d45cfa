"""The Triton LayerNorm kernel, run on the CPU by Triton's interpreter, against ``F.layer_norm`` in
float64."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("triton")

from geex.kernels import quant_matmul  # noqa: E402
from geex.kernels.layer_norm import layer_norm  # noqa: E402

if not quant_matmul.INTERPRET:  # tests/conftest.py chooses the interpreter when there is no GPU
    pytest.skip("these tests run the kernels on the CPU through Triton's interpreter (TRITON_INTERPRET=1)",
                allow_module_level=True)


def _params(n: int, seed: int, dtype: torch.dtype = torch.float32):
    g = torch.Generator().manual_seed(seed)
    w = (1 + 0.5 * torch.randn(n, generator=g)).to(dtype)
    b = (0.3 * torch.randn(n, generator=g)).to(dtype)
    return w, b


def _reference(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, eps: float) -> torch.Tensor:
    return F.layer_norm(x.double(), x.shape[-1:], w.double(), b.double(), eps)


@pytest.mark.parametrize("shape", [(1, 64), (3, 40), (2, 3, 96), (5, 33), (4, 1)])
@pytest.mark.parametrize("eps", [1e-5, 1e-2])
def test_fp32_matches_torch(shape, eps):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
    w, b = _params(shape[-1], 2)
    y = layer_norm(x, w, b, eps)
    assert y.shape == x.shape and y.dtype == x.dtype
    torch.testing.assert_close(y, F.layer_norm(x, x.shape[-1:], w, b, eps), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(y.double(), _reference(x, w, b, eps), rtol=1e-5, atol=1e-5)


def test_single_feature_gives_the_bias():
    """N = 1: the centred input is 0, so every row is the bias (no NaN from the padded block)."""
    x = torch.tensor([[3.0], [-7.0], [0.5]])
    w, b = torch.tensor([2.0]), torch.tensor([0.25])
    assert torch.equal(layer_norm(x, w, b, 1e-5), torch.full((3, 1), 0.25))


def test_large_mean_is_numerically_stable():
    """The variance from the centred values: with a mean of 1e4 and unit spread, E[x^2] - E[x]^2 in fp32
    would be all rounding error; here only the fp32 mean's own rounding (~1e-3) remains."""
    g = torch.Generator().manual_seed(3)
    x = 1e4 + torch.randn(2, 48, generator=g)
    w, b = _params(48, 4)
    torch.testing.assert_close(layer_norm(x, w, b, 1e-5).double(), _reference(x, w, b, 1e-5), rtol=0, atol=1e-2)


def test_strided_input():
    """A last dim with stride 2 (copied), and rows that are not contiguous with each other."""
    g = torch.Generator().manual_seed(5)
    base = torch.randn(4, 7, 80, generator=g)
    w, b = _params(40, 6)
    for x in (base[:, 2, ::2], base[::2, :, :40]):
        assert not x.is_contiguous()
        y = layer_norm(x, w, b, 1e-5)
        assert y.shape == x.shape
        torch.testing.assert_close(y.double(), _reference(x, w, b, 1e-5), rtol=1e-5, atol=1e-5)


def test_input_is_not_modified():
    x = torch.randn(3, 40, generator=torch.Generator().manual_seed(7))
    before = x.clone()
    w, b = _params(40, 8)
    layer_norm(x, w, b, 1e-5)
    assert torch.equal(x, before)


@pytest.mark.parametrize("param_dtype", [torch.bfloat16, torch.float32])
def test_bf16(param_dtype):
    """bf16 in and out, statistics in fp32: within one bf16 ulp of the float64 result (a ulp, not half:
    Triton's interpreter rounds fp32 -> bf16 toward zero)."""
    x = torch.randn(3, 5, 64, generator=torch.Generator().manual_seed(9)).to(torch.bfloat16)
    w, b = _params(64, 10, param_dtype)
    y = layer_norm(x, w, b, 1e-5)
    assert y.dtype == torch.bfloat16 and y.shape == x.shape
    ref = _reference(x, w, b, 1e-5)
    err = (y.double() - ref).abs()
    assert (err <= 2 ** -7 * ref.abs() + 1e-3).all(), err.max().item()
