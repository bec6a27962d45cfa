"""Cancellation over real connections: a client that goes away while its request is queued, while
its prompt is being read or while it generates (streamed or not) frees its slot within a budget,
is counted by phase in /metrics, and 200 such cycles leave nothing behind."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from geex.serve.config import ServeConfig
from tests.serve.conftest import metric, start_server, tiny_engine

pytestmark = pytest.mark.serial  # a 2-second promise: alone

BUDGET_S = 2.0  # disconnect -> slot free: one step and one chunk of a tiny model, with room for a busy CI


@pytest.fixture(scope="module")
def server(codegeex_tokenizer):
    running = start_server(ServeConfig(port=0), engine=tiny_engine(tokenizer=codegeex_tokenizer, slots=1, max_queue=8,
                                                                   prefill_chunk=2, ctx=4096))
    yield running
    running.stop()


def _slots(url: str) -> list[dict]:
    return httpx.get(url + "/slots").json()


def _until(cond, timeout: float = BUDGET_S) -> float:
    start = time.monotonic()
    while not cond():
        assert time.monotonic() - start < timeout, "not within the budget"
        time.sleep(0.005)
    return time.monotonic() - start


def _idle(url: str) -> bool:
    return not any(s["busy"] for s in _slots(url)) and metric(url, "geex_requests_waiting") == 0


LONG = {"prompt": "def f():\n", "max_tokens": 4000, "ignore_eos": True, "stream": True}


def test_disconnect_during_decode_frees_the_slot(server):
    before = metric(server.url, "geex_requests_cancelled_total", phase="decode")
    stale = metric(server.url, "geex_generation_tokens_cancelled_total")
    generated = metric(server.url, "geex_generation_tokens_total")
    with httpx.Client(timeout=30) as c, c.stream("POST", server.url + "/v1/completions", json=LONG) as r:
        lines = r.iter_lines()
        assert next(lines).startswith("data: ")
    _until(lambda: _idle(server.url))
    assert metric(server.url, "geex_requests_cancelled_total", phase="decode") == before + 1
    # every token made for it is stale work, counted as such
    made = metric(server.url, "geex_generation_tokens_total") - generated
    assert made >= 1 and metric(server.url, "geex_generation_tokens_cancelled_total") - stale == made


def test_disconnect_during_a_long_prefill_frees_the_slot(server):
    before = metric(server.url, "geex_requests_cancelled_total", phase="prefill")
    prompt = "x = [" + ", ".join(str(i) for i in range(900)) + "]\n"  # ~1800 tokens, 2 a chunk
    n = len(server.client.encode(prompt))
    with httpx.Client(timeout=30) as c, c.stream("POST", server.url + "/v1/completions",
                                                 json={**LONG, "prompt": prompt}, headers={"X-Request-Id": "long-1"}):
        _until(lambda: any(s["busy"] and 0 < s["n_ctx"] < n for s in _slots(server.url)), timeout=30)
        assert [s["request_id"] for s in _slots(server.url) if s["busy"]] == ["long-1"]  # as in the access log
    _until(lambda: _idle(server.url))
    assert metric(server.url, "geex_requests_cancelled_total", phase="prefill") == before + 1
    assert max(s["n_ctx"] for s in _slots(server.url)) < n  # it really stopped reading


def test_disconnect_while_queued_and_non_streaming_timeout(server):
    before_q = metric(server.url, "geex_requests_cancelled_total", phase="queued")
    before_d = metric(server.url, "geex_requests_cancelled_total", phase="decode")
    with httpx.Client(timeout=30) as c, c.stream("POST", server.url + "/v1/completions", json=LONG) as hog:
        hog_lines = hog.iter_lines()  # kept: a dropped line iterator closes the response
        next(hog_lines)
        with httpx.Client(timeout=30) as c2, c2.stream("POST", server.url + "/v1/completions", json=LONG):
            _until(lambda: metric(server.url, "geex_requests_waiting") == 1)
        _until(lambda: metric(server.url, "geex_requests_waiting") == 0)
        assert metric(server.url, "geex_requests_cancelled_total", phase="queued") == before_q + 1
    _until(lambda: _idle(server.url))
    # not streamed: the client gives up waiting; the server notices the closed connection
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.url + "/v1/completions", json={**LONG, "stream": False}, timeout=0.5)
    _until(lambda: _idle(server.url))
    assert metric(server.url, "geex_requests_cancelled_total", phase="decode") == before_d + 2


def test_two_hundred_cancel_cycles_leave_nothing_behind(server):
    threads_before = threading.active_count()
    for i in range(200):
        with httpx.Client(timeout=30) as c, c.stream("POST", server.url + "/v1/completions",
                                                     json={**LONG, "prompt": f"# {i}\n"}) as r:
            next(r.iter_lines())
    _until(lambda: _idle(server.url), timeout=10)
    stats = server.client.scheduler.stats()
    assert stats["running"] == 0 and stats["waiting"] == 0
    assert threading.active_count() <= threads_before + 1
    ok = httpx.post(server.url + "/v1/completions", json={"prompt": "x", "max_tokens": 3})
    assert ok.status_code == 200 and ok.json()["usage"]["completion_tokens"] == 3
