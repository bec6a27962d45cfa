"""``POST /tokenize``, ``POST /detokenize`` and ``GET /version``: what editors and tools ask besides
generation (to count a prompt against the context before sending it, to show tokens).

Both shapes that clients use are answered: vLLM's (``prompt`` in; ``tokens``, ``count``,
``max_model_len`` out; ``prompt`` back from ``/detokenize``) and llama.cpp's (``content`` in and
back). Token ids are checked against the vocabulary before anything decodes them.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

import geex
from geex.serve.completions import check_model, engine, off_loop
from geex.serve.engine_client import EngineClient
from geex.serve.errors import ApiError
from geex.serve.protocol import DetokenizeRequest, TokenizeRequest

router = APIRouter()


@router.post("/tokenize")
async def tokenize(body: TokenizeRequest, client: EngineClient = Depends(engine)) -> JSONResponse:
    check_model(body, client)
    text = body.prompt if body.prompt is not None else body.content
    if text is None:
        raise ApiError(400, "give the text as prompt (or content)", param="prompt")
    ids = await off_loop(client.encode, text, size=len(text))
    return JSONResponse({"tokens": ids, "count": len(ids), "max_model_len": client.scheduler.ctx})


@router.post("/detokenize")
async def detokenize(body: DetokenizeRequest, client: EngineClient = Depends(engine)) -> JSONResponse:
    check_model(body, client)
    vocab = client.tokenizer.vocab_size
    if any(not 0 <= t < vocab for t in body.tokens):
        raise ApiError(400, f"token ids must be in [0, {vocab})", param="tokens")
    text = client.tokenizer.decode(body.tokens)
    return JSONResponse({"prompt": text, "content": text})


@router.get("/version")
async def version() -> JSONResponse:
    return JSONResponse({"version": geex.__version__})
