"""Continuous batching (``geex.engine.scheduler``) against independent references: the model run on
each whole sequence alone (per-row positions), ``generate`` on each prompt alone (greedy and seeded
sampling), and the scheduler's own bookkeeping (cached tokens, freed slots, finish details)."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from geex.engine.generate import generate
from geex.engine.sampling import SamplingParams
from geex.engine.scheduler import QueueFull, Request, Scheduler
from geex.engine.streaming import HeldText
from geex.models.cache import KVCache
from geex.models.llama import Llama
from geex.models.llama import get_config as llama_config
from tests.models.tiny import random_tiny_codegeex, random_tiny_llama


class ByteTokenizer:
    """Bytes as tokens (id 0 ends a sequence): an independent, trivially correct tokenizer."""

    eos_id = 0
    stop_ids = frozenset({0})
    vocab_size = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode())

    def encode_batch(self, texts):
        return [self.encode(t) for t in texts]

    def decode(self, ids) -> str:
        return bytes(ids).decode("utf-8", errors="replace")


@pytest.fixture(params=["in order", "overlapped"], autouse=True)
def overlap(request, monkeypatch):
    """Every test twice: a step's tokens read right after it (the CPU's way), and read while the
    next step is already queued (the GPU's way: ended requests are stepped once more, in vain)."""
    init = Scheduler.__init__

    def patched(self, *args, overlap=None, **kwargs):
        init(self, *args, overlap=(request.param == "overlapped") if overlap is None else overlap, **kwargs)

    monkeypatch.setattr(Scheduler, "__init__", patched)
    return request.param


@pytest.fixture(scope="module")
def tok():
    return ByteTokenizer()


@pytest.fixture(scope="module")
def model():
    """A tiny random Llama whose greedy choices vary and are far from ties (an untied, sharpened
    head: random tied models only repeat their last token, which would hide position mistakes)."""
    m = Llama(llama_config("llama-tiny", tie_embeddings=False))
    m.init_weights(torch.Generator().manual_seed(0))
    with torch.no_grad():
        m.lm_head.weight.mul_(30)
    return m.eval()


PROMPTS = ["def add(a, b):\n", "int main() {\n    return", "x", "import os\n\ndef walk(path):\n    \"\"\"Walk.\"\"\"\n"]


class Collector:
    """Events of several requests, and a wait for all of them to finish."""

    def __init__(self) -> None:
        self.events: dict[str, list] = {}
        self.done = threading.Event()
        self.open = 0
        self.lock = threading.Lock()

    def request(self, prompt: list[int], max_new: int, **kw) -> Request:
        req = Request(prompt, max_new, self.emit, **kw)
        with self.lock:
            self.open += 1
            self.events[req.id] = []
        return req

    def emit(self, ev) -> None:
        with self.lock:
            self.events[ev.request.id].append(ev)
            if ev.kind == "finished":
                self.open -= 1
                if self.open == 0:
                    self.done.set()

    def wait(self, timeout: float = 60) -> None:
        assert self.done.wait(timeout), "requests did not finish"

    def tokens(self, req: Request) -> list[int]:
        return [e.token_id for e in self.events[req.id] if e.kind == "token"]

    def final(self, req: Request):
        return self.events[req.id][-1]


@pytest.mark.parametrize("make, kernels", [(random_tiny_llama, "never"), (random_tiny_codegeex, "never"),
                                           (random_tiny_llama, "always")])  # codegeex's other kernels: minutes
def test_per_row_positions_equal_each_whole_sequence(make, kernels, monkeypatch):
    """Rows at different lengths step together, each at its own position: the logits equal those
    of each whole sequence run alone without a cache (the model's plain causal forward). "always":
    the one-token steps attend through the fused decode-attention kernel (one slot a row), as on a
    GPU, here through Triton's interpreter."""
    if kernels == "always":
        pytest.importorskip("triton")
        from geex.kernels import decode_attention, quant_matmul
        from geex.models import dispatch

        if not quant_matmul.INTERPRET:
            pytest.skip("the fused kernels run on CPU tensors only through Triton's interpreter")
        monkeypatch.setattr(dispatch, "KERNELS", "always")
        calls = []
        real = decode_attention.decode_attention
        monkeypatch.setattr(decode_attention, "decode_attention", lambda *a, **k: calls.append(1) or real(*a, **k))
    m = make(1)
    g = torch.Generator().manual_seed(0)
    seqs = [torch.randint(0, 100, (n,), generator=g) for n in (5, 9, 3)]
    with torch.no_grad():
        whole = [m(s[None])[0] for s in seqs]
        cache = KVCache(m.config, 3, 32)
        for r, s in enumerate(seqs):  # each row's prompt through a view of its own row
            out = m(s[None, :-2], cache.rows(r, r + 1), start=0, last_only=True)
            assert out.shape[1] == 1
            torch.testing.assert_close(out[0, -1], whole[r][len(s) - 3], rtol=1e-5, atol=1e-5)
        for k in (2, 1):
            ids = torch.stack([s[-k] for s in seqs])[:, None]
            starts = torch.tensor([len(s) - k for s in seqs])
            # the fixed-shape form a CUDA graph captures (every slot under the mask) agrees, and
            # writes the same keys/values
            static = m(ids, cache.rows(0, 3, static=True), start=starts)
            out = m(ids, cache, start=starts)
            torch.testing.assert_close(static, out, rtol=1e-5, atol=1e-5)
            for r, s in enumerate(seqs):
                torch.testing.assert_close(out[r, 0], whole[r][len(s) - k], rtol=1e-5, atol=1e-5)
    if kernels == "always":
        assert len(calls) == 2 * 2 * m.config.cache_layers  # every layer of every one-token step


@pytest.mark.parametrize("slots", [1, 3])
def test_greedy_output_equals_each_prompt_alone(model, tok, slots):
    """Submitted together, queued behind each other (1 slot) or batched (3 slots), each request
    generates what ``generate`` does for its prompt alone."""
    alone = [generate(model, tok, [p], 10)[0] for p in PROMPTS]
    sched = Scheduler(model, tok, slots=slots, ctx=128, prefill_chunk=8)
    try:
        c = Collector()
        reqs = [c.request(tok.encode(p), 10) for p in PROMPTS]
        for r in reqs:
            sched.submit(r)
        c.wait()
        for r, ref in zip(reqs, alone):
            assert c.tokens(r) == ref.token_ids
            final = c.final(r)
            assert final.finish_detail == ("eos" if ref.finish_reason == "eos" else "length")
            text = "".join(e.text for e in c.events[r.id] if e.kind in ("token", "finished"))
            assert text == ref.text
        assert sched.stats()["running"] == 0
    finally:
        sched.close()


def test_seeded_sampling_does_not_depend_on_the_batch(model, tok):
    """A request's own seed decides its samples: alone or beside other requests, the same tokens."""
    params = SamplingParams(temperature=0.9, top_p=0.95)
    sched = Scheduler(model, tok, slots=3, ctx=128)
    try:
        c = Collector()
        alone = c.request(tok.encode(PROMPTS[0]), 12, params=params, seed=11)
        sched.submit(alone)
        c.wait()
        c2 = Collector()
        crowd = [c2.request(tok.encode(p), 12, params=params, seed=s) for p, s in zip(PROMPTS, (11, 3, 4))]
        for r in crowd:
            sched.submit(r)
        c2.wait()
        assert c2.tokens(crowd[0]) == c.tokens(alone)
        assert c2.tokens(crowd[1]) != c2.tokens(crowd[0]) or c2.tokens(crowd[2]) != c2.tokens(crowd[0])
        # and they are what ``generate`` samples with the same seed, not the greedy choice
        # (a hot temperature: this sharpened model's samples then leave its argmax)
        hot = SamplingParams(temperature=40.0)
        c3 = Collector()
        hot_req = c3.request(tok.encode(PROMPTS[1]), 12, params=hot, seed=5)
        sched.submit(hot_req)
        c3.wait()
        ref = generate(model, tok, [PROMPTS[1]], 12, hot, seed=5, ignore_eos=False)[0].token_ids
        assert c3.tokens(hot_req) == ref[:len(c3.tokens(hot_req))] and len(ref) == len(c3.tokens(hot_req))
        assert ref != generate(model, tok, [PROMPTS[1]], 12)[0].token_ids
    finally:
        sched.close()


def test_a_budget_up_to_the_context_ends_at_its_edge(model, tok):
    """max_new_tokens far beyond the context: the request generates exactly what the context
    leaves and ends with "length"; no step writes past the cache (overlapped, a request at its
    budget is not stepped again), and the engine serves the next request."""
    prompt = tok.encode(PROMPTS[3])
    ctx = len(prompt) + 9
    sched = Scheduler(model, tok, slots=2, ctx=ctx)
    try:
        c = Collector()
        reqs = [c.request(prompt, 10**6, ignore_eos=True), c.request(prompt[:5], 10**6, ignore_eos=True)]
        for r in reqs:
            sched.submit(r)
        c.wait()
        assert [len(c.tokens(r)) for r in reqs] == [9, ctx - 5]
        assert [c.final(r).finish_detail for r in reqs] == ["length", "length"]
        assert sched.error is None
        c = Collector()
        again = c.request(prompt[:3], 2)
        sched.submit(again)
        c.wait()
        assert len(c.tokens(again)) == 2
    finally:
        sched.close()


def test_prefix_reuse_computes_only_the_new_tail(model, tok):
    """A prompt extending an earlier one finds its tokens in the cache (``cached_tokens``), and
    generates what it generates alone; a copy from a busy slot serves a prompt being computed."""
    first = tok.encode(PROMPTS[3])
    longer = first + tok.encode("    for root in os.walk(path):\n")
    sched = Scheduler(model, tok, slots=2, ctx=128, prefill_chunk=4)
    try:
        c = Collector()
        a = c.request(first, 4)
        sched.submit(a)
        c.wait()
        c = Collector()
        b = c.request(longer, 6)
        sched.submit(b)
        c.wait()
        assert c.events[b.id][0].cached_tokens == len(first)
        assert c.tokens(b) == generate(model, tok, [longer], 6)[0].token_ids
        # the same prompt twice at once: the second waits for the first's prefill and copies it
        fresh = tok.encode("def unrelated_function(x, y, z):\n    return x * y + z\n\n")
        c = Collector()
        pair = [c.request(fresh, 5), c.request(fresh, 5)]
        for r in pair:
            sched.submit(r)
        c.wait()
        cached = sorted(c.events[r.id][0].cached_tokens for r in pair)
        assert cached == [0, len(fresh) - 1]
        ref = generate(model, tok, [fresh], 5)[0].token_ids
        assert [c.tokens(r) for r in pair] == [ref, ref]
    finally:
        sched.close()


def test_a_continuation_reuses_what_an_ended_request_generated(model, tok):
    """A request ends (its budget, or a stop token) while another keeps stepping in a higher row,
    so its row is stepped along as a dummy (and, overlapped, once more in vain); the next request,
    its prompt plus what it generated (an editor's next completion), finds all of it cached and
    generates what it generates alone: no dummy or discarded step overwrote a cached token."""
    prompt = tok.encode(PROMPTS[0])
    ref = generate(model, tok, [prompt], 8)[0].token_ids
    stop = next(i for i in range(3, 8) if ref[i] not in ref[:i])
    for kw, n in ((dict(max_new=6), 6), (dict(max_new=8, stop_token_ids=frozenset({ref[stop]})), stop)):
        sched = Scheduler(model, tok, slots=3, ctx=128, prefill_chunk=64)
        try:
            c = Collector()
            a = c.request(prompt, kw.pop("max_new"), **kw)
            long = c.request(tok.encode(PROMPTS[1]), 40)
            # submitted together (waiting for ``a`` to run first races with its 6 steps on a busy
            # machine): ``a`` is admitted first, to row 0; ``long`` to row 1, and row 0 is stepped
            # along with it once ``a`` is done
            sched.submit(a)
            sched.submit(long)
            _wait_for(lambda: c.final(a).kind == "finished" if c.events[a.id] else False)
            assert c.tokens(a) == ref[:n]
            follow = prompt + ref[:n]
            b = c.request(follow, 5)
            sched.submit(b)
            c.wait()
            assert c.events[b.id][0].cached_tokens == len(follow) - 1
            assert c.tokens(b) == generate(model, tok, [follow], 5)[0].token_ids
        finally:
            sched.close()


def _wait_for(cond, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.002)


def test_cancellation_frees_the_slot_in_every_phase(model, tok):
    """Cancelled while queued, while its prompt is read (chunk by chunk), or while generating: the
    request ends with ``cancelled`` and the phase, and its slot is free for the next request."""
    sched = Scheduler(model, tok, slots=1, ctx=128, prefill_chunk=4)
    try:
        c = Collector()
        long_prompt = tok.encode("# " + "numbers, words " * 7)
        busy = c.request(tok.encode("def f():\n"), 100, ignore_eos=True)
        queued = c.request(tok.encode("x = 1\n"), 5)
        sched.submit(busy)
        sched.submit(queued)
        _wait_for(lambda: any(e.kind == "token" for e in c.events[busy.id]))
        queued.cancel()
        _wait_for(lambda: c.events[queued.id] and c.events[queued.id][-1].kind == "finished")
        busy.cancel()
        c.wait()
        assert (c.final(queued).finish_detail, c.final(queued).phase) == ("cancelled", "queued")
        assert (c.final(busy).finish_detail, c.final(busy).phase) == ("cancelled", "decode")
        assert len(c.tokens(busy)) < 100
        c = Collector()
        reading = c.request(long_prompt, 5)
        sched.submit(reading)
        _wait_for(lambda: 0 < len(sched.history[0]) < len(long_prompt) and sched.running)
        reading.cancel()
        c.wait()
        assert (c.final(reading).finish_detail, c.final(reading).phase) == ("cancelled", "prefill")
        assert sched.stats()["running"] == 0 and sched.stats()["waiting"] == 0
        c = Collector()
        after = c.request(tok.encode(PROMPTS[0]), 6)
        sched.submit(after)
        c.wait()
        assert c.tokens(after) == generate(model, tok, [PROMPTS[0]], 6)[0].token_ids
    finally:
        sched.close()


def test_stop_strings_tokens_and_limits(model, tok):
    ref = generate(model, tok, [PROMPTS[0]], 12)[0]
    assert len(ref.text) > 6
    stop = ref.text[3:6]
    sched = Scheduler(model, tok, slots=2, ctx=64, max_queue=1)
    try:
        c = Collector()
        by_string = c.request(tok.encode(PROMPTS[0]), 12, stop=(stop,))
        k = next(i for i, t in enumerate(ref.token_ids) if i > 0 and t not in ref.token_ids[:i])
        by_token = c.request(tok.encode(PROMPTS[0]), 12, stop_token_ids=frozenset({ref.token_ids[k]}))
        sched.submit(by_string)
        _wait_for(lambda: not sched.queue)
        sched.submit(by_token)
        c.wait()
        text = "".join(e.text for e in c.events[by_string.id] if e.kind in ("token", "finished"))
        assert text == ref.text[:ref.text.find(stop)]
        assert c.final(by_string).finish_detail == "stop_string"
        assert c.tokens(by_token) == ref.token_ids[:k]
        assert c.final(by_token).finish_detail == "stop_token"
        with pytest.raises(ValueError, match="context"):
            sched.submit(Request(list(range(1, 65)), 4, lambda ev: None))
        # the bound of the waiting queue: two slots busy, one waiting, the next refused
        c = Collector()
        reqs = [c.request(tok.encode(p), 50, ignore_eos=True) for p in PROMPTS[:3]]
        for r in reqs[:2]:
            sched.submit(r)
            _wait_for(lambda: not sched.queue)
        _wait_for(lambda: sched.stats()["running"] == 2)
        sched.submit(reqs[2])
        with pytest.raises(QueueFull):
            sched.submit(Request(tok.encode("y"), 2, lambda ev: None))
        for r in reqs:
            r.cancel()
        c.wait()
    finally:
        sched.close()


def test_held_text_never_shows_a_split_stop_string(codegeex_tokenizer):
    """A stop string arriving over several tokens is never released in part; text that only looked
    like a stop string's start is released once the next token decides."""
    tok = codegeex_tokenizer
    ids = tok.encode("a = 1\n\nb = 2\n")
    held = HeldText(tok, stop=("\n\n",))
    shown = "".join(held.add(t) for t in ids)
    assert shown == "a = 1" and held.stopped == "stop_string"
    held = HeldText(tok, stop=("\n\nX",))
    shown = "".join(held.add(t) for t in ids)
    assert shown + held.finish() == "a = 1\n\nb = 2\n" and held.stopped is None
    partial = HeldText(tok, stop=("= 2!",))
    for t in ids:
        partial.add(t)
        assert "= 2" not in partial.text or partial.text.endswith("\n")
    assert partial.finish() != "" or partial.text.endswith("\n")


def test_a_request_that_fails_alone_does_not_stop_the_engine(model, tok):
    """A seed torch cannot take fails that request ("error", with the reason); the next one runs."""
    sched = Scheduler(model, tok, slots=2, ctx=128)
    try:
        c = Collector()
        bad = c.request(tok.encode("x"), 4, params=SamplingParams(temperature=0.7), seed=2**70)
        good = c.request(tok.encode(PROMPTS[0]), 5)
        sched.submit(bad)
        sched.submit(good)
        c.wait()
        assert c.final(bad).finish_detail == "error" and "Overflow" in c.final(bad).error
        assert c.tokens(good) == generate(model, tok, [PROMPTS[0]], 5)[0].token_ids
        assert sched.error is None and sched.stats()["alive"]
    finally:
        sched.close()


def test_graph_steps_fall_back_to_eager_where_capture_fails(model, tok):
    """Without CUDA the graph capture fails: the scheduler says so once and decodes eagerly, with
    the same tokens."""
    sched = Scheduler(model, tok, slots=3, ctx=128, graphs=True)
    try:
        c = Collector()
        reqs = [c.request(tok.encode(p), 6) for p in PROMPTS[:3]]
        with pytest.warns(RuntimeWarning, match="eagerly"):
            for r in reqs:
                sched.submit(r)
            c.wait()
        for r, p in zip(reqs, PROMPTS):
            assert c.tokens(r) == generate(model, tok, [p], 6)[0].token_ids
        assert not sched.graphs and sched.error is None
    finally:
        sched.close()


def test_a_failing_receiver_cancels_its_request_only(model, tok):
    """A request whose ``emit`` raises (its client's event loop is gone) is cancelled; the others
    and the scheduler go on."""
    sched = Scheduler(model, tok, slots=2, ctx=128)
    try:
        def broken(ev):
            raise RuntimeError("event loop is closed")

        c = Collector()
        good = c.request(tok.encode(PROMPTS[0]), 6)
        with pytest.warns(RuntimeWarning, match="receiver failed"):
            sched.submit(Request(tok.encode(PROMPTS[1]), 50, broken, ignore_eos=True))
            sched.submit(good)
            c.wait()
            _wait_for(lambda: sched.stats()["running"] == 0)
        assert c.tokens(good) == generate(model, tok, [PROMPTS[0]], 6)[0].token_ids
        assert sched.error is None and sched.stats()["alive"]
    finally:
        sched.close()


def _recording(model, monkeypatch) -> list[tuple[str, int, int]]:
    """The model's calls from now on: ("prompt" or "step", rows, tokens a row)."""
    calls: list[tuple[str, int, int]] = []
    forward = model.forward

    def recording(ids, *args, **kwargs):
        calls.append(("prompt" if kwargs.get("last_only") else "step", ids.shape[0], ids.shape[1]))
        return forward(ids, *args, **kwargs)

    monkeypatch.setattr(model, "forward", recording)
    return calls


@pytest.mark.parametrize("prefill_tokens", [None, 1000])
def test_prompts_arriving_together_are_read_in_one_iteration(model, tok, monkeypatch, prefill_tokens):
    """While a row decodes, the prompts that arrived together are read in one iteration up to
    ``prefill_tokens`` (a burst costs one stall of the running rows, not one a prompt); by default on
    a CPU one chunk an iteration. Told apart by the model's calls: prompt chunks, then a decode step
    (whatever the budget, each request generates what it does alone)."""
    calls = _recording(model, monkeypatch)
    sched = Scheduler(model, tok, slots=3, ctx=128, prefill_chunk=16, prefill_tokens=prefill_tokens, graphs=False)
    try:
        c = Collector()
        long = c.request(tok.encode(PROMPTS[0]), 40, ignore_eos=True)
        sched.submit(long)
        _wait_for(lambda: len(c.tokens(long)) >= 2)
        mark = len(calls)
        pair = [c.request(tok.encode(PROMPTS[1]), 6), c.request(tok.encode(PROMPTS[3]), 6)]
        sched.submit_all(pair)
        c.wait()
        assert [len(r.prompt) for r in pair] == [23, 43]
        after = calls[mark:]
        first_prompt = next(i for i, call in enumerate(after) if call[0] == "prompt")
        burst = []
        for call in after[first_prompt:]:
            if call[0] == "step":
                break
            burst.append(call)
        if prefill_tokens:  # all 66 prompt tokens before the next step
            assert sum(rows * n for _, rows, n in burst) == 23 + 43
        else:  # a budget of one chunk: 16 tokens of one prompt
            assert burst == [("prompt", 1, 16)]
        for r, p in zip(pair, (PROMPTS[1], PROMPTS[3])):
            assert c.tokens(r) == generate(model, tok, [tok.encode(p)], 6)[0].token_ids
    finally:
        sched.close()


def test_a_burst_of_prompts_is_read_in_one_batched_forward(model, tok, monkeypatch):
    """Prompts submitted together in neighbouring slots are read as one [rows, chunk] batch per
    chunk -- rows at one position (fresh prompts) and rows at their own (one had a cached prefix) --
    and each generates exactly what it does alone."""
    calls = _recording(model, monkeypatch)
    sched = Scheduler(model, tok, slots=4, ctx=128, prefill_chunk=64, prefill_tokens=1000, graphs=False)
    try:
        c = Collector()
        texts = ["def add(a, b):\n    return", "def sub(a, b):\n    return", "def mul(a, b):\n    return"]
        prompts = [tok.encode(t) for t in texts]
        assert len({len(p) for p in prompts}) == 1  # the same length: one batch
        reqs = [c.request(p, 5) for p in prompts]
        sched.submit_all(reqs)
        c.wait()
        assert calls and calls[0] == ("prompt", 3, len(prompts[0])), calls
        for r, p in zip(reqs, prompts):
            assert c.tokens(r) == generate(model, tok, [p], 5)[0].token_ids
        # a prompt that extends a cached one (its slot's history) beside a fresh one of as much left
        # to read: one forward, each row at its own position
        calls.clear()
        c = Collector()
        tail = tok.encode(" a + b\n\ndef f(x):\n    return x")
        fresh = tok.encode("x = [1, 2, 3]\nprint(len(x))\n# done, and a line long enough\n")
        assert len(fresh) >= len(tail)
        more = [c.request(prompts[0] + tail, 4), c.request(fresh, 4)]
        sched.submit_all(more)
        c.wait()
        assert calls[0] == ("prompt", 2, len(tail)), calls  # the extension's tail beside the fresh one's start
        for r in more:
            assert c.tokens(r) == generate(model, tok, [r.prompt], 4)[0].token_ids
    finally:
        sched.close()


def test_iterations_with_a_decode_step_are_counted_and_timed(model, tok):
    """``stats()["iterations"]``: the loop's iterations that ran a decode step, those that also read
    prompt chunks apart ("mixed"), with their wall time (what the serving benchmark divides)."""
    sched = Scheduler(model, tok, slots=2, ctx=128, prefill_chunk=64, graphs=False)
    try:
        c = Collector()
        r = c.request(tok.encode(PROMPTS[0]), 6, ignore_eos=True)
        sched.submit(r)
        c.wait()
        it = sched.stats()["iterations"]
        # 6 tokens: the first from the prompt, 5 from decode steps -- the first of them launched in the
        # iteration that read the prompt (its token is fed on the device at once), 4 alone
        assert (it["mixed"]["count"], it["decode"]["count"]) == (1, 4)
        assert it["decode"]["seconds"] > 0 and it["mixed"]["seconds"] > 0
    finally:
        sched.close()
