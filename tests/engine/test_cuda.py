"""On a GPU only (CI has none): the captured decode step and the Triton kernels on real hardware."""

from __future__ import annotations

import pytest
import torch

from geex.engine.generate import decode_step
from geex.engine.sampling import SamplingParams, sample
from geex.models.cache import KVCache
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


def _tiny(arch: str):
    from tests.models.tiny import random_tiny_codegeex, random_tiny_llama

    return (random_tiny_codegeex() if arch == "codegeex" else random_tiny_llama()).to("cuda", torch.bfloat16)


@pytest.mark.parametrize("arch", ["codegeex", "llama"])
@pytest.mark.parametrize("quant", [None, "int8", "int4"])
def test_cuda_graph_step_generates_what_the_eager_step_does(quant, arch):
    model = _tiny(arch)
    if quant:
        quantize_model(model, quant, group_size=32)
    ids = torch.randint(0, model.config.vocab_size, (3, 9), device="cuda",
                        generator=torch.Generator("cuda").manual_seed(0))
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


@pytest.mark.parametrize("arch", ["codegeex", "llama"])
@pytest.mark.parametrize("batch", ["padded", "one row"])
@pytest.mark.parametrize("quant", [None, "int8", "int4"])
def test_fused_kernels_match_pytorch_in_a_bf16_decode_step(monkeypatch, quant, batch, arch):
    """``geex.models.dispatch.KERNELS``: "auto" (the fused GEMV epilogues, LayerNorm and decode-attention
    kernels on CUDA) against "never" (PyTorch: quantized layers dequantize and call ``F.linear``), for
    static steps in one chunk of the attention kernel and across two. bf16: a few roundings apart."""
    from geex.models import dispatch

    model = _tiny(arch)
    if quant:
        quantize_model(model, quant, group_size=32)
    cfg = model.config
    rows, pad = (2, torch.tensor([0, 3], device="cuda")) if batch == "padded" else (1, None)
    g = torch.Generator("cuda").manual_seed(1)
    ids = torch.randint(0, cfg.vocab_size, (rows, 9), device="cuda", generator=g)
    slots = [9, 10, 70, 79]
    nxt = torch.randint(0, cfg.vocab_size, (len(slots), rows, 1), device="cuda", generator=g)
    results = {}
    for mode in ("never", "auto"):
        monkeypatch.setattr(dispatch, "KERNELS", mode)
        cache = KVCache(cfg, rows, 80, device="cuda", dtype=torch.bfloat16)
        with torch.no_grad():
            logits = [model(ids, cache, start=0, pad=pad)]
            for i, slot in enumerate(slots):
                logits.append(model(nxt[i], cache, start=torch.tensor(slot, device="cuda"), pad=pad))
        torch.cuda.synchronize()
        assert not cache.counts.any()
        results[mode] = logits, cache

    def rel(a, b):
        return ((a.double() - b.double()).norm() / b.double().norm()).item()

    (got, cache), (want, ref_cache) = results["auto"], results["never"]
    for a, b in zip(got, want):
        assert a.shape == b.shape and torch.isfinite(a).all()
        assert rel(a, b) < 2e-2
    assert rel(cache.k, ref_cache.k) < 2e-2 and rel(cache.v, ref_cache.v) < 2e-2
    assert (cache.k[:, :, :, 11:70] == 0).all()  # only the steps' slots were written


@pytest.mark.parametrize("arch", ["codegeex", "llama"])
def test_graphed_rows_step_equals_the_eager_per_row_step(arch, monkeypatch):
    """The scheduler's CUDA graph (rows at their own positions over a static cache view, attending
    through the fused kernel, one slot a row) gives the logits of the eager per-row step in plain
    PyTorch (SDPA under the mask), within bf16 rounding, and writes the same keys/values."""
    from geex.engine.cuda_graph import GraphedRowsStep
    from geex.models import dispatch

    model = _tiny(arch)
    cfg = model.config
    g = torch.Generator("cuda").manual_seed(0)
    lengths = [5, 17, 9, 70]  # one row past the kernel's first 64-slot chunk
    with torch.no_grad():
        caches = [KVCache(cfg, 4, 96, device="cuda", dtype=torch.bfloat16) for _ in range(2)]
        for cache in caches:
            for r, n in enumerate(lengths):
                ids = torch.randint(0, cfg.vocab_size, (1, n), device="cuda", generator=torch.Generator("cuda").manual_seed(r))
                model(ids, cache.rows(r, r + 1), start=0)
        step = GraphedRowsStep(model, caches[0].rows(0, 4, static=True))
        for k in range(3):
            nxt = torch.randint(0, cfg.vocab_size, (4,), device="cuda", generator=g)
            starts = torch.tensor([n + k for n in lengths], device="cuda")
            graphed = step(nxt, starts).float()
            monkeypatch.setattr(dispatch, "KERNELS", "never")
            eager = model(nxt[:, None], caches[1], start=starts)[:, -1].float()
            monkeypatch.setattr(dispatch, "KERNELS", "auto")
            torch.testing.assert_close(graphed, eager, rtol=2e-2, atol=2e-2)
        for r, n in enumerate(lengths):
            torch.testing.assert_close(caches[0].k[:, r, :, :n + 3].float(), caches[1].k[:, r, :, :n + 3].float(),
                                       rtol=2e-2, atol=2e-2)


def test_the_overlapped_scheduler_generates_what_generate_does_alone():
    """Continuous batching on the GPU as served: every bucket's graph captured up front, tokens
    chosen on the device and read while the next step runs. Each request's greedy tokens equal
    ``generate`` on its prompt alone (a float32 tiny Llama with a sharpened head: no near-ties),
    and requests ending early (budget, stop token) leave the others' outputs unchanged."""
    import threading

    from geex.engine.generate import generate
    from geex.engine.scheduler import Request, Scheduler
    from geex.models.llama import Llama, get_config

    class Bytes:
        eos_id, stop_ids, vocab_size = 0, frozenset({0}), 256

        def encode_batch(self, texts):
            return [list(t.encode()) for t in texts]

        def decode(self, ids):
            return bytes(ids).decode("utf-8", errors="replace")

    model = Llama(get_config("llama-tiny", tie_embeddings=False))
    model.init_weights(torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.lm_head.weight.mul_(30)
    model = model.eval().to("cuda")
    tok = Bytes()
    prompts = [list(f"def f{i}(x):\n    return x * {i}".encode()) for i in range(6)]
    budgets = [12, 3, 20, 7, 16, 1]
    alone = [generate(model, tok, [p], n)[0].token_ids for p, n in zip(prompts, budgets)]
    sched = Scheduler(model, tok, slots=4, ctx=128, prefill_chunk=8)
    assert sched.overlap and sched.graphs
    got: dict[int, list[int]] = {i: [] for i in range(len(prompts))}
    done = threading.Semaphore(0)
    try:
        for i, (p, n) in enumerate(zip(prompts, budgets)):
            def emit(ev, i=i):
                if ev.kind == "token":
                    got[i].append(ev.token_id)
                elif ev.kind == "finished":
                    done.release()
            sched.submit(Request(p, n, emit))
        for _ in prompts:
            assert done.acquire(timeout=120)
        assert sched.error is None and sched.graphs  # captured, not fallen back to eager
    finally:
        sched.close()
    assert [got[i] for i in range(len(prompts))] == alone
