"""llama.cpp's native ``POST /infill`` and ``POST /completion``, with its field names and response
fields, so that llama.vim, llama.vscode and Continue's ``llama.cpp`` provider work unchanged.

Unlike llama.cpp, ``/infill`` on a model without FIM tokens answers with the prefix-only fallback
(``geex.fim_mode: "prefix_only"``) instead of 501. Streams are llama.cpp's: ``data: {"content": ...,
"stop": false}`` frames and a last one with ``"stop": true`` and the timings (no ``[DONE]``).
``response_fields`` (llama.vim sends ``["content", "timings/prompt_n", ...]``) keeps only those
fields, each under its path, as llama.cpp does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence

from fastapi import APIRouter, Depends
from fastapi import Request as HttpRequest
from fastapi.responses import JSONResponse, Response

from geex.assist.completion import CursorCompletion
from geex.engine.scheduler import Event
from geex.serve.completions import (
    Shutdown,
    _prompts,
    cursor_meta,
    cursor_request,
    engine,
    finished,
    geex_block,
    new_requests,
    off_loop,
    sse,
    text_of,
)
from geex.serve.engine_client import EngineClient, Generation
from geex.serve.errors import ApiError
from geex.serve.protocol import InfillRequest, LlamaCompletionRequest, LlamaFields

router = APIRouter()

INFILL_DEFAULT_TOKENS = 128  # llama.vim's n_predict
STOP_TYPE = {"eos": "eos", "stop_token": "eos", "stop_string": "word", "cancelled": "none", "error": "none"}


def _max_tokens(body: LlamaFields) -> int | None:
    """``n_predict``: -1 (or absent) is "until the context ends", as llama.cpp; 0 reads the prompt
    into the cache and generates one token that is not returned (llama.vim warms its context so)."""
    if body.n_predict is None or body.n_predict < 0:
        return None
    return max(1, body.n_predict)


@router.post("/infill")
async def infill(body: InfillRequest, http: HttpRequest, client: EngineClient = Depends(engine)) -> Response:
    limit = _max_tokens(body)
    default = INFILL_DEFAULT_TOKENS if body.n_predict is None else client.scheduler.ctx
    cursor = await off_loop(cursor_request, client, body.code_fields(), body.input_prefix, body.input_suffix,
                            limit, default, body.prompt,
                            size=len(body.input_prefix) + len(body.input_suffix) + sum(len(f.text) for f in body.input_extra))
    return await _respond(client, body, http, [cursor.ids], limit, default, [cursor], "infill")


@router.post("/completion")
async def completion(body: LlamaCompletionRequest, http: HttpRequest, client: EngineClient = Depends(engine)) -> Response:
    limit = _max_tokens(body)
    cursor = None
    if body.mode is not None or body.n_indent or body.t_max_predict_ms:
        if not isinstance(body.prompt, str):
            raise ApiError(400, "mode, n_indent and t_max_predict_ms need a text prompt", param="prompt")
        cursor = [await off_loop(cursor_request, client, body.code_fields(), body.prompt, None, limit,
                                 client.scheduler.ctx, size=len(body.prompt))]
        ids = [cursor[0].ids]
    else:
        ids, _ = await off_loop(_prompts, client, body.prompt, size=len(body.prompt) if isinstance(body.prompt, str) else 0)
        if len(ids) != 1:
            raise ApiError(400, "one prompt a request", param="prompt")
    return await _respond(client, body, http, ids, limit, client.scheduler.ctx, cursor, "completion")


async def _respond(client: EngineClient, body: LlamaFields, http: HttpRequest, ids: list[list[int]],
                   limit: int | None, default: int, cursor: Sequence[CursorCompletion] | None, endpoint: str) -> Response:
    requests = new_requests(client, body.sampling_fields(), ids, limit, default, None, cursor)
    gen = client.generation(requests, endpoint, getattr(http.state, "request_id", None))
    about = cursor_meta(cursor)
    warm = body.n_predict == 0
    if body.stream:
        shutdown = Shutdown(http.app.state.geex.config.shutdown_grace_s)
        return sse(_stream(gen, client, body, about, warm, http.state, shutdown), shutdown)
    if (collected := await finished(gen, http)) is None:
        return Response(status_code=499)
    events = collected[0]
    final = events[-1]
    text = "" if warm else text_of(events)
    out = response(client, final, text, about)
    http.state.geex = out["geex"] | {"prompt_tokens": len(requests[0].prompt),
                                     "generated_tokens": (final.timings or {}).get("generated_tokens", 0)}
    return JSONResponse(pick(out, body.response_fields))


def response(client: EngineClient, final: Event, text: str, about: dict) -> dict:
    """llama.cpp's response fields for a finished sequence (and geex's own block)."""
    t = final.timings or {}
    prompt_len = len(final.request.prompt)
    cached = final.cached_tokens
    prompt_n, predicted_n = prompt_len - cached, t.get("generated_tokens", 0)
    prompt_ms, predicted_ms = 1000 * t.get("prefill_s", 0.0), 1000 * t.get("decode_s", 0.0)
    truncated = bool(about.get("truncated") and (about["truncated"]["prefix_tokens_dropped"]
                                                 or about["truncated"]["suffix_tokens_dropped"]))
    return {
        "content": text, "id_slot": 0, "stop": True, "model": client.name,
        "tokens_predicted": predicted_n, "tokens_evaluated": prompt_len, "tokens_cached": prompt_len + predicted_n,
        "has_new_line": "\n" in text, "truncated": truncated,
        "stop_type": STOP_TYPE.get(final.finish_detail or "", "limit"),
        "stopping_word": final.stop_string or "",
        "timings": {
            "cache_n": cached, "prompt_n": prompt_n, "prompt_ms": round(prompt_ms, 3),
            "prompt_per_token_ms": round(prompt_ms / prompt_n, 3) if prompt_n else 0.0,
            "prompt_per_second": round(1000 * prompt_n / prompt_ms, 2) if prompt_ms else 0.0,
            "predicted_n": predicted_n, "predicted_ms": round(predicted_ms, 3),
            "predicted_per_token_ms": round(predicted_ms / predicted_n, 3) if predicted_n else 0.0,
            "predicted_per_second": round(1000 * predicted_n / predicted_ms, 2) if predicted_ms else 0.0,
        },
        "geex": geex_block(final) | about,
    }


def pick(out: dict, fields: list[str] | None) -> dict:
    """llama.cpp's ``response_fields``: only these, each under its path ("timings/prompt_n")."""
    if not fields:
        return out
    picked = {}
    for path in fields:
        value: object = out
        for key in path.split("/"):
            value = value.get(key) if isinstance(value, dict) else None
        if value is not None:
            picked[path] = value
    return picked


async def _stream(gen: Generation, client: EngineClient, body: LlamaFields, about: dict, warm: bool, state,
                  shutdown: Shutdown) -> AsyncIterator[str]:
    watcher = asyncio.ensure_future(shutdown.watch(gen))
    text = ""
    try:
        async for _, ev in gen.events():
            if ev.kind == "token" and ev.text and not warm:
                text += ev.text
                yield json.dumps({"content": ev.text, "tokens": [ev.token_id], "stop": False, "id_slot": 0})
            elif ev.kind == "finished":
                if (last := shutdown.last_frame(ev)) is not None:
                    yield last
                    return
                rest = "" if warm else ev.text
                out = response(client, ev, text + rest, about)
                out["content"] = rest  # the last frame carries only the text not streamed yet
                state.geex = out["geex"] | {"generated_tokens": out["tokens_predicted"]}
                yield json.dumps(pick(out, body.response_fields))
    finally:
        watcher.cancel()
        gen.cancel()
