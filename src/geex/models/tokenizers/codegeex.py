"""The CodeGeeX tokenizer: GPT-2/GPT-J byte-level BPE plus whitespace tokens, on HF ``tokenizers``.

Before BPE, runs of 2-10 spaces become ``<|extratoken_{n+8}|>`` (ids 50266-50274), longest first:
13 spaces -> [10 spaces, 3 spaces]. Decoding turns whitespace tokens (by id) back into spaces and
keeps the rest.
Ids equal the original ``CodeGeeXTokenizer`` (which used ``GPT2TokenizerFast``; the slow GPT-2
tokenizer drops a newline before an added token and inserts spaces around them when decoding).

Loaded from a directory of the original files: ``vocab.json``, ``merges.txt``, ``added_tokens.json``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

from geex.errors import UserError

EOS = "<|endoftext|>"
WS_START_ID = 10  # CodeGeeX-13B: --ws-encoding-start-id 10 --ws-encoding-length 10
WS_MAX = 10  # longest run of spaces that one token encodes


_SPACE_RUNS = re.compile("( {2,})")


def _space_token(n: int) -> str:
    """The token standing for ``n`` spaces (2 <= n <= 10): <|extratoken_{n + 8}|>."""
    return f"<|extratoken_{n + WS_START_ID - 2}|>"


class CodeGeeXTokenizer:
    """Encode/decode exactly like the original; ``vocab_size`` is 50400 (GPT-J's)."""

    def __init__(self, directory: str | Path) -> None:
        directory = Path(directory)
        files = {name: directory / name for name in ("vocab.json", "merges.txt", "added_tokens.json")}
        missing = [str(p) for p in files.values() if not p.is_file()]
        if missing:
            raise UserError(f"tokenizer files missing: {', '.join(missing)}")
        try:
            bpe = models.BPE.from_file(str(files["vocab.json"]), str(files["merges.txt"]))
            added = json.loads(files["added_tokens.json"].read_text(encoding="utf-8"))
        except (OSError, ValueError, Exception) as e:  # tokenizers raises plain Exception
            raise UserError(f"cannot read the tokenizer in {directory}: {e}") from None
        self._tok = Tokenizer(bpe)
        self._tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        self._tok.decoder = decoders.ByteLevel()
        # the end-of-text token and the 143 extratokens, matched anywhere in the text, in id order
        special = [EOS] + [tok for tok, _ in sorted(added.items(), key=lambda kv: kv[1])]
        self._tok.add_special_tokens([AddedToken(t, normalized=False) for t in special])
        for tok, expected in added.items():
            if self._tok.token_to_id(tok) != expected:
                raise UserError(f"{files['added_tokens.json']}: {tok} would get id "
                                f"{self._tok.token_to_id(tok)}, not {expected}")
        self._text_only = Tokenizer(bpe)  # the same BPE without added tokens: special strings as text
        self._text_only.pre_tokenizer = self._tok.pre_tokenizer
        self._special_text = re.compile("|".join(re.escape(t) for t in special))
        self._space_ids = {n: self._tok.token_to_id(_space_token(n)) for n in range(2, WS_MAX + 1)}
        self._spaces = {i: " " * n for n, i in self._space_ids.items()}
        self.eos_id: int = self._tok.token_to_id(EOS)
        self.stop_ids: frozenset[int] = frozenset({self.eos_id})
        self.vocab_size: int = self._tok.get_vocab_size(with_added_tokens=True)

    @classmethod
    def from_dir(cls, directory: Path) -> CodeGeeXTokenizer:
        """The tokenizer of a model directory, or an error that says which option supplies one."""
        if not (directory / "vocab.json").is_file():
            raise UserError(f"no tokenizer files in {directory}: pass `tokenizer`=DIR "
                            "(a directory with vocab.json, merges.txt, added_tokens.json)")
        return cls(directory)

    @staticmethod
    def encode_whitespace(text: str) -> str:
        for n in range(WS_MAX, 1, -1):
            text = text.replace(" " * n, _space_token(n))
        return text

    def encode(self, text: str, literal: bool = False) -> list[int]:
        """Token ids (no BOS or EOS added, as the original). The original turns ``<|endoftext|>`` or
        ``<|extratoken_N|>`` written in the text into those tokens; ``literal=True`` encodes them as
        the characters they are (for corpus documents, where a literal EOS would end a document
        early) and is otherwise the same encoding."""
        if not literal or not self._special_text.search(text):
            return self._tok.encode(self.encode_whitespace(text), add_special_tokens=False).ids
        # what the added-token matching does, by hand: the text splits at runs of 2+ spaces (each
        # run: tokens of 10 spaces, then one of the rest; a single leftover space starts the next
        # piece) and every piece is BPE-encoded on its own, here without any added tokens
        ids: list[int] = []
        pending = ""
        for i, piece in enumerate(_SPACE_RUNS.split(text)):
            if i % 2 == 0:  # text between runs
                pending += piece
                continue
            if pending:
                ids += self._text_only.encode(pending, add_special_tokens=False).ids
            tens, rest = divmod(len(piece), WS_MAX)
            ids += [self._space_ids[WS_MAX]] * tens + ([self._space_ids[rest]] if rest >= 2 else [])
            pending = " " if rest == 1 else ""
        if pending:
            ids += self._text_only.encode(pending, add_special_tokens=False).ids
        return ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        encoded = self._tok.encode_batch([self.encode_whitespace(t) for t in texts], add_special_tokens=False)
        return [e.ids for e in encoded]

    def encode_plain(self, text: str) -> list[int]:
        """``encode``: the original adds nothing around a text."""
        return self.encode(text)

    def token_id(self, text: str) -> int | None:
        """The id of the vocabulary entry spelled ``text``, or None (CodeGeeX has no FIM tokens)."""
        return self._tok.token_to_id(text)

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids``; ids without a token (the padded embedding rows >= 50400) decode to ''.
        Whitespace tokens become spaces by id, so text that spells ``<|extratoken_N|>`` stays text."""
        ids = list(ids)
        if not any(i in self._spaces for i in ids):
            return self._tok.decode(ids, skip_special_tokens=False)
        parts, run = [], []
        for i in ids:
            if i in self._spaces:
                parts += [self._tok.decode(run, skip_special_tokens=False), self._spaces[i]]
                run = []
            else:
                run.append(i)
        parts.append(self._tok.decode(run, skip_special_tokens=False))
        return "".join(parts)
