"""Mistral's ``POST /v1/fim/completions`` (Codestral's FIM route, which Continue's ``mistral`` provider
calls): ``prompt`` is the code before the cursor, ``suffix`` the code after; the answer comes in
chat-completion shapes (``choices[].message.content``, streamed as ``choices[].delta.content``).
The prompt is the model's own FIM prompt, as for ``suffix`` on ``/v1/completions``."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends
from fastapi import Request as HttpRequest
from fastapi.responses import JSONResponse, Response

from geex.serve.completions import (
    Shutdown,
    check_model,
    cursor_meta,
    cursor_request,
    engine,
    finished,
    log_stream,
    new_requests,
    off_loop,
    sse,
    summary,
    text_of,
    usage,
)
from geex.serve.engine_client import EngineClient, Generation
from geex.serve.protocol import MistralFimRequest

router = APIRouter()


@router.post("/v1/fim/completions")
async def fim_completion(body: MistralFimRequest, http: HttpRequest, client: EngineClient = Depends(engine)) -> Response:
    check_model(body, client)
    cursor = [await off_loop(cursor_request, client, body, body.prompt, body.suffix or "", body.max_tokens, 64,
                             size=len(body.prompt) + len(body.suffix or ""))]
    requests = new_requests(client, body, [cursor[0].ids], body.max_tokens, 64, None, cursor)
    gen = client.generation(requests, "fim", getattr(http.state, "request_id", None))
    rid, created, about = uuid.uuid4().hex, int(time.time()), cursor_meta(cursor)
    if body.stream:
        shutdown = Shutdown(http.app.state.geex.config.shutdown_grace_s)
        return sse(_stream(gen, client, rid, created, about, http.state, shutdown), shutdown)
    if (events := await finished(gen, http)) is None:
        return Response(status_code=499)
    choices, finals = [], []
    for i, evs in enumerate(events):
        finals.append(evs[-1])
        choices.append({"index": i, "message": {"role": "assistant", "content": text_of(evs), "tool_calls": None},
                        "finish_reason": evs[-1].finish_reason})
    block = summary(finals) | about
    http.state.geex = block | {"generated_tokens": usage(finals)["completion_tokens"]}
    return JSONResponse({"id": rid, "object": "chat.completion", "created": created, "model": client.name,
                         "choices": choices, "usage": usage(finals), "geex": block})


async def _stream(gen: Generation, client: EngineClient, rid: str, created: int, about: dict, state,
                  shutdown: Shutdown) -> AsyncIterator[str]:
    finals = []
    watcher = asyncio.ensure_future(shutdown.watch(gen))

    def chunk(i: int, delta: dict, finish: str | None = None) -> str:
        return json.dumps({"id": rid, "object": "chat.completion.chunk", "created": created, "model": client.name,
                           "choices": [{"index": i, "delta": delta, "finish_reason": finish}]})

    try:
        async for i, ev in gen.events():
            if ev.kind == "started":
                yield chunk(i, {"role": "assistant", "content": ""})
            elif ev.kind == "token" and ev.text:
                yield chunk(i, {"content": ev.text})
            elif ev.kind == "finished":
                if (last := shutdown.last_frame(ev)) is not None:
                    yield last
                    return
                finals.append(ev)
                yield chunk(i, {"content": ev.text}, ev.finish_reason)
        yield json.dumps({"id": rid, "object": "chat.completion.chunk", "created": created, "model": client.name,
                          "choices": [], "usage": usage(finals), "geex": summary(finals) | about})
        yield "[DONE]"
    finally:
        watcher.cancel()
        gen.cancel()
        log_stream(state, finals, about)
