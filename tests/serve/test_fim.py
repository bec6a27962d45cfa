"""Completion at the cursor over loopback: OpenAI's ``suffix`` through the ``openai`` package on a
model with Qwen's FIM tokens, the prefix-only fallback on the default model (no FIM tokens), the
line rules, and what ``/v1/models`` says about FIM.

The oracle for the FIM prompt is ``geex.assist.fim.render`` (checked against each family's reference
in tests/assist) and for the text ``geex.engine.generate`` on that prompt: the server must give
exactly the greedy continuation of the rendered prompt, cut by the rules."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from geex.assist.fim import detect, render
from geex.engine.generate import generate

PREFIX = "def add(a, b):\n    "
SUFFIX = "\n\nprint(add(1, 2))\n"


def test_suffix_through_the_openai_client_is_the_rendered_fim_prompt(qwen_like):
    server, model, tok = qwen_like
    api = openai.OpenAI(base_url=server.url + "/v1", api_key="none")
    got = api.completions.create(model="qwen-like", prompt=PREFIX, suffix=SUFFIX, max_tokens=12, temperature=0)
    fim = detect(tok)
    ids = render(tok, fim, PREFIX, SUFFIX).ids
    assert got.usage.prompt_tokens == len(ids)
    want = generate(model, tok, [ids], 12)[0]
    # the oracle stops at the tokenizer's EOS only; the server also at the FIM end tokens
    tokens = want.token_ids
    cut = next((k for k, t in enumerate(tokens) if t in fim.stop_ids), len(tokens))
    assert got.choices[0].text == tok.decode(tokens[:cut])
    assert got.model_extra["geex"]["fim_mode"] == "psm"
    assert got.model_extra["geex"]["truncated"] == {"prefix_tokens_dropped": 0, "suffix_tokens_dropped": 0,
                                                    "files_dropped": []}
    # streamed: the same text
    chunks = api.completions.create(model="qwen-like", prompt=PREFIX, suffix=SUFFIX, max_tokens=12, temperature=0,
                                    stream=True)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == got.choices[0].text


def test_models_say_what_fim_they_have(qwen_like):
    server, _, tok = qwen_like
    meta = httpx.get(server.url + "/v1/models").json()["data"][0]["meta"]["fim"]
    assert meta["supported"] and meta["family"] == "qwen2.5-coder" and meta["format"] == "psm"
    assert meta["tokens"]["pre"] == tok.token_id("<|fim_prefix|>")
    assert meta["tokens"]["sep"] == tok.token_id("<|file_sep|>")


def test_bad_cursor_fields_are_400_or_422(qwen_like):
    server, _, _ = qwen_like
    for body, status in [({"prompt": [1, 2, 3], "suffix": "x"}, 400), ({"prompt": "x", "mode": "word"}, 422),
                         ({"prompt": "x", "suffix": "y", "language": "cobol"}, 400),
                         ({"prompt": "x", "n_indent": -1}, 422)]:
        r = httpx.post(server.url + "/v1/completions", json={"max_tokens": 2, **body})
        assert r.status_code == status, body
        assert "error" in r.json()


def test_without_fim_tokens_the_prefix_is_completed_up_to_the_suffix(default_server):
    """SmolLM2 has no FIM tokens: the prompt is the prefix alone, and the completion ends where the
    model starts writing the suffix's first line (left alone, it writes that very line)."""
    server, loaded = default_server
    prefix, line = "def is_even(n):\n    ", "print(is_even(10))  # True"
    r = httpx.post(server.url + "/v1/completions", json={
        "prompt": prefix, "suffix": f"\n\n{line}\n", "max_tokens": 40, "temperature": 0}, timeout=120).json()
    assert r["geex"]["fim_mode"] == "prefix_only"
    plain = generate(loaded.model, loaded.tokenizer, [prefix], 40)[0].text
    assert line in plain  # the model does write the suffix's line ...
    want = plain[:plain.index(line)].rstrip()
    assert r["choices"][0]["text"] == want  # ... and the completion stops before it
    assert r["geex"]["finish_detail"] == "suffix_overlap" and r["choices"][0]["finish_reason"] == "stop"
    meta = httpx.get(server.url + "/v1/models").json()["data"][0]["meta"]["fim"]
    assert meta == {"supported": False, "format": None, "tokens": None, "fallback": "prefix_only"}


@pytest.mark.parametrize("mode,detail", [("line", "line"), ("block", "indent")])
def test_line_and_block_modes_on_the_default_model(default_server, mode, detail):
    server, loaded = default_server
    prompt = "def fib(n):\n    "
    plain = generate(loaded.model, loaded.tokenizer, [prompt], 60)[0].text
    r = httpx.post(server.url + "/v1/completions", json={
        "prompt": prompt, "max_tokens": 60, "temperature": 0, "mode": mode}, timeout=120).json()
    text = r["choices"][0]["text"]
    if mode == "line":
        assert text == plain[:plain.index("\n")]
    else:  # the function's body: up to the first line back at column 0
        lines = plain.split("\n")
        end = next(k for k, l in enumerate(lines) if k > 0 and l.strip() and not l.startswith("    "))
        assert text == "\n".join(lines[:end]).rstrip()
    assert r["geex"]["finish_detail"] == detail


def test_deepseek_beta_completions_is_the_same_route(qwen_like):
    """Continue's ``deepseek`` provider posts OpenAI completions with ``suffix`` to /beta/completions."""
    server, _, _ = qwen_like
    body = {"model": "qwen-like", "prompt": PREFIX, "suffix": SUFFIX, "max_tokens": 8, "temperature": 0}
    a = httpx.post(server.url + "/beta/completions", json=body, timeout=60).json()
    b = httpx.post(server.url + "/v1/completions", json=body, timeout=60).json()
    assert a["choices"][0]["text"] == b["choices"][0]["text"] and a["geex"]["fim_mode"] == "psm"


def test_mistral_fim_route_streams_delta_content(qwen_like):
    """Continue's ``mistral`` provider (OpenAI.ts ``_streamFim``): ``POST /v1/fim/completions`` with
    ``prompt`` and ``suffix``, reading ``choices[0].delta.content``; the same text as ``suffix`` on
    /v1/completions."""
    server, _, _ = qwen_like
    body = {"model": "qwen-like", "prompt": PREFIX, "suffix": SUFFIX, "max_tokens": 8, "temperature": 0,
            "top_p": 1, "stop": [], "stream": True}
    text = ""
    with httpx.stream("POST", server.url + "/v1/fim/completions", json=body, timeout=60) as r:
        for line in r.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                for choice in json.loads(line[6:])["choices"]:
                    text += choice["delta"].get("content") or ""
    plain = httpx.post(server.url + "/v1/completions", json={**body, "stream": False}, timeout=60).json()
    assert text == plain["choices"][0]["text"]
    whole = httpx.post(server.url + "/v1/fim/completions", json={**body, "stream": False}, timeout=60).json()
    assert whole["choices"][0]["message"]["content"] == text and whole["geex"]["fim_mode"] == "psm"
