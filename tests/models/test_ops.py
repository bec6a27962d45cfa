"""``geex.models.ops``: with ``dispatch.KERNELS="never"`` (and "auto" on the CPU) every op is exactly the plain
PyTorch sequence (but the CPU's INT8/INT4 products, PyTorch's own kernels: close); with ``dispatch.KERNELS="always"`` the fused Triton paths run (through Triton's interpreter on
the CPU) and a whole tiny model gives what the PyTorch path gives; anything that needs gradients
stays on the PyTorch path."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from geex.models import codegeex, dispatch, ops
from geex.models.cache import KVCache, LayerCache
from geex.models.quantize import QuantizedEmbedding, QuantizedLinear, quantize_model

QUANTS = [None, "int8", "int4"]


def _linear(quant: str | None, n_in: int = 64, n_out: int = 48, seed: int = 0) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    lin = nn.Linear(n_in, n_out)
    with torch.no_grad():
        lin.weight.copy_(0.1 * torch.randn(n_out, n_in, generator=g))
        lin.bias.copy_(torch.randn(n_out, generator=g))
    if quant is None:
        return lin
    return QuantizedLinear.from_weight(lin.weight.detach(), lin.bias.detach(), quant, 32)


def _randn(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _embeddings() -> tuple[nn.Embedding, QuantizedEmbedding]:
    """A word embedding (also the output head) and its INT8 version."""
    emb = nn.Embedding(100, 64)
    with torch.no_grad():
        emb.weight.copy_(_randn(100, 64, seed=5))
    return emb, QuantizedEmbedding.from_weight(emb.weight.detach())


def _layer_norm_module(n: int = 64) -> nn.LayerNorm:
    ln = nn.LayerNorm(n, eps=1e-5)
    with torch.no_grad():
        ln.weight.copy_(1 + 0.3 * _randn(n, seed=2))
        ln.bias.copy_(0.3 * _randn(n, seed=3))
    return ln


@pytest.fixture
def interpreter():
    """The fused paths on CPU tensors need Triton's interpreter (tests/conftest.py picks it without a GPU)."""
    pytest.importorskip("triton")
    from geex.kernels import quant_matmul

    if not quant_matmul.INTERPRET:
        pytest.skip("the fused paths run on CPU tensors only through Triton's interpreter (TRITON_INTERPRET=1)")


@pytest.fixture
def kernel_calls(monkeypatch) -> Counter:
    """Counts the calls of each Triton kernel entry point (ops imports them at call time)."""
    pytest.importorskip("triton")
    from geex.kernels import decode_attention, layer_norm, quant_matmul, rms_norm, rotary, swiglu

    calls: Counter = Counter()
    for module, name in ((quant_matmul, "wq_matmul"), (layer_norm, "layer_norm"),
                         (decode_attention, "decode_attention"), (rms_norm, "rms_norm"),
                         (rotary, "rotate_qk"), (swiglu, "swiglu")):
        real = getattr(module, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, name, spy)
    return calls


# --- "never" (and "auto" on the CPU): exactly the plain PyTorch sequence ---------------------------------

def test_fast_gelu_is_x_sigmoid_1702x():
    xs = [-30.0, -3.0, -1.0, -0.25, 0.0, 0.5, 1.0, 2.0, 30.0]
    expected = torch.tensor([x / (1 + math.exp(-1.702 * x)) for x in xs])
    torch.testing.assert_close(ops.fast_gelu(torch.tensor(xs)), expected, rtol=1e-6, atol=1e-7)
    assert abs(ops.fast_gelu(torch.tensor(1.0)).item() - 0.8457957) < 1e-6  # erf GELU: 0.8413, tanh: 0.8412
    assert codegeex.fast_gelu is ops.fast_gelu


def _plain_linear(module: nn.Module, x: torch.Tensor, act: str | None, residual: torch.Tensor | None):
    """The reference, in x's dtype (float64 for the fused paths' checks)."""
    weight = module.dequantized(x.dtype) if isinstance(module, QuantizedLinear) else module.weight.to(x.dtype)
    y = F.linear(x, weight, module.bias.to(x.dtype))
    if act == "gelu":
        y = y * torch.sigmoid(1.702 * y)
    return y if residual is None else y + residual


@pytest.mark.parametrize("mode", ["never", "auto"])
@pytest.mark.parametrize("quant", QUANTS)
@pytest.mark.parametrize("act", [None, "gelu"])
@pytest.mark.parametrize("with_residual", [False, True])
@pytest.mark.parametrize("lead", [(1,), (1, 1), (2, 3)])
def test_linear_is_the_torch_sequence(monkeypatch, mode, quant, act, with_residual, lead):
    monkeypatch.setattr(dispatch, "KERNELS", mode)
    module = _linear(quant)
    x = _randn(*lead, 64)
    r = _randn(*lead, 48, seed=4) if with_residual else None
    with torch.no_grad():
        got, want = ops.linear(module, x, act=act, residual=r), _plain_linear(module, x, act, r)
    if quant == "int8" and mode == "auto":  # the CPU's int8 path scales the output, not the weight
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    elif quant == "int4" and mode == "auto":  # PyTorch's int4 CPU kernel reads bf16 activations
        scale = want.abs().max()
        torch.testing.assert_close(got / scale, want / scale, rtol=0, atol=8e-3)
    else:
        assert torch.equal(got, want)


@pytest.mark.parametrize("mode", ["never", "auto"])
def test_layer_norm_tied_head_and_attention_step_are_torch(monkeypatch, mode):
    monkeypatch.setattr(dispatch, "KERNELS", mode)
    ln = _layer_norm_module()
    emb, qemb = _embeddings()
    with torch.no_grad():
        for shape in ((1, 64), (2, 1, 64), (3, 5, 64)):
            x = _randn(*shape, seed=6)
            assert torch.equal(ops.layer_norm(ln, x), F.layer_norm(x, (64,), ln.weight, ln.bias, 1e-5))
            assert torch.equal(ops.tied_head(x, emb), x @ emb.weight.T)
            want = x @ qemb.dequantized(x.dtype).T
            if mode == "never":
                assert torch.equal(ops.tied_head(x, qemb), want)
            else:  # the CPU's int8 path scales the output, not the weight
                torch.testing.assert_close(ops.tied_head(x, qemb), want, rtol=1e-5, atol=1e-5)
        q, k, v = (_randn(2, 4, 1, 16, seed=s) for s in (7, 8, 9))
        cache = LayerCache(torch.zeros(2, 4, 8, 16), torch.zeros(2, 4, 8, 16), torch.zeros(8, dtype=torch.int32))
        mask = torch.zeros(2, 1, 1, 8)
        assert ops.cached_attention_step(q, k, v, cache, torch.tensor([3]), mask) is None
        assert not cache.k.any() and not cache.v.any()  # the caller stores: nothing written here


@pytest.mark.parametrize("mode", ["never", "always"])
def test_unknown_activation_raises(monkeypatch, mode):
    if mode == "always":
        pytest.importorskip("triton")
    monkeypatch.setattr(dispatch, "KERNELS", mode)
    for quant in QUANTS:
        with torch.no_grad(), pytest.raises(ValueError):
            ops.linear(_linear(quant), _randn(1, 64), act="relu")


# --- "always": the fused paths, against the PyTorch ones --------------------------------------------------

def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


@pytest.mark.parametrize("quant", QUANTS)
@pytest.mark.parametrize("act", [None, "gelu"])
@pytest.mark.parametrize("with_residual", [False, True])
def test_always_linear_one_row_runs_the_kernel(monkeypatch, interpreter, kernel_calls, quant, act, with_residual):
    module = _linear(quant)
    x = _randn(1, 1, 64)
    r = _randn(1, 1, 48, seed=4) if with_residual else None
    with torch.no_grad():
        expected = _plain_linear(module, x.double(), act, r.double() if r is not None else None)
        monkeypatch.setattr(dispatch, "KERNELS", "always")
        y = ops.linear(module, x, act=act, residual=r)
    assert kernel_calls["wq_matmul"] == 1
    assert y.shape == (1, 1, 48) and y.dtype == x.dtype
    assert _rel(y, expected) < 1e-5


def test_always_dispatch_by_rows(monkeypatch, interpreter, kernel_calls):
    """Float linears and the float tied head: the GEMV up to ``DECODE_ROWS`` rows, PyTorch beyond
    (exactly); quantized linears and the INT8 head: always the kernel; LayerNorm: the kernel up to
    ``LAYER_NORM_ROWS`` rows."""
    monkeypatch.setattr(dispatch, "KERNELS", "always")
    rows = ops.DECODE_ROWS + 1
    lin, q8 = _linear(None), _linear("int8")
    ln = _layer_norm_module()
    emb, qemb = _embeddings()
    with torch.no_grad():
        x = _randn(rows, 64)
        assert torch.equal(ops.linear(lin, x), F.linear(x, lin.weight, lin.bias))
        assert torch.equal(ops.tied_head(x, emb), x @ emb.weight.T)
        assert kernel_calls["wq_matmul"] == 0
        assert _rel(ops.linear(q8, x), _plain_linear(q8, x.double(), None, None)) < 1e-5
        assert kernel_calls["wq_matmul"] == 1
        one = x[:1]
        assert _rel(ops.tied_head(one, emb), one.double() @ emb.weight.double().T) < 1e-5
        assert kernel_calls["wq_matmul"] == 2
        for head_rows in (one, x):
            assert _rel(ops.tied_head(head_rows, qemb), head_rows.double() @ qemb.dequantized(torch.float64).T) < 1e-5
        assert kernel_calls["wq_matmul"] == 4

        # several rows, no bias, a residual: one addmm adds it (the o/down projections of a batch)
        plain = nn.Linear(64, 48, bias=False)
        plain.weight.copy_(lin.weight)
        residual = _randn(2, rows, 48, seed=7)
        addmm_calls = []
        real_addmm = torch.addmm
        monkeypatch.setattr(torch, "addmm", lambda *a, **k: addmm_calls.append(1) or real_addmm(*a, **k))
        got = ops.linear(plain, _randn(2, rows, 64, seed=8), residual=residual)
        want = _randn(2, rows, 64, seed=8).double() @ plain.weight.double().T + residual.double()
        assert got.shape == (2, rows, 48) and _rel(got, want) < 1e-6 and len(addmm_calls) == 1
        ops.linear(lin, x, residual=residual[0])  # a bias: the plain sequence
        monkeypatch.setattr(torch, "addmm", real_addmm)
        assert len(addmm_calls) == 1 and kernel_calls["wq_matmul"] == 4

        few = _randn(ops.LAYER_NORM_ROWS, 64, seed=6)
        ref = F.layer_norm(few.double(), (64,), ln.weight.double(), ln.bias.double(), 1e-5)
        assert _rel(ops.layer_norm(ln, few), ref) < 1e-5
        assert kernel_calls["layer_norm"] == 1
        many = _randn(ops.LAYER_NORM_ROWS + 1, 64, seed=6)
        assert torch.equal(ops.layer_norm(ln, many), F.layer_norm(many, (64,), ln.weight, ln.bias, 1e-5))
        assert kernel_calls["layer_norm"] == 1


def test_always_attention_step(monkeypatch, interpreter, kernel_calls):
    """Stores k, v in the layer's cache at the slot and attends over slots 0..slot; falls back (None,
    nothing written) where the kernel does not apply."""
    monkeypatch.setattr(dispatch, "KERNELS", "always")
    b, h, d, s, slot = 2, 4, 16, 12, 7
    q, k, v = (_randn(b, h, 1, d, seed=i) for i in (7, 8, 9))
    keys = _randn(b, h, s, d, seed=10)
    values = _randn(b, h, s, d, seed=11)
    allowed = (torch.arange(s)[None] <= slot) & (torch.arange(s)[None] >= torch.tensor([0, 3])[:, None])
    mask = torch.zeros(b, 1, 1, s).masked_fill(~allowed[:, None, None], float("-inf"))
    counts = lambda: torch.zeros(b * h, dtype=torch.int32)  # noqa: E731
    cache = LayerCache(keys.clone(), values.clone(), counts())
    with torch.no_grad():
        y = ops.cached_attention_step(q, k, v, cache, torch.tensor([slot]), mask)
        kc, vc = keys.clone(), values.clone()
        kc[:, :, slot], vc[:, :, slot] = k[:, :, 0], v[:, :, 0]
        ref = F.scaled_dot_product_attention(q.double(), kc.double(), vc.double(), attn_mask=mask.double())
        assert torch.equal(cache.k, kc) and torch.equal(cache.v, vc)
        assert _rel(y, ref.transpose(1, 2).reshape(b, 1, h * d)) < 1e-5
        assert kernel_calls["decode_attention"] == 1

        assert not cache.counts.any()
        untouched = LayerCache(keys.clone(), values.clone(), counts())
        q24, k24, v24 = (_randn(b, h, 1, 24, seed=i) for i in (7, 8, 9))
        cache24 = LayerCache(torch.zeros(b, h, s, 24), torch.zeros(b, h, s, 24), counts())
        no_counters = LayerCache(untouched.k, untouched.v)
        assert ops.cached_attention_step(q, k, v, no_counters, torch.tensor([slot]), mask) is None
        assert ops.cached_attention_step(q24, k24, v24, cache24, torch.tensor([slot]), mask) is None  # head dim 24
        assert ops.cached_attention_step(q, k, v, untouched, torch.tensor([slot]), allowed[:, None, None]) is None
        assert ops.cached_attention_step(q, k, v, untouched, torch.tensor([slot]), None) is None
        assert ops.cached_attention_step(q, k, v, untouched, torch.tensor([slot, slot + 1, slot]), mask) is None
        two = torch.cat([q, q], dim=2)
        assert ops.cached_attention_step(two, two, two, untouched, torch.tensor([slot]), mask) is None
        assert kernel_calls["decode_attention"] == 1
        assert torch.equal(untouched.k, keys) and torch.equal(untouched.v, values)
        assert not cache24.k.any()


def _tiny(quant: str | None) -> codegeex.CodeGeeX:
    """codegeex-tiny with biases and LayerNorms moved off their init (as ``tests.models.tiny`` does), but a
    vocabulary of 512: the interpreter runs the one-row tied head's GEMV a program per 4 vocabulary rows."""
    model = codegeex.CodeGeeX(codegeex.get_config("codegeex-tiny", vocab_size=500, padded_vocab_size=512))
    g = torch.Generator().manual_seed(0)
    model.init_weights(g)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "layernorm" in name:
                p.add_(0.1 * torch.randn(p.shape, generator=g))
    if quant:
        quantize_model(model, quant, 32)
    return model


def _decode(model, ids: torch.Tensor, pad: torch.Tensor | None, steps: list[tuple[int, bool]], max_len: int = 16):
    """Prefill, then a step at each ``(slot, static)``: the logits of each, and the cache."""
    cfg = model.config
    g = torch.Generator().manual_seed(21)
    cache = KVCache(cfg, ids.shape[0], max_len)
    outs = [model(ids, cache, start=0, pad=pad)]
    for slot, static in steps:
        nxt = torch.randint(0, cfg.vocab_size, (ids.shape[0], 1), generator=g)
        outs.append(model(nxt, cache, start=torch.tensor(slot) if static else slot, pad=pad))
    return outs, cache


@pytest.mark.parametrize("quant, batch", [(q, "padded") for q in QUANTS] + [(None, "one row"), ("int4", "one row")])
def test_always_model_matches_never(monkeypatch, interpreter, kernel_calls, quant, batch):
    model = _tiny(quant)
    cfg = model.config
    g = torch.Generator().manual_seed(3)
    if batch == "padded":  # static steps at the next slots, an eager one, a static one at the last slot
        ids, pad = torch.randint(0, cfg.vocab_size, (2, 9), generator=g), torch.tensor([0, 3])
        steps = [(9, True), (10, True), (11, False), (15, True)]
    else:  # every linear and the head through the GEMV (slow in the interpreter: one step)
        ids, pad = torch.randint(0, cfg.vocab_size, (1, 9), generator=g), None
        steps = [(9, True)]
    with torch.no_grad():
        monkeypatch.setattr(dispatch, "KERNELS", "never")
        ref_outs, ref_cache = _decode(model, ids, pad, steps)
        assert not kernel_calls
        monkeypatch.setattr(dispatch, "KERNELS", "always")
        outs, cache = _decode(model, ids, pad, steps)
    for got, want in zip(outs, ref_outs):
        assert got.shape == want.shape and torch.isfinite(got).all()
        assert _rel(got, want) < 1e-5
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    for got, want in ((cache.k, ref_cache.k), (cache.v, ref_cache.v)):
        assert _rel(got, want) < 1e-5
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    assert not cache.counts.any()  # the decode-attention counters are left at zero
    last = max(slot for slot, _ in steps)
    assert (cache.k[:, :, :, last + 1:] == 0).all() and (cache.k[:, :, :, last] != 0).any()
    if batch == "padded":
        assert (cache.k[:, :, :, 12:15] == 0).all()  # slots never written stay empty
    # the fused paths really ran: one decode-attention kernel a layer (and the top layer) a static step,
    # LayerNorm kernels in every pass, the GEMV/tile kernels for quantized layers or one row
    assert kernel_calls["decode_attention"] == sum(static for _, static in steps) * (cfg.n_layer + 1)
    assert kernel_calls["layer_norm"] > 0
    if quant is not None or batch == "one row":
        assert kernel_calls["wq_matmul"] > 0


@pytest.mark.parametrize("quant", QUANTS)
def test_always_llama_matches_never(monkeypatch, interpreter, kernel_calls, quant):
    """The Llama family on the same fused paths: GEMVs with residuals, grouped-query decode
    attention (4 query heads over 2 key/value heads), through Triton's interpreter."""
    from tests.models.tiny import random_tiny_llama

    model = random_tiny_llama()
    if quant:
        quantize_model(model, quant, 32)
    cfg = model.config
    g = torch.Generator().manual_seed(4)
    ids, pad = torch.randint(0, cfg.vocab_size, (2, 9), generator=g), torch.tensor([0, 3])
    steps = [(9, True), (10, False), (12, True)]
    with torch.no_grad():
        monkeypatch.setattr(dispatch, "KERNELS", "never")
        ref_outs, ref_cache = _decode(model, ids, pad, steps)
        monkeypatch.setattr(dispatch, "KERNELS", "always")
        outs, cache = _decode(model, ids, pad, steps)
    for got, want in [*zip(outs, ref_outs), (cache.k, ref_cache.k), (cache.v, ref_cache.v)]:
        assert got.shape == want.shape and torch.isfinite(got).all()
        assert _rel(got, want) < 1e-5
    assert not cache.counts.any()
    assert kernel_calls["decode_attention"] == 2 * cfg.n_layer
    passes = 1 + len(steps)  # every pass, prefill too: one RMSNorm kernel a norm, one rotation and one
    assert kernel_calls["rms_norm"] == passes * (2 * cfg.n_layer + 1)  # SwiGLU gate a layer
    assert kernel_calls["rotate_qk"] == kernel_calls["swiglu"] == passes * cfg.n_layer
    if quant is not None:
        assert kernel_calls["wq_matmul"] > 0


# --- anything that needs gradients stays on the PyTorch path ---------------------------------------------

@pytest.mark.parametrize("quant", QUANTS)
def test_always_with_gradients_is_the_torch_path(monkeypatch, kernel_calls, quant):
    model = _tiny(quant)
    assert torch.is_grad_enabled() and model.embedding.position_embeddings.weight.requires_grad
    one = torch.tensor([[11]])  # one row, one token: every op would take its fused path without autograd
    prompt = torch.randint(0, model.config.vocab_size, (2, 6), generator=torch.Generator().manual_seed(4))
    results = {}
    for mode in ("never", "always"):
        monkeypatch.setattr(dispatch, "KERNELS", mode)
        model.zero_grad(set_to_none=True)
        logits = [model(one), model(prompt, pad=torch.tensor([2, 0]))]
        (logits[0].square().mean() + logits[1].square().mean()).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results[mode] = logits, grads
    assert kernel_calls.total() == 0
    # equal, but for INT8 weights (the head, in both modes) off the GPU: outside "never" the output is scaled, not the weight
    same = torch.equal if quant is None else lambda a, b: torch.allclose(a, b, rtol=1e-5, atol=1e-6)
    for got, want in zip(results["always"][0], results["never"][0]):
        assert got.requires_grad and same(got, want)
    grads, ref_grads = results["always"][1], results["never"][1]
    assert grads.keys() == ref_grads.keys() and "embedding.position_embeddings.weight" in grads
    assert all(same(grads[n], ref_grads[n]) for n in grads)


def test_always_op_level_autograd(monkeypatch, kernel_calls):
    """An input that requires grad, or a parameter that does (under grad mode), keeps the PyTorch path;
    under no_grad the same call runs the kernel."""
    pytest.importorskip("triton")
    monkeypatch.setattr(dispatch, "KERNELS", "always")
    lin, ln = _linear(None), _layer_norm_module()
    x = _randn(1, 64)
    xg = x.clone().requires_grad_()
    y = ops.linear(lin, xg, act="gelu", residual=x[:, :48])
    assert torch.equal(y, _plain_linear(lin, x, "gelu", x[:, :48]))
    y.sum().backward()
    assert xg.grad is not None and lin.weight.grad is not None
    assert torch.equal(ops.layer_norm(ln, x), F.layer_norm(x, (64,), ln.weight, ln.bias, 1e-5))
    lin.requires_grad_(False)
    assert torch.equal(ops.linear(lin, xg), F.linear(xg, lin.weight, lin.bias))  # the input needs grad
    assert kernel_calls.total() == 0
    if not _interpreting():
        return
    with torch.no_grad():
        ops.linear(_linear(None), x)
        ops.layer_norm(ln, x)
    assert kernel_calls["wq_matmul"] == 1 and kernel_calls["layer_norm"] == 1


def _interpreting() -> bool:
    from geex.kernels import quant_matmul

    return quant_matmul.INTERPRET


def test_layer_norm_without_affine_parameters_takes_pytorch(monkeypatch):
    monkeypatch.setattr(dispatch, "KERNELS", "always")
    norm = nn.LayerNorm(24, elementwise_affine=False)
    x = torch.randn(3, 24)
    with torch.no_grad():
        torch.testing.assert_close(ops.layer_norm(norm, x), F.layer_norm(x, (24,)), rtol=0, atol=0)
