"""``POST /v1/completions``: OpenAI's text completions, streamed (server-sent events ending in
``[DONE]``) or not, over the scheduler. Every response carries a ``geex`` block with the request's
timings (queue, prefill, time to first token, decode), its cached prompt tokens and why it ended."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Sequence

import anyio
from fastapi import APIRouter, Depends
from fastapi import Request as HttpRequest
from fastapi.responses import JSONResponse, Response
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from geex.assist.completion import CursorCompletion, StopMode, cursor_completion
from geex.assist.fim import Budget, SourceFile
from geex.engine.sampling import SamplingParams
from geex.engine.scheduler import Event, Request
from geex.errors import UserError
from geex.languages import get_language
from geex.serve.engine_client import ClientGone, EngineClient, Generation
from geex.serve.errors import ApiError, error_body
from geex.serve.protocol import MAX_PROMPTS, MAX_STOP, MAX_STOP_CHARS, CodeFields, CompletionRequest, SamplingFields

router = APIRouter()


def engine(http: HttpRequest) -> EngineClient:
    """The loaded engine (503 while the model loads or after the engine died)."""
    state = http.app.state.geex
    if state.client is None:
        state.metrics.reject("loading")
        if state.error is not None:
            raise ApiError(503, f"the model failed to load: {state.error}", code="engine_unavailable")
        raise ApiError(503, "the model is loading; retry shortly", code="model_loading", headers={"Retry-After": "2"})
    if state.client.scheduler.error is not None:
        raise ApiError(503, f"the engine stopped: {state.client.scheduler.error}", code="engine_unavailable")
    return state.client


def check_model(body: SamplingFields, client: EngineClient) -> None:
    if body.model not in (None, "", client.name, *client.meta.get("aliases", ())):
        raise ApiError(404, f"model {body.model!r} is not served here (this server serves {client.name!r})",
                       param="model", code="model_not_found")


GREEDY_BELOW = 1e-5  # a temperature this small is greedy (as vLLM): dividing by it overflows the logits


def sampling(body: SamplingFields) -> SamplingParams:
    temperature = 1.0 if body.temperature is None else body.temperature
    top_k = body.top_k if body.top_k is not None and body.top_k > 0 else 0
    top_p = 1.0 if body.top_p is None else body.top_p
    try:
        if temperature < GREEDY_BELOW:
            return SamplingParams(greedy=True)
        return SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p)
    except UserError as e:
        raise ApiError(400, str(e)) from None


def budget(max_tokens: int | None, default: int, prompt_len: int, ctx: int, param: str = "max_tokens") -> int:
    """The token budget: the request's (clamped to what the context leaves), or the default."""
    if max_tokens is not None and max_tokens < 1:
        raise ApiError(400, f"{param} must be at least 1, got {max_tokens}", param=param)
    room = ctx - prompt_len
    if room < 1:
        raise ApiError(400, f"the prompt has {prompt_len} tokens; the context holds {ctx} (at least one must be "
                            "left to generate)", param="prompt", code="context_length_exceeded")
    return min(default if max_tokens is None else max_tokens, room)


def new_requests(client: EngineClient, body: SamplingFields, prompts: Sequence[list[int]], max_tokens: int | None,
                 default_max: int, logprobs: int | None,
                 cursor: Sequence[CursorCompletion | None] | None = None) -> list[Request]:
    """One scheduler request per prompt and choice (``n``), in OpenAI's choice order. With a seed,
    choice j of a prompt uses seed + j: distinct samples, reproducible. ``cursor``: how each prompt's
    output ends (``make_rules``: line rules, fresh for every choice; ``stop_ids``: more end tokens,
    a FIM family's; ``language``, if it has one: the harness's "code is complete" rule)."""
    params = sampling(body)
    stop = body.stop_list()
    if any(not s for s in stop):
        raise ApiError(400, "stop strings must not be empty", param="stop")
    if len(stop) > MAX_STOP or any(len(s) > MAX_STOP_CHARS for s in stop):
        raise ApiError(400, f"at most {MAX_STOP} stop strings of at most {MAX_STOP_CHARS} characters", param="stop")
    out = []
    for k, prompt in enumerate(prompts):
        if not prompt:
            raise ApiError(400, "the prompt is empty", param="prompt")
        n_tokens = budget(max_tokens, default_max, len(prompt), client.scheduler.ctx)
        at = cursor[k] if cursor else None
        for j in range(body.n):
            out.append(Request(
                prompt=list(prompt), max_new_tokens=n_tokens, emit=lambda ev: None, params=params, stop=stop,
                stop_token_ids=frozenset(body.stop_token_ids or ()) | (at.stop_ids if at else frozenset()),
                seed=None if body.seed is None else (body.seed + j) % 2**63, ignore_eos=body.ignore_eos,
                logprobs=logprobs, rules=at.make_rules() if at else (), language=getattr(at, "language", None),
            ))
    return out


FIM_WINDOW = 2048  # tokens of prefix and suffix a FIM prompt may hold (llama.cpp's default n_batch)


def cursor_request(client: EngineClient, body: CodeFields, prefix: str, suffix: str | None, max_tokens: int | None,
                   default_max: int, middle: str = "") -> CursorCompletion:
    """The completion at the cursor the body asks for: FIM when ``suffix`` is given (the prefix
    alone, stopped at the suffix's first line, for a model without FIM tokens), else the prefix
    with the body's line rules. The prompt is budgeted to leave room for the tokens asked for."""
    try:
        language = get_language(body.language) if body.language else None
        stop = StopMode(body.mode or "free", body.n_indent, body.max_time_ms)
    except (UserError, ValueError) as e:
        raise ApiError(400, str(e), param="language" if isinstance(e, UserError) else "mode") from None
    ctx = client.scheduler.ctx
    n_predict = max_tokens if max_tokens is not None and max_tokens > 0 else default_max
    window = max(8, min(FIM_WINDOW, ctx - n_predict - 8))
    files = [SourceFile(f.filename, f.text) for f in body.input_extra]
    return cursor_completion(client.tokenizer, client.fim if suffix is not None else None, prefix,
                             suffix or "", stop=stop, files=files, path=body.filename, repo=body.repo_name,
                             language=language, language_tag=client.language_tags, middle=middle,
                             budget=Budget(window, max(0, ctx - window - 2 * n_predict)))


def wants_cursor(body: CompletionRequest) -> bool:
    return body.suffix is not None or any(x is not None for x in (body.mode, body.n_indent, body.max_time_ms))


class Shutdown:
    """A stream's view of the server shutting down: it keeps streaming for the grace period (less a
    second), then its requests are cancelled and it ends with an error frame, not mid-air."""

    def __init__(self, grace_s: float) -> None:
        self.event = anyio.Event()  # set by sse-starlette when the server is told to stop
        self.grace_s = grace_s
        self.cut = False

    async def watch(self, gen: Generation) -> None:
        await self.event.wait()
        await anyio.sleep(max(0.0, self.grace_s - 1.0))
        self.cut = True
        gen.end_now()

    def last_frame(self, finished: Event) -> str | None:
        """The frame that ends a stream at this ``finished`` event, if it must end there: the
        request's own failure, or the shutdown's cut; None for a normal finish."""
        if self.cut and finished.finish_detail == "cancelled":
            return json.dumps(error_body(503, "the server is shutting down", code="server_shutdown"))
        return error_frame(finished) if finished.finish_detail == "error" else None


def sse(frames: AsyncIterator[str], shutdown: Shutdown) -> EventSourceResponse:
    """A server-sent event stream: ``data: …`` frames, a ``: ping`` every 15 s, no proxy buffering."""
    return EventSourceResponse(frames, ping=15, sep="\n", shutdown_event=shutdown.event,
                               shutdown_grace_period=max(0.0, shutdown.grace_s - 0.5),
                               headers={"X-Accel-Buffering": "no", "Cache-Control": "no-cache"})


def wants_usage(body: SamplingFields) -> bool:
    return bool(body.stream_options and body.stream_options.include_usage)


def geex_block(finished: Event) -> dict:
    t = finished.timings or {}

    def ms(key: str) -> float | None:
        return None if t.get(key) is None else round(t[key] * 1000, 2)

    return {"queue_ms": ms("queue_s"), "prefill_ms": ms("prefill_s"), "ttft_ms": ms("ttft_s"),
            "decode_ms": ms("decode_s"), "e2e_ms": ms("e2e_s"), "prompt_tokens_cached": finished.cached_tokens,
            "finish_detail": finished.finish_detail}


def usage(finals: Sequence[Event]) -> dict:
    prompt = sum(len(ev.request.prompt) for ev in finals)
    done = sum((ev.timings or {}).get("generated_tokens", 0) for ev in finals)
    cached = sum(ev.cached_tokens for ev in finals)
    return {"prompt_tokens": prompt, "completion_tokens": done, "total_tokens": prompt + done,
            "prompt_tokens_details": {"cached_tokens": cached}}


def summary(finals: Sequence[Event]) -> dict:
    """The ``geex`` block of a whole response (one choice: its own; several: the slowest)."""
    blocks = [geex_block(ev) for ev in finals]
    if len(blocks) == 1:
        return blocks[0]
    worst = max(blocks, key=lambda b: b["e2e_ms"] or 0)
    return {**worst, "choices": blocks}


def server_timing(block: dict) -> str:
    return ", ".join(f"{k.removesuffix('_ms')};dur={v}" for k, v in block.items()
                     if k in ("queue_ms", "prefill_ms", "decode_ms") and v is not None)


class TokenLog:
    """OpenAI's completions ``logprobs`` object for one choice."""

    def __init__(self, client: EngineClient) -> None:
        self.client = client
        self.tokens: list[str] = []
        self.token_logprobs: list[float | None] = []
        self.top_logprobs: list[dict | None] = []
        self.text_offset: list[int] = []
        self._offset = 0

    def add(self, token: int, logprob: float | None, top: list[tuple[int, float]] | None) -> dict:
        piece = self.client.tokenizer.decode([token])
        entry = {"tokens": [piece], "token_logprobs": [logprob],
                 "top_logprobs": [None if top is None else {self.client.tokenizer.decode([t]): lp for t, lp in top}],
                 "text_offset": [self._offset]}
        for key, value in entry.items():
            getattr(self, key).extend(value)
        self._offset += len(piece)
        return entry

    def start_at(self, offset: int) -> None:
        self._offset = offset

    def as_dict(self) -> dict:
        return {"tokens": self.tokens, "token_logprobs": self.token_logprobs, "top_logprobs": self.top_logprobs,
                "text_offset": self.text_offset}


OFF_LOOP_CHARS = 8192  # texts longer than this are tokenized in a worker thread


async def off_loop(fn, *args, size: int):
    """``fn(*args)``, in a worker thread when ``size`` (characters to tokenize) is large: a
    megabyte prompt takes seconds to tokenize, which on the event loop would stall every stream."""
    if size <= OFF_LOOP_CHARS:
        return fn(*args)
    return await run_in_threadpool(fn, *args)


def _chars(prompt) -> int:
    if isinstance(prompt, str):
        return len(prompt)
    return sum(len(p) for p in prompt if isinstance(p, str))


def _prompts(client: EngineClient, prompt) -> tuple[list[list[int]], list[str]]:
    """Token ids and texts of the request's prompt(s)."""
    if isinstance(prompt, str):
        prompt = [prompt]
    if prompt and all(isinstance(p, int) for p in prompt):
        prompt = [prompt]
    if not prompt:
        raise ApiError(400, "the prompt is empty", param="prompt")
    if len(prompt) > MAX_PROMPTS:
        raise ApiError(400, f"at most {MAX_PROMPTS} prompts a request", param="prompt")
    vocab = client.tokenizer.vocab_size
    for p in prompt:
        if not isinstance(p, str) and any(not 0 <= t < vocab for t in p):  # before anything decodes them
            raise ApiError(400, f"token ids must be in [0, {vocab})", param="prompt")
    ids = [client.encode(p) if isinstance(p, str) else list(p) for p in prompt]
    texts = [p if isinstance(p, str) else client.tokenizer.decode(p) for p in prompt]
    return ids, texts


@router.post("/v1/completions")
@router.post("/beta/completions")  # DeepSeek's completions with suffix (Continue's deepseek provider)
async def create_completion(body: CompletionRequest, http: HttpRequest,
                            client: EngineClient = Depends(engine)) -> Response:
    check_model(body, client)
    cursor = None
    if wants_cursor(body):
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if not prompts or not all(isinstance(p, str) for p in prompts):
            raise ApiError(400, "suffix, mode, n_indent and max_time_ms need a text prompt", param="prompt")
        cursor = await off_loop(lambda: [cursor_request(client, body, p, body.suffix, body.max_tokens, 16)
                                         for p in prompts], size=_chars(body.prompt) + len(body.suffix or ""))
        ids, texts = [c.ids for c in cursor], list(prompts)
    else:
        ids, texts = await off_loop(_prompts, client, body.prompt, size=_chars(body.prompt))
    if http.app.state.geex.config.log_prompts:
        http.state.prompt = texts
    requests = new_requests(client, body, ids, body.max_tokens, 16, body.logprobs, cursor)
    about = cursor_meta(cursor)
    prompt_of = [texts[i // body.n] for i in range(len(requests))]
    gen = client.generation(requests, "completions", getattr(http.state, "request_id", None))
    rid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
    if body.stream:
        shutdown = Shutdown(http.app.state.geex.config.shutdown_grace_s)
        return sse(_stream(gen, client, rid, created, body, prompt_of, wants_usage(body), http.state, shutdown,
                           about), shutdown)
    if (events := await finished(gen, http)) is None:
        return Response(status_code=499)
    choices, finals = [], []
    for i, evs in enumerate(events):
        log = TokenLog(client) if body.logprobs is not None else None
        text = prompt_of[i] if body.echo else ""
        if log is not None:
            log.start_at(len(text))
        for ev in evs:
            if ev.kind == "token" and log is not None:
                log.add(ev.token_id, ev.logprob, ev.top_logprobs)
            if ev.kind in ("token", "finished"):
                text += ev.text
        final = evs[-1]
        finals.append(final)
        choices.append({"index": i, "text": text, "logprobs": log.as_dict() if log else None,
                        "finish_reason": final.finish_reason})
    block = summary(finals) | about
    http.state.geex = block | {"prompt_tokens": sum(len(r.prompt) for r in requests),
                               "generated_tokens": usage(finals)["completion_tokens"]}
    return JSONResponse({"id": rid, "object": "text_completion", "created": created, "model": client.name,
                         "choices": choices, "usage": usage(finals), "geex": block},
                        headers={"Server-Timing": server_timing(block)})


async def finished(gen: Generation, http: HttpRequest) -> list[list[Event]] | None:
    """Every choice's events of a non-streamed response, each choice checked (a failed one raises
    its error); None when the client went away first (the endpoint answers 499)."""
    try:
        events = await gen.collect(http)
    except ClientGone:
        return None
    for evs in events:
        check_failed(evs[-1])
    return events


def text_of(events: Sequence[Event]) -> str:
    """A choice's text: what its tokens released, and the rest released when it finished."""
    return "".join(ev.text for ev in events if ev.kind in ("token", "finished"))


def check_failed(final: Event) -> None:
    if final.finish_detail == "error":
        raise ApiError(*failure(final))


def failure(final: Event) -> tuple[int, str]:
    """Status and message of a request that failed: 503 when the engine stopped, else 500."""
    message = final.error or "generation failed"
    return (503 if message.startswith("the engine stopped") else 500), message


def error_frame(final: Event) -> str:
    status, message = failure(final)
    return json.dumps({"error": {"message": message, "type": "server_error", "param": None,
                                 "code": "engine_unavailable" if status == 503 else "generation_failed"}})


def cursor_meta(cursor: Sequence[CursorCompletion] | None) -> dict:
    """The ``geex`` block's account of completions at the cursor: the FIM mode and what the budget
    dropped (one prompt: its own; several: a list)."""
    if not cursor:
        return {}
    if len(cursor) == 1:
        return cursor[0].meta()
    return {"prompts": [c.meta() for c in cursor]}


async def _stream(gen: Generation, client: EngineClient, rid: str, created: int, body: CompletionRequest,
                  prompt_of: list[str], include_usage: bool, state, shutdown: Shutdown,
                  about: dict | None = None) -> AsyncIterator[str]:
    logs = [TokenLog(client) if body.logprobs is not None else None for _ in prompt_of]
    finals: list[Event] = []
    watcher = asyncio.ensure_future(shutdown.watch(gen))

    def chunk(i: int, text: str, logprobs: dict | None, finish: str | None) -> str:
        return json.dumps({"id": rid, "object": "text_completion", "created": created, "model": client.name,
                           "choices": [{"index": i, "text": text, "logprobs": logprobs, "finish_reason": finish}]})

    try:
        async for i, ev in gen.events():
            if ev.kind == "started":
                if body.echo:
                    if logs[i] is not None:
                        logs[i].start_at(len(prompt_of[i]))
                    yield chunk(i, prompt_of[i], None, None)
            elif ev.kind == "token":
                entry = logs[i].add(ev.token_id, ev.logprob, ev.top_logprobs) if logs[i] is not None else None
                if ev.text or entry is not None:
                    yield chunk(i, ev.text, entry, None)
            else:
                if (last := shutdown.last_frame(ev)) is not None:
                    yield last
                    return
                finals.append(ev)
                yield chunk(i, ev.text, None, ev.finish_reason)
        if include_usage:
            yield usage_frame("text_completion", rid, created, client.name, finals, about)
        yield "[DONE]"
    finally:
        watcher.cancel()
        gen.cancel()
        log_stream(state, finals, about)


def usage_frame(kind: str, rid: str, created: int, model: str, finals: Sequence[Event], about: dict | None = None) -> str:
    """The last frame before ``[DONE]`` with ``stream_options.include_usage``: usage and timings."""
    return json.dumps({"id": rid, "object": kind, "created": created, "model": model, "choices": [],
                       "usage": usage(finals), "geex": summary(finals) | (about or {})})


def log_stream(state, finals: Sequence[Event], about: dict | None = None) -> None:
    """What the access log says of a streamed response (it ends after the endpoint returned)."""
    if finals:
        state.geex = summary(finals) | (about or {}) | {"generated_tokens": usage(finals)["completion_tokens"]}
