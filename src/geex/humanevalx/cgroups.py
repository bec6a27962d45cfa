"""A memory cgroup per sandboxed run: one limit for the whole process tree, every kind of memory.

RLIMIT_AS bounds one process's address space: a program that forks, or that fills ``memfd_create``
files, POSIX shared memory or tmpfs (page cache charged to nobody's address space) is not bounded
by it. A memory cgroup counts all of these for every process of the run, and the kernel OOM-kills
inside the cgroup when the limit is reached; ``oom_kill`` in its event counters tells the harness
that this happened (a ``resource_limit``, not a crash).

Mechanisms, best first (``MemoryControl.mechanism`` is recorded in every report):

- ``cgroup2``: a child of the harness's own cgroup on the unified hierarchy, where ``memory`` can be
  enabled for children (the harness's cgroup must allow it: a cgroup that holds processes itself
  cannot delegate controllers, so e.g. inside a systemd service this needs ``Delegate=yes``);
- ``cgroup1``: a child of the harness's cgroup in the v1 ``memory`` hierarchy;
- ``rlimit``: none could be created (not root, no cgroup file system): only RLIMIT_AS per process.

Joining happens in ``geex-exec`` (``native.py``) before bubblewrap starts, so nothing of the run
is ever outside the cgroup.
"""

from __future__ import annotations

import functools
import itertools
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

_counter = itertools.count()


@dataclass
class RunCgroup:
    """One run's cgroup (a directory per hierarchy used)."""

    path: Path
    version: int

    @property
    def procs(self) -> Path:
        return self.path / "cgroup.procs"

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of the run for reaching the memory limit."""
        name = "memory.events" if self.version == 2 else "memory.oom_control"
        try:
            for line in (self.path / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value) > 0:
                    return True
        except (OSError, ValueError):
            pass
        return False

    def try_remove(self) -> bool:
        """Remove it if the kernel lets us now (it refuses while the run's last processes are being
        torn down, for some milliseconds after they exited)."""
        try:
            self.path.rmdir()
        except FileNotFoundError:
            pass
        except OSError:
            return False
        return True

    def remove(self, wait_s: float = 5.0) -> None:
        """Kill what is left in it and remove it (a cgroup with processes cannot be removed)."""
        deadline = time.monotonic() + wait_s
        while True:
            if self.try_remove():
                return
            kill = self.path / "cgroup.kill"
            if self.version == 2 and kill.exists():
                _write(kill, "1")
            else:
                for pid in _read_pids(self.procs):
                    try:
                        os.kill(pid, 9)
                    except OSError:
                        pass
            if time.monotonic() > deadline:
                return  # left for the next start's sweep (remove_stale)
            time.sleep(0.01)


def _write(path: Path, text: str) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        os.write(fd, text.encode())
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _read_pids(procs: Path) -> list[int]:
    try:
        return [int(x) for x in procs.read_text().split()]
    except (OSError, ValueError):
        return []


def _own_path(controller: str | None) -> str | None:
    """This process's cgroup path in the v2 hierarchy (``controller=None``) or a v1 controller's."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if (controller is None and controllers == "") or (controller and controller in controllers.split(",")):
            return path
    return None


def _mounts(fstype: str) -> list[tuple[Path, str, str]]:
    """(mount point, root inside the hierarchy, super options) of every mount of ``fstype``."""
    out = []
    try:
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            fields, rfields = left.split(), right.split()
            if rfields and rfields[0] == fstype:
                out.append((Path(fields[4]), fields[3], rfields[2] if len(rfields) > 2 else ""))
    except OSError:
        pass
    return out


def _under(mount: Path, root: str, own: str) -> Path:
    rel = os.path.relpath(own, root) if own.startswith(root) else own.lstrip("/")
    return mount if rel in (".", "") else mount / rel


class MemoryControl:
    """Creates run cgroups under a parent made for this harness process (``geex-<pid>``)."""

    def __init__(self, parent: Path | None, version: int) -> None:
        self.parent = parent
        self.version = version
        self._lock = threading.Lock()
        self._retired: list[RunCgroup] = []  # finished runs whose directory the kernel still held

    def retire(self, cgroup: RunCgroup) -> None:
        """Remove a finished run's cgroup now if possible, else later (``create`` and ``close``
        retry): waiting for the kernel would add ~10 ms to every run."""
        if not cgroup.try_remove():
            with self._lock:
                self._retired.append(cgroup)

    @property
    def mechanism(self) -> str:
        return f"cgroup{self.version}" if self.parent is not None else "rlimit"

    def create(self, memory_mb: int) -> RunCgroup | None:
        if self.parent is None:
            return None
        with self._lock:
            self._retired = [c for c in self._retired if not c.try_remove()]
        path = self.parent / f"run-{next(_counter)}"
        try:
            path.mkdir()
        except OSError:
            return None
        limit = str(memory_mb * 1024 * 1024)
        ok = (_write(path / "memory.max", limit) and _write(path / "memory.swap.max", "0")
              if self.version == 2 else _write(path / "memory.limit_in_bytes", limit))
        if self.version == 1:
            _write(path / "memory.memsw.limit_in_bytes", limit)  # only with swap accounting
        if not ok:
            RunCgroup(path, self.version).remove()
            return None
        return RunCgroup(path, self.version)

    def close(self) -> None:
        if self.parent is not None:
            for child in self.parent.glob("run-*"):
                RunCgroup(child, self.version).remove()
            try:
                self.parent.rmdir()
            except OSError:
                pass


def _remove_stale(base: Path, version: int) -> None:
    """``geex-<pid>`` parents of harness processes that died (kill -9) without removing them."""
    for stale in base.glob("geex-*"):
        pid = stale.name.split("-", 1)[1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            MemoryControl(stale, version).close()


def _try_v2() -> MemoryControl | None:
    for mount, root, _ in _mounts("cgroup2"):
        own = _own_path(None)
        if own is None:
            continue
        base = _under(mount, root, own)
        try:
            if "memory" not in (base / "cgroup.controllers").read_text().split():
                continue
        except OSError:
            continue
        if "memory" not in (base / "cgroup.subtree_control").read_text().split():
            if not _write(base / "cgroup.subtree_control", "+memory"):
                continue  # our cgroup holds processes (no internal processes with controllers)
        _remove_stale(base, 2)
        parent = base / f"geex-{os.getpid()}"
        try:
            parent.mkdir(exist_ok=True)
            if not _write(parent / "cgroup.subtree_control", "+memory"):
                parent.rmdir()
                continue
        except OSError:
            continue
        return MemoryControl(parent, 2)
    return None


def _try_v1() -> MemoryControl | None:
    own = _own_path("memory")
    for mount, root, options in _mounts("cgroup"):
        if "memory" not in options.split(",") or own is None:
            continue
        for base in (_under(mount, root, own), mount):
            if not base.is_dir():
                continue
            _remove_stale(base, 1)
            parent = base / f"geex-{os.getpid()}"
            try:
                parent.mkdir(exist_ok=True)
            except OSError:
                continue
            _write(parent / "memory.use_hierarchy", "1")
            return MemoryControl(parent, 1)
    return None


@functools.cache
def memory_control() -> MemoryControl:
    """The best mechanism of this machine for this process (root only: cgroups need it)."""
    if os.geteuid() != 0 or os.environ.get("GEEX_SANDBOX_CGROUP", "").lower() in ("0", "off", "no"):
        return MemoryControl(None, 0)
    control = _try_v2() or _try_v1() or MemoryControl(None, 0)
    if control.parent is not None:
        import atexit

        atexit.register(control.close)
    return control

