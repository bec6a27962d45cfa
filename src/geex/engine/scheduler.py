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
2. read the prompts waiting to be read, oldest first, in chunks of at most ``prefill_chunk``
   tokens up to ``prefill_tokens`` an iteration, so that a long prompt delays the others' next
   token by that much at most; prompts in neighbouring slots with as much left to read are read in
   the same forward (a burst of prompts is one [rows, chunk] batch, not one forward a prompt);
3. one decode step for every row that is generating, each at its own position
   (``geex.models.attention``: per-row positions), and each row's next token chosen with its own
   parameters -- on the device: the chosen tokens are the next step's input where they are (no
   round trip through the host), and a copy travels to the host behind the step;
4. read the tokens of a step and act on them: text, stop strings, EOS, budget, events.

On a GPU (``overlap``) step 4 reads the *previous* iteration's tokens, after this one's step is
queued (a request's first token, from its prompt, is read at once): the host's work for one step
(and the HTTP layer's, which shares the interpreter) runs while the GPU computes the next, instead
of between steps. The price: a request that ends (EOS, a
stop string) is stepped once more, and that token is discarded. On the CPU the model runs in this
thread, so step 4 follows its own step (overlapping would delay every token by a step).

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

from geex.engine.sampling import SamplingParams, sample
from geex.engine.streaming import HeldText
from geex.languages import Language
from geex.models.cache import KVCache
from geex.models.protocols import StepModel, Tokenizer

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
    rules: tuple = ()  # line rules ending a completion at the cursor (geex.engine.stops), this sequence's own
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
    "stop_string", "language", a line rule's ("line", "indent", "suffix_overlap", "repetition",
    "time"), "length", "cancelled" or "error"; ``text``: the released rest;
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
    stop_string: str | None = None  # finish_detail "stop_string": which one
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
    budget: int = 0  # max new tokens, clamped to the context
    fed: int = 0  # chosen tokens fed back as a step's input: their keys/values are (being) written
    tokens: list[int] = field(default_factory=list)  # the new tokens the host has read, in order
    done: bool = False  # finished or cancelled: tokens still in flight for it are dropped

    @property
    def phase(self) -> str:
        return "decode" if self.prefill_done is not None else "prefill"

    @property
    def generated(self) -> int:
        return len(self.tokens)

    @property
    def chosen(self) -> int:
        """New tokens chosen on the device (the host may not know them yet): the prompt's last
        logits chose one, and every step since feeds one and chooses the next."""
        return self.fed + 1 if self.prefill_done is not None else 0

    @property
    def position(self) -> int:
        """The cache slot the row's next fed token goes to."""
        return len(self.request.prompt) + self.fed


@dataclass
class _Launch:
    """Tokens chosen by one iteration, in the order the host reads them: ``entries`` pairs a row
    with its index in ``tokens`` (on the host once ``ready`` has passed), its log-probabilities
    (if asked for) or an error of its own."""

    entries: list[tuple[_Running, int, tuple | None, str | None]]
    tokens: torch.Tensor
    ready: torch.cuda.Event | None


class Scheduler:
    """Continuous batching over ``slots`` KV rows of ``ctx`` positions for one model."""

    def __init__(self, model: StepModel, tokenizer: Tokenizer, *, slots: int = 1, ctx: int | None = None,
                 max_queue: int | None = None, prefill_chunk: int = 256, prefill_tokens: int | None = None,
                 graphs: bool | None = None, overlap: bool | None = None) -> None:
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
        # prompt tokens read an iteration while other rows decode (they wait for it): on a GPU a burst
        # of prompts is read in one iteration, not one prompt an iteration between decode steps; on
        # a CPU, where a chunk takes a step's time many times over, one chunk
        self.prefill_tokens = prefill_tokens or (8 * prefill_chunk if self.device.type == "cuda" else prefill_chunk)
        self.cache = KVCache(cfg, slots, self.ctx, device=self.device, dtype=model.dtype)
        self.vocab = min(cfg.vocab_size, tokenizer.vocab_size)
        self.history: list[list[int]] = [[] for _ in range(slots)]  # tokens each row's cache holds
        # decode steps of several rows: a CUDA graph per batch-size bucket (captured on first use), or eager
        self.graphs = self.device.type == "cuda" if graphs is None else graphs
        self._graphs: dict[int, object] = {}
        # read a step's tokens while the next step runs (a device that computes asynchronously)
        self.overlap = self.device.type == "cuda" if overlap is None else overlap
        self._in_flight: _Launch | None = None
        self._stepped: str | None = None  # this iteration launched a decode step: "decode" alone, or "mixed"
        self._iterations: dict[str, tuple[int, float]] = {"decode": (0, 0.0), "mixed": (0, 0.0)}
        # each row's next input token, chosen on the device and fed from there
        self.next_ids = torch.zeros(slots, dtype=torch.long, device=self.device)
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
        self.submit_all([request])

    def submit_all(self, requests: Sequence[Request]) -> None:
        """Queue requests that belong together (the choices and prompts of one HTTP request) as a
        unit: all of them, or none (``QueueFull`` / ``ValueError`` as ``submit``). A group always
        enters an empty queue, so a request of more sequences than the bound is still served."""
        for request in requests:
            if not request.prompt:
                raise ValueError("empty prompt")
            if len(request.prompt) >= self.ctx:
                raise ValueError(f"prompt of {len(request.prompt)} tokens does not fit the context of {self.ctx} "
                                 "tokens (at least one must be left to generate)")
        with self._lock:
            if self._stopping or self._error is not None:
                raise SchedulerStopped("the scheduler is not running")
            if self.queue and len(self.queue) + len(requests) > self.max_queue:
                raise QueueFull(f"{len(self.queue)} requests are waiting (the bound is {self.max_queue})")
            now = time.perf_counter()
            for request in requests:
                request.submitted = now
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
                    "alive": self._thread.is_alive() and self._error is None,
                    # loop iterations that ran a decode step, with and without prompt chunks beside it:
                    # (count, wall seconds); decode-only ones time the served step itself
                    "iterations": {kind: {"count": n, "seconds": t} for kind, (n, t) in self._iterations.items()}}

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
    def _capture_all(self) -> None:
        """Capture every batch-size bucket's graph now, before the first request (a capture takes
        tens of ms: under load it would stall every running request once per new bucket)."""
        bucket = 1
        while self.graphs:
            if bucket not in self._graphs:
                self._graph(bucket)
            if bucket >= self.n_slots:
                return
            bucket = min(2 * bucket, self.n_slots)

    def _loop(self) -> None:
        try:
            with torch.inference_mode():
                if self.graphs and self.device.type == "cuda":
                    self._capture_all()
                while True:
                    with self._lock:
                        self._drop_cancelled()
                        self._admit()
                        if not self.running and self._in_flight is None:
                            if self._stopping and not self.queue:
                                return
                            self._lock.wait(timeout=0.5)
                            continue
                    started = time.perf_counter()
                    launch = self._launch()
                    if self.overlap:  # read the previous iteration's tokens while this one's step runs
                        launch, self._in_flight = self._in_flight, launch
                    if launch is not None:
                        self._read(launch)
                    if self._stepped is not None:  # an iteration with a decode step: its wall time
                        count, seconds = self._iterations[self._stepped]
                        self._iterations[self._stepped] = (count + 1, seconds + time.perf_counter() - started)
                        self._stepped = None
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
                run.done = True
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
        run = _Running(req, slot, common, HeldText(self.tokenizer, req.stop, req.language, req.rules), generator,
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

    def _launch(self) -> _Launch | None:
        """Queue this iteration's work on the device: chunks of the prompts being read, oldest first
        (``_prefill``), then one decode step of the generating rows with each row's next token
        chosen. The first tokens of prompts read now go with the step's tokens; with no step to wait
        for they are read at once (the time to first token waits for nothing). None if nothing is
        left to read."""
        first = self._prefill()
        decoding = sorted((r for r in self.running.values()
                           if r.phase == "decode" and not r.done and r.chosen < r.budget), key=lambda r: r.slot)
        entries = [(run, i, extra, error) for i, (run, _, extra, error) in enumerate(first)]
        chosen = [token for _, token, _, _ in first]
        if not decoding:
            if first:
                self._read(self._ship(entries, torch.cat(chosen)))
            return None
        tokens, extras = self._decode(decoding)
        self._stepped = "mixed" if first else "decode"
        entries += [(run, len(first) + i, *extras[i]) for i, run in enumerate(decoding)]
        return self._ship(entries, torch.cat([*chosen, tokens]) if chosen else tokens)

    def _prefill(self) -> list[tuple[_Running, torch.Tensor, tuple | None, str | None]]:
        """Read chunks of the prompts being read, oldest request first, up to this iteration's
        budget (``prefill_tokens`` while rows decode; on a GPU with nothing decoding, 4096 tokens a
        chunk); each prompt read to its end chooses its first token on the device (fed by the next
        step). Returns those rows with their first token [1], log-probabilities and error."""
        prefilling = sorted((r for r in self.running.values() if r.phase == "prefill"), key=lambda r: r.admitted)
        if not prefilling:
            return []
        alone = all(r.phase == "prefill" for r in self.running.values())
        # nobody waits for a decode step: large chunks (one launch sequence, not several);
        # cancellation is still checked between iterations (a few ms each on a GPU)
        gpu_alone = self.device.type == "cuda" and alone
        chunk = max(self.prefill_chunk, 4096) if gpu_alone else self.prefill_chunk
        budget = max(self.prefill_tokens, 4096) if gpu_alone else self.prefill_tokens
        first = []
        pending = list(prefilling)
        while budget > 0 and pending:
            # the oldest prompt's next chunk, read together with those of its neighbours (contiguous
            # slots with as much left to read): one forward of many rows, not one a row
            run = pending[0]
            size = min(chunk, budget, self._left(run))
            group = self._neighbours(run, pending, size, max(1, budget // size))
            budget -= size * len(group)
            for r, logits in zip(group, self._prefill_rows(group, size)):
                if logits is None:
                    continue
                pending.remove(r)  # the prompt is read: its last logits choose the first token
                token, extra, error = self._choose(r, logits)
                self.next_ids[r.slot:r.slot + 1] = token
                r.prefill_done = time.perf_counter()
                first.append((r, token, extra, error))
        return first

    def _left(self, run: _Running) -> int:
        return len(run.request.prompt) - len(self.history[run.slot])

    def _neighbours(self, run: _Running, pending: list[_Running], size: int, cap: int) -> list[_Running]:
        """``run`` and the prompts being read in the slots next to it that have ``size`` tokens or
        more left (at most ``cap`` rows), in slot order: one contiguous view of the cache."""
        ok = {r.slot: r for r in pending if self._left(r) >= size}
        lo = hi = run.slot
        while hi - lo + 1 < cap and hi + 1 in ok:
            hi += 1
        while hi - lo + 1 < cap and lo - 1 in ok:
            lo -= 1
        return [ok[slot] for slot in range(lo, hi + 1)]

    def _ship(self, entries: list, tokens: torch.Tensor) -> _Launch:
        """The launch's tokens on their way to the host (behind the work queued so far)."""
        if self.device.type != "cuda":
            return _Launch(entries, tokens, None)
        host = tokens.to("cpu", non_blocking=True)  # into pinned memory: the copy is asynchronous
        ready = torch.cuda.Event()
        ready.record()
        return _Launch(entries, host, ready)

    def _prefill_rows(self, runs: list[_Running], size: int) -> list[torch.Tensor | None]:
        """Compute the next ``size`` tokens of the prompts of ``runs`` (contiguous slots, each with
        ``size`` or more left) in one forward, each row at its own position; for each, the last
        position's logits [V] once its prompt is all read (else None)."""
        done = [len(self.history[r.slot]) for r in runs]
        chunks = [r.request.prompt[d:d + size] for r, d in zip(runs, done)]
        ids = torch.tensor(chunks, device=self.device)
        # rows at one position take the plain causal path (fused attention); else each its own
        start = done[0] if len(set(done)) == 1 else torch.tensor(done, device=self.device)
        view = self.cache.rows(runs[0].slot, runs[-1].slot + 1)
        logits = self.model(ids, view, start=start, last_only=True)[:, -1]
        out: list[torch.Tensor | None] = []
        for i, (r, chunk) in enumerate(zip(runs, chunks)):
            self.history[r.slot].extend(chunk)
            out.append(logits[i] if len(self.history[r.slot]) == len(r.request.prompt) else None)
        return out

    def _decode(self, runs: list[_Running]) -> tuple[torch.Tensor, list[tuple]]:
        """One step of ``runs`` (sorted by slot), each feeding its chosen token at its position:
        their next tokens [len(runs)] on the device, and each one's (log-probabilities, error)."""
        single = len(runs) == 1 and not self.graphs
        if single:  # one row: its own cache row at a plain position (no mask)
            run = runs[0]
            logits = self.model(self.next_ids[run.slot:run.slot + 1, None], self.cache.rows(run.slot, run.slot + 1),
                                start=run.position)[:, -1]
            index = {run.slot: 0}
        else:
            rows = runs[-1].slot + 1  # rows 0..highest generating one; the rest are written harmlessly
            by_slot = {r.slot: r for r in runs}
            starts = [by_slot[i].position if i in by_slot else self._next_position(i) for i in range(rows)]
            logits = self._rows_step(rows, starts)
            index = {r.slot: r.slot for r in runs}
        for run in runs:
            run.fed += 1
            self._sync_history(run)
        # greedy rows choose together: one argmax for every row; the others are sampled over it
        tokens = logits[:, :self.vocab].argmax(-1)
        extras = []
        for run in runs:
            i = index[run.slot]
            extra = error = None
            if not run.request.params.greedy or run.request.logprobs is not None:
                token, extra, error = self._choose(run, logits[i])
                tokens[i:i + 1] = token
            extras.append((extra, error))
        if single:
            self.next_ids[runs[0].slot:runs[0].slot + 1] = tokens
            return tokens, extras
        self.next_ids[:tokens.numel()] = tokens
        if len(runs) < tokens.numel():  # idle rows among 0..rows-1: only the generating rows' tokens
            tokens = tokens[torch.tensor([r.slot for r in runs], device=self.device)]
        return tokens, extras

    def _choose(self, run: _Running, logits: torch.Tensor) -> tuple[torch.Tensor, tuple | None, str | None]:
        """The row's next token [1] from its ``logits`` [V], on the device; its log-probability and
        top ones (host tensors, ready with the step) if asked for; or the error that ends it."""
        req = run.request
        try:
            token = sample(logits[None], req.params, vocab_size=self.vocab, generator=run.generator)
        except Exception as e:  # e.g. parameters that make the distribution NaN: this request fails
            return torch.zeros(1, dtype=torch.long, device=logits.device), None, \
                f"sampling failed: {type(e).__name__}: {e}"
        extra = None
        if req.logprobs is not None:
            logp = torch.log_softmax(logits[:self.vocab].float(), dim=-1)
            values, ids = torch.topk(logp, min(req.logprobs, logp.numel())) if req.logprobs > 0 else (None, None)
            extra = tuple(None if t is None else t.to("cpu", non_blocking=True)
                          for t in (logp.gather(0, token), values, ids))
        return token, extra, None

    def _next_position(self, slot: int) -> int:
        """Where a row that is not generating writes a dummy token when it is stepped with the
        others: past what its cache holds (for a request that waits to read its last token: past
        the tokens it fed, which its history may not list yet), never read before a real token
        overwrites it (a row holds at most ctx - 1 tokens, so this stays inside the cache)."""
        run = self.running.get(slot)
        return run.position if run is not None and run.phase == "decode" else len(self.history[slot])

    def _sync_history(self, run: _Running) -> None:
        """The row's history holds the prompt and the new tokens that are both fed and read."""
        have = len(self.history[run.slot]) - len(run.request.prompt)
        upto = min(run.fed, len(run.tokens))
        if upto > have:
            self.history[run.slot].extend(run.tokens[have:upto])

    def _rows_step(self, rows: int, starts: list[int]) -> torch.Tensor:
        """Logits [rows, V] of one token for each of rows 0..rows-1 (its ``next_ids``) at its own
        position: the bucket's CUDA graph (rows padded to a power of two with dummy rows), or an
        eager step."""
        if not self.graphs:
            return self.model(self.next_ids[:rows, None], self.cache.rows(0, rows),
                              start=torch.tensor(starts, device=self.device))[:, -1]
        bucket = min(1 << (rows - 1).bit_length(), self.n_slots)
        starts = starts + [self._next_position(slot) for slot in range(rows, bucket)]  # dummy rows, as idle rows
        step = self._graphs.get(bucket) or self._graph(bucket)
        if step is None:
            return self._rows_step(rows, starts[:rows])
        return step(self.next_ids[:bucket], torch.tensor(starts, device=self.device))[:rows]

    def _graph(self, bucket: int):
        """The CUDA graph of a decode step of rows 0..bucket-1, captured now; None (and eager steps
        from now on, said once) for a model or kernel that cannot be captured."""
        from geex.engine.cuda_graph import GraphedRowsStep

        try:
            step = self._graphs[bucket] = GraphedRowsStep(self.model, self.cache.rows(0, bucket, static=True))
            return step
        except Exception as e:
            warnings.warn(f"decode steps run eagerly: capturing a CUDA graph failed ({e})", RuntimeWarning,
                          stacklevel=2)
            self.graphs = False
            return None

    def _read(self, launch: _Launch) -> None:
        """Act on a launch's tokens, in order: events, stops, budgets (rows ended or cancelled since
        it was queued are skipped)."""
        if launch.ready is not None:
            launch.ready.synchronize()
        tokens = launch.tokens.tolist()
        for run, i, extra, error in launch.entries:
            if run.done:
                continue
            if error is not None:
                self._end(run, "error", error=error)
            elif not run.request.cancelled.is_set():
                self._accept(run, tokens[i], extra)

    def _accept(self, run: _Running, token: int, extra: tuple | None) -> None:
        """The row's next token, read: emit it, or finish the request."""
        req = run.request
        now = time.perf_counter()
        if run.first_token is None:
            run.first_token = now
        if token in self.tokenizer.stop_ids and not req.ignore_eos:
            return self._end(run, "eos")
        if token in req.stop_token_ids:
            return self._end(run, "stop_token")
        logprob = top = None
        if extra is not None:
            logprob = float(extra[0])
            if extra[1] is not None:
                top = list(zip(extra[2].tolist(), extra[1].tolist()))
        text = run.held.add(token)
        run.tokens.append(token)
        _emit(req, Event("token", req, token_id=token, text=text, logprob=logprob, top_logprobs=top))
        if run.held.stopped is not None:
            return self._end(run, run.held.stopped)
        if run.generated >= run.budget:
            return self._end(run, "length")
        self._sync_history(run)

    def _end(self, run: _Running, detail: str, error: str | None = None) -> None:
        run.done = True
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
                         cached_tokens=timings["cached_tokens"], timings=timings, error=error,
                         stop_string=run.held.stop_string if run else None))


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
