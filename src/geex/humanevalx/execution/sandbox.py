"""Run untrusted programs without Docker: bubblewrap namespaces, an unprivileged uid, a memory cgroup.

Layers, strongest first (``Isolation``):

- ``bubblewrap+uid`` (root with bwrap): new PID/net/IPC/UTS/cgroup namespaces and an **allow-list
  view of the file system**: only the system directories (``/usr``, ``/etc``, the ``/lib*`` and
  ``/bin`` links) and the paths the runner names (interpreter, toolchain caches) read-only, a
  fresh ``/proc`` and ``/dev``, a private size-capped ``/tmp`` and the sample's own work directory.
  Nothing else exists inside: no homes, no checkouts, no dataset, no output directory, no ``/run``.
  bubblewrap reads its arguments from a pipe (``--args``), so ``/proc/1/cmdline`` inside tells
  nothing about the host's paths. A seccomp filter refuses sockets other than IP/netlink (a path
  socket would reach host daemons; the network namespace does not cover AF_UNIX or AF_VSOCK),
  io_uring, the keyring calls and new user namespaces (``clone``/``unshare`` with
  ``CLONE_NEWUSER``; ``clone3``, whose flags seccomp cannot read, fails with ENOSYS so that the C
  library falls back to ``clone``). Then ``geex-exec`` sets the rlimits and drops to a leased uid
  with no groups, no capabilities and ``no_new_privs`` (``prlimit`` and ``setpriv`` do it where
  it could not be built), so RLIMIT_NPROC (ignored for root) really caps processes.
  When the program exits, the PID namespace dies and takes every leftover child with it.
- ``bubblewrap`` (not root): the same namespaces through a user namespace (``--disable-userns``
  keeps the program from nesting another), no uid drop (RLIMIT_NPROC does not stop a fork bomb
  there: only the wall-clock limit does), no cgroup.
- ``uid+rlimits`` (root without bwrap) and ``rlimits`` (neither): limits and a process group only;
  no network or file-system isolation. Reported loudly, recorded in every report.

Memory: a cgroup per run (``cgroups.py``: v2 or v1, whatever the machine offers to root) bounds
the whole process tree, ``memfd``/shared memory/tmpfs included; without one only RLIMIT_AS per
process bounds it. ``memory_mechanism`` is recorded in the report. On v1 a run is started by a
slot's thread and born in the slot's cgroup (moving a process into a cgroup costs the kernel an RCU
grace period, 10-15 ms a run); on v2 ``geex-exec`` joins a fresh cgroup per run.

Exit status: bubblewrap reports a child killed by signal N as exit status 128 + N. The native
helper ``geex-exec`` (``native.py``) runs inside the sandbox between bubblewrap and the program and
reports the real wait status through a pipe the program cannot write to, so ``exit(137)`` is an
exit status and not a SIGKILL. (Without a C compiler the old reading is used, and recorded.)

Every run gets its own process group; on timeout the whole group is killed, and in the uid modes
every process still owned by the worker's uid is killed afterwards (children that ``setsid``), and
the harness waits until they are gone, so that the next sample of the worker does not inherit a
full process table. Output goes to files capped by RLIMIT_FSIZE, so a flood ends the program
instead of the harness; the harness also watches their size and stops a program that reached the
cap but ignores the error (the JVM ignores SIGXFSZ and ``System.out`` swallows write errors).
"""

from __future__ import annotations

import enum
import functools
import os
import platform
import select
import shutil
import signal
import struct
import subprocess
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from geex.humanevalx.execution.cgroups import MemoryControl, RunCgroup, memory_control
from geex.humanevalx.execution.native import geex_exec

MB = 1024 * 1024
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
    memory_mb: int = 1024  # the whole process tree (memory cgroup): heap, memfd, shm, tmpfs, page cache


@dataclass
class ExecResult:
    returncode: int | None  # exit status, None when killed by a signal
    signal: int | None
    timed_out: bool
    wall_s: float
    stdout: str  # head (and tail) of the output, decoded leniently
    stderr: str
    output_bytes: int = 0
    output_limited: bool = False  # stdout or stderr reached the output cap (the program was stopped)
    harness_error: str | None = None  # set by the harness, never from the program's output
    cpu_limited: bool = False  # killed (SIGKILL) at the hard CPU-time limit, not by the harness
    memory_limited: bool = False  # the kernel OOM-killed a process of the run at the cgroup's limit
    exact_status: bool = False  # the wait status came from geex-exec (not bwrap's 128 + N encoding)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out and not self.output_limited


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
    for mode in Isolation:  # "bubblewrap" is the mode of that name, not the first value it begins
        if forced and forced in (mode.value, mode.name.lower()):
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


def _read_capped(f, head: int = 16384, tail: int = 4096) -> tuple[str, int]:
    """Head and tail of an output file (an open binary file object) and its full size."""
    size = os.fstat(f.fileno()).st_size
    f.seek(0)
    if size <= head + tail:
        data = f.read(size)
    else:
        first = f.read(head)
        f.seek(size - tail)
        data = first + f"\n[... {size - head - tail} bytes cut ...]\n".encode() + f.read(tail)
    return data.decode("utf-8", errors="replace"), size


# -- seccomp ---------------------------------------------------------------------------------------
# Per machine: audit arch, syscall numbers of socket, socketpair, clone and unshare, and ranges of
# syscalls that fail with ENOSYS: io_uring_setup/enter/register; add_key/request_key/keyctl (the
# session keyring of the harness is still "possessed" after the uid drop); clone3 (its flags live
# in memory that seccomp cannot read; C libraries fall back to clone on ENOSYS).
_SECCOMP_ARCH = {
    "x86_64": (0xC000003E, 41, 53, 56, 272, ((425, 427), (248, 250), (435, 435))),
    "aarch64": (0xC00000B7, 198, 199, 220, 97, ((425, 427), (217, 219), (435, 435))),
}
_CLONE_NEWUSER = 0x10000000
_AF_UNIX, _AF_INET, _AF_INET6, _AF_NETLINK = 1, 2, 10, 16
_SOCK_DGRAM = 2
_EPERM, _EACCES, _ENOSYS = 1, 13, 38


@functools.cache
def seccomp_filter() -> bytes | None:
    """A classic-BPF seccomp program (what ``bwrap --seccomp`` loads) for this machine, or None.

    Refused: ``socket`` of any family but IPv4, IPv6 and netlink (all confined by the network
    namespace; AF_UNIX reaches host daemons through read-only binds, AF_VSOCK the hypervisor);
    ``socketpair`` of datagram type (it can ``sendto`` a host socket path; stream and seqpacket
    pairs cannot, and Rust's ``Command`` needs seqpacket); ``clone`` and ``unshare`` with
    ``CLONE_NEWUSER`` (EPERM: a nested user namespace would give the program capabilities over new
    mount and network namespaces, and the kernel attack surface that comes with them); io_uring
    (its opcodes create and connect sockets behind seccomp's back), the kernel keyring calls and
    ``clone3`` (ENOSYS); any syscall of a foreign ABI (x32, i386 ``socketcall``). Everything else
    is allowed.
    """
    arch = _SECCOMP_ARCH.get(platform.machine())
    if arch is None:
        return None
    audit_arch, nr_socket, nr_socketpair, nr_clone, nr_unshare, nosys = arch
    ld, jeq, jge, jgt, and_, ret = 0x20, 0x15, 0x35, 0x25, 0x54, 0x06
    allow, errno = 0x7FFF0000, 0x00050000
    # (opcode, jump-if-true label, jump-if-false label, k), optionally after a label of the row;
    # a lone (label,) names the next row. Labels resolve to relative offsets.
    prog: list[tuple] = [  # cBPF jumps only forward: the returns come last
        (ld, None, None, 4),  # arch
        (jeq, None, "foreign", audit_arch),
        (ld, None, None, 0),  # syscall number
        *([(jge, "foreign", None, 0x40000000)] if platform.machine() == "x86_64" else []),  # x32
        (jeq, "socket", None, nr_socket),
        (jeq, "socketpair", None, nr_socketpair),
        (jeq, "namespace", None, nr_clone),  # the flags are args[0] of both
        (jeq, "namespace", None, nr_unshare),
        *[row for lo, hi in nosys  # lo <= nr <= hi: ENOSYS, else on to the next range
          for row in ((jge, None, f"past{lo}", lo), (jgt, f"past{lo}", "nosys", hi), (f"past{lo}",))],
        (jeq, "allow", "allow", 0),  # everything else (an unconditional jump)
        ("socket", ld, None, None, 16),  # args[0]: the address family
        (jeq, "allow", None, _AF_INET),
        (jeq, "allow", None, _AF_INET6),
        (jeq, "allow", "denied", _AF_NETLINK),
        ("socketpair", ld, None, None, 16),
        (jeq, None, "denied", _AF_UNIX),
        (ld, None, None, 24),  # args[1]: the type, with SOCK_NONBLOCK / SOCK_CLOEXEC
        (and_, None, None, 0xF),
        (jeq, "denied", "allow", _SOCK_DGRAM),
        ("namespace", ld, None, None, 16),  # args[0], low 32 bits: the clone/unshare flags
        (and_, None, None, _CLONE_NEWUSER),
        (jeq, "allow", "foreign", 0),  # CLONE_NEWUSER set: EPERM
        ("allow", ret, None, None, allow),
        ("denied", ret, None, None, errno | _EACCES),
        ("nosys", ret, None, None, errno | _ENOSYS),
        ("foreign", ret, None, None, errno | _EPERM),
    ]
    where: dict[str, int] = {}
    rows = []
    for row in prog:
        if isinstance(row[0], str) and len(row) == 1:  # a label of the next row
            where[row[0]] = len(rows)
            continue
        if isinstance(row[0], str):
            where[row[0]] = len(rows)
            row = row[1:]
        rows.append((None, *row))
    out = b""
    for i, (_, code, jt, jf, k) in enumerate(rows):
        off = [0 if j is None else where[j] - i - 1 for j in (jt, jf)]
        out += struct.pack("<HBBI", code, *off, k)
    return out


def _seccomp_pipe() -> int | None:
    """A fresh read end holding the filter (bwrap reads it to EOF; one per command)."""
    prog = seccomp_filter()
    if prog is None:
        return None
    r, w = os.pipe()
    os.write(w, prog)  # a few hundred bytes: fits in the pipe buffer
    os.close(w)
    return r


# -- killing ---------------------------------------------------------------------------------------
def pids_of_uid(uid: int) -> list[int]:
    """Processes (zombies included) whose real uid is ``uid``."""
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
    return pids


def _kill_all_as(uid: int) -> None:
    """``kill(-1, SIGKILL)`` as ``uid``: every process of the uid at once, none missed by a fork
    between a scan and a kill (the kernel makes ``fork`` restart when a fatal signal is pending)."""
    try:
        subprocess.run(
            ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--",
             "kill", "-s", "KILL", "--", "-1"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        pass


def kill_uid(uid: int, wait_s: float = 10.0) -> int:
    """SIGKILL every process whose real uid is ``uid`` and wait until they are gone (a dying or
    zombie process still counts against RLIMIT_NPROC of the next sample). Returns how many were
    found; warns if some outlived ``wait_s``."""
    deadline = time.monotonic() + wait_s
    found: set[int] = set()
    delay = 0.002
    while True:
        pids = pids_of_uid(uid)
        if not pids:
            return len(found)
        if not found:
            _kill_all_as(uid)
        found.update(pids)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if time.monotonic() > deadline:
            warnings.warn(f"{len(pids)} process(es) of sandbox uid {uid} survived SIGKILL for {wait_s} s",
                          RuntimeWarning, stacklevel=2)
            return len(found)
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


# The system part of the allow-list: read-only, as the host has it. A top-level symbolic link (the
# merged /usr of current distributions: /bin -> usr/bin) is recreated as the same link.
SYSTEM_RO = (Path("/usr"), Path("/etc"), Path("/bin"), Path("/sbin"), Path("/lib"), Path("/lib32"),
             Path("/lib64"), Path("/libx32"))
_POLL_S = 0.05  # how often a running program's output size is checked


@functools.cache
def _system_view() -> tuple[str, ...]:
    """bwrap options recreating ``SYSTEM_RO`` (the host's layout does not change under a run)."""
    out: list[str] = []
    for path in SYSTEM_RO:
        if path.is_symlink():
            out += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            out += ["--ro-bind", str(path), str(path)]
    return tuple(out)


def _in_system(path: Path) -> bool:
    """Whether ``path`` (absolute, normalized) is one of ``SYSTEM_RO`` or below one."""
    text = str(path)
    return any(text == s or text.startswith(s + "/") for s in map(str, SYSTEM_RO))


@dataclass
class Sandbox:
    """Builds and runs sandboxed commands. The program sees the system directories, the paths a
    runner binds in (``ro_binds``/``rw_binds``) and its work directory: an allow-list."""

    isolation: Isolation = field(default_factory=detect_isolation)

    @functools.cached_property
    def memory(self) -> MemoryControl:
        """Per-run memory cgroups (bubblewrap+uid and uid+rlimits modes: they need root)."""
        return memory_control() if self.isolation.drops_uid else MemoryControl(None, 0)

    @functools.cached_property
    def helper(self) -> Path | None:
        """``geex-exec`` (cgroup join, exact exit status), or None without a C compiler."""
        try:
            return geex_exec()
        except (OSError, RuntimeError, subprocess.SubprocessError) as e:
            warnings.warn(f"geex-exec could not be built ({e}): exit statuses 129-192 read as signals, "
                          "no memory cgroup", RuntimeWarning, stacklevel=2)
            return None

    @property
    def memory_mechanism(self) -> str:
        return self.memory.mechanism if self.helper is not None else "rlimit"

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
        seccomp_fd: int | None = None,
        status_fd: int | None = None,
    ) -> list[str]:
        """The full argv: bwrap (if any) → geex-exec (status, limits, uid drop) → the program.

        Without geex-exec (no C compiler): bwrap → prlimit → setpriv (if root) → the program.
        ``seccomp_fd``: a file descriptor holding :func:`seccomp_filter`; ``status_fd``: the write end
        of the pipe geex-exec reports the wait status to; both inherited by bwrap (use :meth:`popen`).
        """
        rlimits = {
            "as": f"{limits.address_space_mb * MB}", "cpu": f"{limits.cpu_s}:{limits.cpu_s + 1}",
            "fsize": f"{limits.fsize_mb * MB}", "nofile": f"{limits.nofile}", "nproc": f"{limits.nproc}",
            "core": "0",
        }
        if self.helper is not None:
            status = [str(self.helper)] + (["--status-fd", str(status_fd)] if status_fd is not None else [])
            for name, value in rlimits.items():
                status += ["--rlimit", f"{name}={value}"]
            if self.isolation.drops_uid:
                status += ["--drop", str(uid)]
            rl, drop = [], []
            status.append("--")
        else:
            status = []
            rl = ["prlimit", *(f"--{name}={value}" for name, value in rlimits.items()), "--"]
            drop = (
                ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs",
                 "--bounding-set=-all", "--inh-caps=-all", "--"]
                if self.isolation.drops_uid else []
            )
        if not self.isolation.namespaces:
            return status + rl + drop + argv
        bw = [
            "bwrap", "--unshare-net", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session",
        ]
        if self.isolation is Isolation.BUBBLEWRAP:
            bw += ["--unshare-user", "--disable-userns"]
        bw += _system_view()
        bw += ["--dev", "/dev", "--proc", "/proc",
               "--size", str(limits.tmp_mb * MB), "--perms", "1777", "--tmpfs", "/tmp"]
        if seccomp_fd is not None:
            bw += ["--seccomp", str(seccomp_fd)]
        helper_dir = (self.helper.parent,) if self.helper is not None else ()
        binds = [("--ro-bind", p) for p in (*helper_dir, *ro_binds)] + [("--bind", p) for p in rw_binds]
        binds.append(("--bind" if cwd_writable else "--ro-bind", cwd))
        made: set[Path] = set()
        for flag, path in binds:
            if _in_system(path):
                continue  # already visible, read-only
            bw += _mount_point_dirs(path, made)
            bw += [flag, str(path), str(path)]
        bw += ["--chdir", str(cwd)]
        return bw + status + rl + drop + argv

    def popen(
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
        stdin=subprocess.DEVNULL,
        stdout=None,
        stderr=None,
        status_fd: int | None = None,
        cgroup: RunCgroup | None = None,
        pass_fds: tuple[int, ...] = (),
    ) -> subprocess.Popen:
        """Start a sandboxed command in a new session (its own process group); the caller waits.

        ``status_fd``: see :meth:`command`; ``cgroup``: a run cgroup (``self.memory.acquire``) that
        the whole tree is born in or joins before bubblewrap starts; ``pass_fds``: descriptors the program
        inherits under the same numbers (bwrap, with ``--die-with-parent`` and ``--new-session``,
        geex-exec, prlimit and setpriv all keep them open), e.g. the channel of
        :mod:`geex.humanevalx.execution.proof`.
        """
        seccomp = _seccomp_pipe() if self.isolation.namespaces else None
        fds = [fd for fd in (seccomp, status_fd) if fd is not None]
        args_fd = None
        try:
            full = self.command(
                argv, cwd=cwd, limits=limits, uid=uid, ro_binds=ro_binds, rw_binds=rw_binds,
                cwd_writable=cwd_writable, seccomp_fd=seccomp, status_fd=status_fd,
            )
            if full[0] == "bwrap":
                # bwrap's own command line (pid 1 of the sandbox, readable in /proc/1/cmdline) would
                # name host paths: its options come through a pipe instead (--chdir is the last one)
                split = full.index("--chdir") + 2
                args_fd = _pipe_holding(b"".join(a.encode() + b"\0" for a in full[1:split]))
                fds.append(args_fd)
                full = ["bwrap", "--args", str(args_fd), "--", *full[split:]]
            if cgroup is not None and cgroup.slot is None and self.helper is not None:
                full = [str(self.helper), "--cgroup", str(cgroup.procs), "--", *full]
            base_env = {"PATH": SAFE_PATH, "HOME": "/tmp", "TMPDIR": "/tmp", "LANG": "C.UTF-8"}

            def start() -> subprocess.Popen:
                return subprocess.Popen(
                    full, cwd=cwd, env={**base_env, **(env or {})}, stdin=stdin, stdout=stdout,
                    stderr=stderr, start_new_session=True, umask=umask, pass_fds=(*pass_fds, *fds),
                )

            # a slot's thread starts it: born in the cgroup
            return cgroup.slot.call(start) if cgroup is not None and cgroup.slot is not None else start()
        finally:
            for fd in (seccomp, args_fd):
                if fd is not None:
                    os.close(fd)

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
        stdin=subprocess.DEVNULL,
        pass_fds: tuple[int, ...] = (),
    ) -> ExecResult:
        """Run to completion, timeout or output cap; never raises for anything the program does.
        ``stdin`` and ``pass_fds`` as for :meth:`popen`."""
        cap = limits.fsize_mb * MB
        start = time.monotonic()
        deadline = start + limits.wall_s
        cgroup = self.memory.acquire(limits.memory_mb) if self.helper is not None else None
        status_r, status_w = os.pipe() if self.helper is not None else (None, None)
        # nameless files (O_TMPFILE): nothing is left on disk even if the harness is killed
        try:
            with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:

                def flooded() -> bool:
                    return max(os.fstat(out.fileno()).st_size, os.fstat(err.fileno()).st_size) >= cap

                try:
                    proc = self.popen(
                        argv, cwd=cwd, limits=limits, uid=uid, env=env, ro_binds=ro_binds,
                        rw_binds=rw_binds, cwd_writable=cwd_writable, umask=umask, stdin=stdin,
                        stdout=out, stderr=err, status_fd=status_w, cgroup=cgroup, pass_fds=pass_fds,
                    )
                finally:
                    if status_w is not None:
                        os.close(status_w)
                        status_w = None
                timed_out, limited = _watch(proc, deadline, flooded)
                self._sweep(proc.pid, cgroup, uid)
                limited = limited or flooded()
                wall = time.monotonic() - start
                stdout, n_out = _read_capped(out)
                stderr, n_err = _read_capped(err)
            reported = _read_status(status_r) if status_r is not None else None
            oom = cgroup is not None and cgroup.oom_killed()
        finally:
            if status_r is not None:
                os.close(status_r)
            if cgroup is not None:
                # every process of the run is gone (PID namespace, cgroup or uid sweep)
                self.memory.release(cgroup)
        if reported is not None and not timed_out and not limited:
            code, sig = reported
        else:
            code, sig = _decode_status(proc.returncode, self.isolation.namespaces or self.helper is not None)
        cpu_limited = _cpu_limited(sig, timed_out or limited or oom, wall, limits.cpu_s,
                                   len(os.sched_getaffinity(0)) or 1)
        return ExecResult(code, sig, timed_out, wall, stdout, stderr, n_out + n_err, limited,
                          cpu_limited=cpu_limited, memory_limited=oom, exact_status=reported is not None)

    def _sweep(self, pid: int, cgroup: RunCgroup | None, uid: int) -> None:
        """Kill what the run left behind: stragglers in its process group (none, usually), then every
        process of the run — its cgroup slot's, in a PID namespace (every process of the run is in
        the slot: no /proc scan; outside one an orphan is adopted by the host's init, which may move
        it to another cgroup), else every process of its uid."""
        _kill_group(pid)
        if cgroup is not None and cgroup.slot is not None and self.isolation.namespaces:
            cgroup.clear()
        elif self.isolation.drops_uid:
            kill_uid(uid)


def _watch(proc: subprocess.Popen, deadline: float, flooded: Callable[[], bool]) -> tuple[bool, bool]:
    """Wait for the program to exit; at the deadline, or once its output passes the cap, kill its
    process group and reap it. Returns (timed out, output limited)."""
    pidfd = _pidfd(proc.pid)
    try:
        while True:
            remaining = deadline - time.monotonic()
            if _wait_exit(proc, pidfd, max(0.0, min(remaining, _POLL_S))):
                return False, False
            limited = flooded()
            timed_out = not limited and remaining <= _POLL_S
            if limited or timed_out:
                _kill_group(proc.pid)
                proc.wait()
                return timed_out, limited
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _pipe_holding(data: bytes) -> int:
    """A read end from which ``data`` can be read to EOF (written before the reader starts)."""
    r, w = os.pipe()
    try:
        if len(data) > 65536:  # the pipe buffer: a larger write would block with no reader yet
            raise ValueError(f"bubblewrap arguments too long ({len(data)} bytes)")
        os.write(w, data)
    finally:
        os.close(w)
    return r


def _read_status(fd: int) -> tuple[int | None, int | None] | None:
    """(exit code, signal) as geex-exec reported it, or None (it was killed before reporting)."""
    os.set_blocking(fd, False)
    try:
        text = os.read(fd, 64).decode("ascii", errors="replace").split()
    except (BlockingIOError, OSError):
        return None
    if len(text) == 2 and text[1].isdigit():
        if text[0] == "exit":
            return int(text[1]), None
        if text[0] == "signal":
            return None, int(text[1])
    return None


def _wait_exit(proc: subprocess.Popen, pidfd: int | None, timeout: float) -> bool:
    """True once the process has exited; returns the moment it does when a pidfd is given
    (``Popen.wait(timeout)`` polls with sleeps of up to 50 ms, a real cost on 30 ms test runs)."""
    if pidfd is not None:
        select.select([pidfd], [], [], timeout)
    try:
        proc.wait(timeout=0 if pidfd is not None else timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _mount_point_dirs(path: Path, made: set[Path]) -> list[str]:
    """``--dir`` arguments creating the ancestors of a bind target in the sandbox's empty root,
    traversable (0755: bwrap would otherwise create them 0700, unreadable for the dropped uid)."""
    out: list[str] = []
    for ancestor in reversed(path.parents):
        if ancestor in made or ancestor == Path("/") or _in_system(ancestor):
            continue
        made.add(ancestor)
        out += ["--perms", "0755", "--dir", str(ancestor)]
    return out


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _cpu_limited(sig: int | None, stopped_otherwise: bool, wall: float, cpu_s: float, cores: int) -> bool:
    """Whether a run ended at its CPU-time limit: a SIGKILL the harness did not send (no timeout, no
    output cap, no OOM kill), after long enough to have used ``cpu_s`` of CPU on every core — the
    kernel's hard RLIMIT_CPU, which a program that ignores SIGXCPU meets (a time limit, not a crash)."""
    return sig == signal.SIGKILL and not stopped_otherwise and wall >= cpu_s / cores


def _decode_status(returncode: int, via_bwrap: bool) -> tuple[int | None, int | None]:
    """(exit code, signal). bwrap reports a child killed by signal N as exit 128 + N."""
    if returncode < 0:
        return None, -returncode
    if via_bwrap and 128 < returncode < 128 + 65:
        return None, returncode - 128
    return returncode, None
