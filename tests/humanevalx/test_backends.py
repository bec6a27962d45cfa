"""Completion backends: ``openai`` against a local HTTP server run by the test, ``hf`` and ``native``
against a tiny random Llama written by ``transformers`` (expected texts from ``transformers`` itself)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest
import torch

from geex.engine.sampling import SamplingParams
from geex.errors import UserError
from geex.humanevalx import backends
from geex.humanevalx.backends import HFBackend, NativeBackend, OpenAIBackend, make_backend
from geex.languages import get_language
from geex.languages.cleanup import is_finished

GREEDY = SamplingParams(greedy=True)


# -- a local OpenAI-compatible server --------------------------------------------------------------

class FakeServer:
    """POST /v1/completions. ``respond(body, n)`` (n: this request's number, from 0) returns
    ``(status, payload, delay_s)``: payload bytes, or a dict/list sent as JSON, or "drop" (close
    the connection without answering) or "truncate" (announce more bytes than are sent)."""

    def __init__(self, respond):
        self.respond = respond
        self.requests: list[dict] = []  # {"path", "headers", "body"}
        self.lock = threading.Lock()
        self.in_flight = self.max_in_flight = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with server.lock:
                    n = len(server.requests)
                    server.requests.append({"path": self.path, "headers": dict(self.headers),
                                            "body": json.loads(raw)})
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    if self.path not in ("/v1/completions", "/v1/chat/completions"):
                        status, payload, delay = 404, b"not found", 0
                    else:
                        status, payload, delay = server.respond(json.loads(raw), n)
                    threading.Event().wait(delay)  # not time.sleep: the backend's is patched
                finally:
                    # answered from here on: a client that reads the answer may send its next request
                    # before this thread runs again, and that one must not count as a fifth at once
                    with server.lock:
                        server.in_flight -= 1
                if payload == "drop":
                    self.close_connection = True
                    return
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data) + (100 if payload == "truncate" else 0)))
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()
                if payload == "truncate":
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def bodies(self) -> list[dict]:
        return [r["body"] for r in self.requests]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    servers: list[FakeServer] = []

    def start(respond) -> FakeServer:
        servers.append(FakeServer(respond))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


@pytest.fixture
def sleeps(monkeypatch) -> list[float]:
    """The backend's back-off waits, recorded instead of slept."""
    waited: list[float] = []
    monkeypatch.setattr(backends, "time", SimpleNamespace(sleep=waited.append))
    return waited


def ok(text: str, finish: str = "length") -> dict:
    return {"id": "cmpl-1", "object": "text_completion", "choices": [{"index": 0, "text": text, "finish_reason": finish}]}


def echo(body, n):
    return 200, ok(f"<{body['prompt']}|{body['seed']}>"), 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_openai_request_body_and_headers(serve, sleeps):
    server = serve(echo)
    out = OpenAIBackend("fake-model", server.url + "/", api_key="sk-test", concurrency=1).complete(
        ["def f():\n"], get_language("python"), GREEDY, 16, 7)
    assert [(c.text, c.finish_reason) for c in out] == [("<def f():\n|7>", "length")]
    (req,) = server.requests
    assert req["path"] == "/v1/completions"
    body = req["body"]
    assert body["model"] == "fake-model" and body["prompt"] == "def f():\n"
    assert body["max_tokens"] == 16 and body["seed"] == 7 and body["temperature"] == 0
    assert body.get("top_p", 1.0) == 1.0
    headers = {k.lower(): v for k, v in req["headers"].items()}
    assert headers["content-type"] == "application/json" and headers["authorization"] == "Bearer sk-test"

    OpenAIBackend("m2", server.url, concurrency=1).complete(
        ["x"], None, SamplingParams(temperature=0.7, top_p=0.9), 5, 3)
    req = server.requests[-1]
    assert req["body"]["model"] == "m2"
    assert req["body"]["temperature"] == pytest.approx(0.7) and req["body"]["top_p"] == pytest.approx(0.9)
    assert req["body"]["max_tokens"] == 5 and req["body"]["seed"] == 3
    assert "authorization" not in {k.lower() for k in req["headers"]}
    assert sleeps == []


def test_openai_chat_request_and_answer(serve, sleeps):
    """``chat`` posts the messages to ``/chat/completions`` and reads ``message.content``; a null
    content (an answer of tool calls only) is an empty answer; 503 is retried as for completions."""
    answers = iter([(503, {"error": "busy"}, 0),
                    (200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": "```py\nx\n```"},
                                        "finish_reason": "stop"}]}, 0),
                    (200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": None},
                                        "finish_reason": "length"}]}, 0)])
    server = serve(lambda body, n: next(answers))
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    backend = OpenAIBackend("m", server.url, concurrency=1)
    out = backend.chat([messages, messages], SamplingParams(temperature=0.5, top_p=0.9), 32, 4)
    assert [(c.text, c.finish_reason) for c in out] == [("```py\nx\n```", "stop"), ("", "length")]
    assert [r["path"] for r in server.requests] == ["/v1/chat/completions"] * 3 and sleeps == [0.5]
    body = server.requests[-1]["body"]
    assert body["messages"] == messages and "prompt" not in body
    assert (body["model"], body["max_tokens"], body["seed"], body["temperature"]) == ("m", 32, 4, 0.5)


def test_openai_missing_finish_reason_defaults(serve, sleeps):
    server = serve(lambda body, n: (200, {"choices": [{"text": "abc"}]}, 0))
    (c,) = OpenAIBackend("m", server.url).complete(["p"], None, GREEDY, 4, 0)
    assert c.text == "abc" and isinstance(c.finish_reason, str) and c.finish_reason


def test_openai_results_in_prompt_order_with_concurrency(serve, sleeps):
    prompts = [f"prompt {i}" for i in range(8)]
    # the first prompts are answered last
    server = serve(lambda body, n: (200, ok("#" + body["prompt"], "stop" if int(body["prompt"][-1]) % 2 else "length"),
                                    0.05 * (8 - int(body["prompt"][-1]))))
    out = OpenAIBackend("m", server.url, concurrency=4).complete(prompts, get_language("js"), GREEDY, 8, 1)
    assert [c.text for c in out] == ["#" + p for p in prompts]
    assert [c.finish_reason for c in out] == ["length", "stop"] * 4
    assert sorted(b["prompt"] for b in server.bodies()) == prompts
    assert 1 < server.max_in_flight <= 4
    assert {b["seed"] for b in server.bodies()} == {1}


def test_openai_concurrency_one_is_sequential(serve, sleeps):
    server = serve(lambda body, n: (200, ok(body["prompt"]), 0.02))
    out = OpenAIBackend("m", server.url, concurrency=1).complete(["a", "b", "c"], None, GREEDY, 8, 1)
    assert [c.text for c in out] == ["a", "b", "c"] and server.max_in_flight == 1


@pytest.mark.parametrize("status", [503, 500, 429])
def test_openai_retries_then_succeeds(serve, sleeps, status):
    server = serve(lambda body, n: (status, {"error": "busy"}, 0) if n < 2 else (200, ok("done"), 0))
    (c,) = OpenAIBackend("m", server.url, retries=4).complete(["p"], None, GREEDY, 8, 0)
    assert c.text == "done"
    assert len(server.requests) == 3
    assert len(sleeps) == 2 and 0 < sleeps[0] < sleeps[1]  # back-off grows


def test_openai_gives_up_after_the_retries(serve, sleeps):
    server = serve(lambda body, n: (502, b"bad gateway", 0))
    with pytest.raises(UserError) as err:
        OpenAIBackend("m", server.url, retries=2).complete(["p"], None, GREEDY, 8, 0)
    assert "502" in str(err.value)
    assert len(server.requests) == 3 and len(sleeps) == 2


@pytest.mark.parametrize("status", [400, 401, 404, 422])
def test_openai_client_error_is_not_retried(serve, sleeps, status):
    server = serve(lambda body, n: (status, {"error": {"message": "model 'm' does not exist"}}, 0))
    with pytest.raises(UserError) as err:
        OpenAIBackend("m", server.url, retries=4).complete(["p"], None, GREEDY, 8, 0)
    assert str(status) in str(err.value) and "does not exist" in str(err.value)
    assert len(server.requests) == 1 and sleeps == []


def test_openai_wrong_path_is_a_user_error(serve, sleeps):
    server = serve(echo)
    with pytest.raises(UserError):
        OpenAIBackend("m", server.url[: -len("/v1")], retries=3).complete(["p"], None, GREEDY, 8, 0)
    assert len(server.requests) == 1


def test_openai_unreachable_server(sleeps):
    backend = OpenAIBackend("m", f"http://127.0.0.1:{free_port()}/v1", retries=2, timeout_s=5)
    with pytest.raises(UserError):
        backend.complete(["p"], None, GREEDY, 8, 0)
    assert len(sleeps) == 2  # connection errors are retried


def test_openai_dropped_connection_is_retried(serve, sleeps):
    server = serve(lambda body, n: (200, "drop", 0) if n == 0 else (200, ok("after drop"), 0))
    (c,) = OpenAIBackend("m", server.url, retries=3).complete(["p"], None, GREEDY, 8, 0)
    assert c.text == "after drop" and len(server.requests) == 2


def test_openai_timeout_is_retried(serve, sleeps):
    server = serve(lambda body, n: (200, ok("late"), 1.0) if n == 0 else (200, ok("in time"), 0))
    (c,) = OpenAIBackend("m", server.url, retries=3, timeout_s=0.3).complete(["p"], None, GREEDY, 8, 0)
    assert c.text == "in time" and len(server.requests) == 2


def test_openai_truncated_response_is_retried(serve, sleeps):
    server = serve(lambda body, n: (200, "truncate", 0) if n == 0 else (200, ok("whole"), 0))
    (c,) = OpenAIBackend("m", server.url, retries=3).complete(["p"], None, GREEDY, 8, 0)
    assert c.text == "whole" and len(server.requests) == 2


@pytest.mark.parametrize("payload", [
    b"this is not json", b"{\"choices\": [", b"", {}, {"choices": []}, {"error": "overloaded"},
])
def test_openai_malformed_response_is_a_user_error(serve, sleeps, payload):
    server = serve(lambda body, n: (200, payload, 0))
    with pytest.raises(UserError):
        OpenAIBackend("m", server.url, retries=3).complete(["p"], None, GREEDY, 8, 0)


@pytest.mark.parametrize("payload", [[], None, "text", {"choices": [None]}, {"choices": ["text"]}])
def test_openai_non_object_response_is_a_user_error(serve, sleeps, payload):
    server = serve(lambda body, n: (200, json.dumps(payload).encode(), 0))
    with pytest.raises(UserError):
        OpenAIBackend("m", server.url, retries=3).complete(["p"], None, GREEDY, 8, 0)


def test_make_backend_errors():
    with pytest.raises(UserError):
        make_backend("openai", "m")  # no base URL
    with pytest.raises(UserError):
        make_backend("openai", None, base_url="http://127.0.0.1:1/v1")  # no model
    with pytest.raises(UserError):
        make_backend("hf", None)
    with pytest.raises(UserError):
        make_backend("vllm", "m")
    b = make_backend("openai", "m", base_url="http://127.0.0.1:1/v1", concurrency=3)
    assert isinstance(b, OpenAIBackend) and b.name == "openai" and b.model == "m" and b.concurrency == 3


def test_cli_generate_against_an_openai_server(serve, tmp_path, dataset_dir):
    import gzip

    def respond(body, n):
        name = "a" if "hasCloseElements" in body["prompt"] else "b"
        return 200, ok(f"  return '{name}';\n}}\nconsole.log({name});\n", "stop"), 0

    server = serve(respond)
    out = tmp_path / "samples.jsonl"
    env = {**os.environ, "GEEX_HUMANEVALX": str(dataset_dir), "OPENAI_API_KEY": "sk-env"}
    r = subprocess.run([sys.executable, "-m", "geex", "humanevalx", "generate", "--backend", "openai", "--base-url",
                        server.url, "--model", "fake", "--languages", "js", "--limit", "2", "--max-new-tokens", "16",
                        "--out", str(out), "-q"], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    with gzip.open(dataset_dir / "humaneval_js.jsonl.gz", "rt") as f:
        rows = {json.loads(x)["task_id"]: json.loads(x) for x in f if x.strip()}
    header, *records = [json.loads(x) for x in out.read_text().splitlines()]
    assert header["backend"] == "openai" and header["model"] == "fake"
    assert [x["task_id"] for x in records] == ["JavaScript/0", "JavaScript/1"]
    for rec in records:
        name = "a" if rec["task_id"] == "JavaScript/0" else "b"
        assert rec["prompt"] == "// language: JavaScript\n" + rows[rec["task_id"]]["prompt"]
        assert rec["raw"] == f"  return '{name}';\n}}\nconsole.log({name});\n"
        assert rec["completion"] == f"  return '{name}';\n}}"
        assert rec["finish_reason"] == "stop"
    bodies = sorted(server.bodies(), key=lambda b: b["prompt"])
    assert sorted(b["prompt"] for b in bodies) == sorted(x["prompt"] for x in records)
    for b in bodies:  # the CLI's defaults: sampling at temperature 0.2, top-p 0.95; one batch, seed 0
        assert b["model"] == "fake" and b["max_tokens"] == 16 and b["seed"] == 0
        assert b["temperature"] == pytest.approx(0.2) and b["top_p"] == pytest.approx(0.95)
    assert all(req["headers"].get("Authorization") == "Bearer sk-env" for req in server.requests)

    # an error status is a clean error, no traceback
    bad = serve(lambda body, n: (400, {"error": "no such model"}, 0))
    r = subprocess.run([sys.executable, "-m", "geex", "humanevalx", "generate", "--backend", "openai", "--base-url",
                        bad.url, "--model", "fake", "--languages", "js", "--limit", "1", "--out",
                        str(tmp_path / "bad.jsonl"), "-q"], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "400" in r.stderr


# -- hf and native on a tiny random Llama ----------------------------------------------------------

EOS, PAD = "<|endoftext|>", "<pad>"
CORPUS = [
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)\n",
    "function add(a, b) {\n  return a + b;\n}\nconst x = add(1, 2);\nconsole.log(x);\n",
    "class Point:\n    def __init__(self, x, y):\n        self.x = x\n        self.y = y\n",
    "int main() {\n    std::vector<int> v = {1, 2, 3};\n    return 0;\n}\n",
] * 4
SHORT = "def add(a, b):\n"
LONG = "class Point:\n    def __init__(self, x, y):\n        self.x = x\n        self.y = y\n\n    def norm(self):\n"
N_NEW = 14


def reference_new_tokens(lm, tok, prompt: str, n: int) -> list[int]:
    """transformers' greedy continuation of one prompt alone (no padding, no stopping rule)."""
    enc = tok(prompt, return_tensors="pt", return_token_type_ids=False)
    out = lm.generate(**enc, max_new_tokens=n, do_sample=False, pad_token_id=tok.pad_token_id)
    return out[0, enc.input_ids.shape[1]:].tolist()


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    """A random Llama + byte-level BPE saved by transformers; EOS made the greedy choice a few tokens
    into SHORT's continuation (its output row copies that of a token SHORT generates there), so a
    batch holds one row that ends early and one that runs to the limit."""
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    directory = tmp_path_factory.mktemp("tiny-llama")
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(CORPUS, trainers.BpeTrainer(
        vocab_size=300, special_tokens=[EOS, PAD], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=EOS, pad_token=PAD)
    cfg = transformers.LlamaConfig(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id, bos_token_id=None, tie_word_embeddings=False, initializer_range=0.3)
    torch.manual_seed(0)
    lm = transformers.LlamaForCausalLM(cfg).float().eval()
    with torch.no_grad():
        for pos in range(3, N_NEW - 2):
            new = reference_new_tokens(lm, tok, SHORT, N_NEW)
            saved = lm.lm_head.weight[tok.eos_token_id].clone()
            lm.lm_head.weight[tok.eos_token_id] = 1.2 * lm.lm_head.weight[new[pos]]
            short, long = reference_new_tokens(lm, tok, SHORT, N_NEW), reference_new_tokens(lm, tok, LONG, N_NEW)
            if tok.eos_token_id in short and tok.eos_token_id not in long:
                break
            lm.lm_head.weight[tok.eos_token_id] = saved
        else:
            pytest.fail("could not make the tiny model end SHORT with EOS")
    lm.save_pretrained(directory)
    tok.save_pretrained(directory)
    no_pad = tmp_path_factory.mktemp("tiny-llama-no-pad")  # the same model, a tokenizer without a pad token
    lm.save_pretrained(no_pad)
    transformers.PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token=EOS).save_pretrained(no_pad)
    return SimpleNamespace(dir=directory, no_pad=no_pad, lm=lm, tok=tok)


def expected_greedy(t, prompt: str, n: int, language=None, ids: list[int] | None = None) -> tuple[str, str]:
    """(text, finish) the backend must give, from transformers' unconstrained greedy tokens (``ids``, if
    the caller has them already): cut at EOS, or at the first token after which the language's stop
    rule holds."""
    if ids is None:
        ids = reference_new_tokens(t.lm, t.tok, prompt, n)
    for k in range(1, len(ids) + 1):
        if ids[k - 1] == t.tok.eos_token_id:
            return t.tok.decode(ids[:k - 1], skip_special_tokens=True), "eos"
        text = t.tok.decode(ids[:k], skip_special_tokens=True)
        if language is not None and is_finished(language, text):
            return text, "stop"
    return t.tok.decode(ids, skip_special_tokens=True), "length"


@pytest.fixture(scope="module")
def hf_backend(tiny_llama):
    return HFBackend(str(tiny_llama.dir))


def test_hf_greedy_batch_equals_each_prompt_alone(tiny_llama, hf_backend):
    assert len(tiny_llama.tok(SHORT).input_ids) < len(tiny_llama.tok(LONG).input_ids)  # left padding happens
    want = [expected_greedy(tiny_llama, p, N_NEW) for p in (SHORT, LONG)]
    assert want[0][1] == "eos" and want[1][1] == "length"  # the fixture's EOS: one row ends early
    for prompts, expected in (([SHORT, LONG], want), ([LONG, SHORT], want[::-1]), ([SHORT], want[:1])):
        out = hf_backend.complete(prompts, None, GREEDY, N_NEW, seed=0)
        assert [(c.text, c.finish_reason) for c in out] == expected
    alone = hf_backend.complete([LONG], None, GREEDY, N_NEW, seed=0)
    assert (alone[0].text, alone[0].finish_reason) == want[1]


def test_hf_without_a_pad_token_pads_with_eos(tiny_llama):
    backend = HFBackend(str(tiny_llama.no_pad))
    want = [expected_greedy(tiny_llama, p, N_NEW) for p in (SHORT, LONG)]
    out = backend.complete([SHORT, LONG], None, GREEDY, N_NEW, seed=0)
    assert [(c.text, c.finish_reason) for c in out] == want
    python = get_language("python")
    out = backend.complete(PY_PROMPTS, python, GREEDY, 24, seed=0)
    assert [(c.text, c.finish_reason) for c in out] == [expected_greedy(tiny_llama, p, 24, python) for p in PY_PROMPTS]


def test_hf_finish_reason_length_at_the_limit(tiny_llama, hf_backend):
    (c,) = hf_backend.complete([LONG], None, GREEDY, 3, seed=0)
    ids = reference_new_tokens(tiny_llama.lm, tiny_llama.tok, LONG, 3)
    assert c.finish_reason == "length" and c.text == tiny_llama.tok.decode(ids, skip_special_tokens=True)


PY_PROMPTS = [SHORT, LONG, "def f(x):\n    return x\n", "x = 1\n", "    if n < 2:\n", "def fibonacci(n):\n    "]


def test_hf_language_stop_rule(tiny_llama, hf_backend):
    python = get_language("python")
    seen = set()
    for n in (4, 24):
        out = hf_backend.complete(PY_PROMPTS, python, GREEDY, n, seed=0)
        # transformers' greedy tokens of each prompt, computed once for both checks below
        reference = [reference_new_tokens(tiny_llama.lm, tiny_llama.tok, p, n) for p in PY_PROMPTS]
        want = [expected_greedy(tiny_llama, p, n, python, ids) for p, ids in zip(PY_PROMPTS, reference)]
        assert [(c.text, c.finish_reason) for c in out] == want
        for c, ids in zip(out, reference):
            ended_by_eos = tiny_llama.tok.eos_token_id in ids
            if c.finish_reason == "length":
                assert not is_finished(python, c.text) and not ended_by_eos
            else:
                assert c.finish_reason == ("stop" if is_finished(python, c.text) else "eos")
                assert is_finished(python, c.text) or ended_by_eos
            seen.add((c.finish_reason, is_finished(python, c.text), ended_by_eos))
    assert ("stop", True, False) in seen  # the stop rule ended a row
    assert ("length", False, False) in seen and any(eos for _, _, eos in seen)


def test_hf_sampling_is_reproducible_with_a_seed(hf_backend):
    params = SamplingParams(temperature=1.0, top_p=0.95)
    a = hf_backend.complete([SHORT, LONG], None, params, 10, seed=3)
    b = hf_backend.complete([SHORT, LONG], None, params, 10, seed=3)
    assert [c.text for c in a] == [c.text for c in b]


def test_hf_missing_model_is_a_user_error(tmp_path):
    with pytest.raises(UserError):
        HFBackend(str(tmp_path / "nothing-here"))


def test_native_backend_matches_hf_greedy(tiny_llama, hf_backend):
    native = NativeBackend(str(tiny_llama.dir))
    assert native.name == "native" and native.model == str(tiny_llama.dir)
    want = [expected_greedy(tiny_llama, p, N_NEW)[0] for p in (SHORT, LONG)]
    out = native.complete([SHORT, LONG], None, GREEDY, N_NEW, seed=0)
    assert [c.text for c in out] == want == [c.text for c in hf_backend.complete([SHORT, LONG], None, GREEDY, N_NEW, 0)]
    assert out[1].finish_reason == "length" and out[0].finish_reason != "length"


def test_native_backend_with_speculation_matches_hf_greedy(tiny_llama):
    """--speculate changes the speed, not the samples: the same greedy text as transformers."""
    native = NativeBackend(str(tiny_llama.dir), speculate=4)
    want = [expected_greedy(tiny_llama, p, N_NEW)[0] for p in (SHORT, LONG)]
    assert [c.text for c in native.complete([SHORT, LONG], None, GREEDY, N_NEW, seed=0)] == want
    with pytest.raises(UserError, match="`speculate`"):
        make_backend("hf", "m", speculate=2)


def test_hf_chat_renders_the_template_and_decodes_to_the_end(tiny_llama, tmp_path):
    """``chat``: the conversation through the tokenizer's own chat template (the prompt written out by
    hand here), no stop rule: transformers' greedy continuation of that text, cut at EOS only."""
    import transformers

    template = ("{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</{{ m['role'] }}>\n{% endfor %}"
                "{% if add_generation_prompt %}<assistant>{% endif %}")
    directory = tmp_path / "with-template"
    tiny_llama.lm.save_pretrained(directory)
    tok = transformers.AutoTokenizer.from_pretrained(tiny_llama.dir)
    tok.chat_template = template
    tok.save_pretrained(directory)
    backend = HFBackend(str(directory))
    conversation = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "def fibonacci(n):"}]
    (c,) = backend.chat([conversation], GREEDY, 12, seed=0)
    by_hand = "<system>Be brief.</system>\n<user>def fibonacci(n):</user>\n<assistant>"
    assert (c.text, c.finish_reason) == expected_greedy(tiny_llama, by_hand, 12)
    with pytest.raises(UserError, match="no chat template"):
        HFBackend(str(tiny_llama.dir)).chat([conversation], GREEDY, 4, seed=0)
