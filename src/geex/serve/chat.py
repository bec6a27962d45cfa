"""``POST /v1/chat/completions``: the model's own chat template (``tokenizer_config.json`` or GGUF
``tokenizer.chat_template``) renders the conversation; generation is a completion of that prompt."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends
from fastapi import Request as HttpRequest
from fastapi.responses import JSONResponse, Response

from geex.engine.scheduler import Event
from geex.errors import UserError
from geex.serve.completions import (
    Shutdown,
    check_model,
    engine,
    finished,
    log_stream,
    new_requests,
    off_loop,
    server_timing,
    sse,
    summary,
    text_of,
    usage,
    usage_frame,
    wants_usage,
)
from geex.serve.engine_client import EngineClient, Generation
from geex.serve.errors import ApiError
from geex.serve.protocol import ChatCompletionRequest

router = APIRouter()
DEFAULT_MAX_TOKENS = 512  # OpenAI's chat has no small default; bounded by the context anyway


def _render(client: EngineClient, body: ChatCompletionRequest) -> list[int]:
    return chat_prompt(client, [{"role": m.role, "content": m.text()} for m in body.messages])


def chat_prompt(client: EngineClient, messages: list[dict]) -> list[int]:
    """Token ids of a conversation in the model's chat template (400 without one)."""
    tok = client.tokenizer
    for m in messages:
        try:
            m["content"].encode("utf-8")
        except UnicodeEncodeError:  # JSON may carry a lone surrogate ("\udcff"): no text is made of it
            raise ApiError(400, "a message is not valid Unicode text (a lone surrogate)", param="messages") from None
    if not client.chat_template or not hasattr(tok, "apply_chat_template"):
        raise ApiError(400, f"{client.name} has no chat template: use /v1/completions", param="messages",
                       code="no_chat_template")
    try:
        return tok.encode_chat(tok.apply_chat_template(messages))
    except UserError as e:
        raise ApiError(400, str(e), param="messages") from None
    except Exception as e:  # the template's own failure on these messages (jinja): the request's problem
        raise ApiError(400, f"the chat template cannot render these messages: {type(e).__name__}: {e}",
                       param="messages") from None


def _logprob_entry(client: EngineClient, token: int, logprob: float | None, top) -> dict:
    def one(t: int, lp: float | None) -> dict:
        text = client.tokenizer.decode([t])
        return {"token": text, "logprob": lp, "bytes": list(text.encode())}

    return {**one(token, logprob), "top_logprobs": [one(t, lp) for t, lp in (top or [])]}


@router.post("/v1/chat/completions")
async def create_chat_completion(body: ChatCompletionRequest, http: HttpRequest,
                                 client: EngineClient = Depends(engine)) -> Response:
    check_model(body, client)
    prompt = await off_loop(_render, client, body, size=sum(len(m.text()) for m in body.messages))
    if http.app.state.geex.config.log_prompts:
        http.state.prompt = [m.text() for m in body.messages]
    max_tokens = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
    logprobs = (body.top_logprobs or 0) if body.logprobs else None
    requests = new_requests(client, body, [prompt], max_tokens, DEFAULT_MAX_TOKENS, logprobs)
    gen = client.generation(requests, "chat", getattr(http.state, "request_id", None))
    rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    if body.stream:
        shutdown = Shutdown(http.app.state.geex.config.shutdown_grace_s)
        return sse(_stream(gen, client, rid, created, body, wants_usage(body), http.state, shutdown), shutdown)
    if (events := await finished(gen, http)) is None:
        return Response(status_code=499)
    choices, finals = [], []
    for i, evs in enumerate(events):
        text = text_of(evs)
        final = evs[-1]
        finals.append(final)
        content = [_logprob_entry(client, ev.token_id, ev.logprob, ev.top_logprobs)
                   for ev in evs if ev.kind == "token"] if body.logprobs else None
        choices.append({"index": i, "message": {"role": "assistant", "content": text},
                        "logprobs": {"content": content} if content is not None else None,
                        "finish_reason": final.finish_reason})
    block = summary(finals)
    http.state.geex = block | {"prompt_tokens": len(prompt) * len(requests),
                               "generated_tokens": usage(finals)["completion_tokens"]}
    return JSONResponse({"id": rid, "object": "chat.completion", "created": created, "model": client.name,
                         "choices": choices, "usage": usage(finals), "geex": block},
                        headers={"Server-Timing": server_timing(block)})


async def _stream(gen: Generation, client: EngineClient, rid: str, created: int, body: ChatCompletionRequest,
                  include_usage: bool, state, shutdown: Shutdown) -> AsyncIterator[str]:
    finals: list[Event] = []
    watcher = asyncio.ensure_future(shutdown.watch(gen))

    def chunk(i: int, delta: dict, finish: str | None, logprobs: dict | None = None) -> str:
        return json.dumps({"id": rid, "object": "chat.completion.chunk", "created": created, "model": client.name,
                           "choices": [{"index": i, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]})

    try:
        async for i, ev in gen.events():
            if ev.kind == "started":
                yield chunk(i, {"role": "assistant", "content": ""}, None)
            elif ev.kind == "token":
                lp = ({"content": [_logprob_entry(client, ev.token_id, ev.logprob, ev.top_logprobs)]}
                      if body.logprobs else None)
                if ev.text or lp is not None:
                    yield chunk(i, {"content": ev.text}, None, lp)
            else:
                if (last := shutdown.last_frame(ev)) is not None:
                    yield last
                    return
                finals.append(ev)
                yield chunk(i, {"content": ev.text} if ev.text else {}, ev.finish_reason)
        if include_usage:
            yield usage_frame("chat.completion.chunk", rid, created, client.name, finals)
        yield "[DONE]"
    finally:
        watcher.cancel()
        gen.cancel()
        log_stream(state, finals)
