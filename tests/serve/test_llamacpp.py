"""llama.cpp's native routes with the bodies its clients send (llama.vim's ``/infill``, Continue's
``llama.cpp`` provider on ``/completion``), read the way those clients read them."""

from __future__ import annotations

import json

import httpx

from geex.assist.fim import SourceFile, detect, render
from geex.engine.generate import generate

# llama.vim (autoload/llama.vim, s:fim_send): the body it posts to /infill
LLAMA_VIM = {
    "id_slot": 0, "input_prefix": "def add(a, b):\n", "input_suffix": "\n\nprint(add(1, 2))\n",
    "input_extra": [{"filename": "util.py", "text": "def sub(a, b):\n    return a - b\n"}],
    "prompt": "    ", "n_predict": 16, "stop": [], "n_indent": 4, "top_k": 40, "top_p": 0.90,
    "samplers": ["top_k", "top_p", "infill"], "stream": False, "cache_prompt": True, "t_max_prompt_ms": 500,
    "t_max_predict_ms": 1000,
    "response_fields": ["content", "timings/prompt_n", "timings/prompt_ms", "timings/prompt_per_token_ms",
                        "timings/prompt_per_second", "timings/predicted_n", "timings/predicted_ms",
                        "timings/predicted_per_token_ms", "timings/predicted_per_second", "truncated",
                        "tokens_cached"],
}


def test_llama_vim_infill(qwen_like):
    server, model, tok = qwen_like
    body = {**LLAMA_VIM, "top_k": 1}  # greedy, to compare with the oracle
    r = httpx.post(server.url + "/infill", json=body, timeout=60)
    assert r.status_code == 200
    got = r.json()
    assert set(got) == set(LLAMA_VIM["response_fields"])  # only what was asked, under its path
    assert isinstance(got["content"], str) and isinstance(got["truncated"], bool)
    fim = detect(tok)
    ids = render(tok, fim, LLAMA_VIM["input_prefix"], LLAMA_VIM["input_suffix"], middle="    ",
                 files=[SourceFile("util.py", LLAMA_VIM["input_extra"][0]["text"])]).ids
    assert got["timings/prompt_n"] <= len(ids) and got["tokens_cached"] >= len(ids)
    assert got["timings/predicted_n"] >= 1 and got["timings/prompt_ms"] > 0


def test_infill_greedy_text_is_the_rendered_prompts_continuation(qwen_like):
    server, model, tok = qwen_like
    prefix, suffix = "def add(a, b):\n    ", "\n    return c\n"
    r = httpx.post(server.url + "/infill", json={"input_prefix": prefix, "input_suffix": suffix, "n_predict": 10,
                                                 "temperature": 0}, timeout=60).json()
    fim = detect(tok)
    ids = render(tok, fim, prefix, suffix).ids
    tokens = generate(model, tok, [ids], 10)[0].token_ids
    cut = next((k for k, t in enumerate(tokens) if t in fim.stop_ids), len(tokens))
    assert r["content"] == tok.decode(tokens[:cut])
    assert r["tokens_evaluated"] == len(ids) and r["stop"] is True
    assert r["stop_type"] == ("eos" if cut < len(tokens) else "limit")
    assert r["geex"]["fim_mode"] == "psm" and r["timings"]["predicted_n"] in (cut, cut + 1)  # the end token too


def test_infill_on_a_model_without_fim_is_not_501(default_server):
    server, _ = default_server
    r = httpx.post(server.url + "/infill", json={"input_prefix": "def is_even(n):\n    ",
                                                 "input_suffix": "\n\nprint(is_even(10))  # True\n",
                                                 "n_predict": 40, "temperature": 0}, timeout=120)
    assert r.status_code == 200
    got = r.json()
    assert got["geex"]["fim_mode"] == "prefix_only" and "print(is_even(10))" not in got["content"]


def test_continue_llamacpp_provider_streams_content(qwen_like):
    """Continue (core/llm/llms/LlamaCpp.ts) posts a client-rendered prompt to /completion with
    stream: true and reads ``content`` from each SSE data line; the FIM tokens written out in the
    prompt are special tokens, so the text is what /infill gives for the same prefix and suffix."""
    server, model, tok = qwen_like
    prefix, suffix = "def add(a, b):\n    ", "\n    return c\n"
    prompt = f"<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>"
    body = {"prompt": prompt, "stream": True, "n_predict": 10, "stop": ["<|endoftext|>", "<|file_sep|>", "<|fim_pad|>"],
            "temperature": 0, "top_p": 1.0, "min_p": 0.05, "mirostat": 0}
    text, last = "", None
    with httpx.stream("POST", server.url + "/completion", json=body, timeout=60) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                value = json.loads(line[6:])
                text += value["content"]
                last = value
    assert last["stop"] is True and "timings" in last
    ids = tok.encode(prompt)
    assert ids == render(tok, detect(tok), prefix, suffix).ids  # written-out FIM tokens are special
    want = tok.decode(generate(model, tok, [ids], 10)[0].token_ids)
    for s in body["stop"]:
        want = want.split(s)[0]
    assert text == want


def test_n_predict_zero_warms_the_cache_and_returns_nothing(qwen_like):
    """llama.vim warms the server's cache with ``n_predict: 0`` requests; the next request with that
    prompt reads only what is new."""
    server, _, _ = qwen_like
    extra = [{"filename": "ring.py", "text": "def ring(n):\n    return list(range(n))\n" * 8}]
    warm = httpx.post(server.url + "/infill", json={"input_prefix": "x = 1\n", "input_suffix": "", "input_extra": extra,
                                                    "n_predict": 0}, timeout=60).json()
    assert warm["content"] == ""
    again = httpx.post(server.url + "/infill", json={"input_prefix": "x = 1\ny", "input_suffix": "", "input_extra": extra,
                                                     "n_predict": 4, "temperature": 0}, timeout=60).json()
    assert again["timings"]["cache_n"] > warm["tokens_evaluated"] // 2
