"""Choosing the next token: greedy, temperature, top-k, top-p, in the original's order.

Order (``sample_sequence_batch`` / ``top_k_logits`` of CodeGeeX): ids that are no token (the
padded embedding rows) are masked -- the original never masked them; then greedy argmax, or:
divide by the temperature, keep the top k, keep the smallest set of most likely tokens whose
probability reaches p (the token that crosses p is kept, so the top token always survives),
softmax, draw with the caller's generator (reproducible with a seed).
"""

from __future__ import annotations

import torch

from geex.engine.sampling_params import SamplingParams

__all__ = ["SamplingParams", "probabilities", "sample"]

VOCAB = -1  # logits are [B, V]: every reduction here is over the vocabulary, the last dimension


def sample(logits: torch.Tensor, params: SamplingParams, vocab_size: int | None = None,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Next ids ``[B]`` from logits ``[B, V]``; columns >= ``vocab_size`` are never chosen."""
    if params.greedy:
        return _masked(logits, vocab_size).argmax(dim=VOCAB)
    probs = probabilities(logits, params, vocab_size)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(VOCAB)


def _masked(logits: torch.Tensor, vocab_size: int | None) -> torch.Tensor:
    """fp32 logits with the columns past ``vocab_size`` at -inf."""
    logits = logits.float()
    if vocab_size is not None and vocab_size < logits.shape[VOCAB]:
        logits = logits.clone()
        logits[..., vocab_size:] = float("-inf")
    return logits


def probabilities(logits: torch.Tensor, params: SamplingParams, vocab_size: int | None = None) -> torch.Tensor:
    """The distribution ``sample`` draws from (not greedy): temperature, top-k, top-p, softmax over the
    last dimension of ``logits[..., V]`` (speculative decoding verifies drafts against it)."""
    logits = _masked(logits, vocab_size) / params.temperature
    if params.top_k > 0:
        kth = torch.topk(logits, min(params.top_k, logits.shape[VOCAB]), dim=VOCAB).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if params.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=VOCAB)
        cumulative = torch.softmax(sorted_logits, dim=VOCAB).cumsum(dim=VOCAB)
        remove = cumulative > params.top_p
        remove[..., 1:] = remove[..., :-1].clone()  # keep the token that crosses p
        remove[..., 0] = False
        logits = logits.masked_fill(remove.scatter(VOCAB, order, remove), float("-inf"))
    return torch.softmax(logits, dim=VOCAB)
