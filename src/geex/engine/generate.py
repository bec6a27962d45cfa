"""Batched generation with a static KV cache, sampling and stop rules.

Prompts of different lengths are left-padded; each row gets its own positions and never attends
to its padding (``CodeGeeX.forward(pad=...)``), so a prompt generates the same tokens in a batch as
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
from geex.models.codegeex import CodeGeeX, KVCache
from geex.models.tokenizer import CodeGeeXTokenizer


@dataclass
class Completion:
    text: str  # decoded new tokens (EOS excluded)
    token_ids: list[int]
    finish_reason: str  # "eos", "stop" (stop string or language rule) or "length"


def _stopped(text: str, stop: Sequence[str], language: Language | None) -> bool:
    return any(s in text for s in stop) or (language is not None and is_finished(language, text))


@torch.no_grad()
def generate(
    model: CodeGeeX,
    tokenizer: CodeGeeXTokenizer,
    prompts: Sequence[str],
    max_new_tokens: int,
    params: SamplingParams = SamplingParams(greedy=True),
    language: str | Language | None = None,
    stop: Sequence[str] = (),
    seed: int | None = None,
    on_token: Callable[[int, int], None] | None = None,
) -> list[Completion]:
    """Continue every prompt; ``on_token(row, token_id)`` streams tokens as they are produced."""
    if max_new_tokens < 1:
        raise UserError("max_new_tokens must be at least 1")
    lang = get_language(language) if isinstance(language, str) else language
    cfg = model.config
    device = model.embedding.word_embeddings.weight.device
    encoded = tokenizer.encode_batch(list(prompts))
    longest = max(len(ids) for ids in encoded)
    if min(len(ids) for ids in encoded) == 0:
        raise UserError("empty prompt")
    if longest >= cfg.n_positions:
        raise UserError(f"prompt of {longest} tokens does not fit the context of {cfg.n_positions} tokens")
    max_new_tokens = min(max_new_tokens, cfg.n_positions - longest)
    pad = torch.tensor([longest - len(ids) for ids in encoded], device=device)
    ids = torch.tensor([[tokenizer.eos_id] * (longest - len(x)) + x for x in encoded], device=device)
    cache = KVCache(cfg, len(prompts), longest + max_new_tokens, device=device,
                    dtype=model.embedding.word_embeddings.weight.dtype)
    generator = torch.Generator(device=device).manual_seed(seed) if seed is not None else None

    rows = len(prompts)
    new: list[list[int]] = [[] for _ in range(rows)]
    reason: list[str | None] = [None] * rows
    logits = model(ids, cache, start=0, pad=pad)[:, -1]
    for step in range(max_new_tokens):
        nxt = sample(logits, params, vocab_size=cfg.vocab_size, generator=generator)
        for r in range(rows):
            if reason[r] is not None:
                continue
            token = int(nxt[r])
            if token == tokenizer.eos_id:
                reason[r] = "eos"
                continue
            new[r].append(token)
            if on_token is not None:
                on_token(r, token)
            if _stopped(tokenizer.decode(new[r]), stop, lang):
                reason[r] = "stop"
        if all(reason) or step == max_new_tokens - 1:
            break
        logits = model(nxt[:, None], cache, start=longest + step, pad=pad)[:, -1]
    return [Completion(tokenizer.decode(n), n, r or "length") for n, r in zip(new, reason)]
