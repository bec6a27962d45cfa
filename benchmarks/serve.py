"""How fast does ``geex serve`` answer, against the engine's own offline batch step and a baseline
measured in the same run?

``gpu``: Qwen2.5-Coder-1.5B- and 7B-shaped Llama models with random weights (bf16), token-id
requests over HTTP from separate client processes, a few streams each (so the clients neither share
the server's interpreter nor become the bottleneck), started together on never-seen prompts:
throughput at 1/8/32/64 concurrent streams, TTFT p50/p99, inter-token latency p50/p99; TTFT of a
1.5K-token prompt on the idle server; the served decode step at 32 streams (a request's time from
first to last token, a token; p50) against the engine's offline step of 32 rows (the scheduler's CUDA
graph replayed back to back): the server and scheduler overhead; baseline:
``transformers`` ``generate`` with its static cache at the same batch sizes on the same GPU.

``overhead``: the server's own cost a token, no GPU needed: a model whose step costs nothing, or
sleeps as long as a GPU step (``--step-ms``), served at ``--streams``.

``cpu``: the embedded default model on this machine's cores, end to end over HTTP: a cold
512-token prompt + 32 tokens, and a keystroke (the same prompt plus a few characters: cached prefix)
+ 32 tokens, TTFT and total; optionally against llama.cpp's ``llama-server`` on the same GGUF and the
same requests (``--llama-server PATH``: build it yourself, see ``docs/serving.md``).

Writes benchmarks/results/serve_{gpu,cpu,overhead}.{json,md} with the card, date and commit.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHAPES = {  # Qwen2.5-Coder configs (config.json of the released models)
    "qwen2.5-coder-1.5b": dict(n_layer=28, n_embd=1536, n_head=12, n_kv_head=2, intermediate_size=8960,
                               vocab_size=151936, rope_theta=1e6, qkv_bias=True, tie_embeddings=True),
    "qwen2.5-coder-7b": dict(n_layer=28, n_embd=3584, n_head=28, n_kv_head=4, intermediate_size=18944,
                             vocab_size=152064, rope_theta=1e6, qkv_bias=True, tie_embeddings=False),
    "smollm2-135m": dict(n_layer=30, n_embd=576, n_head=9, n_kv_head=3, intermediate_size=1536, vocab_size=49152,
                         rope_theta=1e5, qkv_bias=False, tie_embeddings=True),  # SmolLM2-135M's config.json
    "tiny": dict(n_layer=2, n_embd=64, n_head=4, n_kv_head=2, intermediate_size=128, vocab_size=32000,
                 rope_theta=1e6, qkv_bias=True, tie_embeddings=True),  # a smoke test of this script
}


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


class IdTokenizer:
    """Token-id requests: text is irrelevant, so decoding is a cheap stand-in (one letter a token)."""

    def __init__(self, vocab: int) -> None:
        self.vocab_size = vocab
        self.eos_id = vocab - 1
        self.stop_ids = frozenset({vocab - 1})

    def encode_batch(self, texts):
        return [[ord(c) % 1000 + 1 for c in t] for t in texts]

    def decode(self, ids) -> str:
        return "".join(chr(97 + i % 26) for i in ids)


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def ms(values: list[float], q: float) -> float | None:
    """The ``q`` quantile of seconds, in ms (None: nothing measured)."""
    v = pct(values, q)
    return None if v is None else 1000 * v


# -- the client process ---------------------------------------------------------------------------------
async def _stream(client, url: str, body: dict) -> dict:
    import httpx  # noqa: F401  (the client's own import, in its own process)

    start = time.perf_counter()
    stamps = []  # arrivals of text (a frame may carry several tokens that piled up: ITL is between frames)
    tokens = None
    body = {**body, "stream_options": {"include_usage": True}}
    async with client.stream("POST", url + "/v1/completions", json=body) as r:
        if r.status_code != 200:
            return {"error": r.status_code}
        async for line in r.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                chunk = json.loads(line[6:])
                if chunk.get("choices") and chunk["choices"][0].get("text"):
                    stamps.append(time.perf_counter())
                if chunk.get("usage"):
                    tokens = chunk["usage"]["completion_tokens"]
    if not stamps or tokens is None:
        return {"error": "no tokens"}
    return {"ttft": stamps[0] - start, "itl": [b - a for a, b in zip(stamps, stamps[1:])], "tokens": tokens,
            "frames": len(stamps), "e2e": time.perf_counter() - start}


def clients_main(args: argparse.Namespace) -> None:
    """``serve.py _clients``: ``--streams`` concurrent clients, each sending ``--requests`` in turn,
    starting together at ``--start`` (a wall-clock time shared by every client process); prints the
    raw timings, which the parent pools over its client processes."""
    import httpx

    rng = random.Random(args.seed)

    async def one_client(k: int, out: list) -> None:
        async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=args.streams)) as c:
            for i in range(args.requests):
                prompt = [rng.randrange(1, args.vocab) for _ in range(args.prompt_len)]
                out.append(await _stream(c, args.url, {"prompt": prompt, "max_tokens": args.new, "temperature": 0,
                                                        "ignore_eos": True, "stream": True}))

    async def main() -> dict:
        out: list = []
        await asyncio.sleep(max(0.0, args.start - time.time()))
        await asyncio.gather(*(one_client(k, out) for k in range(args.streams)))
        return {"end": time.time(), "results": out}

    print(json.dumps(asyncio.run(main())))


STREAMS_A_CLIENT_PROCESS = 8  # one asyncio process parsing 32 streams' frames every 3 ms would be the bottleneck


def run_clients(url: str, streams: int, requests: int, prompt_len: int, new: int, vocab: int = 30000) -> dict:
    """``streams`` concurrent streaming clients over several client processes (a few streams each, so
    the client is never what is measured), started together; pooled timings."""
    procs = max(1, -(-streams // STREAMS_A_CLIENT_PROCESS))
    start = time.time() + 1.5 + 0.1 * procs  # after every client process has imported httpx
    seed = int(start * 1000)  # prompts never seen before by this server: no run reuses an earlier run's prefixes
    shares = [streams // procs + (k < streams % procs) for k in range(procs)]
    running = [subprocess.Popen([sys.executable, __file__, "_clients", "--url", url, "--streams", str(n),
                                 "--requests", str(requests), "--prompt-len", str(prompt_len), "--new", str(new),
                                 "--vocab", str(vocab), "--start", repr(start), "--seed", str(seed + k)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for k, n in enumerate(shares)]
    outs = []
    for p in running:
        stdout, stderr = p.communicate(timeout=1800)
        if p.returncode != 0:
            raise RuntimeError(stderr[-2000:])
        outs.append(json.loads(stdout.strip().splitlines()[-1]))
    wall = max(o["end"] for o in outs) - start
    got = [r for o in outs for r in o["results"]]
    ok = [r for r in got if "error" not in r]
    itl = [x for r in ok for x in r["itl"]]
    # a request's decode step as its client saw it: the time from its first token to its last, a token
    decode = [(r["e2e"] - r["ttft"]) / (r["tokens"] - 1) for r in ok if r["tokens"] > 1]
    return {"streams": streams, "client_processes": procs, "requests": len(got), "errors": len(got) - len(ok),
            "tokens_per_s": sum(r["tokens"] for r in ok) / wall, "wall_s": wall,
            "tokens_per_frame": sum(r["tokens"] for r in ok) / max(1, sum(r["frames"] for r in ok)),
            "ttft_p50_ms": ms([r["ttft"] for r in ok], 0.5), "ttft_p99_ms": ms([r["ttft"] for r in ok], 0.99),
            "itl_p50_ms": ms(itl, 0.5), "itl_p99_ms": ms(itl, 0.99), "decode_step_p50_ms": ms(decode, 0.5)}


# -- the server, in this process --------------------------------------------------------------------------
def start_server(engine=None, config=None):
    """The real app in a thread (``geex.serve.server.start_in_thread``), once /health says 200: over
    ``engine``, or loading ``config``'s model as ``geex serve`` does (in a loader thread: on CPU, a
    torch thread pool left on another live thread, e.g. the main one after loading there, halves
    the scheduler thread's speed)."""
    import httpx

    from geex.serve.config import ServeConfig
    from geex.serve.server import start_in_thread

    running = start_in_thread(config or ServeConfig(port=0), engine=engine)
    while httpx.get(running.url + "/health").status_code != 200:
        time.sleep(0.1)
    return running


def engine_for(model, tokenizer, name: str, slots: int, ctx: int, graphs: bool | None = None):
    from geex.engine.scheduler import Scheduler
    from geex.serve.engine_client import EngineClient
    from geex.serve.metrics import Metrics

    sched = Scheduler(model, tokenizer, slots=slots, ctx=ctx, prefill_chunk=512, graphs=graphs)
    return EngineClient(name, sched, tokenizer, Metrics(name), {"context_length": ctx})


# -- gpu ---------------------------------------------------------------------------------------------------
def graphs_match_eager(model, tok, n: int = 6, new: int = 24) -> str:
    """Greedy tokens of ``n`` concurrent requests: the scheduler's CUDA-graph steps against eager ones
    ("k of n requests the same"; random bf16 weights are full of near-ties, and a graph's padded
    batch runs other GEMM kernels than the eager step, so a late divergence is not a bug by itself:
    ``tests/engine/test_cuda.py`` checks the logits within bf16 rounding)."""
    from geex.engine.scheduler import Request, Scheduler

    rng = random.Random(1)
    prompts = [[rng.randrange(1, 30000) for _ in range(rng.randrange(8, 200))] for _ in range(n)]
    outs = []
    for graphs in (False, True):
        sched = Scheduler(model, tok, slots=8, ctx=512, graphs=graphs)
        got: dict[int, list[int]] = {i: [] for i in range(n)}
        done = threading.Semaphore(0)
        for i, p in enumerate(prompts):
            def emit(ev, i=i):
                if ev.kind == "token":
                    got[i].append(ev.token_id)
                elif ev.kind == "finished":
                    done.release()
            sched.submit(Request(p, new, emit, ignore_eos=True))
        for _ in prompts:
            done.acquire(timeout=300)
        sched.close()
        outs.append(got)
    same = sum(outs[0][i] == outs[1][i] for i in range(n))
    first = min((next((k for k, (a, b) in enumerate(zip(outs[0][i], outs[1][i])) if a != b), new) for i in range(n)))
    return f"{same} of {n} requests the same" + (f" (the first difference at token {first} of {new})" if same < n else "")


def offline_step_ms(model, rows: int, slots: int, ctx: int, position: int, reps: int = 50) -> float:
    """The engine's offline decode step of ``rows`` rows: the scheduler's own CUDA graph (rows 0..rows-1
    of a cache of ``slots`` slots, each row at ``position``) replayed back to back, no host work between
    steps — the floor the served step is measured against."""
    import torch

    from geex.engine.cuda_graph import GraphedRowsStep
    from geex.models.cache import KVCache

    cache = KVCache(model.config, slots, ctx, device=model.device, dtype=model.dtype)
    view = cache.rows(0, rows, static=True)
    if model.device.type == "cuda":
        step = GraphedRowsStep(model, view)
    else:  # the scheduler's eager step (a smoke test of this script off a GPU)
        def step(ids, starts):
            return model(ids[:, None], view, start=starts)[:, -1]
    ids = torch.randint(1, 30000, (rows,), device=model.device)
    starts = torch.full((rows,), position, device=model.device)
    step(ids, starts)
    sync()
    t = time.perf_counter()
    for _ in range(reps):
        step(ids, starts)
    sync()
    del step, view, cache
    return 1000 * (time.perf_counter() - t) / reps


def transformers_baseline(shape: dict, batches: list[int], prompt: int, new: int, device: str = "cuda") -> dict:
    """``transformers`` ``generate`` with its static cache (compiled decode where it works)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(hidden_size=shape["n_embd"], num_hidden_layers=shape["n_layer"],
                      num_attention_heads=shape["n_head"], num_key_value_heads=shape["n_kv_head"],
                      intermediate_size=shape["intermediate_size"], vocab_size=shape["vocab_size"],
                      rope_theta=shape["rope_theta"], tie_word_embeddings=shape["tie_embeddings"],
                      max_position_embeddings=4096)
    with torch.device(device):
        model = Qwen2ForCausalLM(cfg).to(torch.bfloat16).eval()
    out = {}
    for b in batches:
        ids = torch.randint(1, 30000, (b, prompt), device=device)
        kw = dict(max_new_tokens=new, min_new_tokens=new, do_sample=False, cache_implementation="static",
                  pad_token_id=0)
        model.generate(ids, **kw)  # the same call untimed first: a shorter one leaves the static cache
        sync()  # of this length (and its compiled step) to be built inside the timed run
        t = time.perf_counter()
        model.generate(ids, **kw)
        sync()
        out[b] = b * new / (time.perf_counter() - t)
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return out


def gpu_main(args: argparse.Namespace) -> dict:
    import torch

    from geex.models.llama import LlamaConfig

    streams = [int(s) for s in args.streams.split(",")]
    device = args.device
    card = torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor() or "cpu"
    results = {"mode": "gpu", "card": card, "shapes": {}}
    for name in args.shapes.split(","):
        shape = SHAPES[name]
        cfg = LlamaConfig(n_positions=4096, **shape)
        with torch.device(device):
            model = cfg.build()
        model.init_weights(torch.Generator(device=device).manual_seed(0))
        model = model.to(torch.bfloat16).eval()
        tok = IdTokenizer(cfg.vocab_size)
        row = {"streams": {}, "graphs_match_eager": graphs_match_eager(model, tok) if device.startswith("cuda") else None}
        engine = engine_for(model, tok, name, slots=max(streams), ctx=args.prompt_len + args.new + 8)
        server = start_server(engine)
        run_clients(server.url, 1, 2, args.prompt_len, 8)  # warm-up
        for s in streams:
            before = engine.scheduler.stats()["iterations"]["decode"]
            row["streams"][s] = run_clients(server.url, s, args.requests, args.prompt_len, args.new)
            after = engine.scheduler.stats()["iterations"]["decode"]
            steps = after["count"] - before["count"]
            # the scheduler's own decode-only iterations: the served step without prompt chunks beside it
            row["streams"][s]["scheduler_decode_step_ms"] = (
                1000 * (after["seconds"] - before["seconds"]) / steps if steps else None)
            print(name, s, row["streams"][s], file=sys.stderr, flush=True)
        server.stop()
        engine.scheduler.close()
        # TTFT of a 1.5K-token prompt on an idle server (one slot, long context)
        engine = engine_for(model, tok, name, slots=1, ctx=2048)
        server = start_server(engine)
        run_clients(server.url, 1, 1, 1500, 2)
        row["ttft_1500_idle"] = run_clients(server.url, 1, 5, 1500, 2)
        server.stop()
        engine.scheduler.close()
        if 32 in streams:  # served against offline: the decode step at 32 rows, mid-generation
            step = offline_step_ms(model, 32, max(streams), args.prompt_len + args.new + 8,
                                   args.prompt_len + args.new // 2)
            served = row["streams"][32]["decode_step_p50_ms"]
            row["offline_step_ms_b32"] = step
            row["server_step_ms_b32"] = served
            row["overhead_b32"] = served / step - 1
            alone = row["streams"][32].get("scheduler_decode_step_ms")
            if alone:
                row["scheduler_step_ms_b32"] = alone
                row["overhead_scheduler_b32"] = alone / step - 1
            row["ideal_tokens_per_s_b32"] = 1000 * 32 / step  # every step of 32 rows, no prompt to read
        del model, engine
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        if not args.no_baseline:
            row["transformers_tokens_per_s"] = transformers_baseline(shape, streams, args.prompt_len, args.new, device)
        results["shapes"][name] = row
        write(dict(results), Path(args.out))  # what is measured so far survives a later failure
    return results


# -- overhead ----------------------------------------------------------------------------------------------
def null_model(step_s: float = 0.0):
    """A model whose step costs nothing (or sleeps ``step_s``, as long as a GPU step, with the GIL
    released as a GPU wait releases it): what remains is the server's own cost a token. Its next
    token is a fixed function of the last (ids below 250; 255 = EOS is never chosen). Built here,
    not at import: the script's other modes import torch only when they need it."""
    import torch
    from torch import nn

    class _Null(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.config = type("Config", (), dict(n_positions=8192, vocab_size=256, cache_layers=1, n_kv_head=1,
                                                  head_dim=1, n_head=1))()
            self.anchor = nn.Parameter(torch.zeros(1))
            table = torch.full((256, 256), -10.0)
            table[torch.arange(256), (torch.arange(256) * 7 + 1) % 250] = 10.0
            self.register_buffer("table", table)

        @property
        def dtype(self):
            return torch.float32

        def forward(self, ids, cache=None, start=0, pad=None, last_only=False):
            if step_s:
                time.sleep(step_s)
            return self.table[ids[:, -1:] if last_only else ids]

    return _Null()


def overhead_main(args: argparse.Namespace) -> dict:
    """Tokens a second through the whole server with a model that costs nothing or sleeps."""
    import torch

    torch.set_num_threads(1)
    results = {"mode": "overhead", "cores": os.cpu_count(), "streams": args.streams, "rows": []}
    for step_ms in (float(x) for x in args.step_ms.split(",")):
        engine = engine_for(null_model(step_ms / 1000), IdTokenizer(256), "null", slots=args.streams, ctx=4096,
                            graphs=False)
        server = start_server(engine)
        run_clients(server.url, 2, 1, 16, 8, vocab=250)  # warm-up
        r = run_clients(server.url, args.streams, args.requests, 16, args.new, vocab=250)
        server.stop()
        engine.scheduler.close()
        r |= {"model_step_ms": step_ms, "us_per_token": 1e6 / r["tokens_per_s"],
              "served_step_ms": 1e3 * args.streams / r["tokens_per_s"]}
        results["rows"].append(r)
        print(json.dumps(r), file=sys.stderr, flush=True)
    return results


# -- cpu ---------------------------------------------------------------------------------------------------
def cpu_main(args: argparse.Namespace) -> dict:
    import httpx

    code = (ROOT / "src/geex/engine/scheduler.py").read_text()

    def timed(base: str, body: dict, path: str = "/v1/completions") -> dict:
        start = time.perf_counter()
        first = None
        with httpx.Client(timeout=600) as c, c.stream("POST", base + path, json=body) as r:
            for line in r.iter_lines():
                if line.startswith("data: ") and first is None and '"text": ""' not in line and "[DONE]" not in line:
                    first = time.perf_counter()
        return {"ttft_ms": 1000 * (first - start), "e2e_ms": 1000 * (time.perf_counter() - start)}

    def measure(base: str, cold: str) -> dict:
        body = {"prompt": cold, "max_tokens": 32, "temperature": 0, "stream": True, "ignore_eos": True}
        # cold: a different first line each time, so nothing is cached
        runs = [timed(base, {**body, "prompt": f"# {k}\n" + cold}) for k in range(args.repeats)]
        timed(base, {**body, "prompt": cold})  # the file as typed so far: what the keystrokes extend
        typed, keys = cold, []
        for _ in range(args.repeats):  # keystrokes: the last prompt plus one character
            typed += "x"
            keys.append(timed(base, {**body, "prompt": typed}))
        return {"cold_512_32": {k: statistics.median(r[k] for r in runs) for k in runs[0]},
                "keystroke_32": {k: statistics.median(r[k] for r in keys) for k in keys[0]}}

    from geex.serve.config import ServeConfig

    results = {"mode": "cpu", "cores": os.cpu_count(), "geex": {}, "llama.cpp": None}
    for dtype, quantize in (("float32", None), ("bfloat16", "int8")):
        server = start_server(config=ServeConfig(port=0, dtype=dtype, quantize=quantize, ctx=2048))
        url, tokenizer = server.url, server.client.tokenizer
        cold = tokenizer.decode(tokenizer.encode_batch([code])[0][:512])
        timed(url, {"prompt": "def f():", "max_tokens": 4, "stream": True})  # warm-up
        name = dtype + (f" + {quantize}" if quantize else "")
        results["geex"][name] = measure(url, cold)
        server.stop()
    if args.llama_server:
        results["llama.cpp"] = llama_cpp(args, cold, measure)
    return results


def llama_cpp(args, cold: str, measure) -> dict:
    """The same requests against ``llama-server`` on the same GGUF file (Q4_1 weights), one slot."""
    import socket

    import httpx

    from geex.models.registry import default_model_path

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    proc = subprocess.Popen([args.llama_server, "-m", str(default_model_path()), "--port", str(port), "-np", "1",
                             "-c", "2048", "-t", str(os.cpu_count())], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        return measure(base, cold)
    finally:
        proc.terminate()
        proc.wait(30)


# -- results ------------------------------------------------------------------------------------------------
def write(results: dict, out: Path) -> None:
    results = dict(results)
    # GEEX_COMMIT: the commit of the tree as sent to a device (whose copy's git may be stale)
    commit = os.environ.get("GEEX_COMMIT") or subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    results |= {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "commit": commit,
                "machine": {"platform": platform.platform(), "cores": os.cpu_count()}}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [f"# geex serve — {results['mode']}, {results['date']}, commit {commit}", ""]
    if results["mode"] == "overhead":
        lines.append(f"{results['cores']} CPU cores; a model whose step costs nothing or sleeps as long as a GPU step; "
                     f"{results['streams']} streams of 16-token prompts, greedy, over HTTP from a separate process.")
        lines += ["", "| model step ms | tokens/s | µs a token | served step ms | tokens a frame | errors |",
                  "|---|---|---|---|---|---|"]
        for r in results["rows"]:
            lines.append(f"| {r['model_step_ms']:g} | {r['tokens_per_s']:.0f} | {r['us_per_token']:.1f} | "
                         f"{r['served_step_ms']:.2f} | {r['tokens_per_frame']:.2f} | {r['errors']} |")
    elif results["mode"] == "gpu":
        lines.append(f"Card: {results['card']}. Random weights, bf16, token-id requests over HTTP from separate "
                     f"client processes ({STREAMS_A_CLIENT_PROCESS} streams each); greedy, EOS ignored.")

        def step(r: dict) -> str:
            return f"{r['decode_step_p50_ms']:.2f}" if r.get("decode_step_p50_ms") else "—"
        for name, row in results["shapes"].items():
            lines += ["", f"## {name}", "", "| streams | tokens/s | transformers tokens/s | ratio | TTFT p50 / p99 ms | "
                      "ITL p50 / p99 ms | decode ms a token p50 | errors |", "|---|---|---|---|---|---|---|---|"]
            base = row.get("transformers_tokens_per_s", {})
            for s, r in row["streams"].items():
                b = base.get(s) or base.get(str(s))
                ratio = f"{r['tokens_per_s'] / b:.2f}×" if b else "—"
                lines.append(f"| {s} | {r['tokens_per_s']:.0f} | {b:.0f} | {ratio} | {r['ttft_p50_ms']:.1f} / "
                             f"{r['ttft_p99_ms']:.1f} | {r['itl_p50_ms']:.1f} / {r['itl_p99_ms']:.1f} | {step(r)} | {r['errors']} |"
                             if b else f"| {s} | {r['tokens_per_s']:.0f} | — | — | {r['ttft_p50_ms']:.1f} / "
                             f"{r['ttft_p99_ms']:.1f} | {r['itl_p50_ms']:.1f} / {r['itl_p99_ms']:.1f} | {step(r)} | {r['errors']} |")
            lines.append(f"\nGreedy tokens, CUDA-graph steps against eager steps: {row.get('graphs_match_eager')}.")
            t = row["ttft_1500_idle"]
            lines.append(f"\nTTFT of a 1500-token prompt, idle server: p50 {t['ttft_p50_ms']:.1f} ms.")
            if "overhead_b32" in row:
                lines.append(f"At 32 streams: a decode step served in {row['server_step_ms_b32']:.2f} ms (p50 over "
                             "requests of the time from first to last token, a token) against "
                             f"{row['offline_step_ms_b32']:.2f} ms offline (the scheduler's CUDA graph of 32 rows "
                             f"replayed back to back): overhead {100 * row['overhead_b32']:.0f} %. Offline steps "
                             f"alone would give {row['ideal_tokens_per_s_b32']:.0f} tokens/s (no prompts read).")
            if "overhead_scheduler_b32" in row:
                lines.append(f"The scheduler's decode-only iterations at 32 streams (no prompt chunk beside them): "
                             f"{row['scheduler_step_ms_b32']:.2f} ms each: overhead "
                             f"{100 * row['overhead_scheduler_b32']:.0f} % over the offline step.")
    else:
        lines.append(f"{results['cores']} CPU cores, the default model (SmolLM2-135M-Instruct), one slot, HTTP "
                     "streaming; medians.")
        lines += ["", "| request | server | TTFT ms | total ms | total vs llama.cpp |", "|---|---|---|---|---|"]
        for key, label in (("cold_512_32", "cold 512-token prompt + 32 tokens"),
                           ("keystroke_32", "keystroke (cached prefix + 1 char) + 32 tokens")):
            base = (results["llama.cpp"] or {}).get(key)
            servers = [(f"geex {name}", r[key]) for name, r in results["geex"].items()]
            servers += [("llama.cpp (Q4_1)", base)] if base else []
            for who, r in servers:
                ratio = f"{r['e2e_ms'] / base['e2e_ms']:.2f}×" if base else "—"
                lines.append(f"| {label} | {who} | {r['ttft_ms']:.0f} | {r['e2e_ms']:.0f} | {ratio} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    g = sub.add_parser("gpu")
    g.add_argument("--shapes", default="qwen2.5-coder-1.5b,qwen2.5-coder-7b", help=f"of {', '.join(SHAPES)}")
    g.add_argument("--streams", default="1,8,32,64")
    g.add_argument("--requests", type=int, default=3, help="requests each stream sends in turn")
    g.add_argument("--prompt-len", type=int, default=512)
    g.add_argument("--new", type=int, default=128)
    g.add_argument("--no-baseline", action="store_true")
    g.add_argument("--device", default="cuda")
    g.add_argument("--out", default=str(ROOT / "benchmarks/results/serve_gpu"))
    o = sub.add_parser("overhead")
    o.add_argument("--streams", type=int, default=32)
    o.add_argument("--step-ms", default="0,5", help="the null model's step times (ms), comma-separated")
    o.add_argument("--requests", type=int, default=4)
    o.add_argument("--new", type=int, default=256)
    o.add_argument("--out", default=str(ROOT / "benchmarks/results/serve_overhead"))
    c = sub.add_parser("cpu")
    c.add_argument("--repeats", type=int, default=3)
    c.add_argument("--llama-server", help="a llama-server binary for the baseline")
    c.add_argument("--out", default=str(ROOT / "benchmarks/results/serve_cpu"))
    cl = sub.add_parser("_clients")
    for flag in ("--streams", "--requests", "--prompt-len", "--new"):
        cl.add_argument(flag, type=int, required=True)
    cl.add_argument("--vocab", type=int, default=30000, help="prompt token ids are drawn below this")
    cl.add_argument("--url", required=True)
    cl.add_argument("--start", type=float, default=0.0, help="wall-clock time (time.time()) to start at")
    cl.add_argument("--seed", type=int, default=0, help="of the random prompts")
    args = ap.parse_args()
    if args.mode == "_clients":
        return clients_main(args)
    results = {"gpu": gpu_main, "cpu": cpu_main, "overhead": overhead_main}[args.mode](args)
    write(results, Path(args.out))


if __name__ == "__main__":
    main()
