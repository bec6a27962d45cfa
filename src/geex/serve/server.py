"""Listening: the socket (bound before uvicorn starts, so ``--port 0`` can print the port it got),
the loopback rule, uvicorn, and a shutdown that lets in-flight requests finish for a few seconds
and then cancels the rest."""

from __future__ import annotations

import logging
import socket
import sys
import threading
import time
from dataclasses import dataclass

import uvicorn

from geex.errors import UserError
from geex.serve.app import create_app
from geex.serve.config import ServeConfig, is_loopback


def check_exposure(config: ServeConfig) -> None:
    if not is_loopback(config.host) and not config.api_keys and not config.insecure:
        raise UserError(f"refusing to listen on {config.host} without an API key: anyone who can reach it could use "
                        "the model. Pass `api_key` (or set GEEX_API_KEY), or `insecure` to do it anyway")


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as e:
        sock.close()
        why = "is in use (pick another with `port`, or `port`=0 for a free one)" if e.errno == 98 else e.strerror
        raise UserError(f"cannot listen on {host}:{port}: {why}") from None
    sock.listen(512)
    sock.set_inheritable(True)
    return sock


def _uvicorn(app, config: ServeConfig) -> uvicorn.Server:
    # proxy_headers off: uvicorn would trust X-Forwarded-For from 127.0.0.1, which on a loopback
    # server is every client (the access log's address would be theirs to choose);
    # limit_concurrency: connections beyond it get 503 instead of piling up (idle or slow clients)
    return uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, proxy_headers=False,
                                         limit_concurrency=config.max_connections,
                                         timeout_graceful_shutdown=config.shutdown_grace_s, lifespan="on"))


@dataclass
class Background:
    """A server running in a thread of this process (tests, benchmarks)."""

    url: str
    app: object
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def client(self):
        """The engine client once the model is loaded (None before)."""
        return self.app.state.geex.client

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def start_in_thread(config: ServeConfig, engine=None, timeout: float = 300) -> Background:
    """``create_app(config, engine)`` under uvicorn in a daemon thread, listening once this returns
    (the model may still be loading: ``/health`` says when it is ready)."""
    sock = bind(config.host, config.port)
    host, port = sock.getsockname()[:2]
    app = create_app(config, engine=engine)
    server = _uvicorn(app, config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    return Background(f"http://{f'[{host}]' if ':' in host else host}:{port}", app, server, thread)


def serve(config: ServeConfig) -> int:
    check_exposure(config)
    sock = bind(config.host, config.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    print(f"geex serve: listening on http://{shown}:{port} (model loading; /health says when it is ready)",
          flush=True)
    app = create_app(config)
    server = _uvicorn(app, config)
    failed: list[str] = []

    def stop(message: str) -> None:  # nothing to serve: the command fails with the loader's message
        failed.append(message)
        server.should_exit = True

    app.state.geex.on_load_error = stop
    server.run(sockets=[sock])
    if failed:
        raise UserError(f"cannot serve {config.model or 'the default model'}: {failed[0]}")
    return 0
