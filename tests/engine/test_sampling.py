"""Sampling against known distributions (seeded, so the statistics are deterministic)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from geex.engine.sampling import SamplingParams, sample
from geex.errors import UserError

PROBS = torch.tensor([0.5, 0.3, 0.15, 0.05])
LOGITS = PROBS.log().repeat(20000, 1)


def _draw(params: SamplingParams, logits: torch.Tensor = LOGITS, **kw) -> torch.Tensor:
    return sample(logits, params, generator=torch.Generator().manual_seed(0), **kw)


def test_greedy_is_argmax():
    logits = torch.randn(8, 100, generator=torch.Generator().manual_seed(1))
    assert torch.equal(sample(logits, SamplingParams(greedy=True)), logits.argmax(-1))


def test_padded_ids_are_never_chosen():
    logits = torch.zeros(4, 10)
    logits[:, 8:] = 100.0  # the padding rows would win
    assert (sample(logits, SamplingParams(greedy=True), vocab_size=8) < 8).all()
    assert (_draw(SamplingParams(), logits.repeat(500, 1), vocab_size=8) < 8).all()


def test_plain_sampling_follows_the_distribution():
    freq = torch.bincount(_draw(SamplingParams()), minlength=4).float() / len(LOGITS)
    torch.testing.assert_close(freq, PROBS, atol=0.015, rtol=0)


def test_temperature_reshapes_the_distribution():
    freq = torch.bincount(_draw(SamplingParams(temperature=2.0)), minlength=4).float() / len(LOGITS)
    expected = torch.softmax(PROBS.log() / 2.0, dim=-1)
    torch.testing.assert_close(freq, expected, atol=0.015, rtol=0)


def test_top_k_keeps_the_k_most_likely():
    drawn = _draw(SamplingParams(top_k=2))
    assert set(drawn.unique().tolist()) == {0, 1}
    freq = torch.bincount(drawn, minlength=2).float() / len(drawn)
    torch.testing.assert_close(freq[:2], torch.tensor([0.625, 0.375]), atol=0.015, rtol=0)


@pytest.mark.parametrize("p, support", [(0.6, {0, 1}), (0.85, {0, 1, 2}), (0.3, {0}), (1.0, {0, 1, 2, 3})])
def test_top_p_keeps_the_nucleus(p, support):
    assert set(_draw(SamplingParams(top_p=p)).unique().tolist()) == support


# the same distribution shuffled: ids 0..5 hold probabilities 0.05, 0.30, 0.02, 0.50, 0.13, 0.00 (a
# sampler that forgot to map its sorted-order mask back to the ids would keep the wrong ones)
SHUFFLED = torch.tensor([0.05, 0.30, 0.02, 0.50, 0.13, 1e-9])


@pytest.mark.parametrize("p, support, freqs", [
    (0.6, {3, 1}, {3: 0.5 / 0.8, 1: 0.3 / 0.8}),  # 0.50 < 0.6: the token crossing p (0.30) is kept
    (0.85, {3, 1, 4}, {3: 0.5 / 0.93, 1: 0.3 / 0.93, 4: 0.13 / 0.93}),
    (0.4, {3}, {3: 1.0}),
])
def test_top_p_on_an_unsorted_distribution(p, support, freqs):
    """Hand-computed nuclei of a distribution whose ids are not in probability order, and the
    renormalised frequencies inside them."""
    drawn = _draw(SamplingParams(top_p=p), SHUFFLED.log().repeat(20000, 1))
    assert set(drawn.unique().tolist()) == support
    counts = torch.bincount(drawn, minlength=6).float() / len(drawn)
    for token, f in freqs.items():
        assert abs(counts[token].item() - f) < 0.015, (token, counts[token].item(), f)


def test_top_k_on_an_unsorted_distribution():
    drawn = _draw(SamplingParams(top_k=3), SHUFFLED.log().repeat(20000, 1))
    assert set(drawn.unique().tolist()) == {3, 1, 4}
    counts = torch.bincount(drawn, minlength=6).float() / len(drawn)
    torch.testing.assert_close(counts[[3, 1, 4]], torch.tensor([0.5, 0.3, 0.13]) / 0.93, atol=0.015, rtol=0)


def test_top_k_of_one_is_the_most_likely_token():
    assert set(_draw(SamplingParams(top_k=1, temperature=5.0), SHUFFLED.log().repeat(2000, 1)).tolist()) == {3}


def test_top_k_on_a_single_row():
    """The scheduler samples a request's row alone: k (3) larger than the batch (1) still keeps 3."""
    gen = torch.Generator().manual_seed(0)
    row = SHUFFLED.log()[None]
    drawn = {int(sample(row, SamplingParams(top_k=3), generator=gen)) for _ in range(300)}
    assert drawn == {3, 1, 4}


def test_top_p_reached_exactly_keeps_the_next_token_as_codegeex_does():
    """Four equal tokens (exactly 0.25 each: cumulative 0.25, 0.5, 0.75, 1.0) and p = 0.5. CodeGeeX's
    ``top_k_logits`` removes tokens whose cumulative probability is *above* p, shifted by one: the
    token after the one that reaches p exactly is kept too, so three tokens stay, not two."""
    gen = torch.Generator().manual_seed(0)
    row = torch.tensor([[0.0, 0.0, 0.0, 0.0, float("-inf")]])
    drawn = {int(sample(row, SamplingParams(top_p=0.5), generator=gen)) for _ in range(300)}
    assert len(drawn) == 3 and 4 not in drawn


def test_parameters_cannot_change_after_validation():
    params = SamplingParams(temperature=0.7)
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.temperature = -1.0


def test_same_seed_same_samples():
    a = _draw(SamplingParams(temperature=0.8, top_p=0.95))
    b = _draw(SamplingParams(temperature=0.8, top_p=0.95))
    assert torch.equal(a, b)


@pytest.mark.parametrize("kw", [{"temperature": 0}, {"temperature": -0.5}, {"top_k": -1}, {"top_p": 0}, {"top_p": -0.1},
                                {"top_p": 1.5}])
def test_bad_parameters(kw):
    with pytest.raises(UserError):
        SamplingParams(**kw)
