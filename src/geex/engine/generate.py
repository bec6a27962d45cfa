"""Batched generation with a static KV cache, sampling and stop rules, for any architecture that
follows the step contract (``model(ids, cache, start, pad) -> logits``: CodeGeeX, Llama).

Prompts of different lengths are left-padded; each row gets its own positions and never attends
to its padding (``geex.models.attention``), so a prompt generates the same tokens in a batch as
alone. A row stops at EOS, at ``max_new_tokens``, at a stop string, or when the language's stop rule
(``geex.languages.cleanup.is_finished``, the harness's own rule) says its function is complete.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from geex.engine.sampling import SamplingParams, sample
from geex.errors import UserError
from geex.languages import Language, get_language
from geex.languages.cleanup import is_finished
from geex.models.cache import KVCache
from geex.models.protocols import StepModel, Tokenizer


@dataclass
class Completion:
    text: str  # decoded new tokens (EOS excluded)
    token_ids: list[int]
    finish_reason: str  # "eos", "stop" (stop string or language rule) or "length"


class TextStream:
    """The text of a growing list of tokens, decoding only the new ones (O(1) a token, not O(n)).

    A byte-level token can end inside a multi-byte character; such tokens wait (decoding to U+FFFD)
    until the character is whole. ``add`` returns the newly settled text.
    """

    MAX_PENDING = 4  # a UTF-8 character spans at most 4 bytes: more pending tokens mean a real U+FFFD

    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer
        self.text = ""
        self._pending: list[int] = []

    def add(self, token: int) -> str:
        self._pending.append(token)
        piece = self.tokenizer.decode(self._pending)
        if piece.endswith("\ufffd") and len(self._pending) < self.MAX_PENDING:
            return ""
        self._pending = []
        self.text += piece
        return piece

    def flush(self) -> str:
        """At the end: tokens still waiting for the rest of a character decode as they are."""
        if not self._pending:
            return ""
        piece = self.tokenizer.decode(self._pending)
        self._pending = []
        self.text += piece
        return piece


def _stopped(text: str, stop: Sequence[str], language: Language | None) -> bool:
    return any(s in text for s in stop) or (language is not None and is_finished(language, text))


STEP_MODES = ("auto", "eager", "static", "graph")


def decode_step(model: StepModel, cache: KVCache, pad: torch.Tensor | None, mode: str
                 ) -> Callable[[torch.Tensor, int], torch.Tensor]:
    """``step(ids[B], slot) -> logits[B, V]``: eager (growing attention span), static (fixed shapes,
    what a graph captures; runs anywhere) or a replayed CUDA graph (auto: graph on CUDA, else eager)."""
    if mode not in STEP_MODES:
        raise UserError(f"unknown decode step {mode!r} (known: {', '.join(STEP_MODES)})")
    if mode == "auto":
        mode = "graph" if cache.k.is_cuda else "eager"
    if mode == "graph":
        if not cache.k.is_cuda:
            raise UserError("CUDA graphs need a CUDA device")
        from geex.engine.cuda_graph import GraphedDecodeStep

        return GraphedDecodeStep(model, cache, pad)
    if mode == "static":
        slot_buf = torch.zeros((), dtype=torch.long, device=cache.k.device)

        def static(ids: torch.Tensor, slot: int) -> torch.Tensor:
            slot_buf.fill_(slot)
            return model(ids[:, None], cache, start=slot_buf, pad=pad)[:, -1]

        return static
    return lambda ids, slot: model(ids[:, None], cache, start=slot, pad=pad)[:, -1]


def encode_prompts(tokenizer: Tokenizer, prompts: Sequence[str | list[int]], n_positions: int
                   ) -> list[list[int]]:
    """Token ids of every prompt (text encoded in one batch; ids used as given); an empty prompt or
    one that fills the context is the user's mistake."""
    texts = [p for p in prompts if isinstance(p, str)]
    encoded_texts = iter(tokenizer.encode_batch(texts) if texts else [])
    encoded = [next(encoded_texts) if isinstance(p, str) else list(p) for p in prompts]
    if min(len(ids) for ids in encoded) == 0:
        raise UserError("empty prompt")
    longest = max(len(ids) for ids in encoded)
    if longest >= n_positions:
        raise UserError(f"prompt of {longest} tokens does not fit the context of {n_positions} tokens")
    return encoded


def left_padded(encoded: list[list[int]], pad_id: int, device: torch.device
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``ids[B, longest]`` with each row's padding on the left, and the padding lengths (None when
    every prompt is as long: plain causal attention, no mask)."""
    longest = max(len(ids) for ids in encoded)
    pads = [longest - len(ids) for ids in encoded]
    pad = torch.tensor(pads, device=device) if any(pads) else None
    return torch.tensor([[pad_id] * p + ids for p, ids in zip(pads, encoded)], device=device), pad


def prefill(model: StepModel, ids: torch.Tensor, cache: KVCache, pad: torch.Tensor | None) -> torch.Tensor:
    """Read the prompts into the cache in one forward: the logits of each row's first new token (the
    last slot alone: the vocabulary-wide head over every prompt position would be most of a long
    prompt's work on a small model)."""
    return model(ids, cache, start=0, pad=pad, last_only=True)[:, -1]


class _Rows:
    """Each row's new tokens, its text so far and why it stopped; ``add`` takes one token a row."""

    def __init__(self, tokenizer: Tokenizer, rows: int, stop: Sequence[str], language: Language | None,
                 ignore_eos: bool, on_token: Callable[[int, int], None] | None) -> None:
        self.tokenizer, self.stop, self.language = tokenizer, stop, language
        self.ignore_eos, self.on_token = ignore_eos, on_token
        self.new: list[list[int]] = [[] for _ in range(rows)]
        self.texts = [TextStream(tokenizer) for _ in range(rows)]
        self.reason: list[str | None] = [None] * rows

    def add(self, tokens: list[int]) -> bool:
        """Record a step's tokens (rows that stopped ignore theirs); whether every row has stopped."""
        for r, token in enumerate(tokens):
            self.add_one(r, token)
        return all(self.reason)

    def add_one(self, r: int, token: int) -> bool:
        """Record one token of row ``r`` (ignored once it stopped); whether the row runs on."""
        if self.reason[r] is not None:
            return False
        if token in self.tokenizer.stop_ids and not self.ignore_eos:
            self.reason[r] = "eos"
            return False
        self.new[r].append(token)
        if self.on_token is not None:
            self.on_token(r, token)
        watched = self.stop or self.language is not None
        if watched and self.texts[r].add(token) and _stopped(self.texts[r].text, self.stop, self.language):
            self.reason[r] = "stop"
        return self.reason[r] is None

    def completions(self) -> list[Completion]:
        return [Completion(self.tokenizer.decode(n), n, r or "length") for n, r in zip(self.new, self.reason)]


@torch.no_grad()
def generate(
    model: StepModel,
    tokenizer: Tokenizer,
    prompts: Sequence[str | list[int]],
    max_new_tokens: int,
    params: SamplingParams = SamplingParams(greedy=True),
    language: str | Language | None = None,
    stop: Sequence[str] = (),
    seed: int | None = None,
    on_token: Callable[[int, int], None] | None = None,
    ignore_eos: bool = False,
    step: str = "auto",
    speculate: int = 0,
) -> list[Completion]:
    """Continue every prompt (text, or token ids used as given); ``on_token(row, token_id)`` streams
    tokens as they are produced.

    ``ignore_eos`` keeps generating past EOS (benchmarks); ``step`` picks the decode step (see
    ``STEP_MODES``; the default replays a CUDA graph on GPUs). As gpt-fast: prefill, then one
    decode step a token -- or, with ``speculate`` = K > 0, prompt-lookup speculative decoding
    (``geex.engine.speculative``): up to K tokens copied from the prompt and output so far are
    checked in one forward, the output distribution unchanged (greedy: the same tokens)."""
    if max_new_tokens < 1:
        raise UserError("max_new_tokens must be at least 1")
    if speculate < 0:
        raise UserError(f"speculate must be >= 0 draft tokens, got {speculate}")
    lang = get_language(language) if isinstance(language, str) else language
    cfg, device = model.config, model.device
    encoded = encode_prompts(tokenizer, prompts, cfg.n_positions)
    ids, pad = left_padded(encoded, tokenizer.eos_id, device)
    longest = ids.shape[1]
    max_new_tokens = min(max_new_tokens, cfg.n_positions - longest)
    cache = KVCache(cfg, len(prompts), longest + max_new_tokens, device=device, dtype=model.dtype)
    generator = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
    vocab = min(cfg.vocab_size, tokenizer.vocab_size)  # ids past either (padding rows) are never sampled
    rows = _Rows(tokenizer, len(prompts), stop, lang, ignore_eos, on_token)
    logits = prefill(model, ids, cache, pad)
    if speculate:
        first = sample(logits, params, vocab_size=vocab, generator=generator).tolist()
        one = decode_step(model, cache, pad, step) if len(prompts) == 1 else None
        return _speculative(model, cache, pad, encoded, longest, first, rows, params, vocab, generator,
                            max_new_tokens, speculate, one)
    decode = decode_step(model, cache, pad, step) if max_new_tokens > 1 else None
    for i in range(max_new_tokens):
        nxt = sample(logits, params, vocab_size=vocab, generator=generator)
        if rows.add(nxt.tolist()) or i == max_new_tokens - 1:
            break
        logits = decode(nxt, longest + i)
    return rows.completions()


def _speculative(model: StepModel, cache: KVCache, pad: torch.Tensor | None, encoded: list[list[int]],
                 longest: int, first: list[int], rows: _Rows, params: SamplingParams, vocab: int,
                 generator: torch.Generator | None, max_new_tokens: int, k: int,
                 one: Callable[[torch.Tensor, int], torch.Tensor] | None = None) -> list[Completion]:
    """Decode by verifying prompt-lookup drafts (``geex.engine.speculative``): each forward carries
    every running row's newest token and its drafts at the row's own slots; a row keeps the drafts
    the model agrees with and one token more. ``one``: the plain decode step of a single row (a
    replayed CUDA graph on a GPU), taken when it has no drafts -- the verify forward is launched op
    by op, which on a GPU costs several graphed steps."""
    from geex.engine.speculative import NgramDrafts, next_window, verify

    batch = len(encoded)
    lookups = [NgramDrafts(ids) for ids in encoded]
    current = list(first)  # each row's newest token: produced, not yet in the cache
    made = [1] * batch  # tokens produced per row (the newest included)
    window = [k] * batch  # drafts a row tries next: shrinks after a rejection, grows back after a full hit
    running = [rows.add_one(r, token) for r, token in enumerate(first)]
    for r, token in enumerate(first):
        lookups[r].extend([token])
    while live := [r for r in range(batch) if running[r] and made[r] < max_new_tokens]:
        drafts: list[list[int]] = [[] for _ in range(batch)]
        for r in live:  # a verify yields up to len(drafts) + 1 tokens: within the row's budget
            drafts[r] = lookups[r].propose(min(window[r], max_new_tokens - made[r] - 1))
        # a row's newest token goes to slot longest + made - 1, its drafts (or filler) after it, up to
        # the cache's last slot, longest + max_new_tokens - 1; rows that stopped park at slot 0: their
        # cache is never read again
        width = min(1 + max(len(drafts[r]) for r in live), 1 + min(max_new_tokens - made[r] for r in live))
        drafts = [d[:width - 1] for d in drafts]
        slots = [longest + made[r] - 1 if r in live else 0 for r in range(batch)]
        step_ids = torch.tensor([[current[r]] + drafts[r] + [current[r]] * (width - 1 - len(drafts[r]))
                                 for r in range(batch)], device=cache.k.device)
        if one is not None and width == 1:
            logits = one(step_ids[:, 0], slots[0])[:, None]
        else:
            start: int | torch.Tensor = slots[0] if batch == 1 else torch.tensor(slots, device=cache.k.device)
            logits = model(step_ids, cache, start=start, pad=pad)
        for r in live:
            produced = []
            for token in verify(logits[r], drafts[r], params, vocab, generator):
                produced.append(token)
                made[r] += 1
                running[r] = rows.add_one(r, token)
                if not running[r] or made[r] == max_new_tokens:
                    break
            current[r] = produced[-1]
            lookups[r].extend(produced)
            if drafts[r]:
                window[r] = next_window(window[r], len(drafts[r]), len(produced) - 1, k)
    return rows.completions()
