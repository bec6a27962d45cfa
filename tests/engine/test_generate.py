"""The generation loop on a tiny random CodeGeeX with the real tokenizer."""

from __future__ import annotations

import pytest
import torch

from geex.engine.generate import generate
from geex.engine.sampling import SamplingParams
from geex.errors import UserError
from geex.models.codegeex import CodeGeeX, get_config

@pytest.fixture(scope="module")
def tok(codegeex_tokenizer):
    return codegeex_tokenizer


@pytest.fixture(scope="module")
def model():
    m = CodeGeeX(get_config("codegeex-tiny", padded_vocab_size=50432, vocab_size=50400))
    m.init_weights(torch.Generator().manual_seed(0))
    with torch.no_grad():  # a sharper random model, so that greedy choices are not near-ties
        m.embedding.word_embeddings.weight.mul_(20)
    return m.eval()


PROMPTS = ["def add(a, b):\n", "int main() {\n    return", "x"]


def test_batched_generation_equals_each_prompt_alone(model, tok):
    batched = generate(model, tok, PROMPTS, max_new_tokens=12)
    for prompt, got in zip(PROMPTS, batched):
        (alone,) = generate(model, tok, [prompt], max_new_tokens=12)
        assert got.token_ids == alone.token_ids


def test_greedy_equals_a_cacheless_argmax_loop(model, tok):
    (got,) = generate(model, tok, [PROMPTS[0]], max_new_tokens=10)
    seq = torch.tensor([tok.encode(PROMPTS[0])])
    expected = []
    with torch.no_grad():
        for _ in range(10):
            nxt = int(model(seq)[0, -1, :50400].argmax())
            if nxt == tok.eos_id:
                break
            expected.append(nxt)
            seq = torch.cat([seq, torch.tensor([[nxt]])], dim=1)
    assert got.token_ids == expected
    assert got.text == tok.decode(expected)


def test_seeded_sampling_is_reproducible_and_streams(model, tok):
    params = SamplingParams(temperature=0.8, top_p=0.95)
    streamed: list[tuple[int, int]] = []
    a = generate(model, tok, PROMPTS, 8, params, seed=7, on_token=lambda r, t: streamed.append((r, t)))
    b = generate(model, tok, PROMPTS, 8, params, seed=7)
    assert [c.token_ids for c in a] == [c.token_ids for c in b]
    for r, c in enumerate(a):
        assert [t for row, t in streamed if row == r] == c.token_ids


def test_stop_string_and_length(model, tok):
    (free,) = generate(model, tok, [PROMPTS[1]], max_new_tokens=6)
    assert free.finish_reason == "length" and len(free.token_ids) == 6
    first = tok.decode(free.token_ids[:2])
    (stopped,) = generate(model, tok, [PROMPTS[1]], max_new_tokens=6, stop=[first])
    assert stopped.finish_reason == "stop"
    assert first in stopped.text and len(stopped.token_ids) <= 2


def test_prompt_longer_than_the_context_is_a_clear_error(model, tok):
    with pytest.raises(UserError, match="does not fit the context of 128 tokens"):
        generate(model, tok, ["a b " * 200], max_new_tokens=4)


def test_language_stop_rule_is_the_harness_rule():
    from geex.engine.generate import _stopped
    from geex.languages import get_language

    assert _stopped("    return a + b;\n}", (), get_language("cpp"))
    assert not _stopped("    return \"}\";\n", (), get_language("cpp"))  # a brace in a string
    assert _stopped("    return a + b\nprint(add(1, 2))", (), get_language("python"))
    assert _stopped("x = 1 // end", ["//"], None)
