"""Plain ASGI middleware (no response buffering, so streams stay streams):

- :class:`AccessLog`: a request id (the client's ``X-Request-Id`` echoed, else a new one) on every
  response, and one JSON line per request with its status, duration and, for generation endpoints,
  token counts and timings. Never the prompt's text unless ``--log-prompts``. An unexpected
  exception becomes an OpenAI-shaped 500 here (logged once; the connection stays usable).
- :class:`ApiKey`: ``Authorization: Bearer <key>`` or ``x-api-key: <key>`` (Continue and Anthropic
  clients send the latter), compared in constant time against SHA-256 digests (as vLLM does); the
  health check, the metrics (unless asked) and CORS preflights are open.
- :class:`BodyLimit`: 413 for a body over the limit, declared or streamed.
- :class:`LoopbackHost`: a loopback server refuses other host names (DNS rebinding).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Iterable

from geex.serve.errors import error_body

access_log = logging.getLogger("geex.serve.access")
log = logging.getLogger("geex.serve")


async def _send_error(send, status: int, message: str, code: str, extra_headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps(error_body(status, message, code=code)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *extra_headers]})
    await send({"type": "http.response.body", "body": body})


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


class AccessLog:
    def __init__(self, app, log_prompts: bool = False) -> None:
        self.app = app
        self.log_prompts = log_prompts

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        given = _header(scope, b"x-request-id")
        request_id = given if given and len(given) <= 128 and given.isprintable() else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        start = time.perf_counter()
        status = {"code": 0}

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as e:  # a bug, not the client's fault: logged once, answered in OpenAI's shape
            log.exception("unexpected error (request %s)", request_id)
            if status["code"]:
                raise  # the response has started: only closing the connection tells the client
            await _send_error(send_with_id, 500, f"internal error ({type(e).__name__})", "internal_error")
        finally:
            if scope.get("path") not in ("/health", "/metrics"):
                line = {"request_id": request_id, "method": scope.get("method"), "path": scope.get("path"),
                        "status": status["code"] or 499, "ms": round((time.perf_counter() - start) * 1000, 1),
                        "client": (scope.get("client") or ("?",))[0]}
                stats = state.get("geex")
                if stats:
                    line.update({k: v for k, v in stats.items() if k != "choices"})
                if self.log_prompts and state.get("prompt") is not None:
                    line["prompt"] = state["prompt"]
                access_log.info(json.dumps(line))


class ApiKey:
    OPEN = ("/health", "/", "/favicon.ico", "/playground/app.js", "/playground/style.css")  # the page asks for the key

    def __init__(self, app, keys: Iterable[str], metrics_auth: bool = False, on_reject=None) -> None:
        self.app = app
        self.digests = [hashlib.sha256(k.encode()).digest() for k in keys if k]
        self.open = set(self.OPEN) | (set() if metrics_auth else {"/metrics"})
        self.on_reject = on_reject

    def allowed(self, scope) -> bool:
        given = None
        auth = _header(scope, b"authorization")
        if auth and auth[:7].lower() == "bearer ":
            given = auth[7:].strip()
        given = given or _header(scope, b"x-api-key")
        if not given:
            return False
        digest = hashlib.sha256(given.encode("utf-8", "surrogateescape")).digest()
        ok = False
        for d in self.digests:  # every key compared: the time does not tell which matched
            ok |= hmac.compare_digest(digest, d)
        return ok

    async def __call__(self, scope, receive, send) -> None:
        if (scope["type"] != "http" or not self.digests or scope.get("path") in self.open
                or scope.get("method") == "OPTIONS" or self.allowed(scope)):
            return await self.app(scope, receive, send)
        if self.on_reject is not None:
            self.on_reject("auth")
        await _send_error(send, 401, "a valid API key is required (Authorization: Bearer <key> or x-api-key)",
                          "invalid_api_key", [(b"www-authenticate", b"Bearer")])


class BodyLimit:
    def __init__(self, app, limit: int, on_reject=None) -> None:
        self.app = app
        self.limit = limit
        self.on_reject = on_reject

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._reject(send)
        seen = 0
        over = started = False

        async def counted_receive():
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    over = True
                    raise _TooLarge()
            return message

        async def guarded_send(message) -> None:
            # the app answers a body it could not read (FastAPI: 400); the client gets the 413
            nonlocal started
            if over:
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await self._reject(send)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except _TooLarge:
            if not started:
                await self._reject(send)

    async def _reject(self, send) -> None:
        if self.on_reject is not None:
            self.on_reject("body_too_large")
        await _send_error(send, 413, f"the request body is larger than {self.limit} bytes", "body_too_large")


class _TooLarge(Exception):
    pass


class LoopbackHost:
    """A loopback server answers only loopback names in ``Host`` (DNS rebinding: a web page whose
    name resolves to 127.0.0.1 reaches the server as its own origin, where no CORS check applies);
    the refusal is an OpenAI-shaped 400."""

    NAMES = ("localhost", "127.0.0.1", "[::1]")

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        host = (_header(scope, b"host") or "").lower()
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        if name in self.NAMES:
            return await self.app(scope, receive, send)
        await _send_error(send, 400, "this server answers only loopback host names (localhost, 127.0.0.1, [::1])",
                          "invalid_host")
