"""Run untrusted programs without Docker: bubblewrap namespaces, an unprivileged uid, rlimits.

Layers, strongest first (``Isolation``):

- ``bubblewrap+uid`` (root with bwrap): new PID/net/IPC/UTS namespaces, ``/`` read-only, a private
  size-capped ``/tmp``, the harness's own files (home, output, dataset, caches) hidden behind empty
  tmpfs mounts, the work directory bound in; then ``prlimit`` and ``setpriv`` drop to a per-worker
  uid, so RLIMIT_NPROC (ignored for root) really caps processes. When the program exits, the PID
  namespace dies and takes every leftover child with it.
- ``bubblewrap`` (not root): the same namespaces through a user namespace, no uid drop.
- ``uid+rlimits`` (root without bwrap) and ``rlimits`` (neither): limits and a process group only;
  no network or filesystem isolation. Reported loudly, recorded in every report.

Every run gets its own process group; on timeout the whole group is killed, and in the uid modes
every process still owned by the worker's uid is killed afterwards (children that ``setsid``).
Output goes to files capped by RLIMIT_FSIZE, so a flood ends the program instead of the harness.
"""

from __future__ import annotations

import enum
import functools
import os
import shutil
import signal
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

MB = 1024 * 1024
UID_BASE = 61000  # worker w runs as UID_BASE + w; UID_BASE + 500 + w for long-lived helpers
ENV_SANDBOX = "GEEX_SANDBOX"  # force a weaker mode: "bubblewrap", "uid", "rlimits"
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"


class Isolation(str, enum.Enum):
    BUBBLEWRAP_UID = "bubblewrap+uid"
    BUBBLEWRAP = "bubblewrap"
    UID = "uid+rlimits"
    RLIMITS = "rlimits"

    @property
    def drops_uid(self) -> bool:
        return self in (Isolation.BUBBLEWRAP_UID, Isolation.UID)

    @property
    def namespaces(self) -> bool:
        return self in (Isolation.BUBBLEWRAP_UID, Isolation.BUBBLEWRAP)


@dataclass(frozen=True)
class Limits:
    """Per-process limits of one sandboxed command."""

    wall_s: float = 10.0
    cpu_s: int = 10
    address_space_mb: int = 4096
    nproc: int = 128
    fsize_mb: int = 64  # also the cap on stdout/stderr
    nofile: int = 256
    tmp_mb: int = 64  # size of the private /tmp


@dataclass
class ExecResult:
    returncode: int | None  # exit status, None when killed by a signal
    signal: int | None
    timed_out: bool
    wall_s: float
    stdout: str  # head (and tail) of the output, decoded leniently
    stderr: str
    output_bytes: int = 0

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def _probe_bwrap(bwrap: str) -> bool:
    try:
        r = subprocess.run(
            [bwrap, "--ro-bind", "/", "/", "--unshare-net", "--unshare-pid", "--dev", "/dev",
             "--proc", "/proc", "true"],
            capture_output=True, timeout=20,
        )
        return r.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@functools.cache
def detect_isolation() -> Isolation:
    """The strongest isolation this machine offers (or the one forced by $GEEX_SANDBOX)."""
    root = os.geteuid() == 0
    have_setpriv = shutil.which("setpriv") is not None
    bwrap = shutil.which("bwrap")
    bwrap_ok = bwrap is not None and _probe_bwrap(bwrap)
    best = (
        Isolation.BUBBLEWRAP_UID if bwrap_ok and root and have_setpriv
        else Isolation.BUBBLEWRAP if bwrap_ok
        else Isolation.UID if root and have_setpriv
        else Isolation.RLIMITS
    )
    forced = os.environ.get(ENV_SANDBOX, "").strip().lower()
    order = list(Isolation)
    for mode in Isolation:
        if forced and forced in (mode.value, mode.name.lower(), mode.value.split("+")[0]):
            if order.index(mode) >= order.index(best):
                best = mode
            break
    if best not in (Isolation.BUBBLEWRAP_UID,):
        missing = []
        if not bwrap_ok:
            missing.append("bubblewrap (apt-get install bubblewrap)")
        if not root:
            missing.append("root, to drop to an unprivileged uid")
        warnings.warn(
            f"SANDBOX DEGRADED: running generated code with isolation '{best.value}' only; "
            f"missing: {', '.join(missing) or 'forced by $' + ENV_SANDBOX}. Generated programs "
            "may reach the network, read your files or outlive their test.",
            RuntimeWarning, stacklevel=2,
        )
    return best


def _read_capped(path: Path, head: int = 16384, tail: int = 4096) -> tuple[str, int]:
    size = path.stat().st_size
    with open(path, "rb") as f:
        if size <= head + tail:
            data = f.read()
        else:
            first = f.read(head)
            f.seek(size - tail)
            data = first + f"\n[... {size - head - tail} bytes cut ...]\n".encode() + f.read()
    return data.decode("utf-8", errors="replace"), size


def kill_uid(uid: int) -> int:
    """SIGKILL every process whose real uid is ``uid``; returns how many were found."""
    found = 0
    for _ in range(10):  # repeat: a process may fork between our scan and its kill
        pids = []
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/status", "rb") as f:
                    for line in f:
                        if line.startswith(b"Uid:"):
                            if int(line.split()[1]) == uid:
                                pids.append(int(entry.name))
                            break
            except (OSError, ValueError):
                continue
        if not pids:
            return found
        found += len(pids)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.01)
    return found


@dataclass
class Sandbox:
    """Builds and runs sandboxed commands. ``hide``: host paths the program must not read."""

    hide: list[Path] = field(default_factory=list)
    isolation: Isolation = field(default_factory=detect_isolation)

    def command(
        self,
        argv: list[str],
        *,
        cwd: Path,
        limits: Limits,
        uid: int,
        ro_binds: tuple[Path, ...] = (),
        rw_binds: tuple[Path, ...] = (),
        cwd_writable: bool = True,
    ) -> list[str]:
        """The full argv: bwrap (if any) → prlimit → setpriv (if root) → the program."""
        rl = [
            "prlimit",
            f"--as={limits.address_space_mb * MB}",
            f"--cpu={limits.cpu_s}:{limits.cpu_s + 1}",
            f"--fsize={limits.fsize_mb * MB}",
            f"--nofile={limits.nofile}",
            f"--nproc={limits.nproc}",
            "--core=0",
            "--",
        ]
        drop = (
            ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]
            if self.isolation.drops_uid else []
        )
        if not self.isolation.namespaces:
            return rl + drop + argv
        bw = [
            "bwrap", "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session",
            "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            "--size", str(limits.tmp_mb * MB), "--perms", "1777", "--tmpfs", "/tmp",
        ]
        if self.isolation is Isolation.BUBBLEWRAP:
            bw += ["--unshare-user"]
        hidden = [p for p in self.hide if p.is_dir()]
        for path in hidden:
            bw += ["--tmpfs", str(path)]
        binds = [("--ro-bind", p) for p in ro_binds] + [("--bind", p) for p in rw_binds]
        binds.append(("--bind" if cwd_writable else "--ro-bind", cwd))
        made: set[Path] = set()
        for flag, path in binds:
            bw += _mount_point_dirs(path, [Path("/tmp"), *hidden], made)
            bw += [flag, str(path), str(path)]
        bw += ["--chdir", str(cwd)]
        return bw + rl + drop + argv

    def run(
        self,
        argv: list[str],
        *,
        cwd: Path,
        limits: Limits,
        uid: int,
        env: dict[str, str] | None = None,
        ro_binds: tuple[Path, ...] = (),
        rw_binds: tuple[Path, ...] = (),
        cwd_writable: bool = True,
        umask: int = 0o022,
    ) -> ExecResult:
        """Run to completion or timeout; never raises for anything the program does."""
        full = self.command(
            argv, cwd=cwd, limits=limits, uid=uid, ro_binds=ro_binds, rw_binds=rw_binds,
            cwd_writable=cwd_writable,
        )
        base_env = {"PATH": SAFE_PATH, "HOME": "/tmp", "TMPDIR": "/tmp", "LANG": "C.UTF-8"}
        with tempfile.TemporaryDirectory(prefix="geex-io-") as io_dir:
            out_path, err_path = Path(io_dir, "stdout"), Path(io_dir, "stderr")
            start = time.monotonic()
            timed_out = False
            with open(out_path, "wb") as out, open(err_path, "wb") as err:
                proc = subprocess.Popen(
                    full, cwd=cwd, env={**base_env, **(env or {})}, stdin=subprocess.DEVNULL,
                    stdout=out, stderr=err, start_new_session=True, umask=umask,
                )
                try:
                    proc.wait(timeout=limits.wall_s)
                except subprocess.TimeoutExpired:
                    timed_out = True
                    _kill_group(proc.pid)
                    proc.wait()
                _kill_group(proc.pid)  # stragglers in the group (no-op when none)
                if self.isolation.drops_uid:
                    kill_uid(uid)
            wall = time.monotonic() - start
            stdout, n_out = _read_capped(out_path)
            stderr, n_err = _read_capped(err_path)
        code, sig = _decode_status(proc.returncode, self.isolation.namespaces)
        return ExecResult(code, sig, timed_out, wall, stdout, stderr, n_out + n_err)


def _mount_point_dirs(path: Path, tmpfs_roots: list[Path], made: set[Path]) -> list[str]:
    """``--dir`` arguments making the ancestors of a bind target that lie inside one of our tmpfs
    mounts traversable (bwrap would create them 0700, unreadable for the dropped uid)."""
    out: list[str] = []
    for ancestor in reversed(path.parents):
        if ancestor in made or not any(ancestor != r and ancestor.is_relative_to(r) for r in tmpfs_roots):
            continue
        made.add(ancestor)
        out += ["--perms", "0755", "--dir", str(ancestor)]
    return out


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _decode_status(returncode: int, via_bwrap: bool) -> tuple[int | None, int | None]:
    """(exit code, signal). bwrap reports a child killed by signal N as exit 128 + N."""
    if returncode < 0:
        return None, -returncode
    if via_bwrap and 128 < returncode < 128 + 65:
        return None, returncode - 128
    return returncode, None
