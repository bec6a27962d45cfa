"""Checkpoints: official nested format, fused qkv, TP shards, and geex's safetensors directory
all load back to identical logits; host memory stays near one copy of the weights."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from geex.cli import main
from geex.errors import UserError
from geex.models.codegeex import CodeGeeX, get_config
from geex.models.formats.codegeex import (
    infer_config,
    load_model,
    read_official,
    save_geex,
    split_tensor_parallel,
    to_official,
)
from geex.models.fusion import checkpoint_state_dict
from tests.models.tiny import random_tiny_codegeex


@pytest.fixture(scope="module")
def model() -> CodeGeeX:
    return random_tiny_codegeex(0)


IDS = torch.randint(0, 500, (2, 11), generator=torch.Generator().manual_seed(1))


def _logits(m: CodeGeeX) -> torch.Tensor:
    with torch.no_grad():
        return m(IDS)


def test_official_nested_file_loads_to_identical_logits(model, tmp_path):
    torch.save(to_official(checkpoint_state_dict(model)), tmp_path / "codegeex_tiny.pt")
    loaded = load_model(tmp_path / "codegeex_tiny.pt", n_head=model.config.n_head)
    assert loaded.config == model.config
    assert torch.equal(_logits(loaded), _logits(model))


def test_fused_qkv_variant(model, tmp_path):
    sd = checkpoint_state_dict(model)
    fused = {}
    for name, t in sd.items():
        if ".attention.query." in name and "topQueryLayer" not in name:
            fused[name.replace("query", "query_key_value")] = torch.cat(
                [t, sd[name.replace("query", "key")], sd[name.replace("query", "value")]])
        elif ".attention.key." in name and "topQueryLayer" in name:
            fused[name.replace("key", "key_value")] = torch.cat([t, sd[name.replace("key", "value")]])
        elif (".attention.key." in name or ".attention.value." in name) or (
                ".attention.value." in name and "topQueryLayer" in name):
            continue
        else:
            fused[name] = t
    assert any("query_key_value" in k for k in fused) and any("key_value.weight" in k for k in fused)
    torch.save(to_official(fused), tmp_path / "fused.pt")
    assert torch.equal(_logits(load_model(tmp_path / "fused.pt", n_head=4)), _logits(model))


@pytest.mark.parametrize("tp", [2, 4])
def test_tensor_parallel_shards_merge_to_identical_logits(model, tmp_path, tp):
    shards = split_tensor_parallel(checkpoint_state_dict(model), tp)
    assert shards[0]["embedding.word_embeddings.weight"].shape[0] == model.config.padded_vocab_size // tp
    assert shards[1]["transformer.layers.0.attention.dense.weight"].shape[1] == model.config.n_embd // tp
    for rank, shard in enumerate(shards):
        torch.save(to_official(shard), tmp_path / f"mp_rank_{rank:02d}_model_states.pt")
    assert torch.equal(_logits(load_model(tmp_path, n_head=4)), _logits(model))


def test_geex_directory_round_trip_and_convert_cli(model, tmp_path, capsys):
    torch.save(to_official(checkpoint_state_dict(model)), tmp_path / "official.pt")
    assert main(["model", "convert", str(tmp_path / "official.pt"), str(tmp_path / "geex-tiny"), "--n-head", "4"]) == 0
    loaded = load_model(tmp_path / "geex-tiny")
    assert loaded.config == model.config
    assert torch.equal(_logits(loaded), _logits(model))
    assert "parameters" in capsys.readouterr().out


def test_bad_inputs_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_official(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="is not a PyTorch checkpoint"):
        read_official(tmp_path / "junk.pt")
    torch.save({"module": {"something": torch.zeros(1)}}, tmp_path / "other.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "other.pt").read_bytes()[:300])  # a zip without its end
    with pytest.raises(UserError, match="cannot read checkpoint"):
        read_official(tmp_path / "cut.pt")
    with pytest.raises(UserError, match="no 'transformer' weights"):
        read_official(tmp_path / "other.pt")
    assert main(["model", "convert", str(tmp_path / "missing.pt"), str(tmp_path / "out")]) == 2


def test_infer_config_defaults_to_head_dim_128():
    sd = {"embedding.word_embeddings.weight": torch.empty(52224, 256),
          "embedding.position_embeddings.weight": torch.empty(2048, 256),
          "transformer.layers.0.input_layernorm.weight": torch.empty(256)}
    cfg = infer_config(sd)
    assert (cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.padded_vocab_size, cfg.vocab_size) == (1, 256, 2, 52224, 50400)


def test_peak_host_memory_while_loading_stays_near_one_copy(tmp_path):
    """A ~200 MB fp32 checkpoint: peak RSS of a fresh process that loads it must stay well under two
    copies above the interpreter's own footprint."""
    cfg = get_config("codegeex-tiny", n_layer=4, n_embd=512, n_head=4, n_positions=512, padded_vocab_size=52224,
                     vocab_size=50400)
    m = CodeGeeX(cfg)
    nbytes = sum(p.numel() * 4 for p in m.parameters())
    save_geex(checkpoint_state_dict(m), cfg, tmp_path / "geex")
    torch.save(to_official(checkpoint_state_dict(m)), tmp_path / "official.pt")
    del m
    script = (
        "import resource, sys, torch\n"
        "from geex.models.formats.codegeex import load_model\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
        "m = load_model(sys.argv[1], n_head=4)\n"
        "m(torch.zeros(1, 4, dtype=torch.long))  # touches every weight (the tied head: all of the embedding)\n"
        "peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
        "print(peak - base)\n"
    )
    for path in (tmp_path / "geex", tmp_path / "official.pt"):
        out = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True)
        extra = int(out.stdout.strip())
        assert extra < 1.5 * nbytes, (path.name, extra / 1e6, nbytes / 1e6)
