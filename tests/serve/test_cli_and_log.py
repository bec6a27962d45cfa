"""``geex serve``'s mistakes end in one line and exit status 2; the access log has one JSON line a
request with counts and timings but never the prompt, unless asked; unknown body fields are ignored."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time

import httpx
import pytest

from geex.serve.config import ServeConfig
from tests.serve.conftest import start_server, tiny_engine


@pytest.mark.parametrize("args, says", [
    (["--host", "0.0.0.0"], "refusing to listen on 0.0.0.0 without an API key"),
    (["--port", "99999"], "a port is 0 (any free one) to 65535"),
    (["--model", "/nonexistent/model.gguf", "--port", "0"], "cannot serve /nonexistent/model.gguf"),
    (["--device", "tpu"], "tpu"),
    (["--max-concurrency", "0"], "--max-concurrency"),
])
def test_serve_mistakes_are_one_line(args, says):
    r = subprocess.run([sys.executable, "-m", "geex", "serve", *args], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert says in r.stderr and "Traceback" not in r.stderr


def _access_lines(caplog) -> list[dict]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "geex.serve.access"]


@pytest.mark.parametrize("log_prompts", [False, True])
def test_access_log_has_counts_and_timings_never_the_prompt_unless_asked(codegeex_tokenizer, caplog, log_prompts):
    secret = "def very_secret_function_name_4711():"
    running = start_server(ServeConfig(port=0, log_prompts=log_prompts), engine=tiny_engine(tokenizer=codegeex_tokenizer))
    try:
        with caplog.at_level(logging.INFO, logger="geex.serve.access"):
            r = httpx.post(running.url + "/v1/completions", headers={"X-Request-Id": "req-42"},
                           json={"prompt": secret, "max_tokens": 3, "an_unknown_field": {"x": 1}, "suffix": None})
            assert r.status_code == 200  # unknown fields are ignored
            streamed = httpx.post(running.url + "/v1/completions",
                                  json={"prompt": secret, "max_tokens": 2, "stream": True})
            assert streamed.text.rstrip().endswith("data: [DONE]")
            deadline = time.monotonic() + 10  # a stream's line is written once its response has ended
            while len(_access_lines(caplog)) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
        lines = _access_lines(caplog)
    finally:
        running.stop()
    mine = [line for line in lines if line["request_id"] == "req-42"]
    assert len(mine) == 1
    line = mine[0]
    assert line["status"] == 200 and line["path"] == "/v1/completions" and line["generated_tokens"] == 3
    assert line["prompt_tokens"] == len(codegeex_tokenizer.encode(secret)) and line["ttft_ms"] > 0
    text = "\n".join(json.dumps(x) for x in lines)
    assert ("very_secret_function_name_4711" in text) is log_prompts
    assert len(lines) == 2 and lines[1]["generated_tokens"] == 2  # the streamed one, logged when it ended
