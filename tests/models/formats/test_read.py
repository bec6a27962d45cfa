"""Every file format is read into one shape, ``ModelFiles`` (config, tensors, tokenizer), checked
against what wrote the file: ``transformers``' own state dict and tokenizer for a Hugging Face
directory, the state dict geex saved (and its official-format twin) for CodeGeeX, SmolLM2-135M's
published shape for the embedded GGUF file. A ``--tokenizer`` directory replaces the model's own
tokenizer in every format."""

from __future__ import annotations

import shutil

import pytest
import torch
from tokenizers import Tokenizer as HFTokenizers

from geex.errors import UserError
from geex.models.codegeex import CodeGeeXConfig
from geex.models.formats import read
from geex.models.formats.codegeex import save_geex, to_official
from geex.models.fusion import checkpoint_state_dict
from geex.models.llama import LlamaConfig
from geex.models.protocols import ModelConfig, ModelFiles, Tokenizer
from geex.models.registry import default_model_path
from geex.models.tokenizers.codegeex import CodeGeeXTokenizer
from tests.models.test_llama import VARIANTS, eos_id, hf_model, tokenizer_files, vocab, write_model  # noqa: F401

TEXT = "def add(a, b):\n    return a + b\n"
CODEGEEX_TOKENIZER_FILES = ("vocab.json", "merges.txt", "added_tokens.json")


def _shape(files: ModelFiles) -> None:
    assert isinstance(files, ModelFiles)
    assert isinstance(files.config, ModelConfig) and isinstance(files.tokenizer, Tokenizer)


def test_a_hugging_face_directory(tmp_path, tokenizer_files, vocab, eos_id):  # noqa: F811
    kind, overrides = VARIANTS["llama-gqa-tied"]
    model = hf_model(kind, overrides, vocab, eos_id)
    directory = write_model(model, tokenizer_files, tmp_path / "hf")
    files = read(directory)
    _shape(files)
    assert isinstance(files.config, LlamaConfig)
    assert (files.config.n_layer, files.config.n_embd, files.config.n_head, files.config.n_kv_head) == (2, 64, 4, 2)
    expected = model.state_dict()
    assert set(files.tensors) == set(expected) - {"lm_head.weight"}  # the tied head's saved copy is dropped
    for name in ("model.layers.1.self_attn.k_proj.weight", "model.norm.weight"):
        assert torch.equal(files.tensors[name], expected[name])
    reference = HFTokenizers.from_file(str(directory / "tokenizer.json"))
    assert files.tokenizer.encode_plain(TEXT) == reference.encode(TEXT, add_special_tokens=False).ids


@pytest.fixture
def codegeex_tiny() -> tuple[CodeGeeXConfig, dict[str, torch.Tensor]]:
    cfg = CodeGeeXConfig(n_layer=2, n_embd=64, n_head=4, n_positions=32, vocab_size=50400, padded_vocab_size=50432)
    model = cfg.build()
    model.init_weights(torch.Generator().manual_seed(0))
    return cfg, {k: v.clone() for k, v in checkpoint_state_dict(model).items()}


def _with_tokenizer(directory, tokenizer_dir):
    directory.mkdir(parents=True, exist_ok=True)
    for name in CODEGEEX_TOKENIZER_FILES:
        shutil.copy(tokenizer_dir / name, directory / name)
    return directory


def test_geex_and_official_codegeex_checkpoints(tmp_path, codegeex_tiny, tokenizer_dir):
    cfg, sd = codegeex_tiny
    reference = CodeGeeXTokenizer(tokenizer_dir).encode(TEXT)
    geex_dir = _with_tokenizer(save_geex(sd, cfg, tmp_path / "geex"), tokenizer_dir)
    official = _with_tokenizer(tmp_path / "official", tokenizer_dir) / "model.pt"
    torch.save(to_official(sd), official)
    for path, n_head in ((geex_dir, 4), (official, 1)):  # an official file's heads are not in its shapes: 64 // 128 -> 1
        files = read(path)
        _shape(files)
        assert files.config == CodeGeeXConfig(**{**cfg.as_dict(), "n_head": n_head})
        assert set(files.tensors) == set(sd)
        assert all(torch.equal(files.tensors[k], sd[k]) for k in sd)
        assert files.tokenizer.encode(TEXT) == reference


def test_a_codegeex_checkpoint_without_a_tokenizer_says_which_option_gives_one(tmp_path, codegeex_tiny):
    cfg, sd = codegeex_tiny
    directory = save_geex(sd, cfg, tmp_path / "model")
    with pytest.raises(UserError, match=f"no tokenizer files in {directory}: pass `tokenizer`=DIR"):
        read(directory)


def test_the_embedded_gguf_file():
    files = read(default_model_path())
    _shape(files)
    c = files.config  # SmolLM2-135M as published: 30 layers of 576, 9 query heads, 3 key/value heads, tied
    assert (c.n_layer, c.n_embd, c.n_head, c.n_kv_head, c.intermediate_size, c.vocab_size) == (30, 576, 9, 3, 1536, 49152)
    assert c.tie_embeddings and "lm_head.weight" not in files.tensors
    assert files.tensors["model.norm.weight"].shape == (576,)
    assert files.tokenizer.vocab_size == 49152


def test_a_tokenizer_directory_replaces_the_models_own(tmp_path, tokenizer_files, vocab, eos_id, tokenizer_dir,  # noqa: F811
                                                        codegeex_tiny):
    reference = HFTokenizers.from_file(str(tokenizer_files / "tokenizer.json"))
    expected = reference.encode(TEXT, add_special_tokens=False).ids
    assert read(default_model_path(), tokenizer_files).tokenizer.encode_plain(TEXT) == expected
    kind, overrides = VARIANTS["llama-gqa-tied"]
    directory = write_model(hf_model(kind, overrides, vocab, eos_id), tokenizer_files, tmp_path / "hf")
    (directory / "tokenizer.json").unlink()  # the model's own is gone: only the named one can answer
    assert read(directory, tokenizer_files).tokenizer.encode_plain(TEXT) == expected
    cfg, sd = codegeex_tiny
    bare = save_geex(sd, cfg, tmp_path / "bare")
    assert read(bare, tokenizer_dir).tokenizer.encode(TEXT) == CodeGeeXTokenizer(tokenizer_dir).encode(TEXT)


def test_files_that_are_no_model_are_named(tmp_path):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"GGML" + bytes(60))
    with pytest.raises(UserError, match="is not a GGUF file"):
        read(bad)
    bad = tmp_path / "weights.bin"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(UserError, match="not a PyTorch checkpoint"):
        read(bad)
