"""The sandbox's native helper ``geex-exec`` (``native/geex_exec.c``), built once per machine.

It joins the run's memory cgroup before bubblewrap starts and reports the program's real wait
status from inside the sandbox (see the C source). Built with the system C compiler into geex's
cache, keyed by the source's hash, root-owned and not writable by anyone else (it runs as root
inside every sandbox). Without a compiler the sandbox works on without it, and says so.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

from geex.humanevalx.execution.cache import cache_root


def _source() -> bytes:
    return resources.files("geex.humanevalx.execution").joinpath("native/geex_exec.c").read_bytes()


def geex_exec() -> Path | None:
    """Path of the built helper, or None when no C compiler is available. Checked on every call (a
    few stats: each Sandbox asks once) since the cache directory may move or be cleaned."""
    source = _source()
    digest = hashlib.sha256(source).hexdigest()[:16]
    target = cache_root() / "sandbox" / f"geex-exec-{digest}" / "geex-exec"
    if _trusted(target):
        return target
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(target.parent, 0o755)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        src = Path(tmp) / "geex_exec.c"
        src.write_bytes(source)
        out = Path(tmp) / "geex-exec"
        r = subprocess.run([cc, "-O2", "-Wall", "-o", str(out), str(src)], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"building geex-exec failed: {r.stderr[-500:]}")
        out.chmod(0o755)
        out.rename(target)
    return target


def _trusted(path: Path) -> bool:
    """Exists, a regular file owned by us and writable by nobody else (its dir likewise)."""
    try:
        for p in (path.parent, path):
            st = os.lstat(p)
            if st.st_uid != os.geteuid() or st.st_mode & 0o022:
                return False
        return os.path.isfile(path) and not os.path.islink(path)
    except OSError:
        return False
