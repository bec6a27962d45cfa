"""Continuous batching: requests join and leave the running batch at step boundaries.

The scheduler owns one static KV cache of ``slots`` rows (preallocated: no allocation while
serving). Every row is a *slot* that remembers which tokens its cache holds, so that a new request
goes to the free slot whose tokens share the longest prefix with its prompt and only the rest is
computed (``cached_tokens``); a prefix held by a busy slot is copied instead of recomputed (``n``
choices of one prompt, or a burst of keystrokes). Each request carries its own sampling parameters,
seed, stop strings, stop tokens and token budget.

One loop, in a thread of its own, repeats:

1. drop what was cancelled (queued or running: the slot is free at once) and admit queued requests
   to free slots;
2. compute one chunk (``prefill_chunk`` tokens) of the oldest prompt still being read, so that a
   long prompt delays the others' next token by one chunk at most;
3. one decode step for every row that is generating, each at its own position
   (``geex.models.attention``: per-row positions), then sample each row with its own parameters.

Results leave through each request's ``emit`` callback, called from the loop's thread with
:class:`Event` objects; the HTTP layer (``geex.serve``) turns them into responses. Nothing here
knows of HTTP.
"""

from __future__ import annotations

import itertools
import threading
import time
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from geex.engine.generate import Tokenizer
from geex.engine.sampling import SamplingParams, sample
from geex.engine.streaming import HeldText
from geex.languages import Language
from geex.models.cache import KVCache

_ids = itertools.count()


class QueueFull(Exception):
    """The waiting queue is at its bound: the caller should answer "try later"."""


class SchedulerStopped(Exception):
    """The scheduler is shutting down or its loop died."""


@dataclass
class Request:
    """One sequence to generate. ``emit`` receives its events in order, from the scheduler's thread."""

    prompt: list[int]
    max_new_tokens: int
    emit: Callable[["Event"], None]
    params: SamplingParams = SamplingParams(greedy=True)
    stop: tuple[str, ...] = ()
    stop_token_ids: frozenset[int] = frozenset()
    seed: int | None = None
    ignore_eos: bool = False
    language: Language | None = None  # the harness's stop rule (a function is complete)
    logprobs: int | None = None  # report the chosen token's log-probability and this many top ones
    id: str = field(default_factory=lambda: f"req-{next(_ids)}")
    # set by the scheduler
    submitted: float = field(default_factory=time.perf_counter)
    cancelled: threading.Event = field(default_factory=threading.Event)
    cancel_time: float | None = None

    def cancel(self) -> None:
        """Stop it wherever it is (queued, reading its prompt, generating); idempotent, thread-safe."""
        if not self.cancelled.is_set():
            self.cancel_time = time.perf_counter()
            self.cancelled.set()


@dataclass
class Event:
    """``kind``: ``"started"`` (the request got a slot: ``cached_tokens``, ``queue_s``), ``"token"``
    (``token_id``, ``text``: newly released text, maybe "", ``logprob``, ``top_logprobs``) or
    ``"finished"`` (``finish_reason``: "stop" or "length"; ``finish_detail``: "eos", "stop_token",
    "stop_string", "language", "length", "cancelled" or "error"; ``text``: the released rest;
    ``timings``)."""

    kind: str
    request: Request
    token_id: int | None = None
    text: str = ""
    logprob: float | None = None
    top_logprobs: list[tuple[int, float]] | None = None
    cached_tokens: int = 0
    queue_s: float = 0.0
    finish_reason: str | None = None
    finish_detail: str | None = None
    phase: str | None = None  # where a cancelled request was: "queued", "prefill" or "decode"
    timings: dict | None = None
    error: str | None = None  # finish_detail "error": what went wrong (the request alone, or the engine)


@dataclass
class _Running:
    request: Request
    slot: int
    cached: int  # prompt tokens found in the cache
    held: HeldText
    generator: torch.Generator | None
    admitted: float
    first_token: float | None = None
    prefill_done: float | None = None
    pending: int | None = None  # the sampled token the next decode step feeds
    generated: int = 0
    budget: int = 0  # max new tokens, clamped to the context

    @property
    def phase(self) -> str:
        return "decode" if self.prefill_done is not None else "prefill"


class Scheduler:
    """Continuous batching over ``slots`` KV rows of ``ctx`` positions for one model."""

    def __init__(self, model: nn.Module, tokenizer: Tokenizer, *, slots: int = 1, ctx: int | None = None,
                 max_queue: int | None = None, prefill_chunk: int = 256, graphs: bool | None = None) -> None:
        if slots < 1:
            raise ValueError("slots must be at least 1")
        self.model = model
        self.tokenizer = tokenizer
        cfg = model.config
        self.ctx = min(ctx or cfg.n_positions, cfg.n_positions)
        self.n_slots = slots
        self.max_queue = 4 * slots if max_queue is None else max_queue
        self.prefill_chunk = prefill_chunk
        self.device = next(model.parameters()).device
        self.cache = KVCache(cfg, slots, self.ctx, device=self.device, dtype=model.dtype)
        self.vocab = min(cfg.vocab_size, tokenizer.vocab_size)
        self.history: list[list[int]] = [[] for _ in range(slots)]  # tokens each row's cache holds
        # decode steps of several rows: a CUDA graph per batch-size bucket (captured on first use), or eager
        self.graphs = self.device.type == "cuda" if graphs is None else graphs
        self._graphs: dict[int, object] = {}
        self.running: dict[int, _Running] = {}  # slot -> request
        self.queue: deque[Request] = deque()
        self._lock = threading.Condition()
        self._stopping = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="geex-scheduler", daemon=True)
        self._thread.start()

    # -- the caller's side (any thread) ---------------------------------------------------------
    def submit(self, request: Request) -> None:
        """Queue a request; ``QueueFull`` when the queue is at its bound, ``ValueError`` when its
        prompt does not fit the context."""
        if not request.prompt:
            raise ValueError("empty prompt")
        if len(request.prompt) >= self.ctx:
            raise ValueError(f"prompt of {len(request.prompt)} tokens does not fit the context of {self.ctx} "
                             "tokens (at least one must be left to generate)")
        with self._lock:
            if self._stopping or self._error is not None:
                raise SchedulerStopped("the scheduler is not running")
            if len(self.queue) >= self.max_queue:
                raise QueueFull(f"{len(self.queue)} requests are waiting (the bound is {self.max_queue})")
            request.submitted = time.perf_counter()
            self.queue.append(request)
            self._lock.notify()

    def wake(self) -> None:
        """Look at cancellations now (the loop also checks between every chunk and step)."""
        with self._lock:
            self._lock.notify()

    def stats(self) -> dict:
        """A snapshot for metrics and ``/slots`` (never prompt text)."""
        with self._lock:
            now = time.perf_counter()
            slots = []
            for i in range(self.n_slots):
                run = self.running.get(i)
                slots.append({
                    "id": i, "busy": run is not None, "request_id": run.request.id if run else None,
                    "n_prompt": len(run.request.prompt) if run else 0, "n_cached": run.cached if run else 0,
                    "n_decoded": run.generated if run else 0, "n_ctx": len(self.history[i]),
                    "age_ms": round((now - run.admitted) * 1000, 1) if run else 0.0,
                })
            return {"waiting": len(self.queue), "running": len(self.running), "slots": slots, "ctx": self.ctx,
                    "alive": self._thread.is_alive() and self._error is None}

    @property
    def error(self) -> BaseException | None:
        return self._error

    def close(self, cancel: bool = True, timeout: float = 30.0) -> None:
        """Stop the loop: ``cancel`` ends every request now, else running ones finish first (new
        ones are refused either way)."""
        with self._lock:
            self._stopping = True
            if cancel:
                for req in (*self.queue, *(r.request for r in self.running.values())):
                    req.cancel()
            self._lock.notify()
        self._thread.join(timeout)

    # -- the loop ---------------------------------------------------------------------------------
    def _loop(self) -> None:
        try:
            with torch.inference_mode():
                while True:
                    with self._lock:
                        self._drop_cancelled()
                        self._admit()
                        if not self.running:
                            if self._stopping and not self.queue:
                                return
                            self._lock.wait(timeout=0.5)
                            continue
                    self._step()
        except BaseException as e:  # the engine died (a model step failed): every request learns it
            self._error = e
            with self._lock:
                for req in (*self.queue, *(r.request for r in self.running.values())):
                    self._finish(req, "error", error=f"the engine stopped: {e}")
                self.queue.clear()
                self.running.clear()
            raise

    def _drop_cancelled(self) -> None:
        for req in [r for r in self.queue if r.cancelled.is_set()]:
            self.queue.remove(req)
            self._finish(req, "cancelled", phase="queued")
        for slot, run in list(self.running.items()):
            if run.request.cancelled.is_set():
                del self.running[slot]
                self._finish(run.request, "cancelled", run, phase=run.phase)

    def _admit(self) -> None:
        waiting = []  # requests that wait for a prefix another request is computing now
        while self.queue and len(self.running) < self.n_slots:
            req = self.queue.popleft()
            try:
                if not self._start(req):
                    waiting.append(req)
            except Exception as e:  # this request's own fault (a seed out of range ...): it alone fails
                self._finish(req, "error", error=f"{type(e).__name__}: {e}")
        self.queue.extendleft(reversed(waiting))

    def _start(self, req: Request) -> bool:
        """Give ``req`` a slot (False: it should wait for a prefix being computed)."""
        generator = None
        if not req.params.greedy:
            generator = torch.Generator(device=self.device)
            if req.seed is not None:
                generator.manual_seed(req.seed)
            else:
                generator.seed()  # a fresh nondeterministic seed
        slot, common, source = self._place(req.prompt)
        if self._coming(req.prompt) > common + self.prefill_chunk // 4:
            return False
        # at least the prompt's last token is computed: its logits give the first new token
        common = min(common, len(req.prompt) - 1)
        if source != slot and common > 0:
            self.cache.copy_prefix(source, slot, common)
        self.history[slot] = list(req.prompt[:common])  # what its row holds now (copied or kept)
        budget = min(req.max_new_tokens, self.ctx - len(req.prompt))
        run = _Running(req, slot, common, HeldText(self.tokenizer, req.stop, req.language), generator,
                       admitted=time.perf_counter(), budget=max(budget, 1))
        self.running[slot] = run
        _emit(req, Event("started", req, cached_tokens=common, queue_s=run.admitted - req.submitted))
        return True

    def _coming(self, prompt: list[int]) -> int:
        """The longest prefix of ``prompt`` that a request still reading its own prompt will have
        computed (``n`` choices of one prompt, a burst of similar requests): worth waiting for and
        copying rather than computing twice."""
        return max((_common_prefix(run.request.prompt, prompt)
                    for run in self.running.values() if run.phase == "prefill"), default=0)

    def _place(self, prompt: list[int]) -> tuple[int, int, int]:
        """(free slot to run in, prompt tokens whose keys/values exist already, the row holding
        them). A busy row's cache is valid for what it has computed, so its prefix can be copied.
        Without a match the lowest free slot is used: decode steps cover rows 0..highest busy one."""
        free = [i for i in range(self.n_slots) if i not in self.running]
        common, source = 0, free[0]
        for i in range(self.n_slots):
            n = _common_prefix(self.history[i], prompt)
            if n > common or (n == common and n > 0 and i in free and source not in free):
                common, source = n, i
        return (source if source in free else free[0]), common, source

    def _step(self) -> None:
        prefilling = [r for r in self.running.values() if r.phase == "prefill"]
        if prefilling:
            self._prefill_chunk(min(prefilling, key=lambda r: r.admitted))
        decoding = sorted((r for r in self.running.values() if r.pending is not None), key=lambda r: r.slot)
        if decoding:
            self._decode(decoding)

    def _prefill_chunk(self, run: _Running) -> None:
        slot, prompt = run.slot, run.request.prompt
        done = len(self.history[slot])
        size = self.prefill_chunk
        if self.device.type == "cuda" and all(r.phase == "prefill" for r in self.running.values()):
            # nobody waits for a decode step: one large chunk (one launch sequence, not several);
            # cancellation is still checked between chunks of this size (a few ms on a GPU)
            size = max(size, 4096)
        chunk = prompt[done:done + size]
        ids = torch.tensor([chunk], device=self.device)
        logits = self.model(ids, self.cache.rows(slot, slot + 1), start=done, last_only=True)[:, -1]
        self.history[slot].extend(chunk)
        if len(self.history[slot]) == len(prompt):
            run.prefill_done = time.perf_counter()
            self._accept(run, logits[0])

    def _decode(self, runs: list[_Running]) -> None:
        if len(runs) == 1 and not self.graphs:  # one row: its own cache row at a plain position (no mask)
            run = runs[0]
            at = len(self.history[run.slot])
            logits = self.model(torch.tensor([[run.pending]], device=self.device),
                                self.cache.rows(run.slot, run.slot + 1), start=at)[:, -1]
            self._advance(run, logits[0])
            return
        rows = runs[-1].slot + 1  # rows 0..highest generating one; the rest are written harmlessly
        by_slot = {r.slot: r for r in runs}
        ids, starts = [], []
        for slot in range(rows):
            run = by_slot.get(slot)
            ids.append(run.pending if run is not None else self.tokenizer.eos_id)
            starts.append(self._next_position(slot))
        logits = self._rows_step(rows, ids, starts)
        # greedy rows choose together: one argmax and one copy to the host, not one a row
        plain = [r for r in runs if r.request.params.greedy and r.request.logprobs is None]
        chosen = {}
        if plain:
            rows_t = torch.tensor([r.slot for r in plain], device=self.device)
            chosen = dict(zip((r.slot for r in plain), logits[rows_t, :self.vocab].argmax(-1).tolist()))
        for run in runs:
            self._advance(run, logits[run.slot], chosen.get(run.slot))

    def _next_position(self, slot: int) -> int:
        """Where a row's next token goes: just past what its cache holds. A row with no token to
        decode (idle, or still reading its prompt) writes a dummy token there, never read before a
        real one overwrites it. A row holds at most ctx - 1 tokens (the last sampled token is never
        fed back), so this stays inside the cache."""
        return len(self.history[slot])

    def _rows_step(self, rows: int, ids: list[int], starts: list[int]) -> torch.Tensor:
        """Logits [rows, V] of one token for each of rows 0..rows-1 at its own position: the
        bucket's CUDA graph (rows padded to a power of two with dummy rows), or an eager step."""
        if not self.graphs:
            return self.model(torch.tensor(ids, device=self.device)[:, None], self.cache.rows(0, rows),
                              start=torch.tensor(starts, device=self.device))[:, -1]
        from geex.engine.cuda_graph import GraphedRowsStep

        bucket = min(1 << (rows - 1).bit_length(), self.n_slots)
        for slot in range(rows, bucket):  # dummy rows, as idle rows
            ids.append(self.tokenizer.eos_id)
            starts.append(self._next_position(slot))
        step = self._graphs.get(bucket)
        if step is None:
            try:
                step = self._graphs[bucket] = GraphedRowsStep(self.model, self.cache.rows(0, bucket, static=True))
            except Exception as e:  # a model or kernel that cannot be captured: eager steps, said once
                warnings.warn(f"decode steps run eagerly: capturing a CUDA graph failed ({e})", RuntimeWarning,
                              stacklevel=2)
                self.graphs = False
                return self._rows_step(rows, ids[:rows], starts[:rows])
        return step(torch.tensor(ids, device=self.device), torch.tensor(starts, device=self.device))[:rows]

    def _advance(self, run: _Running, logits: torch.Tensor, token: int | None = None) -> None:
        """The row's pending token is in its cache now; ``logits`` [V] choose the next one (or
        ``token``, already chosen from them)."""
        self.history[run.slot].append(run.pending)
        run.pending = None
        if not run.request.cancelled.is_set():
            self._accept(run, logits, token)

    def _accept(self, run: _Running, logits: torch.Tensor, token: int | None = None) -> None:
        """Sample the row's next token from ``logits`` [V] (unless given) and emit it, or finish the
        request."""
        req = run.request
        if token is None:
            try:
                token = int(sample(logits[None], req.params, vocab_size=self.vocab, generator=run.generator)[0])
            except Exception as e:  # e.g. parameters that make the distribution NaN: this request fails
                return self._end(run, "error", error=f"sampling failed: {type(e).__name__}: {e}")
        now = time.perf_counter()
        if run.first_token is None:
            run.first_token = now
        if token in self.tokenizer.stop_ids and not req.ignore_eos:
            return self._end(run, "eos")
        if token in req.stop_token_ids:
            return self._end(run, "stop_token")
        logprob = top = None
        if req.logprobs is not None:
            logp = torch.log_softmax(logits[:self.vocab].float(), dim=-1)
            logprob = float(logp[token])
            if req.logprobs > 0:
                values, ids = torch.topk(logp, min(req.logprobs, logp.numel()))
                top = list(zip(ids.tolist(), values.tolist()))
        text = run.held.add(token)
        run.generated += 1
        _emit(req, Event("token", req, token_id=token, text=text, logprob=logprob, top_logprobs=top))
        if run.held.stopped is not None:
            return self._end(run, run.held.stopped)
        if run.generated >= run.budget:
            return self._end(run, "length")
        run.pending = token

    def _end(self, run: _Running, detail: str, error: str | None = None) -> None:
        with self._lock:
            self.running.pop(run.slot, None)
        self._finish(run.request, detail, run, error=error)

    def _finish(self, req: Request, detail: str, run: _Running | None = None, phase: str | None = None,
                error: str | None = None) -> None:
        """The request's last event (``run``: its slot's record, if it got one)."""
        now = time.perf_counter()
        admitted = run.admitted if run else now
        prefill_done = run.prefill_done if run else None
        first_token = run.first_token if run else None
        timings = {
            "queue_s": admitted - req.submitted,
            "prefill_s": (prefill_done or now) - admitted,
            "ttft_s": (first_token - req.submitted) if first_token else None,
            "decode_s": (now - prefill_done) if prefill_done else 0.0,
            "e2e_s": now - req.submitted,
            "prompt_tokens": len(req.prompt), "cached_tokens": run.cached if run else 0,
            "generated_tokens": run.generated if run else 0,
            "cancel_latency_s": (now - req.cancel_time) if detail == "cancelled" and req.cancel_time else None,
        }
        rest = run.held.finish() if run and detail not in ("cancelled", "error") else ""
        reason = "length" if detail == "length" else "stop"
        _emit(req, Event("finished", req, text=rest, finish_reason=reason, finish_detail=detail, phase=phase,
                         cached_tokens=timings["cached_tokens"], timings=timings, error=error))


def _emit(req: Request, event: Event) -> None:
    """Deliver an event; a receiver that fails (e.g. its event loop is closed) cancels its own
    request and never stops the scheduler."""
    try:
        req.emit(event)
    except Exception as e:
        if not req.cancelled.is_set():
            warnings.warn(f"request {req.id}: its receiver failed ({type(e).__name__}: {e}); cancelled",
                          RuntimeWarning, stacklevel=2)
        req.cancel()


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
