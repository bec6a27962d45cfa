"""Servers for the tests: the real app under uvicorn on 127.0.0.1 (a free port), in a thread of the
test process, over a tiny model (fast) or the default model (what users run)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest
import torch

from geex.engine.scheduler import Scheduler
from geex.serve.config import ServeConfig
from geex.serve.engine_client import EngineClient
from geex.serve.metrics import Metrics
from geex.serve.server import Background, start_in_thread

Running = Background


def start_server(config: ServeConfig, engine: EngineClient | None = None, wait_ready: bool = True) -> Running:
    """The app on 127.0.0.1 (a free port) in a thread; with ``wait_ready``, once /health says 200."""
    running = start_in_thread(replace(config, port=0, shutdown_grace_s=2), engine)
    deadline = time.monotonic() + 300
    if wait_ready:
        while httpx.get(running.url + "/health").status_code != 200:
            assert time.monotonic() < deadline, "model did not load"
            time.sleep(0.1)
    return running


class StreamReader:
    """A streamed completion read in a thread of its own: every ``data:`` frame with the time it came
    (``first`` is set at the first one)."""

    def __init__(self, url: str, body: dict, timeout: float) -> None:
        self.frames: list[tuple[float, str]] = []
        self.first = threading.Event()
        self.thread = threading.Thread(target=self._read, args=(url, {**body, "stream": True}, timeout))
        self.thread.start()

    def _read(self, url: str, body: dict, timeout: float) -> None:
        with httpx.stream("POST", url + "/v1/completions", json=body, timeout=timeout) as resp:
            for line in resp.iter_lines():
                if line.startswith("data: "):
                    self.frames.append((time.monotonic(), line[6:]))
                    self.first.set()


def tiny_engine(slots: int = 2, ctx: int = 2048, max_queue: int | None = None, prefill_chunk: int = 256,
                tokenizer=None, gate: threading.Event | None = None) -> EngineClient:
    """A tiny random CodeGeeX behind a scheduler, with the real CodeGeeX tokenizer. With ``gate``,
    every model step waits until the gate is set (the test decides when work progresses)."""
    from geex.models.codegeex import CodeGeeX, get_config

    model = CodeGeeX(get_config("codegeex-tiny", padded_vocab_size=50432, vocab_size=50400, n_positions=ctx))
    model.init_weights(torch.Generator().manual_seed(0))
    model.eval()
    if gate is not None:
        model.register_forward_pre_hook(lambda *_: gate.wait(60) and None)
    sched = Scheduler(model, tokenizer, slots=slots, ctx=ctx, max_queue=max_queue, prefill_chunk=prefill_chunk)
    meta = {"context_length": ctx, "max_concurrency": slots, "aliases": ["tiny"]}
    return EngineClient("codegeex-tiny", sched, tokenizer, Metrics("codegeex-tiny"), meta)


@pytest.fixture(scope="session")
def default_model(default_model_fp32):
    """The embedded default model as ``geex generate`` runs it: a copy of the session's one load
    (``registry.load(None)`` is that fp32 load), so a test may change its copy."""
    import copy

    loaded = copy.copy(default_model_fp32)
    loaded.model = copy.deepcopy(default_model_fp32.model)
    return loaded


def default_engine(loaded, slots: int = 2) -> EngineClient:
    sched = Scheduler(loaded.model, loaded.tokenizer, slots=slots, ctx=2048)
    meta = {"context_length": 2048, "max_concurrency": slots, "aliases": []}
    return EngineClient(loaded.name, sched, loaded.tokenizer, Metrics(loaded.name), meta, loaded.chat_template)


@pytest.fixture(scope="module")
def tiny(codegeex_tokenizer) -> Iterator[Running]:
    engine = tiny_engine(tokenizer=codegeex_tokenizer, slots=2, max_queue=4, prefill_chunk=16)
    running = start_server(ServeConfig(port=0, max_concurrency=2), engine=engine)
    yield running
    running.stop()


def metric(url: str, name: str, **labels) -> float:
    """A sample's value from /metrics (0 if absent)."""
    text = httpx.get(url + "/metrics").text
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            head, _, value = line.rpartition(" ")
            if all(f'{k}="{v}"' in head for k, v in labels.items()):
                return float(value)
    return 0.0


def metric_sum(url: str, name: str) -> float:
    """The sum of a metric's samples over all label values."""
    total = 0.0
    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rpartition(" ")[2])
    return total


@pytest.fixture(scope="module")
def qwen_like(dataset_dir):
    """A tiny random Llama with a tokenizer that has Qwen2.5-Coder's FIM tokens."""
    from geex.models.llama import Llama, get_config
    from tests.assist.fim_tokenizers import QWEN, bpe_tokenizer, humaneval_code

    tok = bpe_tokenizer(humaneval_code(dataset_dir), QWEN)
    model = Llama(get_config("llama-tiny", vocab_size=640, n_positions=1024))
    model.init_weights(torch.Generator().manual_seed(3))
    model.eval()
    sched = Scheduler(model, tok, slots=2, ctx=1024)
    client = EngineClient("qwen-like", sched, tok, Metrics("qwen-like"), {"context_length": 1024})
    server = start_server(ServeConfig(), client)
    yield server, model, tok
    server.stop()
    sched.close()


@pytest.fixture(scope="module")
def default_server(default_model):
    """The default model (no FIM tokens, a chat template) behind a server."""
    client = default_engine(default_model)
    server = start_server(ServeConfig(), client)
    yield server, default_model
    server.stop()
    client.scheduler.close()
