"""A bounded load test on loopback (CI size): 16 concurrent streaming clients for a few seconds
against a tiny model: every request succeeds and streams to ``[DONE]``, no slot stays busy, and the
server's memory does not grow with the number of requests served."""

from __future__ import annotations

import asyncio
import json
import resource
import time

import httpx
import pytest

from geex.serve.config import ServeConfig
from tests.serve.conftest import metric, metric_sum, start_server, tiny_engine

pytestmark = pytest.mark.serial  # a load test measures the server, not its neighbours: alone

CLIENTS = 16
SECONDS = 8.0


async def _client(url: str, k: int, until: float, results: list) -> None:
    async with httpx.AsyncClient(timeout=60) as c:
        i = 0
        while time.monotonic() < until:
            body = {"prompt": f"# client {k} request {i}\n" + "x = 1\n" * (k % 5), "max_tokens": 8 + k % 7,
                    "stream": True, "temperature": 0 if k % 2 else 0.7, "seed": i}
            frames = []
            async with c.stream("POST", url + "/v1/completions", json=body) as r:
                status = r.status_code
                async for line in r.aiter_lines():
                    if line.startswith("data: "):
                        frames.append(line[6:])
            done = frames[-1:] == ["[DONE]"] and all("error" not in json.loads(f) for f in frames[:-1])
            results.append((status, done))
            i += 1


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_sixteen_streaming_clients(codegeex_tokenizer):
    running = start_server(ServeConfig(port=0), engine=tiny_engine(tokenizer=codegeex_tokenizer, slots=4,
                                                                   max_queue=CLIENTS))
    try:
        def burst(seconds: float) -> list:
            results: list = []

            async def main() -> None:
                until = time.monotonic() + seconds
                await asyncio.gather(*(_client(running.url, k, until, results) for k in range(CLIENTS)))

            asyncio.run(main())
            return results

        warm = burst(2.0)
        rss_warm = _rss_mb()
        results = burst(SECONDS)
        rss_after = _rss_mb()
        assert len(results) > CLIENTS
        assert all(status == 200 and done for status, done in [*warm, *results]), \
            [r for r in results if r != (200, True)][:5]
        stats = running.client.scheduler.stats()
        assert stats["running"] == 0 and stats["waiting"] == 0 and not any(s["busy"] for s in stats["slots"])
        assert metric(running.url, "geex_requests_rejected_total", reason="queue_full") == 0
        # the metrics add up: every request made was counted once, finished normally
        assert metric_sum(running.url, "geex_requests_total") == len(warm) + len(results)
        assert metric_sum(running.url, "geex_requests_cancelled_total") == 0
        assert rss_after - rss_warm < 64, (rss_warm, rss_after)  # stable: not growing with requests
    finally:
        running.stop()
