"""The suite runs on its own fresh cache directory: a warm machine-wide verdict or toolchain cache
never answers for the code under test (a verdict classifier that cannot say "passed" once still
reported 164/164 passing Python references from a warm cache)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from geex.humanevalx.runners import cache_root
from tests.conftest import SESSION_CACHE


def test_the_cache_is_the_sessions_own_private_directory():
    machine = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "geex"
    assert cache_root() == SESSION_CACHE != machine
    mode = SESSION_CACHE.stat()
    assert mode.st_uid == os.getuid() and stat.S_IMODE(mode.st_mode) == 0o700
    # subprocesses (the CLI under test) inherit it
    out = subprocess.run([sys.executable, "-c", "from geex.humanevalx.runners import cache_root; print(cache_root())"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == str(SESSION_CACHE)
