"""Prompt-lookup speculative decoding: draft tokens copied from the text so far, checked in one forward.

Why: completion, edits and translation repeat the prompt's identifiers and whole lines, and a decode
step reads every weight once whether it carries one token or eight. When the last few tokens
occurred earlier (in the prompt or the output), the tokens that followed them then are a likely
continuation now: ``NgramDrafts`` proposes them, and one forward of the current token plus the
drafts gives the model's own next-token distribution after each of them. A draft is kept only
where the model agrees, so the output is the model's:

- greedy: a draft token is kept while it equals the argmax at its position; the first argmax that
  differs is the next token (so every verify yields at least one token, as a plain step does):
  token-for-token the output of plain greedy decoding;
- sampling: a draft token ``d`` is a one-point draft distribution, so the speculative-sampling rule
  (Leviathan et al. 2023; Chen et al. 2023) keeps it with probability ``p(d)`` and otherwise
  draws from ``p`` without ``d``, renormalised: each token has exactly the target distribution
  ``p`` (temperature, top-k, top-p applied). The random stream differs from plain sampling, so a
  seed reproduces a speculative run, not a plain one.

Rejected drafts leave keys and values in cache slots past the row's position; attention never
reaches a slot past a row's own, and the next step overwrites them.
"""

from __future__ import annotations

import torch

from geex.engine.sampling import SamplingParams, probabilities, sample


class NgramDrafts:
    """Drafts for one sequence: the tokens that followed the latest earlier occurrence of its
    longest suffix n-gram (``max_ngram`` down to ``min_ngram`` tokens), looked up in O(n) a step."""

    def __init__(self, tokens: list[int], max_ngram: int = 3, min_ngram: int = 1) -> None:
        if not 1 <= min_ngram <= max_ngram:
            raise ValueError(f"need 1 <= min_ngram <= max_ngram, got {min_ngram}, {max_ngram}")
        self.max_ngram, self.min_ngram = max_ngram, min_ngram
        self.tokens: list[int] = []
        # n-gram -> where its latest continuation starts; holds n-grams ending before the last token,
        # so a lookup of the current suffix finds an *earlier* occurrence
        self._next: dict[tuple[int, ...], int] = {}
        self.extend(tokens)

    def extend(self, tokens: list[int]) -> None:
        for token in tokens:
            end = len(self.tokens)  # the n-grams ending at the previous last token continue here
            for n in range(self.min_ngram, min(self.max_ngram, end) + 1):
                self._next[tuple(self.tokens[end - n:end])] = end
            self.tokens.append(token)

    def propose(self, k: int) -> list[int]:
        """Up to ``k`` draft tokens (none where the suffix never occurred before)."""
        if k < 1:
            return []
        for n in range(min(self.max_ngram, len(self.tokens)), self.min_ngram - 1, -1):
            start = self._next.get(tuple(self.tokens[-n:]))
            if start is not None:
                return self.tokens[start:start + k]
        return []


def next_window(window: int, tried: int, kept: int, most: int) -> int:
    """How many drafts a row tries next, after keeping ``kept`` of ``tried``: two more (up to ``most``)
    after keeping all, one fewer (down to 1) after a rejection -- the schedule ``transformers`` uses
    for assisted generation. A verify costs more the more tokens it carries (on a CPU a forward of
    five tokens costs ~1.3 of one), so drafts that keep failing must not be sent at full length."""
    if kept >= tried:
        return min(most, window + 2)
    return max(1, window - 1)


def verify(logits: torch.Tensor, drafts: list[int], params: SamplingParams, vocab_size: int | None,
           generator: torch.Generator | None = None) -> list[int]:
    """The tokens a verify forward yields: the kept prefix of ``drafts`` and one token more.

    ``logits[len(drafts) + 1, V]``: row ``i`` is the model's next-token logits after the current token
    and ``drafts[:i]``."""
    if params.greedy:
        best = sample(logits[:len(drafts) + 1], params, vocab_size).tolist()
        kept = 0
        while kept < len(drafts) and drafts[kept] == best[kept]:
            kept += 1
        return drafts[:kept] + [best[kept]]
    probs = probabilities(logits[:len(drafts) + 1], params, vocab_size)
    out: list[int] = []
    for i, d in enumerate(drafts):
        u = torch.rand((), generator=generator, device=probs.device)
        if u < probs[i, d]:
            out.append(d)
            continue
        residual = probs[i].clone()
        residual[d] = 0.0  # p without d, renormalised by multinomial (p(d) < 1 here: u < 1)
        out.append(int(torch.multinomial(residual, 1, generator=generator)))
        return out
    out.append(int(torch.multinomial(probs[len(drafts)], 1, generator=generator)))
    return out
