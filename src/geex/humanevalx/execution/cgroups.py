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

How a run gets into its cgroup, cheapest first:

- **born inside** (v1): a *slot* is a cgroup with one thread of the harness in it (v1 places threads,
  not only processes); a run started by that thread is in the slot's cgroup from its first
  instruction. Slots are reused run after run (one run at a time each); the OOM counter is read
  before and after. Moving a task into a cgroup takes the kernel's ``cgroup_threadgroup_rwsem``
  for writing, which waits for an RCU grace period: 10-15 ms a run on 2 cores, more than the whole
  rest of the sandbox. The slot thread's own memory is the harness's (v1 charges a process's memory
  to the cgroup of its leader thread; only small kernel objects of the slot thread count there).
- **joined** (v2, or when a slot cannot be made): a fresh cgroup per run that ``geex-exec``
  (``native.py``) joins before bubblewrap starts (v2 keeps all threads of a process in one memory
  cgroup).

Either way nothing of the run is ever outside the cgroup.
"""

from __future__ import annotations

import functools
import itertools
import os
import queue
import threading
import time
import warnings
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar

T = TypeVar("T")

_counter = itertools.count()


@dataclass
class RunCgroup:
    """One run's cgroup: its own directory (joined by ``geex-exec``), or a slot's (born inside)."""

    path: Path
    version: int
    slot: "Slot | None" = None  # start the run with ``slot.call``; it is born in the cgroup
    oom_base: int = 0  # the cgroup's OOM kills before the run (a slot's count goes on across runs)

    @property
    def procs(self) -> Path:
        return self.path / "cgroup.procs"

    def oom_kills(self) -> int:
        """How many processes the kernel killed in this cgroup for reaching its memory limit."""
        return _oom_kills(self.path, self.version)

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of the run for reaching the memory limit."""
        return self.oom_kills() > self.oom_base

    def others(self) -> list[int]:
        """Processes in the cgroup other than the harness (whose slot thread is a member)."""
        own = os.getpid()
        return [pid for pid in _read_pids(self.procs) if pid != own]

    def clear(self, wait_s: float = 10.0) -> None:
        """SIGKILL every process of the cgroup but the harness, until none is left (a dying or
        zombie process still counts against RLIMIT_NPROC of the next run). A process cannot leave
        the cgroup (its files are root's), so this finds all of a run's, ``setsid`` or not."""
        deadline = time.monotonic() + wait_s
        delay = 0.001
        while True:
            pids = self.others()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass
            if time.monotonic() > deadline:
                warnings.warn(f"{len(pids)} process(es) of {self.path} survived SIGKILL for {wait_s} s",
                              RuntimeWarning, stacklevel=2)
                return
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

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
                for pid in self.others():
                    try:
                        os.kill(pid, 9)
                    except OSError:
                        pass
            if time.monotonic() > deadline:
                return  # left for the next start's sweep (remove_stale)
            time.sleep(0.01)


def _oom_kills(path: Path, version: int) -> int:
    name = "memory.events" if version == 2 else "memory.oom_control"
    try:
        for line in (path / name).read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


class Slot:
    """A v1 memory cgroup with a thread of the harness in it that starts runs (``call``): a process
    that thread starts is born in the cgroup, so no run pays for moving a task (see the module's
    docstring). One run at a time: ``MemoryControl.acquire`` hands a slot to one run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.limit_mb: int | None = None
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        joined: Future[bool] = Future()
        self._thread = threading.Thread(target=self._serve, args=(joined,), name=f"geex-{path.name}", daemon=True)
        self._thread.start()
        self.joined = joined.result()

    def _serve(self, joined: Future) -> None:
        joined.set_result(_write(self.path / "tasks", str(threading.get_native_id())))
        while True:
            job = self._jobs.get()
            if job is None:
                return
            fn, result = job
            try:
                result.set_result(fn())
            except BaseException as e:  # handed to the caller
                result.set_exception(e)

    def call(self, fn: Callable[[], T]) -> T:
        """``fn()`` in the slot's thread (e.g. ``subprocess.Popen``: the child is born inside)."""
        result: Future = Future()
        self._jobs.put((fn, result))
        return result.result()

    def set_limit(self, memory_mb: int) -> bool:
        """The memory limit for the next run (v1: memory+swap never below memory)."""
        if self.limit_mb == memory_mb:
            return True
        limit = str(memory_mb * 1024 * 1024)
        files = ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
        if self.limit_mb is not None and memory_mb > self.limit_mb:
            files.reverse()  # raising: memory+swap first
        ok = _write(self.path / files[0], limit)
        if (self.path / "memory.memsw.limit_in_bytes").exists():  # only with swap accounting
            ok = _write(self.path / files[1], limit) and ok
        self.limit_mb = memory_mb if ok else None
        return ok

    def stop(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=5)


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
        self._slots: list[Slot] = []  # every slot made (v1)
        self._free: list[Slot] = []  # of those, not in use by a run
        self.use_slots = version == 1

    def acquire(self, memory_mb: int) -> RunCgroup | None:
        """A cgroup for one run limited to ``memory_mb``: a free slot where the hierarchy places
        threads (v1), else a fresh cgroup (``create``); None without cgroups. Give it back with
        ``release`` once every process of the run is gone."""
        if self.parent is None:
            return None
        if self.use_slots:
            slot = self._checkout()
            if slot is not None:
                if slot.set_limit(memory_mb):
                    return RunCgroup(slot.path, 1, slot=slot, oom_base=_oom_kills(slot.path, 1))
                with self._lock:
                    self._free.append(slot)
        return self.create(memory_mb)

    def release(self, cgroup: RunCgroup) -> None:
        if cgroup.slot is not None:
            with self._lock:
                self._free.append(cgroup.slot)
        else:
            self.retire(cgroup)

    def _checkout(self) -> Slot | None:
        with self._lock:
            if self._free:
                return self._free.pop()
            path = self.parent / f"slot-{next(_counter)}"
            try:
                path.mkdir()
            except OSError:
                return None
            slot = Slot(path)
            if not slot.joined:  # this hierarchy does not take threads: a cgroup per run instead
                slot.stop()
                RunCgroup(path, self.version).remove()
                self.use_slots = False
                return None
            self._slots.append(slot)
            return slot

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
        with self._lock:
            slots, self._slots, self._free = self._slots, [], []
        for slot in slots:
            slot.stop()  # its thread gone, the slot can be removed
        if self.parent is not None:
            for child in (*self.parent.glob("run-*"), *self.parent.glob("slot-*")):
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

