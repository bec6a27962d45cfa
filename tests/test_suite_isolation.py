"""The suite runs on its own fresh verdict cache: a warm machine-wide cache never answers for the
code under test (a verdict classifier that cannot say "passed" once still reported 164/164 passing
Python references from a warm cache)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

from geex.humanevalx.evaluate import verdict_cache_path
from geex.humanevalx.execution.runners import cache_root
from tests.conftest import SESSION_CACHE


def test_the_verdict_cache_is_the_sessions_own():
    assert verdict_cache_path() == SESSION_CACHE / "verdicts.sqlite"
    assert not str(verdict_cache_path()).startswith(str(cache_root()))
    mode = SESSION_CACHE.stat()
    assert mode.st_uid == os.getuid() and stat.S_IMODE(mode.st_mode) == 0o700
    # subprocesses (the CLI under test) inherit it
    code = "from geex.humanevalx.evaluate import verdict_cache_path; print(verdict_cache_path())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == str(SESSION_CACHE / "verdicts.sqlite")
