"""Small tokenizers with a FIM family's special tokens, for tests (no real one can be downloaded)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from geex.models.tokenizers.hf import HFTokenizer

QWEN = ["<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
        "<|im_start|>", "<|im_end|>", "<|endoftext|>"]


def humaneval_code(dataset_dir: Path) -> list[str]:
    """HumanEval-X's Python prompts and solutions: fixed code to train the tokenizers on."""
    with gzip.open(dataset_dir / "humaneval_python.jsonl.gz", "rt") as f:
        return [r["prompt"] + r["canonical_solution"] for r in map(json.loads, f)]


def bpe_tokenizer(code: list[str], specials: list[str], bos: str | None = None) -> HFTokenizer:
    """A byte-level BPE over ``code`` whose special tokens are ``specials`` (BOS added by the
    tokenizer's own call when ``bos`` is given, as DeepSeek-Coder's does)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(code, trainer)
    if bos:
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", special_tokens=[(bos, tok.token_to_id(bos))])
    eos = specials[-1]
    return HFTokenizer(tok, [tok.token_to_id(eos)], bos_token=bos, eos_token=eos)


QWEN = ["<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
        "<|im_start|>", "<|im_end|>", "<|endoftext|>"]
