"""Per-language compile/run recipes on top of the sandbox: ``get_runner(language)``.

A runner turns a ``Program`` into an ``Outcome`` (``base.Runner.execute``); each language's module
holds its recipe and the toolchain facts it owns. The names most callers need are here too.
"""

from __future__ import annotations

import functools

from geex.humanevalx.execution.cache import cache_root
from geex.humanevalx.execution.runners import cpp, go, java, js, python, rust
from geex.humanevalx.execution.runners.base import (
    JOBS_LOCK,
    UNLOCKED_STALE_S,
    Outcome,
    RunContext,
    Runner,
    ToolStatus,
    hand_over,
    make_jobs_root,
    remove_jobs_root,
    write_file,
)

__all__ = ["JOBS_LOCK", "UNLOCKED_STALE_S", "Outcome", "RunContext", "Runner", "ToolStatus", "cache_root",
           "get_runner", "hand_over", "make_jobs_root", "remove_jobs_root", "write_file"]

_RUNNERS: dict[str, type[Runner]] = {"python": python.PythonRunner, "cpp": cpp.CppRunner, "java": java.JavaRunner,
                                     "js": js.JsRunner, "go": go.GoRunner, "rust": rust.RustRunner}


@functools.cache
def get_runner(language: str) -> Runner:
    """The (process-wide, shared) runner of a language."""
    return _RUNNERS[language]()
