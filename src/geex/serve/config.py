"""Every option of ``geex serve``, declared once (the CLI's flags are built from the same names)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

DEFAULT_PORT = 6007  # the CodeGeeX demo's port; clear of vLLM (8000), llama.cpp/Tabby (8080), Ollama (11434)
DEFAULT_CORS = ("localhost", "vscode-webview")


@dataclass
class ServeConfig:
    model: str | None = None  # registry spec: preset, directory, GGUF file, Hub id; None = the default model
    device: str = "cpu"
    dtype: str | None = None  # float32 / bfloat16 / float16; None = the loader's default
    quantize: str | None = None
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT  # 0 = a free port, printed
    api_keys: tuple[str, ...] = ()
    insecure: bool = False  # allow a non-loopback bind without a key (on purpose)
    max_concurrency: int | None = None  # KV slots; None = 1 on CPU, 32 on GPU
    max_queue: int | None = None  # None = 4 x slots
    ctx: int | None = None  # positions per slot; None = the model's context, capped by memory
    prefill_chunk: int = 256
    body_limit: int = 2 * 1024 * 1024
    cors_origins: tuple[str, ...] = DEFAULT_CORS
    log_prompts: bool = False
    metrics_auth: bool = False
    shutdown_grace_s: float = 5.0
    max_connections: int = 1024  # open connections (and requests) at once; more get 503
    extra: dict = field(default_factory=dict)

    @property
    def slots(self) -> int:
        if self.max_concurrency is not None:
            return self.max_concurrency
        return 1 if self.device == "cpu" else 32


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
