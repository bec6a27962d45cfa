"""``geex serve`` as users start it (the CLI, the embedded default model, a free port), through the
``openai`` package: /health says 503 while loading; greedy text equals ``geex generate``'s engine
output for the same prompt, streamed or not, alone and beside 8 concurrent requests of other
lengths; chat uses the model's template; ``kill -9`` under load, a restart, and it serves again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import openai
import pytest

from geex.engine.generate import generate
from tests.serve.conftest import StreamReader

PROMPT = "def is_palindrome(text: str) -> bool:\n"
OTHERS = ["# " + "x" * n + "\n" for n in (3, 40, 7, 90, 1, 25, 60, 12)]


@pytest.fixture(scope="module")
def reference(default_model):
    """The engine as ``geex generate`` runs it: the default model, prepared, greedy, batch 1."""
    model, tok = default_model.model, default_model.tokenizer
    text = generate(model, tok, [PROMPT], 24)[0].text
    chat_ids = tok.encode_chat(tok.apply_chat_template([{"role": "user", "content": "Say hello in Python."}]))
    chat = generate(model, tok, [chat_ids], 16)[0].text
    return {"text": text, "chat": chat}


def _start(*extra: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "geex", "serve", "--port", "0", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    assert "listening on http://127.0.0.1:" in line, line
    return proc, line.split("http://")[1].split()[0]


def _ready(url: str, timeout: float = 300) -> list[int]:
    seen = []
    deadline = time.monotonic() + timeout
    while True:
        try:
            r = httpx.get(f"http://{url}/health", timeout=5)
            seen.append(r.status_code)
            if r.status_code == 200:
                return seen
            assert r.json()["status"] == "loading"
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the server did not become ready"
        time.sleep(0.05)


def test_cli_server_matches_the_engine_and_survives_kill_9(reference):
    proc, url = _start("--max-concurrency", "4", "--max-queue", "16")
    try:
        seen = _ready(url)
        assert seen[0] == 503 and seen[-1] == 200  # loading, then ready
        oa = openai.OpenAI(base_url=f"http://{url}/v1", api_key="unused", timeout=300)
        body = dict(model="smollm2-135m-instruct", prompt=PROMPT, max_tokens=24, temperature=0)
        assert oa.completions.create(**body).choices[0].text == reference["text"]
        streamed = "".join(c.choices[0].text for c in oa.completions.create(**body, stream=True) if c.choices)
        assert streamed == reference["text"]
        chat = dict(model="smollm2-135m-instruct", messages=[{"role": "user", "content": "Say hello in Python."}],
                    max_tokens=16, temperature=0)
        assert oa.chat.completions.create(**chat).choices[0].message.content == reference["chat"]
        parts = [c.choices[0].delta.content or "" for c in oa.chat.completions.create(**chat, stream=True) if c.choices]
        assert "".join(parts) == reference["chat"]
        # beside 8 concurrent requests of other lengths (batched 4 at a time, the rest queued)
        results: dict[int, str] = {}

        def ask(i: int, prompt: str, n: int) -> None:
            results[i] = oa.completions.create(model="smollm2-135m-instruct", prompt=prompt, max_tokens=n,
                                               temperature=0).choices[0].text

        threads = [threading.Thread(target=ask, args=(i, p, 8 + i)) for i, p in enumerate(OTHERS)]
        threads.append(threading.Thread(target=ask, args=(99, PROMPT, 24)))
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        assert results[99] == reference["text"] and len(results) == 9
        # kill -9 in the middle of streams: a new server on the same machine serves again
        def stream_until_killed(prompt: str) -> None:
            try:
                for _ in oa.completions.create(model="smollm2-135m-instruct", prompt=prompt, max_tokens=200, stream=True):
                    pass
            except openai.APIConnectionError:
                pass  # the server was killed under it: expected

        streams = [threading.Thread(target=stream_until_killed, args=(p,)) for p in OTHERS[:3]]
        for t in streams:
            t.start()
        time.sleep(1.0)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    for t in streams:
        t.join(60)
    again, url2 = _start("--shutdown-grace", "3")
    try:
        _ready(url2)
        r = httpx.post(f"http://{url2}/v1/completions", json={"prompt": PROMPT, "max_tokens": 24, "temperature": 0},
                       timeout=300)
        assert r.status_code == 200 and r.json()["choices"][0]["text"] == reference["text"]
        # SIGTERM under a stream: it goes on through the grace period (--shutdown-grace 3), then
        # ends with an error frame, not silently in the middle
        stream = StreamReader(f"http://{url2}", {"prompt": PROMPT, "max_tokens": 4000, "ignore_eos": True},
                              timeout=120)
        assert stream.first.wait(120)
        stopped_at = time.monotonic()
        again.send_signal(signal.SIGTERM)
        stream.thread.join(60)
        assert not stream.thread.is_alive()
        assert stream.frames[-1][0] - stopped_at > 2.0  # still streaming seconds after the signal
        assert json.loads(stream.frames[-1][1])["error"]["code"] == "server_shutdown"
    finally:
        again.send_signal(signal.SIGTERM)  # a graceful stop (uvicorn exits by the signal it got, as is usual)
        assert again.wait(60) in (0, -signal.SIGTERM)
