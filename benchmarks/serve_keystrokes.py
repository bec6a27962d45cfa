"""Simulated developers typing into an editor with completion at the cursor, against ``geex serve``
(and llama.cpp's ``llama-server`` under the same replay).

Each typist types a real source file -- the canonical solution of a HumanEval-X Python problem, after
its prompt (signature and docstring) already in the file -- at 80-200 ms a character, pausing
0.4-1.2 s at the end of a line; 250 ms after the last keystroke the editor asks for a completion
(``POST /completion``, llama.cpp's native route, which both servers speak: the same bytes to each),
and every keystroke aborts the request in flight, as Continue and llama.vim do. Reported over the
requests that got a first token, its time (p50/p99); over those that ran to the end, the time end to
end (p50/p99) and the share of prompt tokens found in the cache; and stale work: tokens generated for requests that were then cancelled,
over all generated (geex counts them in ``/metrics``; from the client, the tokens aborted streams
had received, a lower bound, for both servers).

``cpu``: the default model, ``--typists`` (1), against ``--llama-server PATH`` on the same GGUF file.
``gpu``: a Qwen2.5-Coder-1.5B-shaped model with random weights (bf16), 32 typists.

Writes benchmarks/results/serve_keystrokes_{cpu,gpu}.{json,md} with the machine, date and commit.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve import ROOT, SHAPES, IdTokenizer, engine_for, ms, start_server  # noqa: E402

DATASET = Path(os.environ.get("GEEX_HUMANEVALX", ROOT.parent / "shared" / "humaneval-x"))
DEBOUNCE_S = 0.25


def files(n: int) -> list[tuple[str, str]]:
    """(already in the file, to type) for ``n`` typists: HumanEval-X Python problems in order."""
    with gzip.open(DATASET / "humaneval_python.jsonl.gz", "rt") as f:
        problems = [json.loads(line) for line in f]
    return [(p["prompt"], p["canonical_solution"]) for p in problems[:n]]


async def typist(url: str, head: str, body: str, chars: int, seed: int, n_predict: int, out: dict) -> None:
    import httpx

    rng = random.Random(seed)
    pending: asyncio.Task | None = None

    async def ask(prompt: str) -> None:
        await asyncio.sleep(DEBOUNCE_S)  # a keystroke within this cancels the task before any request
        start = time.perf_counter()
        first = None
        received = 0
        done = False
        try:
            async with client.stream("POST", url + "/completion", json={
                    "prompt": prompt, "n_predict": n_predict, "stream": True, "temperature": 0, "top_k": 1,
                    "cache_prompt": True}) as r:
                async for line in r.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    frame = json.loads(line[6:])
                    if frame.get("content"):
                        first = first or time.perf_counter()
                        received += len(frame.get("tokens") or [1])
                    if frame.get("stop"):
                        t = frame.get("timings", {})
                        done = True
                        out["done"].append({"ttft": (first or time.perf_counter()) - start,
                                            "e2e": time.perf_counter() - start,
                                            "prompt_n": t.get("prompt_n", 0), "cache_n": t.get("cache_n", 0),
                                            "predicted_n": t.get("predicted_n", received)})
        finally:
            if first is not None:  # every request that got its first token, aborted later or not
                out["ttft"].append(first - start)
            if not done:
                out["aborted_tokens"] += received
                out["aborted"] += 1 if first is not None or received else 0

    async with httpx.AsyncClient(timeout=120) as client:
        typed = head
        for ch in body[:chars]:
            await asyncio.sleep(rng.uniform(0.08, 0.2) + (rng.uniform(0.4, 1.2) if typed.endswith("\n") else 0))
            typed += ch
            if pending is not None:
                pending.cancel()  # the keystroke aborts the request in flight (or its debounce)
            pending = asyncio.create_task(ask(typed))
        if pending is not None:
            try:
                await pending
            except asyncio.CancelledError:
                pass


def replay(url: str, typists: int, chars: int, n_predict: int) -> dict:
    out = {"done": [], "ttft": [], "aborted": 0, "aborted_tokens": 0}

    async def main() -> None:
        await asyncio.gather(*(typist(url, head, body, chars, k, n_predict, out)
                               for k, (head, body) in enumerate(files(typists))))

    start = time.perf_counter()
    asyncio.run(main())
    done = out["done"]
    received = sum(d["predicted_n"] for d in done) + out["aborted_tokens"]
    prompt = sum(d["prompt_n"] + d["cache_n"] for d in done)
    return {"typists": typists, "wall_s": time.perf_counter() - start, "completed": len(done),
            "aborted_streams": out["aborted"],
            "first_tokens": len(out["ttft"]),
            "ttft_p50_ms": ms(out["ttft"], 0.5), "ttft_p99_ms": ms(out["ttft"], 0.99),
            "e2e_p50_ms": ms([d["e2e"] for d in done], 0.5), "e2e_p99_ms": ms([d["e2e"] for d in done], 0.99),
            "cached_ratio": sum(d["cache_n"] for d in done) / prompt if prompt else None,
            "stale_received_ratio": out["aborted_tokens"] / received if received else None}


def _metric(url: str, name: str) -> float:
    import httpx

    for line in httpx.get(url + "/metrics").text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.rpartition(" ")[2])
    return 0.0


def geex_replay(url: str, typists: int, chars: int, n_predict: int) -> dict:
    """The replay, with geex's own count of stale work (tokens generated for cancelled requests)."""
    made, stale = _metric(url, "geex_generation_tokens_total"), _metric(url, "geex_generation_tokens_cancelled_total")
    r = replay(url, typists, chars, n_predict)
    made = _metric(url, "geex_generation_tokens_total") - made
    r["stale_work"] = (_metric(url, "geex_generation_tokens_cancelled_total") - stale) / made if made else None
    return r


def llama_server(binary: str, model: Path, slots: int):
    import socket

    import httpx

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen([binary, "-m", str(model), "--port", str(port), "-np", str(slots), "-c", str(2048 * slots),
                             "-t", str(os.cpu_count()), "--metrics"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health").status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("llama-server did not start")


def cpu_main(args) -> dict:
    from geex.serve.config import ServeConfig

    results = {"mode": "cpu", "cores": os.cpu_count(), "typists": args.typists, "chars": args.chars, "servers": {}}
    for dtype, quantize in (("float32", None), ("bfloat16", "int8")):
        server = start_server(config=ServeConfig(port=0, ctx=2048, max_concurrency=max(2, args.typists), dtype=dtype,
                                                 quantize=quantize))
        name = "geex " + ("fp32" if quantize is None else f"bf16 + {quantize}")
        results["servers"][name] = geex_replay(server.url, args.typists, args.chars, args.n_predict)
        server.stop()
    if args.llama_server:
        from geex.models.registry import default_model_path

        proc, url = llama_server(args.llama_server, default_model_path(), max(1, args.typists))
        try:
            results["servers"]["llama.cpp (Q4_1)"] = replay(url, args.typists, args.chars, args.n_predict)
        finally:
            proc.terminate()
            proc.wait(30)
    return results


def gpu_main(args) -> dict:
    import torch

    from geex.models.llama import LlamaConfig

    cfg = LlamaConfig(n_positions=4096, **SHAPES["qwen2.5-coder-1.5b"])
    with torch.device("cuda"):
        model = cfg.build()
    model.init_weights(torch.Generator(device="cuda").manual_seed(0))
    model = model.to(torch.bfloat16).eval()
    engine = engine_for(model, IdTokenizer(cfg.vocab_size), "qwen2.5-coder-1.5b", slots=args.typists, ctx=2048)
    server = start_server(engine)
    results = {"mode": "gpu", "card": torch.cuda.get_device_name(), "typists": args.typists, "chars": args.chars,
               "servers": {"geex": geex_replay(server.url, args.typists, args.chars, args.n_predict)}}
    server.stop()
    engine.scheduler.close()
    return results


def write(results: dict, out: Path) -> None:
    import datetime as dt
    import platform

    # GEEX_COMMIT: the commit of the tree as sent to a device (whose copy's git may be stale)
    commit = os.environ.get("GEEX_COMMIT") or subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    results |= {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "commit": commit,
                "machine": {"platform": platform.platform(), "cores": os.cpu_count()}}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    where = results.get("card") or f"{results['cores']} CPU cores, the default model"
    lines = [f"# geex serve — keystrokes, {results['mode']}, {results['date']}, commit {commit}", "",
             f"{where}; {results['typists']} typist(s), {results['chars']} characters each at 80-200 ms (0.4-1.2 s "
             "more after a newline), 250 ms debounce, every keystroke aborting the request in flight; "
             "`POST /completion`, greedy.", "",
             "| server | completed | aborted | TTFT p50 / p99 ms (all first tokens) | end to end p50 / p99 ms | cached prompt share | "
             "stale work (server) | stale (received, lower bound) |", "|---|---|---|---|---|---|---|---|"]

    def pct(x):
        return "—" if x is None else f"{100 * x:.1f} %"

    for name, r in results["servers"].items():
        lines.append(f"| {name} | {r['completed']} | {r['aborted_streams']} | {r['ttft_p50_ms']:.1f} / {r['ttft_p99_ms']:.1f} "
                     f"| {r['e2e_p50_ms']:.1f} / {r['e2e_p99_ms']:.1f} | {pct(r['cached_ratio'])} | "
                     f"{pct(r.get('stale_work'))} | {pct(r['stale_received_ratio'])} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    c = sub.add_parser("cpu")
    c.add_argument("--typists", type=int, default=1)
    c.add_argument("--llama-server", help="a llama-server binary for the baseline")
    g = sub.add_parser("gpu")
    g.add_argument("--typists", type=int, default=32)
    for p in (c, g):
        p.add_argument("--chars", type=int, default=400, help="characters each typist types")
        p.add_argument("--n-predict", type=int, default=32, help="tokens a completion asks for")
        p.add_argument("--out", default=None)
    args = ap.parse_args()
    results = {"cpu": cpu_main, "gpu": gpu_main}[args.mode](args)
    write(results, Path(args.out or ROOT / f"benchmarks/results/serve_keystrokes_{args.mode}"))


if __name__ == "__main__":
    main()
