"""The bridge between the scheduler's thread and the endpoints' asyncio loop.

A :class:`Generation` is the scheduler requests of one HTTP request (each prompt × ``n`` choices),
their events arriving through one asyncio queue in order. Leaving it any way but through the last
``finished`` event (the client went away, the task was cancelled, an exception) cancels every
request still in the scheduler: its slot is free within one step. Metrics are counted here, once,
for every endpoint.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

from starlette.requests import Request as HttpRequest

from geex.assist.fim import detect
from geex.engine.scheduler import Event, QueueFull, Request, Scheduler, SchedulerStopped
from geex.serve.errors import ApiError
from geex.serve.metrics import Metrics


class Mailbox:
    """Calls from the scheduler's thread into the event loop, delivered in batches: the first call
    of a batch wakes the loop (``call_soon_threadsafe``: a write to its self-pipe), the rest of the
    step's events ride along. At 64 streams a step makes 64 events, not 64 wake-ups."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._pending: list = []
        self._lock = threading.Lock()
        self._scheduled = False

    def post(self, fn, *args) -> None:
        with self._lock:
            self._pending.append((fn, args))
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self.loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop is closed (shutting down): the caller cancels its request
            with self._lock:
                self._scheduled = False
            raise

    def _drain(self) -> None:
        with self._lock:
            items, self._pending, self._scheduled = self._pending, [], False
        for fn, args in items:
            fn(*args)


@dataclass
class EngineClient:
    """A loaded model behind its scheduler, as the endpoints see it."""

    name: str
    scheduler: Scheduler
    tokenizer: object
    metrics: Metrics
    meta: dict = field(default_factory=dict)
    chat_template: str | None = None
    language_tags: bool = False  # trained with CodeGeeX's language tags (the prefix-only FIM prompt uses them)

    _mailboxes: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        # the model's fill-in-the-middle tokens (None: it has none; completions get the prefix-only prompt)
        self.fim = detect(self.tokenizer, getattr(self.tokenizer, "gguf_token_ids", None)) \
            if hasattr(self.tokenizer, "token_id") else None
        self.meta.setdefault("fim", self.fim.meta() if self.fim else
                             {"supported": False, "format": None, "tokens": None, "fallback": "prefix_only"})

    def mailbox(self, loop: asyncio.AbstractEventLoop) -> Mailbox:
        box = self._mailboxes.get(loop)
        if box is None:
            box = self._mailboxes[loop] = Mailbox(loop)
        return box

    def encode(self, text: str) -> list[int]:
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # JSON may carry a lone surrogate ("\udcff"): no text is made of it
            raise ApiError(400, "the prompt is not valid Unicode text (a lone surrogate)", param="prompt") from None
        return self.tokenizer.encode_batch([text])[0]

    def generation(self, requests: list[Request], endpoint: str, request_id: str | None = None) -> "Generation":
        """``request_id``: the HTTP request's (``X-Request-Id``): its sequences are named after it in
        ``/slots`` (``ID``, or ``ID/0``, ``ID/1`` ... for several), as in the access log."""
        if request_id:
            for i, req in enumerate(requests):
                req.id = request_id if len(requests) == 1 else f"{request_id}/{i}"
        return Generation(self, requests, endpoint)


class Generation:
    """Submit ``requests`` now (429 if the queue cannot take all of them, 400 if a prompt does not
    fit, 503 if the engine is gone); iterate ``(index, event)`` pairs until all are finished."""

    def __init__(self, client: EngineClient, requests: list[Request], endpoint: str) -> None:
        self.client = client
        self.requests = requests
        self.endpoint = endpoint
        self._queue: asyncio.Queue[tuple[int, Event]] = asyncio.Queue()
        self._open = set(range(len(requests)))
        self._last_token: dict[int, float] = {}
        box = client.mailbox(asyncio.get_running_loop())
        for i, req in enumerate(requests):  # counted on arrival: also what nobody reads any more
            req.emit = (lambda i: lambda ev: box.post(self._arrived, i, ev))(i)
        try:  # all of them or none: a refused request leaves nothing queued (and no cancellations counted)
            client.scheduler.submit_all(requests)
        except QueueFull as e:
            self._open.clear()
            client.metrics.reject("queue_full")
            raise ApiError(429, f"the server is busy: {e}; retry shortly", code="queue_full",
                           headers={"Retry-After": "1"}) from None
        except ValueError as e:
            self._open.clear()
            client.metrics.reject("too_long")
            raise ApiError(400, str(e), param="prompt", code="context_length_exceeded") from None
        except SchedulerStopped:
            self._open.clear()
            raise ApiError(503, "the engine is not running", code="engine_unavailable") from None
        m = client.metrics
        for req in requests:
            m.prompt_tokens.labels(m.model).inc(len(req.prompt))
            m.prompt_size.labels(m.model).observe(len(req.prompt))

    def _arrived(self, i: int, ev: Event) -> None:
        self._count(i, ev)
        self._queue.put_nowait((i, ev))

    def cancel(self) -> None:
        """Cancel whatever is still running (idempotent)."""
        for i in self._open:
            self.requests[i].cancel()
        if self._open:
            self.client.scheduler.wake()

    def end_now(self) -> None:
        """Cancel what still runs and end ``events`` at once, each open request with a "cancelled"
        ``finished`` event of its own (the server is going down: a stream must end before it is
        cut, not whenever the engine, busy with a step, gets to the cancellation)."""
        self.cancel()
        for i in sorted(self._open):
            self._queue.put_nowait((i, Event("finished", self.requests[i], finish_reason="stop",
                                             finish_detail="cancelled")))

    async def events(self) -> AsyncIterator[tuple[int, Event]]:
        """``(index, event)`` in order. Tokens of one request that have piled up while the client was
        being served (a busy loop, a slow socket) come as one event with their texts joined (not
        for requests that report logprobs): fewer frames, none of them later than before."""
        try:
            while self._open:
                batch = [await self._queue.get()]
                while not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                for i, ev in self._joined(batch):
                    if ev.kind == "finished":
                        self._open.discard(i)
                    yield i, ev
        finally:
            self.cancel()  # left early: the client is gone or the task was cancelled

    def _joined(self, batch: list[tuple[int, Event]]) -> list[tuple[int, Event]]:
        out: list[tuple[int, Event]] = []
        for i, ev in batch:
            if out and ev.kind == "token" and self.requests[i].logprobs is None:
                j, prev = out[-1]
                if j == i and prev.kind == "token":
                    out[-1] = (i, replace(prev, token_id=ev.token_id, text=prev.text + ev.text))
                    continue
            out.append((i, ev))
        return out

    async def collect(self, http: HttpRequest | None = None) -> list[list[Event]]:
        """Every request's events (non-streaming), cancelling all when the client disconnects."""
        out: list[list[Event]] = [[] for _ in self.requests]

        async def gather() -> None:
            async for i, ev in self.events():
                out[i].append(ev)

        if http is None:
            await gather()
            return out
        work = asyncio.ensure_future(gather())
        watch = asyncio.ensure_future(_disconnected(http))
        try:
            done, _ = await asyncio.wait({work, watch}, return_when=asyncio.FIRST_COMPLETED)
            if work not in done:  # the client went away first
                work.cancel()
                try:
                    await work
                except asyncio.CancelledError:
                    pass
                raise ClientGone()
            work.result()
            return out
        finally:
            watch.cancel()
            work.cancel()
            self.cancel()

    def _count(self, i: int, ev: Event) -> None:
        m, model = self.client.metrics, self.client.metrics.model
        now = time.perf_counter()
        if ev.kind == "started":
            m.queue_time.labels(model).observe(ev.queue_s)
            m.cached_tokens.labels(model).inc(ev.cached_tokens)
        elif ev.kind == "token":
            last = self._last_token.get(i)
            if last is None:
                m.ttft.labels(model).observe(now - self.requests[i].submitted)
            else:
                m.itl.labels(model).observe(now - last)
            self._last_token[i] = now
            m.generation_tokens.labels(model).inc()
        elif ev.kind == "finished":
            t = ev.timings or {}
            m.requests.labels(model, self.endpoint, ev.finish_detail).inc()
            if ev.finish_detail == "cancelled":
                m.cancelled.labels(model, ev.phase or "decode").inc()
                m.stale_tokens.labels(model).inc(t.get("generated_tokens", 0))
                if t.get("cancel_latency_s") is not None:
                    m.cancel_latency.labels(model).observe(t["cancel_latency_s"])
            else:
                m.e2e.labels(model).observe(t.get("e2e_s", 0.0))
                m.prefill_time.labels(model).observe(t.get("prefill_s", 0.0))
                m.generation_size.labels(model).observe(t.get("generated_tokens", 0))


class ClientGone(Exception):
    """The client disconnected before the response was ready (nothing is sent)."""


async def _disconnected(http: HttpRequest) -> None:
    """Returns when the client closes its connection (ASGI ``http.disconnect``)."""
    while True:
        message = await http.receive()
        if message["type"] == "http.disconnect":
            return
