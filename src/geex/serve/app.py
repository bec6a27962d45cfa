"""The FastAPI application: loading the model (``/health`` says 503 until it is loaded and warm),
the routes, and the middleware stack."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from fastapi import APIRouter, FastAPI
from fastapi import Request as HttpRequest
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

import geex
from geex.serve import chat, completions, errors, llamacpp, mistral, tasks, tokens
from geex.serve.config import ServeConfig, is_loopback
from geex.serve.engine_client import EngineClient
from geex.serve.metrics import Metrics
from geex.serve.middleware import AccessLog, ApiKey, BodyLimit, LoopbackHost

log = logging.getLogger("geex.serve")


@dataclass
class ServeState:
    config: ServeConfig
    metrics: Metrics
    client: EngineClient | None = None
    error: str | None = None
    started: float = field(default_factory=time.time)
    loader: threading.Thread | None = None
    on_load_error: object = None  # called with the message when loading fails (the CLI stops the server)


def _dtype(name: str | None) -> torch.dtype | None:
    return None if name is None else getattr(torch, name)  # float32, bfloat16, float16


def default_ctx(model, slots: int, device: str, share: float = 0.25) -> int:
    """The model's context, capped so that the KV cache takes at most ``share`` of the memory that
    is free now (host RAM on CPU, GPU memory on CUDA)."""
    cfg = model.config
    per_position = 2 * cfg.cache_layers * cfg.n_kv_head * cfg.head_dim * model.dtype.itemsize * slots
    if str(device).startswith("cuda"):
        free = torch.cuda.mem_get_info(torch.device(device))[0]
    else:
        import os

        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    fits = int(free * share) // per_position
    return max(64, min(cfg.n_positions, fits))


def load_engine(config: ServeConfig, metrics: Metrics) -> EngineClient:
    """Load the model, start its scheduler, warm it up (so that the first request is not slow)."""
    from geex.engine.scheduler import Request, Scheduler
    from geex.models import registry

    loaded = registry.load(config.model, dtype=_dtype(config.dtype), device=config.device, quantize=config.quantize)
    model = loaded.model
    ctx = config.ctx or default_ctx(model, config.slots, config.device)
    scheduler = Scheduler(model, loaded.tokenizer, slots=config.slots, ctx=ctx, max_queue=config.max_queue,
                          prefill_chunk=config.prefill_chunk)
    done = threading.Event()
    scheduler.submit(Request(loaded.tokenizer.encode_batch(["def"])[0], 2,
                             lambda ev: done.set() if ev.kind == "finished" else None))
    done.wait(600)
    cfg = model.config
    meta = {
        "arch": type(model).__name__.lower(), "n_params": sum(p.numel() for p in model.parameters()),
        "dtype": str(model.dtype).removeprefix("torch."), "quant": config.quantize, "context_length": ctx,
        "device": str(config.device), "max_concurrency": config.slots, "chat_template": bool(loaded.chat_template),
        "aliases": [a for a in (config.model, registry.DEFAULT_MODEL if config.model is None else None) if a],
        "vocab_size": getattr(cfg, "vocab_size", None),
    }
    return EngineClient(loaded.name, scheduler, loaded.tokenizer, metrics, meta, loaded.chat_template,
                        language_tags=meta["arch"].startswith("codegeex"))


def create_app(config: ServeConfig, engine: EngineClient | None = None) -> FastAPI:
    """The app; the model loads in the background when it starts (or ``engine`` is used as given)."""
    from geex.models import registry

    metrics = engine.metrics if engine is not None else Metrics(config.model or registry.DEFAULT_MODEL)
    state = ServeState(config, metrics, client=engine)
    app = FastAPI(title="geex serve", version=geex.__version__, lifespan=_lifespan(state))
    app.state.geex = state
    errors.install(app)
    for endpoints in (completions, chat, tokens, llamacpp, tasks, mistral):
        app.include_router(endpoints.router)
    app.include_router(router)
    _add_middleware(app, config, metrics)
    return app


def _lifespan(state: ServeState):
    """Load the model in a thread when the server starts (``/health`` says 503 meanwhile, or why it
    failed); stop the scheduler, cancelling what runs, when it stops."""

    def load() -> None:
        try:
            state.client = load_engine(state.config, state.metrics)
            state.metrics.loaded.labels(state.metrics.model).set(1)
            log.info("model %s ready", state.client.name)
        except Exception as e:  # a bad model path, out of memory ...: /health says why
            state.error = str(e) or type(e).__name__
            if state.on_load_error is not None:  # `geex serve` exits with the message
                state.on_load_error(state.error)
            else:
                log.error("loading the model failed: %s", state.error)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if state.client is None:
            state.loader = threading.Thread(target=load, name="geex-load", daemon=True)
            state.loader.start()
        else:
            state.metrics.loaded.labels(state.metrics.model).set(1)
        yield
        if state.client is not None:
            state.client.scheduler.close(cancel=True)

    return lifespan


def _add_middleware(app: FastAPI, config: ServeConfig, metrics: Metrics) -> None:
    # outermost last: the access log sees everything, CORS headers reach error responses too
    app.add_middleware(BodyLimit, limit=config.body_limit, on_reject=metrics.reject)
    app.add_middleware(ApiKey, keys=config.api_keys, metrics_auth=config.metrics_auth, on_reject=metrics.reject)
    app.add_middleware(CORSMiddleware, allow_origin_regex=cors_regex(config.cors_origins),
                       allow_methods=["GET", "POST", "OPTIONS"], allow_headers=["*"],
                       expose_headers=["X-Request-Id", "Server-Timing"])
    if is_loopback(config.host):
        # DNS rebinding: a web page whose name resolves to 127.0.0.1 would reach a loopback server
        # as its own origin (no CORS check applies): only loopback names are answered
        app.add_middleware(LoopbackHost)
    app.add_middleware(AccessLog, log_prompts=config.log_prompts)


# the server's own routes: the playground, health, the model list, slots and metrics
router = APIRouter()


@router.get("/", include_in_schema=False)
async def playground() -> Response:
    return _static("index.html")


@router.get("/playground/{name}", include_in_schema=False)
async def playground_file(name: str) -> Response:
    return _static(name)


@router.get("/health")
async def health(http: HttpRequest) -> JSONResponse:
    state: ServeState = http.app.state.geex
    if state.client is not None and state.client.scheduler.error is None:
        return JSONResponse({"status": "ok", "model": state.client.name,
                             "uptime_s": round(time.time() - state.started, 1)})
    if state.error is not None or (state.client is not None and state.client.scheduler.error is not None):
        return JSONResponse({"status": "error", "error": state.error or "the engine stopped"}, status_code=503)
    return JSONResponse({"status": "loading"}, status_code=503, headers={"Retry-After": "2"})


@router.get("/v1/models")
async def models(http: HttpRequest) -> JSONResponse:
    client = completions.engine(http)
    meta = {k: v for k, v in client.meta.items() if k != "aliases"}
    return JSONResponse({"object": "list", "data": [{"id": client.name, "object": "model",
                                                     "created": int(http.app.state.geex.started),
                                                     "owned_by": "geex", "meta": meta}]})


@router.get("/slots")
async def slots(http: HttpRequest) -> JSONResponse:
    return JSONResponse(completions.engine(http).scheduler.stats()["slots"])


@router.get("/metrics")
async def metrics_endpoint(http: HttpRequest) -> Response:
    state: ServeState = http.app.state.geex
    if state.client is not None:
        state.metrics.refresh(state.client.scheduler.stats())
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


PLAYGROUND = Path(__file__).parent / "playground"
PLAYGROUND_FILES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
                    "style.css": "text/css; charset=utf-8"}
# the page runs only its own script and talks only to this server
PLAYGROUND_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
                  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def _static(name: str) -> Response:
    """A file of the playground (a fixed list: no path from the request reaches the filesystem)."""
    if name not in PLAYGROUND_FILES:
        return JSONResponse(errors.error_body(404, f"no such file: {name}"), status_code=404)
    return Response((PLAYGROUND / name).read_bytes(), media_type=PLAYGROUND_FILES[name],
                    headers={"Content-Security-Policy": PLAYGROUND_CSP, "X-Content-Type-Options": "nosniff",
                             "Cache-Control": "no-cache"})


def cors_regex(origins: tuple[str, ...]) -> str:
    """Origins a browser page may call from: ``localhost`` (http(s) on localhost/127.0.0.1, any
    port), ``vscode-webview`` (VS Code's webviews), ``*``, or exact origins."""
    import re

    parts = []
    for origin in origins:
        if origin == "*":
            return ".*"
        if origin == "localhost":
            parts.append(r"https?://(localhost|127\.0\.0\.1|\[::1\])(:\d+)?")
        elif origin == "vscode-webview":
            parts.append(r"vscode-webview://[^/]+")
        else:
            parts.append(re.escape(origin.rstrip("/")))
    return "^(" + "|".join(parts) + ")$" if parts else "^$"
