"""``geex tokenizer train``: a byte-level BPE with CodeGeeX's whitespace tokens, trained on a corpus.

The text is seen as ``CodeGeeXTokenizer`` will encode it: runs of 2-10 spaces become whitespace
tokens (``<|extratoken_10|>`` ... ``<|extratoken_18|>``), which split the text, so BPE spends no
merges on indentation.
The output directory has the original's file layout (``vocab.json``, ``merges.txt``,
``added_tokens.json``), so ``CodeGeeXTokenizer(DIR)`` and ``--tokenizer DIR`` load it; the
end-of-text token is id 0 and the whitespace tokens follow the BPE vocabulary.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from geex import jsonl
from geex.data.sources import document_text
from geex.errors import UserError
from geex.models.tokenizers.codegeex import EOS, WS_MAX, CodeGeeXTokenizer, _space_token

_WS_TOKEN = re.compile(r"<\|extratoken_\d+\|>")


def corpus_texts(shards: list[Path]) -> Iterator[str]:
    """Documents of JSONL shards (``geex data build``'s ``code``, or ``content`` / ``text``), whitespace-encoded."""
    for path in shards:
        for i, obj in jsonl.objects(path):
            text = document_text(obj, f"{path}:{i}")
            # as the tokenizer will see it: a whitespace token splits the text like a newline would
            # (BPE never merges across it), so it is a newline while training
            yield _WS_TOKEN.sub("\n", CodeGeeXTokenizer.encode_whitespace(text))


def shard_files(inputs: list[str]) -> list[Path]:
    """JSONL files named directly or found in directories (sorted), for a fixed order."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files += sorted(p for p in path.glob("*.jsonl"))
        elif path.is_file():
            files.append(path)
        else:
            raise UserError(f"{item} does not exist")
    if not files:
        raise UserError("no .jsonl shards found")
    return files


def train_tokenizer(inputs: list[str], out: Path, vocab_size: int = 50_000, min_frequency: int = 2,
                    progress: bool = True) -> Path:
    """Train on the shards' ``code`` texts; write the CodeGeeX tokenizer layout into ``out``."""
    space_tokens = [_space_token(n) for n in range(2, WS_MAX + 1)]
    if vocab_size < 256 + 1 + len(space_tokens):
        raise UserError(f"`vocab_size` {vocab_size} is smaller than the 256 bytes + special tokens")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(space_tokens), min_frequency=min_frequency, special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=progress)
    tok.train_from_iterator(corpus_texts(shard_files(inputs)), trainer=trainer)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot write {out}: {e.strerror or e}") from None
    tok.model.save(str(out))  # vocab.json, merges.txt
    base = json.loads((out / "vocab.json").read_text(encoding="utf-8"))
    added = {t: len(base) + i for i, t in enumerate(space_tokens)}
    (out / "added_tokens.json").write_text(json.dumps(added, indent=1) + "\n", encoding="utf-8")
    CodeGeeXTokenizer(out)  # the layout loads, ids as written
    return out
