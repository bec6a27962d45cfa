"""The OpenAI-compatible API through real clients (the ``openai`` package, ``httpx`` and
``httpx-sse``) over loopback, against a tiny model: shapes, streaming, errors, auth, limits."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from httpx_sse import connect_sse

from geex.serve.config import ServeConfig
from tests.serve.conftest import metric, start_server, tiny_engine


def _sse(url: str, body: dict) -> list[str]:
    with httpx.Client(timeout=60) as client, connect_sse(client, "POST", url + "/v1/completions", json=body) as events:
        assert events.response.headers["content-type"].startswith("text/event-stream")
        return [e.data for e in events.iter_sse()]


def test_completions_streamed_and_not_agree(tiny):
    oa = openai.OpenAI(base_url=tiny.url + "/v1", api_key="unused")
    body = dict(model="codegeex-tiny", prompt="def add(a, b):\n", max_tokens=12, temperature=0)
    whole = oa.completions.create(**body)
    assert whole.object == "text_completion" and len(whole.choices) == 1
    assert whole.usage.completion_tokens == 12 and whole.choices[0].finish_reason == "length"
    assert whole.usage.prompt_tokens == len(tiny.client.encode(body["prompt"]))
    geex = whole.model_extra["geex"]
    assert geex["finish_detail"] == "length" and geex["ttft_ms"] > 0
    streamed = list(oa.completions.create(**body, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].text for c in streamed if c.choices)
    assert text == whole.choices[0].text
    assert streamed[-1].choices == [] and streamed[-1].usage.completion_tokens == 12
    assert streamed[-1].usage.prompt_tokens_details.cached_tokens == whole.usage.prompt_tokens - 1  # the prefix cache
    frames = _sse(tiny.url, {**body, "stream": True})
    assert frames[-1] == "[DONE]" and all(json.loads(f)["object"] == "text_completion" for f in frames[:-1])


def test_n_echo_logprobs_stop_and_token_prompts(tiny):
    oa = openai.OpenAI(base_url=tiny.url + "/v1", api_key="unused")
    r = oa.completions.create(model="tiny", prompt=["x = 1", "y = 2"], n=2, max_tokens=4, temperature=0.9, seed=3,
                              echo=True, logprobs=2)
    assert [c.index for c in r.choices] == [0, 1, 2, 3]
    assert r.choices[0].text.startswith("x = 1") and r.choices[2].text.startswith("y = 2")
    lp = r.choices[1].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == 4 and all(v <= 0 for v in lp.token_logprobs)
    assert all(len(top) == 2 for top in lp.top_logprobs)
    again = oa.completions.create(model="tiny", prompt=["x = 1", "y = 2"], n=2, max_tokens=4, temperature=0.9, seed=3,
                                  echo=True, logprobs=2)
    assert [c.text for c in again.choices] == [c.text for c in r.choices]  # seeded
    ids = tiny.client.encode("def add(a, b):\n")
    by_ids = oa.completions.create(model="tiny", prompt=ids, max_tokens=6, temperature=0)
    by_text = oa.completions.create(model="tiny", prompt="def add(a, b):\n", max_tokens=6, temperature=0)
    assert by_ids.choices[0].text == by_text.choices[0].text
    full = by_text.choices[0].text
    stop = full[2:4]
    cut = oa.completions.create(model="tiny", prompt="def add(a, b):\n", max_tokens=6, temperature=0, stop=[stop])
    assert cut.choices[0].text == full[:full.find(stop)] and cut.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("body, status, param", [
    (b"{not json", 400, None),
    (json.dumps({"prompt": 5}).encode(), 422, "prompt"),
    (json.dumps({"prompt": "x", "max_tokens": -3}).encode(), 400, "max_tokens"),
    (json.dumps({"prompt": "x", "max_tokens": 0}).encode(), 400, "max_tokens"),
    (json.dumps({"prompt": "x", "temperature": -1}).encode(), 422, "temperature"),
    (json.dumps({"prompt": "x", "n": 99}).encode(), 422, "n"),
    (json.dumps({"prompt": "x", "model": "gpt-9"}).encode(), 404, "model"),
    (json.dumps({"prompt": "def f():\n" * 2000}).encode(), 400, "prompt"),
    (json.dumps({"prompt": [10**9]}).encode(), 400, "prompt"),
    (json.dumps({"prompt": ""}).encode(), 400, "prompt"),
    (json.dumps({"prompt": "x" * (3 << 20)}).encode(), 413, None),
    (json.dumps({"messages": "hi"}).encode(), 422, None),
    (json.dumps({"prompt": "x", "seed": 2**70, "temperature": 0.5}).encode(), 422, "seed"),
    (b'{"prompt": "\\udcff"}', 400, "prompt"),
    (b'{"prompt": "\xff\xfe"}', 400, None),  # not UTF-8
    (json.dumps({"messages": [{"role": "wizard", "content": "hi"}]}).encode(), 422, "messages"),
    # ids out of range are refused before anything decodes them (they crashed the decoder: 500)
    (json.dumps({"prompt": [-1, 5]}).encode(), 400, "prompt"),
    (json.dumps({"prompt": [[10**20]]}).encode(), 400, "prompt"),
    (json.dumps({"messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]}).encode(), 422, "messages"),
    (b'{"messages": [{"role": "user", "content": "\\udcff"}]}', 400, "messages"),
    (json.dumps({"prompt": "x", "stop": [f"s{i}" for i in range(33)]}).encode(), 400, "stop"),
    (json.dumps({"prompt": "x", "stop": ["y" * 1001]}).encode(), 400, "stop"),
    (json.dumps({"prompt": ["x"] * 17}).encode(), 400, "prompt"),
])
def test_bad_requests_get_openai_errors_and_the_server_goes_on(tiny, body, status, param):
    path = "/v1/chat/completions" if b"messages" in body else "/v1/completions"
    r = httpx.post(tiny.url + path, content=body, headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    if param is not None:
        assert (err["param"] or "").startswith(param), err
    if b"udcff" in body:
        assert "lone surrogate" in err["message"]
    ok = httpx.post(tiny.url + "/v1/completions", json={"prompt": "x", "max_tokens": 2}, timeout=30)
    assert ok.status_code == 200


def test_a_bad_request_keeps_the_connection_usable(tiny):
    """A refused request is an answer like any other: the next one on the same keep-alive
    connection is served (an exception escaping to uvicorn used to close it)."""
    with httpx.Client(base_url=tiny.url, timeout=30) as c:
        for body in ({"prompt": [-1, 5]}, {"prompt": [[10**20]]}):
            assert c.post("/v1/completions", json=body).status_code == 400
            assert c.post("/v1/completions", json={"prompt": "x", "max_tokens": 1}).status_code == 200


def test_a_tiny_temperature_is_greedy(tiny):
    """Dividing logits by 1e-300 overflows: such a temperature means greedy (as vLLM), not a 500."""
    body = {"prompt": "def add(a, b):\n", "max_tokens": 6}
    greedy = httpx.post(tiny.url + "/v1/completions", json=body | {"temperature": 0}, timeout=60).json()
    tiny_t = httpx.post(tiny.url + "/v1/completions", json=body | {"temperature": 1e-300}, timeout=60)
    assert tiny_t.status_code == 200 and tiny_t.json()["choices"][0]["text"] == greedy["choices"][0]["text"]


def test_more_choices_than_the_queue_bound_are_served_when_idle(codegeex_tokenizer):
    """One request's choices enter the queue together: n=8 on a server whose queue holds 1 is
    served (it could never fit, yet was told to retry: 429 forever); a request that does not fit
    behind others is refused whole, and counts as rejected, not as cancellations."""
    running = start_server(ServeConfig(port=0), engine=tiny_engine(tokenizer=codegeex_tokenizer, slots=1, max_queue=1))
    try:
        r = httpx.post(running.url + "/v1/completions", json={"prompt": "x", "max_tokens": 2, "n": 8}, timeout=120)
        assert r.status_code == 200 and len(r.json()["choices"]) == 8
        assert metric(running.url, "geex_requests_cancelled_total", phase="queued") == 0
    finally:
        running.stop()


def test_an_unexpected_error_is_an_openai_shaped_500(tiny, monkeypatch, caplog):
    """A bug (here: a failing timing summary) answers 500 in OpenAI's shape, logged once with the
    request id, and the access log says 500; the connection stays usable."""
    from geex.serve import completions

    def broken(finals):
        raise RuntimeError("boom")

    monkeypatch.setattr(completions, "summary", broken)
    with caplog.at_level("INFO"), httpx.Client(base_url=tiny.url, timeout=30) as c:
        r = c.post("/v1/completions", json={"prompt": "x", "max_tokens": 1}, headers={"X-Request-Id": "bug-1"})
        assert r.status_code == 500
        assert r.json()["error"] == {"message": "internal error (RuntimeError)", "type": "server_error",
                                     "param": None, "code": "internal_error"}
        monkeypatch.undo()
        assert c.post("/v1/completions", json={"prompt": "x", "max_tokens": 1}).status_code == 200
    errors = [rec for rec in caplog.records if rec.name == "geex.serve" and "unexpected error" in rec.getMessage()]
    assert len(errors) == 1 and "bug-1" in errors[0].getMessage()
    access = [json.loads(rec.getMessage()) for rec in caplog.records if rec.name == "geex.serve.access"]
    assert [a["status"] for a in access if a["request_id"] == "bug-1"] == [500]


def test_the_access_log_ignores_forwarded_addresses(tiny, caplog):
    """X-Forwarded-For is the client's to write: a loopback server does not take it as the address."""
    with caplog.at_level("INFO"):
        httpx.get(tiny.url + "/v1/models", headers={"X-Forwarded-For": "6.6.6.6", "X-Request-Id": "xff-1"})
        deadline = time.monotonic() + 10  # the server thread logs after the response is sent: wait for it
        while not (lines := [json.loads(r.getMessage()) for r in caplog.records
                             if r.name == "geex.serve.access" and "xff-1" in r.getMessage()]):
            assert time.monotonic() < deadline, "no access log line"
            time.sleep(0.01)
    assert lines[0]["client"] == "127.0.0.1"


def test_huge_max_tokens_is_clamped_to_the_context(tiny):
    ids = tiny.client.encode("x")
    r = httpx.post(tiny.url + "/v1/completions", json={"prompt": "x", "max_tokens": 10**9, "ignore_eos": True,
                                                        "temperature": 0}, timeout=120)
    assert r.status_code == 200
    assert r.json()["usage"]["completion_tokens"] == tiny.client.scheduler.ctx - len(ids)


def test_models_health_request_id_and_cors(tiny):
    models = httpx.get(tiny.url + "/v1/models").json()
    assert models["data"][0]["id"] == "codegeex-tiny" and models["data"][0]["meta"]["context_length"] == 2048
    assert httpx.get(tiny.url + "/health").json()["status"] == "ok"
    r = httpx.post(tiny.url + "/v1/completions", json={"prompt": "x", "max_tokens": 1},
                   headers={"X-Request-Id": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123" and "prefill;dur=" in r.headers["server-timing"]
    for origin, allowed in (("http://localhost:5173", True), ("vscode-webview://abcdef", True),
                            ("https://evil.example", False)):
        pre = httpx.options(tiny.url + "/v1/completions", headers={
            "Origin": origin, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
        assert (pre.headers.get("access-control-allow-origin") == origin) is allowed, (origin, pre.headers)


def test_a_loopback_server_answers_only_loopback_names(tiny):
    """DNS rebinding: a page at http://evil.example:PORT whose name resolves to 127.0.0.1 is its
    own origin (CORS does not apply); a loopback server refuses hosts that are not loopback names."""
    body = {"prompt": "x", "max_tokens": 1}
    port = tiny.url.rsplit(":", 1)[1]
    r = httpx.post(tiny.url + "/v1/completions", json=body, headers={"Host": f"evil.example:{port}"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_host"
    for host in ("localhost.evil.example", "127.0.0.1.evil.example:80", "[::1].evil"):
        assert httpx.post(tiny.url + "/v1/completions", json=body, headers={"Host": host}).status_code == 400
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "LOCALHOST", f"[::1]:{port}"):
        assert httpx.post(tiny.url + "/v1/completions", json=body, headers={"Host": host}).status_code == 200


def test_api_key_is_required_when_set(codegeex_tokenizer):
    running = start_server(ServeConfig(port=0, api_keys=("s3cret",)), engine=tiny_engine(tokenizer=codegeex_tokenizer))
    try:
        body = {"prompt": "x", "max_tokens": 1}
        for headers in ({}, {"Authorization": "Bearer nope"}, {"x-api-key": "s3cre"}):
            r = httpx.post(running.url + "/v1/completions", json=body, headers=headers)
            assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
        assert httpx.post(running.url + "/v1/completions", json=body,
                          headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert httpx.post(running.url + "/v1/completions", json=body, headers={"x-api-key": "s3cret"}).status_code == 200
        assert httpx.get(running.url + "/health").status_code == 200  # liveness stays open
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=running.url + "/v1", api_key="wrong").completions.create(model="tiny", prompt="x")
        assert metric(running.url, "geex_requests_rejected_total", reason="auth") >= 4
    finally:
        running.stop()


def test_full_queue_answers_429_with_retry_after(codegeex_tokenizer):
    gate = threading.Event()  # the model makes no step until the test opens it
    running = start_server(ServeConfig(port=0), engine=tiny_engine(tokenizer=codegeex_tokenizer, slots=1, max_queue=1,
                                                                   gate=gate))
    try:
        with httpx.Client(timeout=60) as c:
            body = {"prompt": "x", "max_tokens": 3}
            first = c.build_request("POST", running.url + "/v1/completions", json=body)
            second = c.build_request("POST", running.url + "/v1/completions", json=body)
            with ThreadPoolExecutor(2) as pool:
                a = pool.submit(c.send, first)
                _wait(lambda: running.client.scheduler.stats()["running"] == 1)
                b = pool.submit(c.send, second)
                _wait(lambda: running.client.scheduler.stats()["waiting"] == 1)
                r = httpx.post(running.url + "/v1/completions", json={"prompt": "y", "max_tokens": 1})
                assert r.status_code == 429 and r.headers["retry-after"] == "1"
                assert r.json()["error"]["code"] == "queue_full"
                gate.set()
                assert a.result().status_code == b.result().status_code == 200
        assert metric(running.url, "geex_requests_rejected_total", reason="queue_full") == 1
    finally:
        gate.set()
        running.stop()


def _wait(cond, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def test_tokenize_detokenize_and_version(tiny, codegeex_tokenizer):
    """Both shapes clients use (vLLM's ``prompt``, llama.cpp's ``content``), against the tokenizer
    itself; ids outside the vocabulary are refused before decoding."""
    import geex

    text = "def add(a, b):\n    return a + b\n"
    want = codegeex_tokenizer.encode_batch([text])[0]
    for key in ("prompt", "content"):
        r = httpx.post(tiny.url + "/tokenize", json={key: text}).json()
        assert r == {"tokens": want, "count": len(want), "max_model_len": 2048}
    back = httpx.post(tiny.url + "/detokenize", json={"tokens": want}).json()
    assert back == {"prompt": text, "content": text}
    bad = httpx.post(tiny.url + "/detokenize", json={"tokens": [-1]})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "tokens"
    assert httpx.post(tiny.url + "/tokenize", json={}).status_code == 400
    assert httpx.post(tiny.url + "/tokenize", json={"prompt": "x", "model": "gpt-9"}).status_code == 404
    assert httpx.get(tiny.url + "/version").json() == {"version": geex.__version__}
