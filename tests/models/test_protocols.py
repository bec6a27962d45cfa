"""Every concrete tokenizer, config and model satisfies the contracts the engine, FIM and the server
are typed with (``geex.models.protocols``); a class that lacks a member fails here, by name."""

from __future__ import annotations

import pytest

from geex.errors import GeexWarning
from geex.models import codegeex, llama
from geex.models.protocols import ModelConfig, StepModel, Tokenizer
from geex.models.registry import load
from geex.models.tokenizers.codegeex import CodeGeeXTokenizer


def test_both_tokenizers_satisfy_the_tokenizer_contract(tokenizer_dir, default_model_fp32):
    for tok in (CodeGeeXTokenizer(tokenizer_dir), default_model_fp32.tokenizer):
        assert isinstance(tok, Tokenizer), type(tok)
        ids = tok.encode_plain("def f(x):\n    return x")
        assert tok.decode(ids) == "def f(x):\n    return x"
        assert tok.eos_id in tok.stop_ids and 0 < tok.eos_id < tok.vocab_size


@pytest.mark.parametrize("cfg", [codegeex.get_config("codegeex-tiny"), llama.get_config("llama-tiny")])
def test_both_families_satisfy_the_config_and_step_contracts(cfg):
    assert isinstance(cfg, ModelConfig)
    assert isinstance(cfg.build(), StepModel)


def test_a_class_missing_a_member_does_not_pass():
    """The positive control: ``runtime_checkable`` checks members, so the tests above can fail."""
    class NoDecode:
        eos_id, stop_ids, vocab_size = 0, frozenset({0}), 10

        def encode(self, text): return []
        def encode_batch(self, texts): return []
        def encode_plain(self, text): return []
        def token_id(self, text): return None

    assert not isinstance(NoDecode(), Tokenizer)


def test_the_registry_returns_the_contracts(tokenizer_dir):
    with pytest.warns(GeexWarning, match="random weights"):  # the one warnings channel, not a print
        loaded = load("codegeex-tiny", tokenizer=tokenizer_dir)
    assert isinstance(loaded.model, StepModel) and isinstance(loaded.tokenizer, Tokenizer)
