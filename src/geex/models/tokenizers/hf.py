"""Tokenizers of Hugging Face and GGUF models (byte-level BPE), with their chat templates.

From a model directory: ``tokenizer.json`` (run by HF ``tokenizers``, exactly as ``transformers``
runs it), plus ``tokenizer_config.json`` / ``chat_template.jinja`` / ``generation_config.json`` for
the chat template and the end-of-sequence ids. From a GGUF file: the vocabulary, merges and special
tokens stored in its metadata, with the pre-tokenizer its ``tokenizer.ggml.pre`` names (the rules of
llama.cpp's ``llama-vocab.cpp``).

The interface matches ``CodeGeeXTokenizer`` (``encode``, ``encode_batch``, ``decode``, ``eos_id``,
``stop_ids``, ``vocab_size``), so the generation engine serves both.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors

from geex.errors import UserError
from geex.models.config_fields import read_json

_LLAMA3_SPLIT = (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2_SPLIT = (r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")


def _gpt2() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)


def _digits_then_gpt2() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), _gpt2()])


def _split_then_bytes(pattern: str):
    return lambda: pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])


# tokenizer.ggml.pre -> the pre-tokenizer llama.cpp applies for it
GGUF_PRE_TOKENIZERS = {
    "default": _gpt2, "gpt-2": _gpt2, "gpt2": _gpt2,
    "smollm": _digits_then_gpt2, "starcoder": _digits_then_gpt2, "refact": _digits_then_gpt2,
    "llama-bpe": _split_then_bytes(_LLAMA3_SPLIT), "llama3": _split_then_bytes(_LLAMA3_SPLIT),
    "qwen2": _split_then_bytes(_QWEN2_SPLIT),
}
_CONTROL, _USER_DEFINED = 3, 4  # GGUF token types that are added tokens, not BPE pieces


class HFTokenizer:
    """A ``tokenizers.Tokenizer`` with the model's end-of-sequence ids and chat template."""

    def __init__(self, tokenizer: Tokenizer, eos_ids: Iterable[int], chat_template: str | None = None,
                 bos_token: str | None = None, eos_token: str | None = None) -> None:
        self._tok = tokenizer
        ids = [i for i in dict.fromkeys(eos_ids) if i is not None]
        if not ids:
            raise UserError("the tokenizer names no end-of-sequence token")
        self.eos_id: int = ids[0]
        self.stop_ids: frozenset[int] = frozenset(ids)
        self.vocab_size: int = tokenizer.get_vocab_size(with_added_tokens=True)
        self.chat_template = chat_template
        self.bos_token, self.eos_token = bos_token, eos_token
        self.gguf_token_ids: dict[str, int] = {}  # a GGUF file's tokenizer.ggml.*_token_id keys (FIM ids)

    # -- loading ---------------------------------------------------------------------------------
    @classmethod
    def from_dir(cls, directory: str | Path) -> HFTokenizer:
        """From a Hugging Face model directory (``tokenizer.json`` and its companions)."""
        directory = Path(directory)
        path = directory / "tokenizer.json"
        if not path.is_file():
            raise UserError(f"{directory} has no tokenizer.json (only fast, byte-level tokenizers are supported)")
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as e:  # noqa: BLE001 - tokenizers raises plain Exception
            raise UserError(f"cannot read {path}: {e}") from None
        config = read_json(directory / "tokenizer_config.json", required=False)
        template = config.get("chat_template")
        if (directory / "chat_template.jinja").is_file():
            template = (directory / "chat_template.jinja").read_text(encoding="utf-8")
        if isinstance(template, list):  # named templates: the default one
            template = next((t["template"] for t in template if t.get("name") == "default"), None)
        bos, eos = _token_text(config.get("bos_token")), _token_text(config.get("eos_token"))
        eos_ids: list[int | None] = [tok.token_to_id(eos)] if eos else []
        for extra in (read_json(directory / "generation_config.json", required=False),
                      read_json(directory / "config.json", required=False)):
            value = extra.get("eos_token_id")
            eos_ids += value if isinstance(value, list) else [value]
        return cls(tok, eos_ids, template, bos, eos)

    @classmethod
    def from_gguf(cls, fields: dict) -> HFTokenizer:
        """From a GGUF file's metadata (``fields``: key -> value, as ``geex.models.formats.gguf`` reads them)."""
        kind = fields.get("tokenizer.ggml.model")
        if kind != "gpt2":
            raise UserError(f"GGUF tokenizer {kind!r} is not supported (only byte-level BPE, 'gpt2')")
        pre = fields.get("tokenizer.ggml.pre", "default")
        if pre not in GGUF_PRE_TOKENIZERS:
            raise UserError(f"GGUF pre-tokenizer {pre!r} is not supported (supported: {', '.join(GGUF_PRE_TOKENIZERS)})")
        tokens: list[str] = fields.get("tokenizer.ggml.tokens") or []
        if not tokens:
            raise UserError("GGUF metadata names a byte-level BPE tokenizer but holds no tokens "
                            "(tokenizer.ggml.tokens): geex reads the model's tokenizer from the file")
        types: list[int] = fields.get("tokenizer.ggml.token_type", [1] * len(tokens))
        merges = [tuple(m.split(" ", 1)) for m in fields.get("tokenizer.ggml.merges", [])]
        bpe = models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges, fuse_unk=False)
        tok = Tokenizer(bpe)
        tok.pre_tokenizer = GGUF_PRE_TOKENIZERS[pre]()
        tok.decoder = decoders.ByteLevel()
        tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                                for t, k in zip(tokens, types) if k == _CONTROL])
        tok.add_tokens([AddedToken(t, normalized=False) for t, k in zip(tokens, types) if k == _USER_DEFINED])
        bos_id = fields.get("tokenizer.ggml.bos_token_id")
        bos = tokens[bos_id] if bos_id is not None else None
        if fields.get("tokenizer.ggml.add_bos_token", False) and bos is not None:
            tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A $B",
                                                               special_tokens=[(bos, bos_id)])
        eos_id = fields.get("tokenizer.ggml.eos_token_id")
        eos_ids = [eos_id, fields.get("tokenizer.ggml.eot_token_id"), tok.token_to_id("<|endoftext|>")]
        out = cls(tok, eos_ids, fields.get("tokenizer.chat_template"), bos, tokens[eos_id] if eos_id is not None else None)
        out.gguf_token_ids = {k: int(v) for k, v in fields.items()
                              if k.startswith("tokenizer.ggml.") and k.endswith("_token_id") and v is not None}
        return out

    # -- the engine's interface ------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        """Ids as ``transformers``' ``tokenizer(text)`` gives them (BOS where the tokenizer adds one)."""
        return self._tok.encode(text).ids

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(list(texts))]

    def encode_plain(self, text: str) -> list[int]:
        """Ids of ``text`` alone: no BOS or other token the tokenizer adds around a whole input."""
        return self._tok.encode(text, add_special_tokens=False).ids

    def token_id(self, text: str) -> int | None:
        """The id of the vocabulary entry spelled ``text`` (a special token's name), or None."""
        return self._tok.token_to_id(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=False)

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        """The prompt text of a conversation, rendered as ``transformers`` renders chat templates
        (a sandboxed Jinja environment with the same helpers). The template adds BOS itself where it
        wants one, so encode the result with ``encode_chat``."""
        if not self.chat_template:
            raise UserError("this model has no chat template")
        return _compile(self.chat_template).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                                   bos_token=self.bos_token or "", eos_token=self.eos_token or "")

    def encode_chat(self, text: str) -> list[int]:
        """Ids of a rendered chat prompt, with no BOS added (the template placed its own)."""
        return self._tok.encode(text, add_special_tokens=False).ids


@functools.lru_cache(maxsize=8)
def _compile(template: str):
    """The template compiled once (a server renders it for every request)."""
    import jinja2
    import jinja2.ext
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise UserError(f"chat template: {message}")

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False) -> str:
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    try:
        return env.from_string(template)
    except jinja2.TemplateError as e:
        raise UserError(f"cannot compile the chat template: {e}") from None


def _token_text(token: object) -> str | None:
    """A special token as tokenizer_config.json gives it: a string or ``{"content": ...}``."""
    if isinstance(token, dict):
        return token.get("content")
    return token if isinstance(token, str) else None
