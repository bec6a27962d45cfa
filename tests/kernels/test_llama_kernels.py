"""The Llama decode kernels (RMSNorm, rotary embedding, SwiGLU's gate), run on the CPU by
Triton's interpreter, against float64 math and against the eager PyTorch forms they replace
(``geex.models.ops``' CPU path), whose rounding they follow."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("triton")

from geex.kernels import quant_matmul  # noqa: E402
from geex.kernels.rms_norm import rms_norm  # noqa: E402
from geex.kernels.rotary import rotate_qk  # noqa: E402
from geex.kernels.swiglu import swiglu  # noqa: E402

if not quant_matmul.INTERPRET:  # tests/conftest.py chooses the interpreter when there is no GPU
    pytest.skip("these tests run the kernels on the CPU through Triton's interpreter (TRITON_INTERPRET=1)",
                allow_module_level=True)


def _g(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _close_bf16(got: torch.Tensor, eager: torch.Tensor, atol: float = 2 ** -8) -> None:
    """bf16 results against the eager bf16 form: a unit or two in the last place (the interpreter
    truncates to bf16 where a GPU rounds to nearest); ``atol``: a sum of rounded terms that cancel
    keeps their rounding."""
    assert got.dtype == eager.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), eager.float(), rtol=2 ** -6, atol=atol)


@pytest.mark.parametrize("shape", [(1, 64), (3, 40), (2, 3, 96), (5, 1536)])
@pytest.mark.parametrize("eps", [1e-6, 1e-2])
def test_rms_norm(shape, eps):
    x = torch.randn(*shape, generator=_g(1)) * 3
    w = 1 + 0.5 * torch.randn(shape[-1], generator=_g(2))
    y = rms_norm(x, w, eps)
    xd = x.double()
    ref = w.double() * xd / torch.sqrt((xd * xd).mean(-1, keepdim=True) + eps)
    assert y.shape == x.shape and y.dtype == x.dtype
    torch.testing.assert_close(y.double(), ref, rtol=1e-5, atol=1e-5)
    xb, wb = x.bfloat16(), w.bfloat16()  # bf16: rounded as the eager form rounds
    eager = wb * F.rms_norm(xb.float(), wb.shape, eps=eps).to(torch.bfloat16)
    _close_bf16(rms_norm(xb, wb, eps), eager)


def _rotate_half(x, cos, sin):
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


@pytest.mark.parametrize("group", [1, 3])
@pytest.mark.parametrize("per_row", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_rotary_rotates_queries_out_and_keys_in_place(per_row, dtype, group):
    """The fused projection's output, per key/value head its ``group`` queries, its key, its value:
    the queries come out rotated by their token's angles (shared positions [T, D] or one row's own
    [B, T, D]) in head order, the keys rotated where they are; values untouched."""
    b, t, hkv, d = 3, 4, 2, 16
    h = hkv * group
    q, k, v = (torch.randn(b, t, n, d, generator=_g(3 + i)).to(dtype) for i, n in enumerate((h, hkv, hkv)))
    # the layout, written out: group g holds queries g*group .. g*group+group-1, then key g, value g
    qkv = torch.cat([torch.cat([q[:, :, g * group:(g + 1) * group], k[:, :, g:g + 1], v[:, :, g:g + 1]], dim=2)
                     for g in range(hkv)], dim=2).reshape(b, t, -1)
    pos = torch.randint(0, 1000, (b, t) if per_row else (t,), generator=_g(7)).double()
    inv_freq = 1.0 / (10000 ** (torch.arange(0, d, 2).double() / d))
    ang = torch.cat([pos[..., None] * inv_freq] * 2, dim=-1)
    cos, sin = ang.cos().to(dtype), ang.sin().to(dtype)
    out = qkv.clone()
    got_q = rotate_qk(out, group, d, cos, sin)
    assert got_q.shape == (b, t, h, d) and got_q.is_contiguous()
    c, s = (cos[:, :, None] if per_row else cos[None, :, None]), (sin[:, :, None] if per_row else sin[None, :, None])
    slots = out.view(b, t, hkv, group + 2, d)
    got_k, got_v = slots[:, :, :, group], slots[:, :, :, group + 1]
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    for got, x in ((got_q, q), (got_k, k)):
        torch.testing.assert_close(got.double(), _rotate_half(x.double(), c.double(), s.double()), rtol=tol, atol=tol)
        if dtype == torch.bfloat16:
            _close_bf16(got, _rotate_half(x, c, s), atol=2 ** -5)
    assert torch.equal(got_v, v)  # values untouched
    # a rotation keeps each pair's length
    pairs = lambda x: x[..., :d // 2] ** 2 + x[..., d // 2:] ** 2  # noqa: E731
    if dtype == torch.float32:
        torch.testing.assert_close(pairs(got_q), pairs(q), rtol=1e-5, atol=1e-5)


def test_rotary_refuses_a_layout_it_cannot_read():
    x = torch.randn(4, 2, 64).transpose(0, 1)  # rows not contiguous
    with pytest.raises(ValueError, match="contiguous"):
        rotate_qk(x, 2, 16, torch.ones(4, 16), torch.zeros(4, 16))
    with pytest.raises(ValueError, match="contiguous"):  # not whole groups of 2 queries + key + value
        rotate_qk(torch.randn(2, 4, 80), 2, 16, torch.ones(4, 16), torch.zeros(4, 16))


@pytest.mark.parametrize("shape", [(1, 2 * 64), (3, 2 * 1100), (2, 5, 2 * 24)])
def test_swiglu(shape):
    x = torch.randn(*shape, generator=_g(5)) * 3
    y = swiglu(x)
    gate, up = x.double()[..., 0::2], x.double()[..., 1::2]  # the rows interleaved: gate i, up i
    assert y.shape == (*shape[:-1], shape[-1] // 2)
    torch.testing.assert_close(y.double(), gate * torch.sigmoid(gate) * up, rtol=1e-5, atol=1e-5)
    xb = x.bfloat16()
    g, u = xb[..., 0::2], xb[..., 1::2]
    _close_bf16(swiglu(xb), F.silu(g) * u)
    with pytest.raises(ValueError, match="even"):
        swiglu(torch.zeros(2, 5))
