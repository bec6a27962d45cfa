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
    with torch.no_grad():
        # sharper logits (the final LayerNorm's scale), so greedy choices are not near-ties, and a
        # smaller embedding, so the layers decide the tokens: a random tied model whose embedding
        # dominates the residual stream repeats its last token whatever its layers compute
        m.transformer.final_layernorm.weight.mul_(60)
        m.embedding.word_embeddings.weight.mul_(0.3)
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


def test_static_decode_step_generates_what_the_eager_step_does(model, tok):
    """The fixed-shape step (what a CUDA graph captures) attends over every cache slot under a mask."""
    eager = generate(model, tok, PROMPTS, max_new_tokens=10, step="eager")
    static = generate(model, tok, PROMPTS, max_new_tokens=10, step="static")
    assert [c.token_ids for c in static] == [c.token_ids for c in eager]


def test_static_step_logits_equal_the_whole_sequence(model):
    from geex.models.cache import KVCache

    ids = torch.randint(0, 50400, (2, 7), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        whole = model(ids)
        cache = KVCache(model.config, 2, 12)
        model(ids[:, :4], cache, start=0)
        steps = [model(ids[:, i:i + 1], cache, start=torch.tensor(i))[:, 0] for i in range(4, 7)]
    torch.testing.assert_close(torch.stack(steps, dim=1), whole[:, 4:], rtol=1e-5, atol=1e-5)


def test_cuda_graph_step_needs_cuda_and_unknown_steps_are_refused(model, tok):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(UserError, match="CUDA"):
        generate(model, tok, ["x"], max_new_tokens=3, step="graph")
    with pytest.raises(UserError, match="unknown decode step"):
        generate(model, tok, ["x"], max_new_tokens=3, step="warp")


def test_quantized_models_generate(model, tok):
    import copy

    from geex.models.quantize import quantize_model

    plain = generate(model, tok, PROMPTS, max_new_tokens=8)
    int8 = generate(quantize_model(copy.deepcopy(model), "int8"), tok, PROMPTS, max_new_tokens=8)

    def agree(other) -> int:
        return sum(a == b for p, q in zip(plain, other) for a, b in zip(p.token_ids, q.token_ids))

    total = sum(len(p.token_ids) for p in plain)
    assert agree(int8) >= 0.75 * total  # INT8 keeps most greedy choices
    # control: the layers decide the tokens (with every layer's matrices zeroed, few survive), so
    # a broken quantized layer could not pass the line above
    broken = copy.deepcopy(model)
    with torch.no_grad():
        for name, p in broken.named_parameters():
            if "layers" in name and p.dim() == 2:
                p.zero_()
    assert agree(generate(broken, tok, PROMPTS, max_new_tokens=8)) < 0.25 * total
    assert sum(len(set(p.token_ids)) for p in plain) > total / 2  # not one token repeated


def test_ignore_eos_generates_the_full_length(model, tok):
    (first,) = generate(model, tok, ["x"], 6)

    class FirstTokenIsEos:  # the tokenizer, with the first greedy token playing EOS
        eos_id = first.token_ids[0]
        stop_ids = frozenset({eos_id})

        def __getattr__(self, name):
            return getattr(tok, name)

    (stopped,) = generate(model, FirstTokenIsEos(), ["x"], 6)
    (full,) = generate(model, FirstTokenIsEos(), ["x"], 6, ignore_eos=True)
    assert (stopped.finish_reason, stopped.token_ids) == ("eos", [])
    assert (full.finish_reason, full.token_ids) == ("length", first.token_ids)


def test_text_stream_settles_whole_characters(tok):
    from geex.engine.generate import TextStream

    text = "naïve→🙂丂 done\r\n\tx  y"
    ids = tok.encode(text)
    stream = TextStream(tok)
    pieces = [stream.add(t) for t in ids]
    assert "".join(pieces) == stream.text == text
    assert all("\ufffd" not in p for p in pieces)
    assert any(p == "" for p in pieces)  # the emoji's bytes span several tokens


def test_left_padding_by_hand():
    from geex.engine.generate import left_padded

    ids, pad = left_padded([[5, 6, 7], [8], [9, 10]], pad_id=0, device=torch.device("cpu"))
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8], [0, 9, 10]] and pad.tolist() == [0, 2, 1]
    ids, pad = left_padded([[1, 2], [3, 4]], pad_id=0, device=torch.device("cpu"))
    assert ids.tolist() == [[1, 2], [3, 4]] and pad is None  # no padding: plain causal attention
