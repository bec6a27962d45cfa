"""The CodeGeeX IDE tasks over HTTP: ``POST /v1/geex/generate``, ``/v1/geex/translate``,
``/v1/geex/explain`` (streamed like completions, with ``n``, ``language`` and sampling), and the
routes of CodeGeeX v1's hosted API (``/api/v2/multilingual_code_generate``, ``_adapt``, ``_block``,
``multilingual_code_translate``) with its request and response shapes, so that the open-source
CodeGeeX extension works when pointed at geex.

A task's prompt is ``geex.assist.tasks``': CodeGeeX's conventions for base models, an instruction
in the chat template for chat models (``chat`` in the body overrides the guess: a model with a
chat template is a chat model). Each choice's ``text`` is the answer taken out of the output (a
chat reply's code fence, a base model's code cut by the target language's rules); streamed frames
carry the output as it comes and the last frame of each choice its ``result``.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from fastapi import APIRouter, Depends
from fastapi import Request as HttpRequest
from fastapi.responses import JSONResponse, Response

from geex.assist import tasks
from geex.assist.completion import StopMode, rules_for
from geex.errors import UserError
from geex.languages import Language, get_language
from geex.serve.chat import chat_prompt
from geex.serve.completions import (
    Shutdown,
    check_model,
    engine,
    finished,
    log_stream,
    new_requests,
    off_loop,
    sse,
    summary,
    text_of,
    usage,
    usage_frame,
    wants_usage,
)
from geex.serve.engine_client import EngineClient, Generation
from geex.serve.errors import ApiError
from geex.serve.protocol import CodeGeeXRequest, ExplainRequest, GenerateRequest, TaskFields, TranslateRequest

router = APIRouter()
DEFAULT_MAX_TOKENS = 256


@dataclass
class _Ending:
    """How a task's output ends, as ``new_requests`` takes it."""

    make_rules: Callable[[], tuple]
    language: Language | None
    stop_ids: frozenset[int] = frozenset()


def _language(name: str | None, param: str, required: bool = True) -> Language | None:
    if not name:
        if required:
            raise ApiError(400, f"{param} is required", param=param)
        return None
    try:
        return get_language(name)
    except UserError as e:
        raise ApiError(400, str(e), param=param) from None


def _is_chat(client: EngineClient, body: TaskFields) -> bool:
    return body.chat if body.chat is not None else bool(client.chat_template)


async def _run(client: EngineClient, body: TaskFields, http: HttpRequest, prompt: tasks.TaskPrompt,
               endpoint: str) -> Response:
    if prompt.messages is not None:
        ids = await off_loop(chat_prompt, client, prompt.messages, size=sum(len(m["content"]) for m in prompt.messages))
    else:
        ids = await off_loop(client.encode, prompt.text, size=len(prompt.text))
    if http.app.state.geex.config.log_prompts:
        http.state.prompt = [prompt.text or json.dumps(prompt.messages)]
    ending = _Ending(lambda: tuple(prompt.rules) if prompt.messages is None else (), None)
    requests = new_requests(client, body, [ids], body.max_tokens, DEFAULT_MAX_TOKENS, None, [ending])
    gen = client.generation(requests, endpoint, getattr(http.state, "request_id", None))
    rid, created = f"geex-{uuid.uuid4().hex}", int(time.time())
    shown = {"prompt": prompt.text if prompt.messages is None else prompt.messages} if body.return_prompt else {}
    if body.stream:
        shutdown = Shutdown(http.app.state.geex.config.shutdown_grace_s)
        return sse(_stream(gen, client, rid, created, body, prompt, shown, http.state, shutdown), shutdown)
    if (events := await finished(gen, http)) is None:
        return Response(status_code=499)
    choices, finals = [], []
    for i, evs in enumerate(events):
        raw = text_of(evs)
        finals.append(evs[-1])
        choices.append({"index": i, "text": prompt.finish(raw), "raw": raw, "finish_reason": evs[-1].finish_reason})
    block = summary(finals)
    http.state.geex = block | {"prompt_tokens": len(ids), "generated_tokens": usage(finals)["completion_tokens"]}
    return JSONResponse({"id": rid, "object": "geex.task", "created": created, "model": client.name,
                         "choices": choices, "usage": usage(finals), "geex": block, **shown})


async def _stream(gen: Generation, client: EngineClient, rid: str, created: int, body: TaskFields,
                  prompt: tasks.TaskPrompt, shown: dict, state, shutdown: Shutdown) -> AsyncIterator[str]:
    raw: dict[int, str] = {}
    finals = []
    watcher = asyncio.ensure_future(shutdown.watch(gen))

    def frame(i: int, text: str, finish: str | None = None, result: str | None = None) -> str:
        choice = {"index": i, "text": text, "finish_reason": finish}
        if result is not None:
            choice["result"] = result
        return json.dumps({"id": rid, "object": "geex.task", "created": created, "model": client.name,
                           "choices": [choice]})

    try:
        if shown:
            yield json.dumps({"id": rid, "object": "geex.task", "created": created, "model": client.name,
                              "choices": [], **shown})
        async for i, ev in gen.events():
            if ev.kind == "token" and ev.text:
                raw[i] = raw.get(i, "") + ev.text
                yield frame(i, ev.text)
            elif ev.kind == "finished":
                if (last := shutdown.last_frame(ev)) is not None:
                    yield last
                    return
                finals.append(ev)
                raw[i] = raw.get(i, "") + ev.text
                yield frame(i, ev.text, ev.finish_reason, prompt.finish(raw[i]))
        if wants_usage(body):
            yield usage_frame("geex.task", rid, created, client.name, finals)
        yield "[DONE]"
    finally:
        watcher.cancel()
        gen.cancel()
        log_stream(state, finals)


@router.post("/v1/geex/generate")
async def generate(body: GenerateRequest, http: HttpRequest, client: EngineClient = Depends(engine)) -> Response:
    check_model(body, client)
    description = body.description or body.prompt
    if not description:
        raise ApiError(400, "description is required", param="description")
    language = _language(body.language, "language")
    return await _run(client, body, http, tasks.generate(description, language, _is_chat(client, body), body.header),
                      "generate")


@router.post("/v1/geex/translate")
async def translate(body: TranslateRequest, http: HttpRequest, client: EngineClient = Depends(engine)) -> Response:
    check_model(body, client)
    source, target = _language(body.src_lang, "src_lang"), _language(body.dst_lang, "dst_lang")
    return await _run(client, body, http, tasks.translate(body.code, source, target, _is_chat(client, body)),
                      "translate")


@router.post("/v1/geex/explain")
async def explain(body: ExplainRequest, http: HttpRequest, client: EngineClient = Depends(engine)) -> Response:
    check_model(body, client)
    language = _language(body.language, "language")
    return await _run(client, body, http, tasks.explain(body.code, language, body.style, _is_chat(client, body)),
                      "explain")


# -- CodeGeeX v1's hosted API ------------------------------------------------------------------------------
V1_MODES = {"multilingual_code_generate": "line", "multilingual_code_generate_adapt": "block",
            "multilingual_code_generate_block": "free"}


async def _codegeex_v1(body: CodeGeeXRequest, http: HttpRequest, client: EngineClient, mode: str | None) -> Response:
    """Its request ``{prompt, n, lang, apikey, apisecret, temperature, top_p, top_k}`` and response
    ``{status: 0, result: {output: {code: [...]}, process_time}}``; errors keep the status field."""
    start = time.perf_counter()
    fields = TaskFields(temperature=body.temperature, top_p=body.top_p, top_k=body.top_k, n=body.n, seed=body.seed,
                        max_tokens=body.max_tokens, stop=body.stop or None)
    if mode is None:  # translation
        prompt = tasks.translate(body.prompt, _language(body.src_lang, "src_lang"), _language(body.dst_lang, "dst_lang"),
                                 chat=bool(client.chat_template))
        response = await _run(client, fields, http, prompt, "codegeex_v1")
    else:
        language = _language(body.lang, "lang", required=False)
        tag = client.language_tags and language is not None
        text = f"{language.tag}\n{body.prompt}" if tag else body.prompt
        rules = rules_for(StopMode(mode), body.prompt)
        ids = await off_loop(client.encode, text, size=len(text))
        requests = new_requests(client, fields, [ids], body.max_tokens, 64, None, [_Ending(rules, None)])
        gen = client.generation(requests, "codegeex_v1", getattr(http.state, "request_id", None))
        if (events := await finished(gen, http)) is None:
            return Response(status_code=499)
        codes = [text_of(evs) for evs in events]
        return JSONResponse({"status": 0, "message": "success",
                             "result": {"output": {"code": codes}, "process_time": time.perf_counter() - start}})
    if response.status_code != 200:  # the client went away (499): nothing to reshape
        return response
    out = json.loads(response.body)
    return JSONResponse({"status": 0, "message": "success",
                         "result": {"output": {"code": [c["text"] for c in out["choices"]]},
                                    "process_time": time.perf_counter() - start}})


def _v1_route(name: str, mode: str | None):
    async def route(body: CodeGeeXRequest, http: HttpRequest, client: EngineClient = Depends(engine)) -> Response:
        return await _codegeex_v1(body, http, client, mode)

    route.__name__ = f"codegeex_v1_{name}"
    router.post(f"/api/v2/{name}")(route)


for _name, _mode in V1_MODES.items():
    _v1_route(_name, _mode)
_v1_route("multilingual_code_translate", None)
