"""The bridge's joining of piled-up tokens: adjacent tokens of one request become one event with
the texts joined, in order; never across requests, around other events, or with logprobs."""

from __future__ import annotations

from geex.engine.scheduler import Event, Request
from geex.serve.engine_client import Generation


def _gen(*logprobs):
    gen = Generation.__new__(Generation)
    gen.requests = [Request([1], 4, lambda ev: None, logprobs=lp) for lp in logprobs]
    return gen


def _tok(gen, i, text, tid):
    return i, Event("token", gen.requests[i], token_id=tid, text=text)


def test_adjacent_tokens_of_one_request_are_joined():
    gen = _gen(None, None, 2)
    fin = (0, Event("finished", gen.requests[0], text="!", finish_reason="stop", finish_detail="eos"))
    batch = [_tok(gen, 0, "a", 1), _tok(gen, 0, "b", 2), _tok(gen, 1, "x", 7), _tok(gen, 0, "c", 3), fin,
             _tok(gen, 2, "p", 8), _tok(gen, 2, "q", 9), _tok(gen, 1, "y", 10), _tok(gen, 1, "z", 11)]
    out = [(i, ev.kind, ev.text, ev.token_id) for i, ev in gen._joined(batch)]
    assert out == [(0, "token", "ab", 2), (1, "token", "x", 7), (0, "token", "c", 3), (0, "finished", "!", None),
                   (2, "token", "p", 8), (2, "token", "q", 9), (1, "token", "yz", 11)]
    # the text of every request is unchanged
    for i in range(3):
        assert "".join(ev.text for j, ev in gen._joined(batch) if j == i) == \
            "".join(ev.text for j, ev in batch if j == i)
