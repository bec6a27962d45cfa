"""Where programs run: a pool of sandbox slots that takes a ``Program`` and gives a future ``Outcome``.

``LocalPool`` runs them on this machine, one thread a slot; ``ray_pool.RayPool`` runs the same
runners in slots on every node of a Ray cluster. An orchestrator sees only ``submit``, so what
decides which programs run and how often, the verdict cache and the results file stay on one
machine, whatever runs the programs.
"""

from __future__ import annotations

import queue
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from geex.humanevalx.execution.program import Program
from geex.humanevalx.execution.runners import Outcome, RunContext, Runner, make_jobs_root, remove_jobs_root
from geex.humanevalx.execution.sandbox import Sandbox
from geex.humanevalx.execution.verdict import Verdict


class Pool(Protocol):
    """Sandbox slots that run programs: ``slots`` of them at a time."""

    slots: int

    def prepare(self, languages: Iterable[str]) -> list[str]:
        """Build what the languages' runs need before the first program; what failed (those
        languages' runs will be harness errors)."""
        ...

    def submit(self, program: Program) -> Future[Outcome]: ...

    def close(self) -> None: ...


def run_program(runner: Runner, program: Program, ctx: RunContext) -> Outcome:
    """``runner.execute``, with a bug of the harness recorded as the program's harness error rather
    than stopping the evaluation."""
    try:
        return runner.execute(program, ctx)
    except Exception as e:  # noqa: BLE001 - loudly in the results, not a crash of the run
        return Outcome(Verdict.HARNESS_ERROR, "harness", detail=f"internal error: {type(e).__name__}: {e}")


class LocalPool:
    """``slots`` sandbox slots on this machine (threads; each slot its own uid and work directories)."""

    def __init__(self, sandbox: Sandbox, runners: Mapping[str, Runner], slots: int, timeout_s: float) -> None:
        self.slots, self.runners, self.sandbox = slots, runners, sandbox
        self._jobs_root = make_jobs_root()
        self._contexts: queue.Queue[RunContext] = queue.Queue()
        for slot in range(slots):
            self._contexts.put(RunContext(sandbox, self._jobs_root, slot, timeout_s))
        self._threads = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="geex-eval")

    def prepare(self, languages: Iterable[str]) -> list[str]:
        failed = []
        for lang in languages:
            try:
                self.runners[lang].prepare(self.sandbox)
            except RuntimeError as e:
                failed.append(str(e))
        return failed

    def submit(self, program: Program) -> Future[Outcome]:
        return self._threads.submit(self._run, program)

    def _run(self, program: Program) -> Outcome:
        ctx = self._contexts.get()
        try:
            return run_program(self.runners[program.language.name], program, ctx)
        finally:
            self._contexts.put(ctx)

    def close(self) -> None:
        """Cancel what has not started, wait for what has, free the slots."""
        self._threads.shutdown(wait=True, cancel_futures=True)
        while not self._contexts.empty():
            self._contexts.get().close()
        remove_jobs_root(self._jobs_root)
