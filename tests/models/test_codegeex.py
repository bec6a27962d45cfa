"""The CodeGeeX model against a deliberately naive re-implementation of the reference forward pass
(``codegeex/torch/codegeex_model.py``: [seq, batch, hidden] layout, an explicit -10000 mask, fp32
softmax, the overflow-safe FastGELU), with random weights."""

from __future__ import annotations

import math

import pytest
import torch

from geex.errors import UserError
from geex.models.codegeex import PRESETS, CodeGeeX, fast_gelu, get_config
from geex.models.fusion import checkpoint_state_dict
from tests.models.tiny import random_tiny_codegeex


def naive_forward(sd: dict[str, torch.Tensor], cfg, ids: torch.Tensor) -> torch.Tensor:
    def ln(x, p):
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        return (x - mu) / torch.sqrt(var + cfg.layernorm_eps) * sd[p + ".weight"] + sd[p + ".bias"]

    def linear(x, p):
        return x @ sd[p + ".weight"].T + sd[p + ".bias"]

    def gelu(x):  # the original's formula, written out
        return x / (1 + torch.exp(-1.702 * x.abs())) * torch.exp(0.851 * (x - x.abs()))

    def attention(q_in, kv_in, p):
        s, b, h = q_in.shape
        nh, hd = cfg.n_head, h // cfg.n_head
        q = linear(q_in, p + ".query").view(s, b, nh, hd)
        k = linear(kv_in, p + ".key").view(s, b, nh, hd)
        v = linear(kv_in, p + ".value").view(s, b, nh, hd)
        out = torch.zeros(s, b, nh, hd)
        for bi in range(b):
            for hi in range(nh):
                scores = q[:, bi, hi] @ k[:, bi, hi].T / math.sqrt(hd)
                mask = torch.triu(torch.ones(s, s, dtype=torch.bool), diagonal=1)
                probs = torch.softmax((scores - 10000.0 * mask).float(), dim=-1)
                out[:, bi, hi] = probs @ v[:, bi, hi]
        return linear(out.reshape(s, b, h), p + ".dense")

    def layer(x, p, query=None):
        normed = ln(x, p + ".input_layernorm")
        x = x + attention(normed if query is None else query, normed, p + ".attention")
        m = linear(ln(x, p + ".post_attention_layernorm"), p + ".mlp.dense_h_to_4h")
        return x + linear(gelu(m), p + ".mlp.dense_4h_to_h")

    x_ids = ids.T  # [seq, batch]
    s = x_ids.shape[0]
    pos = torch.arange(s)
    h = sd["embedding.word_embeddings.weight"][x_ids] + sd["embedding.position_embeddings.weight"][pos][:, None]
    for i in range(cfg.n_layer):
        h = layer(h, f"transformer.layers.{i}")
    f = ln(h, "transformer.final_layernorm")
    q = sd["topQueryEmbedding.top_query_embeddings.weight"][pos][:, None].expand_as(f)
    out = layer(f, "transformer.topQueryLayer", query=q)
    return (out @ sd["embedding.word_embeddings.weight"].T).transpose(0, 1)  # [batch, seq, vocab]


def test_logits_equal_the_naive_reference():
    model = random_tiny_codegeex()
    ids = torch.randint(0, model.config.vocab_size, (3, 17), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = model(ids)
        ref = naive_forward(checkpoint_state_dict(model), model.config, ids)  # q/k/v apart
    assert ours.shape == (3, 17, model.config.padded_vocab_size)
    rel = (ours - ref).norm() / ref.norm()
    assert rel < 1e-5, rel


def test_a_prefix_does_not_see_the_future():
    model = random_tiny_codegeex(seed=3)
    ids = torch.randint(0, 500, (1, 12))
    with torch.no_grad():
        full = model(ids)
        prefix = model(ids[:, :7])
    torch.testing.assert_close(full[:, :7], prefix, rtol=1e-5, atol=1e-5)


def test_fast_gelu_is_the_sigmoid_form_not_erf():
    x = torch.linspace(-8, 8, 101)
    torch.testing.assert_close(fast_gelu(x), x / (1 + torch.exp(-1.702 * x.abs())) * torch.exp(0.851 * (x - x.abs())))
    assert not torch.allclose(fast_gelu(x), torch.nn.functional.gelu(x), atol=1e-3)


def test_13b_parameter_count_from_the_shapes():
    # reference sheet §1.8: 12,873,943,040 parameters (per layer 314,639,360)
    assert PRESETS["codegeex-13b"].n_params() == 12_873_943_040


def test_tiny_parameter_count_matches_the_module():
    model = CodeGeeX(get_config("codegeex-tiny"))
    assert sum(p.numel() for p in model.parameters()) == model.config.n_params()


def test_official_parameter_names():
    """The checkpoint's names (a fused projection's parts apart) are the official release's."""
    names = set(checkpoint_state_dict(CodeGeeX(get_config("codegeex-tiny"))))
    assert "embedding.word_embeddings.weight" in names
    assert "topQueryEmbedding.top_query_embeddings.weight" in names
    assert "transformer.layers.1.attention.query.bias" in names
    assert "transformer.topQueryLayer.mlp.dense_4h_to_h.weight" in names
    assert "transformer.final_layernorm.weight" in names
    assert len([n for n in names if n.startswith("transformer.")]) == 2 * 16 + 16 + 2


def test_init_follows_the_training_code():
    cfg = get_config("codegeex-350m", n_layer=4, n_embd=256, n_head=4)
    model = CodeGeeX(cfg)
    model.init_weights(torch.Generator().manual_seed(0))
    w = model.transformer.layers[0].attention.qkv.weight
    out = model.transformer.layers[0].mlp.dense_4h_to_h.weight
    assert abs(w.std().item() - 0.02) < 0.002
    assert abs(out.std().item() - 0.02 / math.sqrt(2 * 4)) < 0.001
    assert model.transformer.layers[0].attention.qkv.bias.abs().max() == 0


def test_too_long_input_and_unknown_preset():
    model = CodeGeeX(get_config("codegeex-tiny"))
    with pytest.raises(ValueError, match="exceeds the context"):
        model(torch.zeros(1, 129, dtype=torch.long))
    with pytest.raises(UserError, match="unknown model preset"):
        get_config("codegeex-7b")


def test_step_by_step_through_the_kv_cache_equals_the_whole_sequence():
    from geex.models.cache import KVCache

    model = random_tiny_codegeex(seed=5)
    ids = torch.randint(0, 500, (2, 20), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = model(ids)
        cache = KVCache(model.config, batch=2, max_len=32)
        parts = [model(ids[:, :7], cache, start=0)]  # prefill
        parts += [model(ids[:, i:i + 1], cache, start=i) for i in range(7, 15)]  # one token at a time
        parts.append(model(ids[:, 15:], cache, start=15))  # a chunk after the cache is warm
    stepped = torch.cat(parts, dim=1)
    rel = (stepped - full).norm() / full.norm()
    assert rel < 1e-5, rel


def test_greedy_decoding_with_and_without_the_cache_is_identical():
    from geex.models.cache import KVCache

    model = random_tiny_codegeex(seed=7)
    prompt = torch.randint(0, 500, (1, 5), generator=torch.Generator().manual_seed(4))
    vocab = model.config.vocab_size
    with torch.no_grad():
        seq = prompt
        for _ in range(12):  # no cache: re-run the whole sequence
            nxt = model(seq)[:, -1, :vocab].argmax(-1, keepdim=True)
            seq = torch.cat([seq, nxt], dim=1)
        cache = KVCache(model.config, batch=1, max_len=model.config.n_positions)
        cached = prompt
        logits = model(prompt, cache, start=0)
        for _ in range(12):
            nxt = logits[:, -1, :vocab].argmax(-1, keepdim=True)
            logits = model(nxt, cache, start=cached.shape[1])
            cached = torch.cat([cached, nxt], dim=1)
    assert torch.equal(seq, cached)


def test_cache_overflow_is_an_error():
    from geex.models.cache import KVCache

    model = random_tiny_codegeex()
    cache = KVCache(model.config, batch=1, max_len=8)
    with pytest.raises(ValueError, match="exceeds the context of 8"):
        model(torch.zeros(1, 9, dtype=torch.long), cache, start=0)
