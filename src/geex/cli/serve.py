"""``geex serve``: the model behind an OpenAI-compatible HTTP API (``geex.serve``)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from geex.cli.options import _add_device_options, _device_and_dtype
from geex.errors import UserError
from geex.options import positive_int, positive_number


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 (any free one) to 65535, got {value}")
    return value


def _api_keys(args: argparse.Namespace) -> tuple[str, ...]:
    keys = [k for k in (args.api_key, os.environ.get("GEEX_API_KEY")) if k]
    if args.api_key_file:
        try:
            text = Path(args.api_key_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"cannot read --api-key-file {args.api_key_file}: {getattr(e, 'strerror', None) or e}") from None
        keys += [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
        if not keys:
            raise UserError(f"--api-key-file {args.api_key_file} holds no key (one a line)")
    for key in keys:  # HTTP headers carry bytes: a key outside printable ASCII could never be sent reliably
        if not (key.isascii() and key.isprintable()) or " " in key:
            raise UserError("an API key must be printable ASCII without spaces")
    return tuple(keys)


def _cmd_serve(args: argparse.Namespace) -> int:
    from geex.serve.config import ServeConfig
    from geex.serve.server import serve

    if args.model is not None and not args.model.strip():
        raise UserError("--model is empty (leave it out to serve the default model)")
    device, dtype = _device_and_dtype(args)
    config = ServeConfig(
        model=args.model, device=device, dtype=str(dtype).removeprefix("torch."), quantize=args.quantize,
        host=args.host, port=args.port, api_keys=_api_keys(args), insecure=args.insecure,
        max_concurrency=args.max_concurrency, max_queue=args.max_queue, ctx=args.ctx,
        prefill_chunk=args.prefill_chunk, cors_origins=tuple(args.cors_origins.split(",")) if args.cors_origins else (),
        log_prompts=args.log_prompts, metrics_auth=args.metrics_auth, body_limit=args.max_body_kb * 1024,
        shutdown_grace_s=args.shutdown_grace,
    )
    return serve(config)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``geex serve``."""
    from geex.serve.config import DEFAULT_PORT

    p = subparsers.add_parser(
        "serve", help="serve a model over an OpenAI-compatible HTTP API (completions, chat, streaming, metrics)",
        description="Serve a model over HTTP: /v1/completions and /v1/chat/completions (OpenAI's API, streamed as "
                    "server-sent events), /v1/models, /health, /metrics (Prometheus), /slots. Requests are batched "
                    "continuously; a client that disconnects frees its slot at once. With no --model, the embedded "
                    "default model is served on the CPU. It listens on 127.0.0.1 only unless --host says otherwise, "
                    "and then wants an API key.")
    p.add_argument("--model", help="what to serve: smollm2-135m-instruct (default), a CodeGeeX or Llama preset, a Hugging "
                   "Face model directory, a .gguf file, a geex model directory, or a Hub id (online)")
    _add_device_options(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only; "
                   "another address needs --api-key)")
    p.add_argument("--port", type=_port, default=DEFAULT_PORT,
                   help=f"TCP port to listen on (default {DEFAULT_PORT}; 0 picks a free one and prints it)")
    p.add_argument("--api-key", help="require this key (Authorization: Bearer KEY or x-api-key: KEY) on every "
                   "endpoint but /health and /metrics; also read from $GEEX_API_KEY")
    p.add_argument("--api-key-file", metavar="FILE", help="more keys, one a line")
    p.add_argument("--insecure", action="store_true", help="allow a non-loopback --host without an API key")
    p.add_argument("--max-concurrency", type=positive_int, metavar="N",
                   help="requests decoded at once: KV cache slots (default: 1 on cpu, 32 on cuda)")
    p.add_argument("--max-queue", type=positive_int, metavar="N",
                   help="requests waiting for a slot before the server answers 429 (default: 4 x slots)")
    p.add_argument("--ctx", type=positive_int, metavar="TOKENS",
                   help="context per slot (default: the model's, capped so the KV cache takes at most a quarter of "
                        "the free memory)")
    p.add_argument("--prefill-chunk", type=positive_int, default=256, metavar="TOKENS",
                   help="a long prompt is computed this many tokens at a time between decode steps (default 256)")
    p.add_argument("--cors-origins", default="localhost,vscode-webview", metavar="LIST",
                   help="browser origins allowed to call the API, comma-separated: localhost (any port), "
                        "vscode-webview, exact origins, or * (default: localhost,vscode-webview)")
    p.add_argument("--max-body-kb", type=positive_int, default=2048, metavar="KB",
                   help="largest request body accepted (default 2048 KB; larger: 413)")
    p.add_argument("--log-prompts", action="store_true",
                   help="put prompt text in the access log (default: counts and timings only)")
    p.add_argument("--metrics-auth", action="store_true", help="require the API key on /metrics too")
    p.add_argument("--shutdown-grace", type=positive_number, default=5.0, metavar="SECONDS",
                   help="on SIGTERM or Ctrl-C, requests in flight may go on this long, then end with an error "
                        "(streams: an error frame) before the server exits (default 5)")
    p.set_defaults(func=_cmd_serve)
