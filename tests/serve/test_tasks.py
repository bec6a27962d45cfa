"""The task routes (/v1/geex/generate, translate, explain) and CodeGeeX v1's hosted-API routes, over
loopback: base-model prompts on a tiny CodeGeeX (the text is the greedy continuation of
``geex.assist.tasks``' prompt, ended by its rule), chat prompts on the default model, v1's shapes."""

from __future__ import annotations

import json

import httpx
import pytest

from geex.assist import tasks
from geex.engine.generate import generate
from geex.engine.streaming import HeldText
from geex.languages import get_language
from geex.serve.config import ServeConfig
from tests.serve.conftest import start_server, tiny_engine

CODE = "def add(a, b):\n    return a + b\n"


@pytest.fixture(scope="module")
def tagged(codegeex_tokenizer):
    """A tiny CodeGeeX that, like CodeGeeX-13B, was trained with language tags (no chat template)."""
    engine = tiny_engine(tokenizer=codegeex_tokenizer, slots=2)
    engine.language_tags = True
    running = start_server(ServeConfig(port=0), engine=engine)
    yield running, engine
    running.stop()


def _oracle(engine, prompt: tasks.TaskPrompt, max_tokens: int) -> str:
    """Greedy text of the prompt, ended by the task's rules, as the task takes the answer out."""
    out = generate(engine.scheduler.model, engine.tokenizer, [prompt.text], max_tokens, ignore_eos=False)[0]
    held = HeldText(engine.tokenizer, rules=prompt.rules)
    for t in out.token_ids:
        held.add(t)
        if held.stopped:
            break
    return prompt.finish(held.text if held.stopped else held.text + held.finish())


def test_translate_on_a_base_model_is_codegeexs_prompt_continued(tagged):
    server, engine = tagged
    body = {"code": CODE, "src_lang": "python", "dst_lang": "js", "max_tokens": 24, "temperature": 0,
            "return_prompt": True}
    r = httpx.post(server.url + "/v1/geex/translate", json=body, timeout=60).json()
    prompt = tasks.translate(CODE, get_language("python"), get_language("js"), chat=False)
    assert r["prompt"] == prompt.text == "code translation\nPython:\n" + CODE.rstrip() + "\nJavaScript:\n"
    assert r["choices"][0]["text"] == _oracle(engine, prompt, 24)


def test_generate_streams_and_ends_with_the_result(tagged):
    server, engine = tagged
    body = {"description": "Add two numbers.", "language": "cpp", "max_tokens": 16, "temperature": 0, "stream": True}
    frames = []
    with httpx.stream("POST", server.url + "/v1/geex/generate", json=body, timeout=60) as r:
        frames = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert frames[-1] == "[DONE]"
    chunks = [json.loads(f) for f in frames[:-1]]
    last = chunks[-1]["choices"][0]
    prompt = tasks.generate("Add two numbers.", get_language("cpp"), chat=False)
    assert prompt.text == "// language: C++\n// Add two numbers.\n"
    assert last["result"] == _oracle(engine, prompt, 16)
    assert "".join(c["choices"][0]["text"] for c in chunks).rstrip() == last["result"]


def test_explain_on_the_chat_model(default_server):
    server, _ = default_server
    r = httpx.post(server.url + "/v1/geex/explain", json={"code": CODE, "language": "python", "style": "summary",
                                                          "max_tokens": 24, "temperature": 0, "return_prompt": True},
                   timeout=120).json()
    assert r["prompt"][0]["role"] == "user" and CODE.rstrip() in r["prompt"][0]["content"]
    assert r["choices"][0]["text"].strip() and r["usage"]["completion_tokens"] <= 24


@pytest.mark.parametrize("body,param", [({"code": CODE, "src_lang": "python", "dst_lang": "cobol"}, "dst_lang"),
                                        ({"code": CODE, "language": "python", "style": "haiku"}, None)])
def test_task_errors(tagged, body, param):
    server, _ = tagged
    route = "/v1/geex/translate" if "src_lang" in body else "/v1/geex/explain"
    r = httpx.post(server.url + route, json=body)
    assert r.status_code == (400 if param else 422) and "error" in r.json()


def test_codegeex_v1_generate_and_translate(tagged):
    """The CodeGeeX v1 extension's bodies (src/utils/getCodeCompletions.ts, getCodeTranslation.ts):
    credentials in the body, ``{status: 0, result: {output: {code: [...]}, process_time}}`` back."""
    server, engine = tagged
    body = {"prompt": "def add(a, b):\n", "n": 2, "lang": "Python", "apikey": "k", "apisecret": "s",
            "temperature": 0, "top_p": 0.95, "top_k": 0}
    r = httpx.post(server.url + "/api/v2/multilingual_code_generate", json=body, timeout=60).json()
    assert r["status"] == 0 and isinstance(r["result"]["process_time"], float)
    codes = r["result"]["output"]["code"]
    assert len(codes) == 2 and codes[0] == codes[1]  # greedy: the same twice
    # the language tag goes first; "line" mode: one line
    out = generate(engine.scheduler.model, engine.tokenizer, ["# language: Python\ndef add(a, b):\n"], 64)[0].text
    stripped = out.lstrip()
    want = out[:len(out) - len(stripped)] + stripped.split("\n")[0] if "\n" in stripped else out
    assert codes[0] == want.rstrip()
    t = httpx.post(server.url + "/api/v2/multilingual_code_translate", json={
        "prompt": CODE, "n": 1, "src_lang": "Python", "dst_lang": "JavaScript", "stop": [], "userid": "u",
        "apikey": "k", "apisecret": "s", "temperature": 0, "top_p": 0.95, "top_k": 0}, timeout=60).json()
    assert t["status"] == 0 and len(t["result"]["output"]["code"]) == 1
