"""Fill-in-the-middle: which tokens a model was trained with, and the prompt that asks it for the
code between a prefix and a suffix.

Detection follows llama.cpp (``src/llama-vocab.cpp``): a GGUF file's ``tokenizer.ggml.fim_*_token_id``
keys (or the older ``prefix/suffix/middle_token_id``) first, else the known token strings of each
family in the vocabulary. The family decides the layout:

- ``psm``: ``PRE prefix SUF suffix MID`` (Qwen2.5-Coder, DeepSeek-Coder, StarCoder, SantaCoder, a
  GGUF that names its tokens); ``spm``: ``SUF suffix PRE prefix MID`` on request.
- ``codellama``: Code Llama's own construction (``llama/generation.py::infilling_prompt_tokens``):
  ``BOS PRE`` + the prefix with SentencePiece's leading space + ``SUF`` + the suffix without it +
  ``MID``; its suffix-first form is ``BOS PRE SUF suffix MID prefix``.
- ``codegeex4``: CodeGeeX4's chat turn (``###PATH``/``###LANGUAGE``/``###MODE`` headers, then
  ``<|code_suffix|>suffix<|code_prefix|>prefix<|code_middle|>``).

Other files of the project (``extra``) go before the prefix where the family has a form for them:
Qwen's repo-level ``<|repo_name|>repo`` + ``<|file_sep|>path`` blocks, StarCoder's ``<file_sep>``
blocks, DeepSeek's ``#path`` headers, CodeGeeX4's ``###REFERENCE`` blocks.

The prompt is budgeted like llama.cpp's ``/infill`` (the prefix's tail at most 3/4 of the budget, the
suffix's head at most 1/4, other files fill what the context has left, oldest dropped first), except
that the prefix loses whole blocks of ``BLOCK`` tokens from its start: typing at the cursor then
leaves the start of the prompt, and so the server's cached prefix, unchanged until another block goes.

A model without FIM tokens (SmolLM2, CodeGeeX-13B) gets the prefix alone, after the language tag for
CodeGeeX models; the caller stops it when it starts to repeat the suffix (``suffix_line``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from geex.models.protocols import Tokenizer

ROLES = ("pre", "suf", "mid", "pad", "rep", "sep")
BLOCK = 256  # the prefix is cut from its start in whole blocks: the cut moves once every BLOCK tokens

# GGUF metadata keys, newest name first (llama.cpp's key table)
GGUF_KEYS = {
    "pre": ("tokenizer.ggml.fim_pre_token_id", "tokenizer.ggml.prefix_token_id"),
    "suf": ("tokenizer.ggml.fim_suf_token_id", "tokenizer.ggml.suffix_token_id"),
    "mid": ("tokenizer.ggml.fim_mid_token_id", "tokenizer.ggml.middle_token_id"),
    "pad": ("tokenizer.ggml.fim_pad_token_id",),
    "rep": ("tokenizer.ggml.fim_rep_token_id",),
    "sep": ("tokenizer.ggml.fim_sep_token_id",),
}


@dataclass(frozen=True)
class Family:
    """A FIM vocabulary: the token text of each role, the layout, and how other files are written."""

    name: str
    tokens: dict[str, str]  # role -> token text
    layout: str = "psm"  # psm | codellama | codegeex4
    extra: str = "none"  # none | qwen | starcoder | deepseek | codegeex4
    stop: tuple[str, ...] = ()  # more end-of-generation tokens (by text) for FIM


FAMILIES = (  # the order llama.cpp scans the vocabulary in
    Family("qwen2.5-coder", {"pre": "<|fim_prefix|>", "suf": "<|fim_suffix|>", "mid": "<|fim_middle|>",
                             "pad": "<|fim_pad|>", "rep": "<|repo_name|>", "sep": "<|file_sep|>"}, extra="qwen",
           stop=("<|endoftext|>", "<|im_end|>")),
    Family("santacoder", {"pre": "<fim-prefix>", "suf": "<fim-suffix>", "mid": "<fim-middle>", "pad": "<fim-pad>"},
           stop=("<|endoftext|>",)),
    Family("starcoder", {"pre": "<fim_prefix>", "suf": "<fim_suffix>", "mid": "<fim_middle>", "pad": "<fim_pad>",
                         "rep": "<reponame>", "sep": "<file_sep>"}, extra="starcoder", stop=("<|endoftext|>",)),
    Family("deepseek-coder", {"pre": "<｜fim▁begin｜>", "suf": "<｜fim▁hole｜>", "mid": "<｜fim▁end｜>"},
           extra="deepseek", stop=("<｜end▁of▁sentence｜>",)),
    Family("codellama", {"pre": "▁<PRE>", "suf": "▁<SUF>", "mid": "▁<MID>"}, layout="codellama",
           stop=("▁<EOT>",)),
    Family("codellama", {"pre": "<PRE>", "suf": "<SUF>", "mid": "<MID>"}, layout="codellama", stop=("<EOT>",)),
    Family("codegeex4", {"pre": "<|code_prefix|>", "suf": "<|code_suffix|>", "mid": "<|code_middle|>"},
           layout="codegeex4", extra="codegeex4",
           stop=("<|user|>", "<|assistant|>", "<|observation|>", "<|endoftext|>")),
)


@dataclass(frozen=True)
class Fim:
    """A model's FIM tokens (ids by role) and its family's layout."""

    family: str
    ids: dict[str, int]
    layout: str = "psm"
    extra: str = "none"
    stop_ids: frozenset[int] = frozenset()  # end of generation for a FIM request (pad, repo, file separator...)

    def meta(self) -> dict:
        """What ``GET /v1/models`` says about it."""
        return {"supported": True, "family": self.family, "format": self.layout,
                "tokens": {r: self.ids.get(r) for r in ROLES}, "fallback": None}


def detect(tokenizer: Tokenizer, gguf: dict | None = None) -> Fim | None:
    """The model's FIM tokens: from GGUF metadata if it names all three core ones, else from the
    vocabulary; None when it has no prefix, suffix and middle token (no FIM)."""
    if gguf:
        named = {role: next((int(gguf[k]) for k in keys if gguf.get(k) is not None), None)
                 for role, keys in GGUF_KEYS.items()}
        if all(named[r] is not None for r in ("pre", "suf", "mid")):
            ids = {r: i for r, i in named.items() if i is not None}
            family = next((f for f in FAMILIES if tokenizer.token_id(f.tokens["pre"]) == ids["pre"]), None)
            if family is not None:  # a known vocabulary: its layout and its other files' form
                return _fim(tokenizer, family, {**_ids(tokenizer, family), **ids})
            return Fim("gguf", ids, stop_ids=frozenset(ids[r] for r in ("pad", "rep", "sep") if r in ids))
    for family in FAMILIES:
        ids = _ids(tokenizer, family)
        if all(r in ids for r in ("pre", "suf", "mid")):
            return _fim(tokenizer, family, ids)
    return None


def _ids(tokenizer: Tokenizer, family: Family) -> dict[str, int]:
    found = {role: tokenizer.token_id(text) for role, text in family.tokens.items()}
    return {r: i for r, i in found.items() if i is not None}


def _fim(tokenizer: Tokenizer, family: Family, ids: dict[str, int]) -> Fim:
    # llama.cpp ends generation at the pad, repo and file-separator tokens too
    stops = {ids[r] for r in ("pad", "rep", "sep") if r in ids}
    stops |= {i for t in family.stop if (i := tokenizer.token_id(t)) is not None}
    return Fim(family.name, ids, family.layout, family.extra, frozenset(stops))


# -- the prompt ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SourceFile:
    """Another file of the project, given as context (llama.cpp's ``input_extra`` chunk)."""

    path: str
    text: str


@dataclass(frozen=True)
class Budget:
    """Tokens the prompt may spend: the prefix and suffix share ``window`` (llama.cpp's ``n_batch``:
    3/4 for the prefix's tail, 1/4 for the suffix's head); other files get ``extra``."""

    window: int = 2048
    extra: int = 0


@dataclass
class Rendered:
    """A FIM prompt as token ids, and what the budget left out."""

    ids: list[int]
    mode: str  # psm | spm | codellama | codegeex4 | prefix_only
    prefix_tokens_dropped: int = 0
    suffix_tokens_dropped: int = 0
    files_dropped: list[str] = field(default_factory=list)
    suffix_line: str | None = None  # prefix_only: the suffix's first non-blank line (stop if it comes)

    def truncated(self) -> dict:
        return {"prefix_tokens_dropped": self.prefix_tokens_dropped,
                "suffix_tokens_dropped": self.suffix_tokens_dropped, "files_dropped": list(self.files_dropped)}


def stable_tail(ids: list[int], limit: int, block: int = BLOCK) -> list[int]:
    """The last tokens of ``ids``, at most ``limit``, dropped from the start in whole ``block``s
    counted from the start of ``ids``: as ``ids`` grows at its end, the cut stays put until it has
    to move a whole block (a cached prompt start survives the next keystrokes)."""
    over = len(ids) - limit
    if over <= 0:
        return ids
    blocks = -(-over // block)
    return ids[blocks * block:] if blocks * block < len(ids) else []


def render(tokenizer: Tokenizer, fim: Fim | None, prefix: str, suffix: str, *,
           files: Sequence[SourceFile] = (), path: str | None = None, repo: str | None = None,
           language: str | None = None, line_mode: bool = False, spm: bool = False, middle: str = "",
           budget: Budget = Budget(), tag: str | None = None) -> Rendered:
    """The prompt asking for the code between ``prefix`` and ``suffix``.

    ``files``/``repo``/``path``: other files of the project and the edited file's path, in the
    family's repo-level form; ``language`` (display name) and ``line_mode``: CodeGeeX4's
    ``###LANGUAGE`` and ``###MODE``; ``spm``: suffix first (Code Llama's ``suffix_first``; for a
    ``psm`` family, only if it was trained so); ``middle``: what the user typed of the middle
    already (llama.cpp's ``prompt`` of ``/infill``); ``tag``: the language tag line put before the
    prefix by the fallback (CodeGeeX models)."""
    if budget.window < 8:
        raise ValueError("the FIM budget must be at least 8 tokens")
    if fim is None:  # the prefix alone, stopped by the caller when the output reaches the suffix
        pre = tokenizer.encode_plain(prefix + middle)
        kept = stable_tail(pre, 3 * budget.window // 4)
        head = tokenizer.encode_plain(tag + "\n") if tag else []
        return Rendered(_bos(tokenizer) + head + kept, "prefix_only", len(pre) - len(kept),
                        suffix_line=first_line(suffix))
    codellama = fim.layout == "codellama"
    pre = tokenizer.encode_plain(prefix)  # SentencePiece: with its leading space, as Code Llama wants
    suf = _without_leading_space(tokenizer, suffix) if codellama else tokenizer.encode_plain(suffix)
    pre_kept = stable_tail(pre, 3 * budget.window // 4)
    typed = tokenizer.encode_plain(middle) if middle else []
    suf_kept = suf[:max(0, budget.window // 4 - 2 - len(typed))]
    dropped, context = _context(tokenizer, fim, files, repo, path, budget.extra)
    i = fim.ids
    if fim.layout == "codegeex4":
        ids = _codegeex4(tokenizer, fim, pre_kept, suf_kept, context, path, language, line_mode) + typed
        mode = "codegeex4"
    elif codellama:  # infilling_prompt_tokens (llama/generation.py), both orders
        body = ([i["pre"], i["suf"]] + suf_kept + [i["mid"]] + pre_kept if spm
                else [i["pre"]] + pre_kept + [i["suf"]] + suf_kept + [i["mid"]])
        ids, mode = _bos(tokenizer) + body + typed, "codellama"
    else:
        body = ([i["suf"]] + suf_kept + [i["pre"]] + pre_kept + [i["mid"]] if spm
                else [i["pre"]] + pre_kept + [i["suf"]] + suf_kept + [i["mid"]])
        ids, mode = _bos(tokenizer) + context + body + typed, "spm" if spm else "psm"
    return Rendered(ids, mode, len(pre) - len(pre_kept), len(suf) - len(suf_kept), dropped)


def first_line(text: str) -> str | None:
    """The first line of ``text`` with something on it, stripped (None if all blank)."""
    return next((line.strip() for line in text.splitlines() if line.strip()), None)


def _bos(tokenizer: Tokenizer) -> list[int]:
    """What the tokenizer puts before any text (BOS for DeepSeek-Coder and Code Llama, nothing for
    Qwen or StarCoder): each reference encodes its whole prompt with the tokenizer's own call."""
    return tokenizer.encode("")


def _without_leading_space(tokenizer: Tokenizer, text: str) -> list[int]:
    """``text`` without SentencePiece's implicit leading space: Code Llama's ``encode_infilling``
    encodes "☺" + text and drops the two tokens of "▁☺"."""
    marker = tokenizer.token_id("☺")
    if marker is None:
        raise ValueError("a Code Llama vocabulary without '☺' (its infilling marker)")
    ids = tokenizer.encode_plain("☺" + text)
    return ids[ids.index(marker) + 1:]


def _context(tokenizer: Tokenizer, fim: Fim, files: Sequence[SourceFile], repo: str | None,
             path: str | None, budget: int) -> tuple[list[str], list[int]]:
    """(paths of the files that did not fit, the tokens of the other files and the edited file's
    header in the family's repo-level form). Files are dropped from the first given (the oldest)."""
    if fim.extra == "none":
        return [f.path for f in files], []
    if not files and not path:
        return [], []
    blocks = [_file_block(tokenizer, fim, f.path, f.text) for f in files]
    dropped = []
    while blocks and sum(map(len, blocks)) > budget:
        blocks.pop(0)
        dropped.append(files[len(dropped)].path)
    kept = [t for b in blocks for t in b]
    if fim.extra == "codegeex4":
        return dropped, kept  # the ###REFERENCE blocks, placed inside the chat turn
    head: list[int] = []
    if fim.extra == "qwen":  # examples/Qwen2.5-Coder-repolevel-fim.py
        head = [fim.ids["rep"]] + tokenizer.encode_plain(f"{repo or 'project'}\n")
    elif fim.extra == "starcoder" and repo and "rep" in fim.ids:
        head = [fim.ids["rep"]] + tokenizer.encode_plain(repo)
    current = _file_block(tokenizer, fim, path, None) if path else []
    return dropped, head + kept + current


def _file_block(tokenizer: Tokenizer, fim: Fim, path: str, text: str | None) -> list[int]:
    """One file of the repo-level context (``text`` None: the header of the file being edited)."""
    if fim.extra == "deepseek":  # README §4: files one after another under a "#path" line
        return tokenizer.encode_plain(f"#{path}\n" + (f"{text}\n" if text is not None else ""))
    if fim.extra == "codegeex4":  # guides/Infilling_guideline.md: ###REFERENCE blocks
        return tokenizer.encode_plain(f"###PATH:{path}\n{text}\n")
    sep = fim.ids["sep"]
    if fim.extra == "qwen":
        return [sep] + tokenizer.encode_plain(f"{path}\n" + (f"{text}\n" if text is not None else ""))
    return [sep] + tokenizer.encode_plain(f"{path}\n" + (text if text is not None else ""))  # StarCoder2


def _codegeex4(tokenizer: Tokenizer, fim: Fim, pre: list[int], suf: list[int], references: list[int],
               path: str | None, language: str | None, line_mode: bool) -> list[int]:
    """CodeGeeX4's chat turn (guides/Infilling_guideline.md): headers, then suffix, prefix, middle."""
    i = fim.ids
    head = tokenizer.encode_plain("<|user|>\n")
    if references:
        head += tokenizer.encode_plain("###REFERENCE:\n") + references
    head += tokenizer.encode_plain(f"###PATH:{path or 'untitled'}\n###LANGUAGE:{language or 'Python'}\n"
                                   f"###MODE:{'LINE' if line_mode else 'BLOCK'}\n")
    return (_bos(tokenizer) + head + [i["suf"]] + suf + [i["pre"]] + pre + [i["mid"]]
            + tokenizer.encode_plain("<|assistant|>\n"))
