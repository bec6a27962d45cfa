"""A server told to stop ends its streams with an error frame after the grace period, even when the
engine is stuck in a step and never gets to the cancellation (the stream must not be cut mid-air
by the HTTP server's own deadline)."""

from __future__ import annotations

import json
import signal
import threading
import time

from geex.serve.config import ServeConfig
from tests.serve.conftest import StreamReader, start_server, tiny_engine


def test_a_stream_ends_with_the_shutdown_frame_while_the_engine_is_stuck(codegeex_tokenizer):
    gate = threading.Event()
    gate.set()
    running = start_server(ServeConfig(port=0), engine=tiny_engine(tokenizer=codegeex_tokenizer, slots=1, gate=gate))
    stream = StreamReader(running.url, {"prompt": "def f(x):", "max_tokens": 1500, "ignore_eos": True}, timeout=60)
    try:
        assert stream.first.wait(60)
        gate.clear()  # the engine's next step waits (up to 60 s): it cannot act on a cancellation
        stopped_at = time.monotonic()
        running.server.handle_exit(signal.SIGTERM, None)
        stream.thread.join(30)
        assert not stream.thread.is_alive()
        last = json.loads(stream.frames[-1][1])
        assert last["error"]["code"] == "server_shutdown", last
        assert stream.frames[-1][0] - stopped_at < 2.0 + 1.0  # the grace period (2 s in tests), not the stuck step
    finally:
        gate.set()
        running.thread.join(30)
