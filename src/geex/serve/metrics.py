"""Prometheus metrics (``GET /metrics``), ``geex_`` names with a ``model`` label; each maps onto a
vLLM (``vllm:*``), llama.cpp (``llamacpp:*``) or TGI (``tgi_*``) counterpart so the same dashboards
work. One registry per app (tests start several servers in one process)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# dense between 5 ms and 1 s: code completion lives there
_LATENCY = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0,
            30.0, 60.0)
_TOKENS = (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)


class Metrics:
    def __init__(self, model: str, stats: Callable[[], dict] | None = None) -> None:
        self.registry = CollectorRegistry()
        self.model = model
        r, m = self.registry, ["model"]
        self.running = Gauge("geex_requests_running", "Requests holding a slot", m, registry=r)
        self.waiting = Gauge("geex_requests_waiting", "Requests queued for a slot", m, registry=r)
        self.slots_busy = Gauge("geex_slots_busy", "KV slots in use", m, registry=r)
        self.kv_usage = Gauge("geex_kv_cache_usage_ratio", "Share of the KV cache's positions holding tokens",
                              m, registry=r)
        self.loaded = Gauge("geex_model_loaded", "1 once the model is loaded and warm", m, registry=r)
        self.prompt_tokens = Counter("geex_prompt_tokens", "Prompt tokens received", m, registry=r)
        self.cached_tokens = Counter("geex_prompt_tokens_cached", "Prompt tokens found in the KV cache", m,
                                     registry=r)
        self.generation_tokens = Counter("geex_generation_tokens", "Tokens generated", m, registry=r)
        self.stale_tokens = Counter("geex_generation_tokens_cancelled",
                                    "Tokens generated for requests that were then cancelled (stale work)", m,
                                    registry=r)
        self.requests = Counter("geex_requests", "Finished requests", ["model", "endpoint", "finish_detail"],
                                registry=r)
        self.cancelled = Counter("geex_requests_cancelled", "Requests cancelled, by where they were",
                                 ["model", "phase"], registry=r)
        self.rejected = Counter("geex_requests_rejected", "Requests refused, by reason", ["model", "reason"],
                                registry=r)
        self.ttft = Histogram("geex_time_to_first_token_seconds", "Time to the first token", m,
                              buckets=_LATENCY, registry=r)
        self.itl = Histogram("geex_inter_token_latency_seconds", "Time between tokens of a request", m,
                             buckets=_LATENCY, registry=r)
        self.e2e = Histogram("geex_e2e_request_latency_seconds", "Request latency, arrival to last token", m,
                             buckets=_LATENCY, registry=r)
        self.queue_time = Histogram("geex_request_queue_time_seconds", "Time waiting for a slot", m,
                                    buckets=_LATENCY, registry=r)
        self.prefill_time = Histogram("geex_request_prefill_time_seconds", "Time computing the prompt", m,
                                      buckets=_LATENCY, registry=r)
        self.cancel_latency = Histogram("geex_cancel_latency_seconds", "Cancellation to a freed slot", m,
                                        buckets=_LATENCY, registry=r)
        self.prompt_size = Histogram("geex_request_prompt_tokens", "Prompt tokens per request", m,
                                     buckets=_TOKENS, registry=r)
        self.generation_size = Histogram("geex_request_generation_tokens", "Generated tokens per request", m,
                                         buckets=_TOKENS, registry=r)
        self._stats = stats
        for phase in ("queued", "prefill", "decode"):
            self.cancelled.labels(model, phase)
        for reason in ("queue_full", "too_long", "auth", "body_too_large", "loading"):
            self.rejected.labels(model, reason)

    def refresh(self, stats: dict | None) -> None:
        """Gauges from the scheduler's snapshot (on every scrape)."""
        if stats is None:
            return
        self.running.labels(self.model).set(stats["running"])
        self.waiting.labels(self.model).set(stats["waiting"])
        self.slots_busy.labels(self.model).set(sum(s["busy"] for s in stats["slots"]))
        capacity = stats.get("ctx", 0) * len(stats["slots"])
        if capacity:
            self.kv_usage.labels(self.model).set(sum(s["n_ctx"] for s in stats["slots"]) / capacity)

    def reject(self, reason: str) -> None:
        self.rejected.labels(self.model, reason).inc()
