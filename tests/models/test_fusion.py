"""The fused projections' layout (``geex.models.fusion``): which checkpoint row lands where, written
out by hand; the split back; the property tensor parallelism needs (a contiguous block of rows holds
whole groups); loading by either name, one tensor at a time. That the fused model computes what the
separate projections compute is tested against outside references: ``transformers``
(``test_llama.py``) and the naive CodeGeeX forward over the checkpoint's q/k/v (``test_codegeex.py``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest
import torch

from geex.errors import UserError
from geex.models import codegeex, llama
from geex.models.build import build_model
from geex.models.fusion import FusedView, checkpoint_state_dict

# llama-tiny: 4 query heads over 2 key/value heads of 16 dimensions, MLP width 128
H, HKV, D, I = 4, 2, 16, 128


def _labelled(cfg) -> dict[str, torch.Tensor]:
    """A checkpoint whose every row says where it came from: row r of tensor number n is filled
    with n * 10_000 + r."""
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in checkpoint_state_dict(cfg.build()).items()}
    sd = {}
    for n, (name, shape) in enumerate(sorted(shapes.items())):
        rows = torch.arange(shape[0], dtype=torch.float64) + n * 10_000
        sd[name] = rows.reshape(-1, *[1] * (len(shape) - 1)).expand(shape).clone().float()
    return sd


def _origin(t: torch.Tensor, sd: dict[str, torch.Tensor]) -> list[tuple[str, int]]:
    """(tensor name, row) of each row of ``t``."""
    names = sorted(sd)
    return [(names[int(v) // 10_000], int(v) % 10_000) for v in t.reshape(t.shape[0], -1)[:, 0].tolist()]


def test_a_llama_qkv_holds_each_key_value_group_after_its_queries():
    cfg = llama.get_config("llama-tiny", qkv_bias=True)
    sd = _labelled(cfg)
    model = build_model(cfg, sd)
    p = "model.layers.1.self_attn."
    q, k, v = p + "q_proj.weight", p + "k_proj.weight", p + "v_proj.weight"
    expected = []
    for g in range(HKV):  # group g: query heads 2g and 2g+1 (the heads that read key/value head g), k_g, v_g
        for name, head in [(q, 2 * g), (q, 2 * g + 1), (k, g), (v, g)]:
            expected += [(name, head * D + i) for i in range(D)]
    assert _origin(model.model.layers[1].self_attn.qkv.weight, sd) == expected
    bias = [(n.replace("weight", "bias"), r) for n, r in expected]
    assert _origin(model.model.layers[1].self_attn.qkv.bias, sd) == bias
    up, gate = "model.layers.0.mlp.up_proj.weight", "model.layers.0.mlp.gate_proj.weight"
    assert _origin(model.model.layers[0].mlp.gate_up.weight, sd) == [(n, i) for i in range(I) for n in (gate, up)]


def test_a_codegeex_qkv_holds_each_heads_query_key_value_and_the_top_layer_its_key_value():
    cfg = codegeex.get_config("codegeex-tiny", vocab_size=500, padded_vocab_size=512)
    sd = _labelled(cfg)
    model = build_model(cfg, sd)
    d = cfg.head_dim
    p = "transformer.layers.0.attention."
    assert _origin(model.transformer.layers[0].attention.qkv.bias, sd) == [
        (p + part + ".bias", head * d + i) for head in range(cfg.n_head) for part in ("query", "key", "value")
        for i in range(d)]
    top = "transformer.topQueryLayer.attention."
    assert _origin(model.transformer.topQueryLayer.attention.kv.weight, sd) == [
        (top + part + ".weight", head * d + i) for head in range(cfg.n_head) for part in ("key", "value")
        for i in range(d)]
    assert _origin(model.transformer.topQueryLayer.attention.query.weight, sd) == [
        (top + "query.weight", i) for i in range(cfg.n_embd)]


@pytest.mark.parametrize("cfg", [llama.get_config("llama-tiny", qkv_bias=True, n_head=6, n_kv_head=2),
                                 codegeex.get_config("codegeex-tiny", vocab_size=500, padded_vocab_size=512)],
                         ids=["llama", "codegeex"])
def test_the_checkpoint_comes_back_unchanged(cfg):
    sd = {k: torch.randn(v.shape, generator=torch.Generator().manual_seed(i)) for i, (k, v) in
          enumerate(sorted(_labelled(cfg).items()))}
    model = build_model(cfg, sd)
    back = checkpoint_state_dict(model)
    assert back.keys() == sd.keys()
    assert all(torch.equal(back[k], sd[k]) for k in sd)
    again = cfg.build()  # model.load_state_dict takes the checkpoint's names too, and its own
    again.load_state_dict(sd, strict=True)
    again.load_state_dict(model.state_dict(), strict=True)
    assert all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), model.state_dict().values()))


@pytest.mark.parametrize("degree", [1, 2])
def test_a_block_of_rows_is_what_tensor_parallelism_gives_a_process(degree):
    """ColwiseParallel gives process i the i-th of ``degree`` contiguous row blocks: with the fused
    layouts that is whole key/value groups with their query heads (whole SwiGLU units): exactly the
    fused projection of the i-th block of every checkpoint part."""
    cfg = llama.get_config("llama-tiny")
    sd = _labelled(cfg)
    model = build_model(cfg, sd)
    attn, mlp = model.model.layers[0].self_attn, model.model.layers[0].mlp
    p = "model.layers.0."
    for fused, parts in ((attn.qkv.weight, ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"]),
                         (mlp.gate_up.weight, ["mlp.gate_proj", "mlp.up_proj"])):
        for rank, block in enumerate(fused.chunk(degree)):
            mine = {f"{p}{part}.weight": sd[f"{p}{part}.weight"].chunk(degree)[rank] for part in parts}
            rows = [origin for origin in _origin(block, sd)]
            assert sorted(rows) == sorted(_origin(torch.cat(list(mine.values())), sd))
    # and the heads a process computes from its block are whole: its queries read its own keys
    for rank, block in enumerate(attn.qkv.weight.chunk(degree)):
        groups = block.view(-1, attn.group + 2, D, cfg.n_embd)
        for g in range(groups.shape[0]):
            kv_head = int(groups[g, attn.group, 0, 0].item()) % 10_000 // D
            q_heads = [int(groups[g, j, 0, 0].item()) % 10_000 // D for j in range(attn.group)]
            assert [h // (H // HKV) for h in q_heads] == [kv_head] * attn.group


class _Recording(Mapping[str, torch.Tensor]):
    def __init__(self, sd: dict[str, torch.Tensor]) -> None:
        self.sd, self.read = sd, []

    def __getitem__(self, k: str) -> torch.Tensor:
        self.read.append(k)
        return self.sd[k]

    def __iter__(self) -> Iterator[str]:
        return iter(self.sd)

    def __len__(self) -> int:
        return len(self.sd)


def test_the_fused_view_reads_a_fused_tensors_parts_only_when_asked():
    cfg = llama.get_config("llama-tiny")
    model = cfg.build()
    source = _Recording(_labelled(cfg))
    view = FusedView(source, model.fusions())
    assert set(view) == set(model.state_dict()) and len(view) == len(model.state_dict())
    assert "model.layers.0.self_attn.qkv.weight" in view and "model.layers.0.self_attn.q_proj.weight" not in view
    assert source.read == []
    assert view["model.layers.0.mlp.gate_up.weight"].shape == (2 * I, cfg.n_embd)
    assert source.read == ["model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.up_proj.weight"]
    with pytest.raises(KeyError):
        view["model.layers.0.mlp.up_proj.weight"]  # a part is not one of the model's names


def test_a_missing_part_is_named_as_the_checkpoint_names_it():
    cfg = llama.get_config("llama-tiny")
    sd = _labelled(cfg)
    del sd["model.layers.1.self_attn.v_proj.weight"]
    with pytest.raises(UserError, match=r"missing \['model.layers.1.self_attn.v_proj.weight'\], unexpected \[\]"):
        build_model(cfg, sd)
    sd = _labelled(cfg)
    sd["model.layers.0.mlp.up_proj.weight"] = sd["model.layers.0.mlp.up_proj.weight"][:-1]
    with pytest.raises(UserError, match=r"model.layers.0.mlp.up_proj.weight has shape \(127, 64\)"):
        build_model(cfg, sd)
