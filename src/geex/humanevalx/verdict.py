"""One verdict taxonomy for every language, decided from exit codes, signals and a few markers.

``harness_error`` means the harness, not the model, failed (missing toolchain, internal fault):
such samples are left out of pass@k and reported loudly.
"""

from __future__ import annotations

import enum
import re
import signal as _signal

from geex.humanevalx.sandbox import ExecResult


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
    "go": re.compile(r"Error Trace:|Not equal:|Should be (true|false)|--- FAIL: .*\n(?!.*panic)", re.M),
    "rust": re.compile(r"panicked at [^\n]*\n\s*assertion|assertion `?(left|failed)"),
}
# Running out of a resource (memory, processes, files) rather than a bug in the logic.
_RESOURCE = re.compile(
    r"MemoryError|std::bad_alloc|OutOfMemoryError|out of memory|memory allocation of \d+ bytes failed"
    r"|Allocation failed - JavaScript heap|Cannot allocate memory|Resource temporarily unavailable"
    r"|unable to create (new )?native thread|fork: retry|EAGAIN|Too many open files|EMFILE"
    r"|File size limit exceeded|cannot allocate memory|failed to create new OS thread"
    r"|pthread_create failed|could not allocate|ENOMEM"
)
_TIME_SIGNALS = {_signal.SIGXCPU}
_RESOURCE_SIGNALS = {_signal.SIGXFSZ}


def excerpt(text: str, limit: int = 600) -> str:
    """A short, single-block excerpt for reports: the end of the output, where errors are."""
    text = text.strip()
    return text if len(text) <= limit else "…" + text[-limit:]


def classify_run(language: str, result: ExecResult) -> Verdict:
    """Verdict of the test run of a compiled (or interpreted) program."""
    if result.timed_out:
        return Verdict.TIMEOUT
    if result.signal in _TIME_SIGNALS:
        return Verdict.TIMEOUT
    if result.signal in _RESOURCE_SIGNALS:
        return Verdict.RESOURCE_LIMIT
    if result.returncode == 0 and result.signal is None:
        return Verdict.PASSED
    output = result.stderr + "\n" + result.stdout
    if _RESOURCE.search(output):
        return Verdict.RESOURCE_LIMIT
    if _WRONG_ANSWER[language].search(output):
        return Verdict.WRONG_ANSWER
    return Verdict.RUNTIME_ERROR


def classify_compile(result: ExecResult) -> Verdict | None:
    """None when compilation succeeded; otherwise why it did not."""
    if result.ok:
        return None
    if result.timed_out or result.signal in _TIME_SIGNALS:
        return Verdict.TIMEOUT
    if result.signal in _RESOURCE_SIGNALS or _RESOURCE.search(result.stderr + result.stdout):
        return Verdict.RESOURCE_LIMIT
    return Verdict.COMPILE_ERROR
