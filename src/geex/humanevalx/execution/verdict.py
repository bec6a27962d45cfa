"""One verdict taxonomy for every language, decided from exit codes, signals, a few markers and
the proof of completion (``proof.py``).

- ``passed``: the test program exited 0 (within the limits) *and* geex's proof of completion
  came back: the secret that the harness's prologue read before any code of the sample ran, written
  back by its epilogue after the test's last statement. Exit status 0 alone is not a pass.
- ``wrong_answer``: the test's assertion failed (the language's assertion marker, no crash).
- ``compile_error``: the compiler rejected the program (C++, Java, Go, Rust). Python and
  JavaScript have no compile step: a syntax error shows when the program runs and is a
  ``runtime_error``, like any other exception at load time.
- ``runtime_error``: an exception, panic, crash (signal) or non-zero exit that is not one of the
  above or below; and an exit with status 0 *without* the proof (the program ended before its test
  did: ``exit(0)`` in the function, an ``atexit``/shutdown/panic hook, a static initializer, an ELF
  constructor, Go's ``init``…) or with a wrong one (something else on the report channel). Not
  ``wrong_answer``: no assertion failed, the test never finished. The outcome's detail says
  "the test did not run to the end (early exit)".
- ``timeout``: the wall-clock limit or RLIMIT_CPU (SIGXCPU), at compile or run time.
- ``resource_limit``: memory, processes, threads, open files or output (RLIMIT_FSIZE / SIGXFSZ,
  the output cap) ran out.
- ``harness_error``: the harness, not the model, failed (missing toolchain, a javac server that
  cannot compile even a known-good control program, internal fault): such samples are left out of
  pass@k and reported loudly. Decided by the runners from the harness's own state, never from what
  a program prints or does alone (a sample that kills the compiler is the sample's failure).
"""

from __future__ import annotations

import enum
import re
import signal as _signal

from geex.humanevalx.execution.proof import Proof
from geex.humanevalx.execution.sandbox import ExecResult


class Verdict(str, enum.Enum):
    PASSED = "passed"
    WRONG_ANSWER = "wrong_answer"
    COMPILE_ERROR = "compile_error"
    RUNTIME_ERROR = "runtime_error"
    TIMEOUT = "timeout"
    RESOURCE_LIMIT = "resource_limit"
    HARNESS_ERROR = "harness_error"

    @property
    def counts_for_pass_at_k(self) -> bool:
        return self is not Verdict.HARNESS_ERROR


# A failed test assertion, per language (checked on stdout + stderr).
_WRONG_ANSWER = {
    "python": re.compile(r"^AssertionError\b", re.M),
    "cpp": re.compile(r"Assertion [`'].*' failed"),
    "java": re.compile(r"java\.lang\.AssertionError"),
    "js": re.compile(r"AssertionError|ERR_ASSERTION"),
    # a failed test (testify's report, or a bare FAIL line) that did not crash: a Go panic prints
    # "--- FAIL" as well, before or after the trace (stdout and stderr are read apart)
    "go": re.compile(r"\A(?![\s\S]*^(?:panic: |fatal error: ))[\s\S]*(?:Error Trace:|Not equal:|Should be (?:true|false)|^--- FAIL: )", re.M),
    "rust": re.compile(r"panicked at [^\n]*\n\s*assertion|assertion `?(left|failed)"),
}
# Running out of a resource (memory, processes, files, output) rather than a bug in the logic.
# Checked case-insensitively (Go writes "resource temporarily unavailable", C "Resource ...").
_RESOURCE = re.compile(
    r"MemoryError|std::bad_alloc|OutOfMemoryError|out of memory|memory allocation of \d+ bytes failed"
    r"|Allocation failed - JavaScript heap|Array buffer allocation failed|Cannot allocate memory|Resource temporarily unavailable"
    r"|unable to create (new )?native thread|fork: retry|\bEAGAIN\b|Too many open files|\bEMFILE\b"
    r"|File size limit exceeded|File too large|\bEFBIG\b|No space left on device|\bENOSPC\b"
    r"|failed to create new OS thread|pthread_create failed|could not allocate|\bENOMEM\b"
    r"|Cannot fork|fork failed",
    re.IGNORECASE,
)
_TIME_SIGNALS = {_signal.SIGXCPU}
_RESOURCE_SIGNALS = {_signal.SIGXFSZ}


def excerpt(text: str, limit: int = 600) -> str:
    """A short, single-block excerpt for reports: the end of the output, where errors are."""
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-limit:]


def classify_run(language: str, result: ExecResult, *, proof: Proof) -> Verdict:
    """Verdict of the test run of a compiled (or interpreted) program.

    In order: output cap reached (``resource_limit``, even if the program then exited 0: the run
    was stopped or truncated), wall-clock limit, SIGXCPU or the hard CPU limit's SIGKILL
    (``timeout``), SIGXFSZ (``resource_limit``), exit 0 with the proof of completion (``passed``)
    or without it (``runtime_error``: an early exit), an OOM kill at the run's memory cgroup limit or
    a resource message in the output
    (``resource_limit``), the language's failed-assertion marker (``wrong_answer``), anything else
    (``runtime_error``: exceptions, panics, crashes, non-zero exits, other signals).
    """
    if result.output_limited:
        return Verdict.RESOURCE_LIMIT
    if result.timed_out or result.cpu_limited:
        return Verdict.TIMEOUT
    if result.signal in _TIME_SIGNALS:
        return Verdict.TIMEOUT
    if result.signal in _RESOURCE_SIGNALS:
        return Verdict.RESOURCE_LIMIT
    if result.returncode == 0 and result.signal is None:
        return Verdict.PASSED if proof is Proof.SHOWN else Verdict.RUNTIME_ERROR
    if result.memory_limited:
        return Verdict.RESOURCE_LIMIT
    output = result.stderr + "\n" + result.stdout
    if _RESOURCE.search(output):
        return Verdict.RESOURCE_LIMIT
    if _WRONG_ANSWER[language].search(output):
        return Verdict.WRONG_ANSWER
    return Verdict.RUNTIME_ERROR


def classify_compile(result: ExecResult) -> Verdict | None:
    """None when compilation succeeded; otherwise why it did not (a compiler that ran out of time or
    memory on a sample is the sample's ``timeout`` / ``resource_limit``, not a compile error)."""
    if result.ok:
        return None
    if result.timed_out or result.signal in _TIME_SIGNALS:
        return Verdict.TIMEOUT
    if (result.output_limited or result.memory_limited or result.signal in _RESOURCE_SIGNALS
            or _RESOURCE.search(result.stderr + result.stdout)):
        return Verdict.RESOURCE_LIMIT
    return Verdict.COMPILE_ERROR
