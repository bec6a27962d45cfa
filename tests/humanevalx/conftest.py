"""Fixtures the harness tests share: a private toolchain cache, and a spy on what really runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from geex.humanevalx.execution import runners as runners_mod
from geex.humanevalx.execution.runners import get_runner


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    """A fresh $GEEX_CACHE (toolchain caches and the verdict cache) and fresh runners using it."""
    path = tmp_path / "geex-cache"
    monkeypatch.setenv("GEEX_CACHE", str(path))
    monkeypatch.setenv("GEEX_VERDICT_CACHE", str(path / "humanevalx" / "verdicts.sqlite"))
    get_runner.cache_clear()
    yield path
    get_runner.cache_clear()


@pytest.fixture
def executions(monkeypatch) -> list[str]:
    """Program hashes actually executed by a runner (not served from the log or the cache)."""
    calls: list[str] = []
    original = runners_mod.Runner.execute

    def spy(self, program, ctx):
        calls.append(program.sha256)
        return original(self, program, ctx)

    monkeypatch.setattr(runners_mod.Runner, "execute", spy)
    return calls
