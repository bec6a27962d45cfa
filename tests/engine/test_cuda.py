"""On a GPU only (CI has none): the captured decode step and the Triton kernels on real hardware."""

from __future__ import annotations

import pytest
import torch

from geex.engine.generate import decode_step
from geex.engine.sampling import SamplingParams, sample
from geex.models.codegeex import KVCache
from geex.models.quantize import quantize_model

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _greedy(model, ids, new: int, mode: str, pad=None) -> list[list[int]]:
    cfg = model.config
    cache = KVCache(cfg, ids.shape[0], ids.shape[1] + new, device="cuda", dtype=torch.bfloat16)
    logits = model(ids, cache, start=0, pad=pad)[:, -1]
    step = decode_step(model, cache, pad, mode)
    out = []
    for i in range(new):
        nxt = sample(logits, SamplingParams(greedy=True), vocab_size=cfg.vocab_size)
        out.append(nxt.tolist())
        logits = step(nxt, ids.shape[1] + i)
    return out


@pytest.mark.parametrize("quant", [None, "int8", "int4"])
def test_cuda_graph_step_generates_what_the_eager_step_does(quant):
    from tests.models.tiny import random_tiny_codegeex

    model = random_tiny_codegeex().to("cuda", torch.bfloat16)
    if quant:
        quantize_model(model, quant, group_size=32)
    model.fuse_projections()
    ids = torch.randint(0, 50400, (3, 9), device="cuda", generator=torch.Generator("cuda").manual_seed(0))
    pad = torch.tensor([0, 2, 5], device="cuda")
    with torch.no_grad():
        assert _greedy(model, ids, 12, "graph", pad) == _greedy(model, ids, 12, "eager", pad)
        assert _greedy(model, ids, 12, "graph") == _greedy(model, ids, 12, "eager")


@pytest.mark.parametrize("m", [1, 3, 40])
@pytest.mark.parametrize("mode", ["float", "int8", "int4-32", "int4-128"])
def test_kernels_match_a_float64_reference_on_the_gpu(m, mode):
    from geex.kernels.quant_matmul import wq_matmul
    from geex.models.quantize import dequantize_int4, dequantize_int8, quantize_int4, quantize_int8

    if mode == "float" and m > 1:
        pytest.skip("float weights: GEMV only")
    g = torch.Generator("cuda").manual_seed(m)
    n, k = 320, 512
    x = torch.randn(m, k, device="cuda", generator=g).to(torch.bfloat16)
    w = torch.randn(n, k, device="cuda", generator=g) * 0.02
    b = torch.randn(n, device="cuda", generator=g).to(torch.bfloat16)
    if mode == "float":
        q, s, group, deq = w.to(torch.bfloat16), None, 0, w.to(torch.bfloat16)
    elif mode == "int8":
        q, s = quantize_int8(w)
        group, deq = 0, dequantize_int8(q, s)
    else:
        group = int(mode.split("-")[1])
        q, s = quantize_int4(w.to(torch.bfloat16), group)
        deq = dequantize_int4(q, s)
    ref = x.double() @ deq.double().T + b.double()
    y = wq_matmul(x, q, s, b, group)
    assert ((y.double() - ref).norm() / ref.norm()).item() < 1e-2
