"""Where geex keeps what it builds once and reuses: toolchain caches, the sandbox launcher, the
verdict cache (``$GEEX_CACHE``, else ``$XDG_CACHE_HOME/geex``, else ``~/.cache/geex``)."""

from __future__ import annotations

import os
from pathlib import Path

ENV_CACHE = "GEEX_CACHE"


def cache_root() -> Path:
    """Where geex keeps toolchain caches (``$GEEX_CACHE``, else ``~/.cache/geex``)."""
    env = os.environ.get(ENV_CACHE)
    base = Path(env).expanduser() if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "geex"
    return base
