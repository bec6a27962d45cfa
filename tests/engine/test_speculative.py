"""Prompt-lookup speculative decoding: the drafts it proposes (hand-computed), greedy output equal to a
cacheless argmax loop on the embedded default model, and the sampled distribution equal to the
model's exact distribution (enumerated with plain forwards) under a chi-square test."""

from __future__ import annotations

import itertools

import pytest
import torch

from geex.engine.generate import generate
from geex.engine.sampling import SamplingParams
from geex.engine.speculative import NgramDrafts, verify
from geex.errors import UserError
from geex.models.codegeex import CodeGeeX
from geex.models.codegeex import get_config as codegeex_config
from geex.models.llama import LlamaConfig

# ---- drafts -------------------------------------------------------------------------------------

def test_drafts_follow_the_latest_earlier_occurrence_of_the_longest_suffix():
    #                 0  1  2  3  4  5  6  7  8  9
    d = NgramDrafts([5, 6, 7, 8, 9, 1, 6, 7, 2, 6], max_ngram=3)
    # suffix (6,) occurred at 1 and 6: the latest is at 6, followed by 7, 2, 6
    assert d.propose(3) == [7, 2, 6]
    assert d.propose(1) == [7]
    d.extend([7])
    # suffix (2, 6, 7) never occurred; (6, 7) did, latest at 6..7, followed by 2, 6, 7
    assert d.propose(5) == [2, 6, 7]
    d.extend([8])
    # (6, 7, 8) occurred at 1..3: the 3-gram wins over the later (7, 8)? there is none later; it
    # is followed by 9, 1, 6, ...
    assert d.propose(2) == [9, 1]


def test_the_longest_match_wins_over_a_later_shorter_one():
    # (1, 2) occurred at 0..1 (then 3); 2 alone occurred later at 5 (then 4): the bigram decides
    d = NgramDrafts([1, 2, 3, 0, 0, 2, 4, 1, 2], max_ngram=2)
    assert d.propose(2) == [3, 0]
    assert NgramDrafts([1, 2, 3, 0, 0, 2, 4, 1, 2], max_ngram=1).propose(2) == [4, 1]


def test_no_draft_without_an_earlier_occurrence():
    assert NgramDrafts([1, 2, 3]).propose(4) == []
    assert NgramDrafts([]).propose(4) == []
    assert NgramDrafts([3, 3]).propose(0) == []
    assert NgramDrafts([3, 3]).propose(4) == [3]  # the continuation stops at the end of the text
    with pytest.raises(ValueError):
        NgramDrafts([1], max_ngram=1, min_ngram=2)


# ---- verification ---------------------------------------------------------------------------------

def _logits_with_argmax(argmaxes: list[int], vocab: int = 10) -> torch.Tensor:
    logits = torch.zeros(len(argmaxes), vocab)
    logits[torch.arange(len(argmaxes)), torch.tensor(argmaxes)] = 5.0
    return logits


def test_greedy_verify_keeps_the_agreeing_prefix_and_one_more():
    greedy = SamplingParams(greedy=True)
    assert verify(_logits_with_argmax([4, 5, 6, 7]), [4, 5, 9], greedy, None) == [4, 5, 6]
    assert verify(_logits_with_argmax([4, 5, 6, 7]), [4, 5, 6], greedy, None) == [4, 5, 6, 7]
    assert verify(_logits_with_argmax([1, 5]), [4], greedy, None) == [1]
    assert verify(_logits_with_argmax([3]), [], greedy, None) == [3]
    # a column past the vocabulary is never chosen, even as the argmax
    assert verify(_logits_with_argmax([9, 2]), [2], greedy, vocab_size=8)[0] != 9


def test_sampled_verify_never_yields_a_token_of_zero_probability():
    params = SamplingParams(temperature=1.0, top_k=2)
    logits = torch.tensor([[3.0, 2.0, -1.0, -2.0]] * 3)
    g = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(300):
        out = verify(logits, [2, 0], params, None, g)  # draft 2 is outside the top 2: always rejected
        assert out[0] in (0, 1)
        assert len(out) == 1
        seen.add(out[0])
    assert seen == {0, 1}


# ---- greedy: the same tokens as a cacheless argmax loop ---------------------------------------------

CODE_PROMPT = '''def mean(values):
    """The arithmetic mean of values."""
    total = 0
    for value in values:
        total += value
    return total / len(values)


def variance(values):
    """The population variance of values."""
    m = mean(values)
    total = 0
    for value in values:
'''


class CountingModel:
    """The model, counting its forwards (how many steps the speculative loop took)."""

    def __init__(self, model) -> None:
        self.model, self.calls = model, 0
        self.config, self.device, self.dtype = model.config, model.device, model.dtype

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.model(*args, **kwargs)


def test_greedy_speculation_is_the_models_argmax_on_the_default_model(default_model_fp32):
    """Greedy output is the argmax after each prefix: one cacheless forward of prompt + output
    (causal, so position i sees exactly the tokens before it) checks every token at once."""
    model, tok = default_model_fp32.model, default_model_fp32.tokenizer
    ids = tok.encode(CODE_PROMPT)
    counting = CountingModel(model)
    (got,) = generate(counting, tok, [CODE_PROMPT], 32, speculate=6)
    assert got.finish_reason == "length"
    with torch.no_grad():
        logits = model(torch.tensor([ids + got.token_ids[:-1]]))[0, len(ids) - 1:]
    assert logits.argmax(-1).tolist() == got.token_ids
    # the model copies the function it already wrote: drafts were kept, fewer forwards than tokens
    assert counting.calls < len(got.token_ids) - 8, (counting.calls, len(got.token_ids))


@pytest.fixture(scope="module")
def tiny_codegeex():
    m = CodeGeeX(codegeex_config("codegeex-tiny", padded_vocab_size=64, vocab_size=60, n_positions=128))
    m.init_weights(torch.Generator().manual_seed(0))
    with torch.no_grad():  # sharp logits: no near-ties between the batched and the single-row sums
        m.transformer.final_layernorm.weight.mul_(60)
        m.embedding.word_embeddings.weight.mul_(0.3)
    return m.eval()


class IdTokenizer:
    """Token ids as text (``encode_batch`` is never called: prompts are ids)."""

    vocab_size = 60
    eos_id = 59
    stop_ids = frozenset({59})

    def decode(self, ids) -> str:
        return " ".join(map(str, ids))


def test_greedy_speculation_in_a_padded_batch_equals_plain_decoding(tiny_codegeex):
    # rows of different lengths (left padding), repetitive so that drafts exist and are tried
    prompts = [[1, 2, 3, 4, 1, 2, 3, 4, 1, 2], [7, 8, 7, 8, 7], [5] * 12 + [9, 10, 5, 5]]
    plain = generate(tiny_codegeex, IdTokenizer(), prompts, 30)
    for k in (1, 3, 8):
        counting = CountingModel(tiny_codegeex)
        fast = generate(counting, IdTokenizer(), prompts, 30, speculate=k)
        assert [c.token_ids for c in fast] == [c.token_ids for c in plain]
        assert [c.finish_reason for c in fast] == [c.finish_reason for c in plain]
        assert counting.calls <= 30


def test_a_static_one_token_step_between_verifies_never_sees_rejected_drafts(tiny_codegeex):
    """With ``step="static"`` (what a CUDA graph captures: attention over every cache slot, under a
    mask), a single row's draft-less steps run that step; rejected drafts left keys and values in
    later slots, which the mask must hide: the tokens equal plain decoding's."""
    prompts = [[1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 5, 6, 1, 2]]
    plain = generate(tiny_codegeex, IdTokenizer(), prompts, 30)
    fast = generate(tiny_codegeex, IdTokenizer(), prompts, 30, speculate=4, step="static")
    assert fast[0].token_ids == plain[0].token_ids


def test_speculation_respects_the_token_budget_and_the_context_end():
    # a model that repeats its prompt forever accepts every draft: the budget must cut it
    cfg = LlamaConfig(n_layer=1, n_embd=32, n_head=4, n_kv_head=2, intermediate_size=64, vocab_size=60,
                      n_positions=24)
    model = cfg.build().eval()
    model.init_weights(torch.Generator().manual_seed(1))
    prompt = [1, 2, 3, 4, 5, 6, 7, 8]
    for n in (1, 2, 7, 16):  # 16: exactly the context's remaining room
        plain = generate(model, IdTokenizer(), [prompt], n, ignore_eos=True)
        fast = generate(model, IdTokenizer(), [prompt], n, ignore_eos=True, speculate=5)
        assert len(fast[0].token_ids) == n
        assert fast[0].token_ids == plain[0].token_ids
    with pytest.raises(UserError, match="speculate"):
        generate(model, IdTokenizer(), [prompt], 4, speculate=-1)


# ---- sampling: the exact target distribution ---------------------------------------------------------

def test_sampled_speculation_has_the_models_distribution():
    """Three tokens sampled with speculation from 6,000 identical rows; their joint frequencies
    against the exact joint distribution p(t1) p(t2 | t1) p(t3 | t1, t2), enumerated with plain
    forwards: Pearson's chi-square test."""
    vocab = 6
    cfg = LlamaConfig(n_layer=1, n_embd=32, n_head=4, n_kv_head=2, intermediate_size=64, vocab_size=vocab,
                      n_positions=32, tie_embeddings=False)
    model = cfg.build().eval()
    model.init_weights(torch.Generator().manual_seed(3))
    with torch.no_grad():
        model.lm_head.weight.mul_(6)  # far from uniform, some tokens outside the nucleus: a biased rule shows
    params = SamplingParams(temperature=0.9, top_p=0.95)
    prompt = [0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 2]  # every token occurs earlier: drafts always exist

    class Tok(IdTokenizer):
        vocab_size = vocab
        eos_id = 99
        stop_ids = frozenset()

    rows = 6000
    out = generate(model, Tok(), [prompt] * rows, 3, params, seed=11, speculate=2)
    counts = torch.zeros(vocab, vocab, vocab)
    for c in out:
        counts[tuple(c.token_ids)] += 1

    from geex.engine.sampling import probabilities

    with torch.no_grad():
        p1 = probabilities(model(torch.tensor([prompt]))[0, -1], params)
        two = torch.tensor([prompt + [a] for a in range(vocab)])
        p2 = probabilities(model(two)[:, -1], params)  # [t1, t2]
        three = torch.tensor([prompt + [a, b] for a, b in itertools.product(range(vocab), repeat=2)])
        p3 = probabilities(model(three)[:, -1], params).view(vocab, vocab, vocab)
    exact = (p1[:, None, None] * p2[:, :, None] * p3).double()
    expected = exact * rows
    assert float(counts[exact == 0].sum()) == 0  # nothing outside the nucleus
    big = expected >= 5  # outcomes expected rarely are pooled into one cell
    observed = torch.cat([counts.double()[big], counts.double()[~big].sum()[None]])
    wanted = torch.cat([expected[big], expected[~big].sum()[None]])
    keep = wanted > 0
    chi2 = float(((observed[keep] - wanted[keep]) ** 2 / wanted[keep]).sum())
    dof = int(keep.sum()) - 1
    p_value = float(torch.special.gammaincc(torch.tensor(dof / 2, dtype=torch.float64),
                                            torch.tensor(chi2 / 2, dtype=torch.float64)))
    assert dof >= 20, dof  # the test has cells enough to see a bias
    assert p_value > 1e-4, (chi2, dof, p_value)


# ---- bookkeeping: as many forwards as the algorithm on paper needs ---------------------------------

class ReadingModel:
    """A step model that reads a fixed document: at cache slot s it predicts ``doc[s + 1]``, whatever it
    is fed (a position after a rejected draft is never used, so the fed ids do not matter)."""

    class Config:
        cache_layers, n_kv_head, head_dim, n_positions, vocab_size = 1, 1, 1, 256, 6

    def __init__(self, doc: list[int]) -> None:
        self.doc, self.calls = doc, 0
        self.config, self.device, self.dtype = self.Config(), torch.device("cpu"), torch.float32

    def __call__(self, ids, cache, start=0, pad=None, last_only=False):  # the step contract (StepModel)
        self.calls += 1
        b, t = ids.shape
        logits = torch.zeros(b, t, self.config.vocab_size)
        for j in range(t):
            logits[:, j, self.doc[int(start) + j + 1]] = 1.0
        return logits[:, -1:] if last_only else logits


def _paper_forwards(doc: list[int], prompt_len: int, n: int, k: int, max_ngram: int = 3) -> int:
    """The forwards prompt-lookup decoding needs, by a plain search of the whole history each step."""
    history, forwards = doc[:prompt_len + 1], 1  # the prefill yields the first token
    window = k  # two more after a draft kept whole (up to k), one fewer after a rejection (down to 1)
    while len(history) - prompt_len < n:
        budget = min(window, n - (len(history) - prompt_len) - 1)
        draft: list[int] = []
        for size in range(min(max_ngram, len(history)), 0, -1):
            suffix = history[-size:]
            hits = [i for i in range(len(history) - size) if history[i:i + size] == suffix]
            if hits:
                draft = history[hits[-1] + size:hits[-1] + size + budget]
                break
        forwards += 1
        truth = doc[len(history):len(history) + len(draft) + 1]
        kept = 0
        while kept < len(draft) and draft[kept] == truth[kept]:
            kept += 1
        history += truth[:kept + 1]
        if draft:
            window = min(k, window + 2) if kept == len(draft) else max(1, window - 1)
    return forwards


def test_forwards_are_those_of_the_algorithm_on_paper():
    g = torch.Generator().manual_seed(5)
    doc = torch.randint(0, 4, (200,), generator=g).tolist()  # a small alphabet: many partial matches
    doc[60:90] = doc[10:40]  # and a long copy
    for k in (1, 3, 6):
        model = ReadingModel(doc)
        (out,) = generate(model, IdTokenizer(), [doc[:50]], 60, speculate=k, ignore_eos=True)
        assert out.token_ids == doc[50:110]
        assert model.calls == _paper_forwards(doc, 50, 60, k), k
        assert model.calls < 60


def test_the_draft_window_shrinks_after_a_rejection_and_grows_after_a_full_hit():
    from geex.engine.speculative import next_window

    assert next_window(4, tried=4, kept=4, most=8) == 6
    assert next_window(7, tried=7, kept=7, most=8) == 8
    assert next_window(4, tried=2, kept=2, most=8) == 6  # a short draft kept whole counts as a hit
    assert next_window(4, tried=4, kept=2, most=8) == 3
    assert next_window(1, tried=1, kept=0, most=8) == 1
