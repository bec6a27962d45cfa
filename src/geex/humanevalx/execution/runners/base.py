"""The base of the per-language compile/run recipes on top of the sandbox.

A runner turns a ``Program`` into an ``Outcome``: write the files into a private work directory,
compile (sandboxed, with the runner's caches: C++ precompiled header, prebuilt Rust crates,
prebuilt Go packages, a long-lived javac), then run the test (sandboxed, work directory
read-only, only a small private ``/tmp`` writable) with a fresh proof-of-completion channel
(``proof.py``: exit status 0 passes only with the proof), classify, and remove the directory.

A file the harness wrote that is gone when a step fails makes the outcome a ``harness_error``
naming it (a sweep of another process, say), never the sample's verdict; after the run only where
the sandbox kept the directory read-only, since elsewhere the program could delete its own files.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from geex.humanevalx.execution.cache import ENV_CACHE, cache_root
from geex.humanevalx.execution.program import Program
from geex.humanevalx.execution.proof import Proof, ProofChannel, failure_detail, harness_digest, harness_text, install
from geex.humanevalx.execution.sandbox import ExecResult, Limits, Sandbox, kill_uid
from geex.humanevalx.execution.uids import UidLease
from geex.humanevalx.execution.verdict import Verdict, classify_compile, classify_run, excerpt

RECIPE_VERSION = "runners/5"  # 5: proof of completion. Bump when a recipe change could change a verdict (invalidates cached ones)


def tool_output(argv: list[str], timeout: float = 30) -> str | None:
    """First non-empty line a version command prints (stdout or stderr), or None if it fails."""
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if r.returncode != 0:
        return None
    for line in (r.stdout + "\n" + r.stderr).splitlines():
        if line.strip():
            return line.strip()
    return None


JOBS_LOCK = ".geex-jobs.lock"  # held (flock) by the process that owns a jobs root, for its lifetime
UNLOCKED_STALE_S = 3600  # a jobs root without a lock file (an older geex's) is left alone this long
_held_jobs_roots: dict[Path, int] = {}


def _remove_stale_jobs_roots() -> None:
    """Work directories of geex processes that are gone (``geex-jobs-*``, e.g. after ``kill -9``).

    The owner is alive while it holds the flock on the root's lock file; the kernel drops it when
    the owner exits. A pid check would be wrong for an owner in another PID namespace (a container
    or a sandbox sharing /tmp: its pid means nothing here, or another process), and removing a
    live run's root makes its next compile fail on a missing file.
    """
    for path in Path(tempfile.gettempdir()).glob("geex-jobs-*-*"):
        try:  # only our own directories: another user's (a planted bait) is not ours to judge or follow
            st = os.lstat(path)
            if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
                continue
            fd = os.open(path / JOBS_LOCK, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            _remove_unlocked_jobs_root(path)
            continue
        except OSError:
            continue  # not ours to judge (another user's)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # held: the owner is alive
        else:
            shutil.rmtree(path, ignore_errors=True)
        finally:
            os.close(fd)


def _remove_unlocked_jobs_root(path: Path) -> None:
    """A root without a lock file (an older geex, or an owner killed while creating it): removed only
    when untouched for ``UNLOCKED_STALE_S`` (every sample adds and removes a work directory in it)
    and its pid is not alive here."""
    pid = path.name.split("-")[2]
    try:
        if not pid.isdigit() or time.time() - path.stat().st_mtime < UNLOCKED_STALE_S:
            return
        os.kill(int(pid), 0)
    except ProcessLookupError:
        shutil.rmtree(path, ignore_errors=True)
    except OSError:
        pass  # gone already, or alive (another user's)


def make_jobs_root() -> Path:
    """A fresh directory for the work directories of one process (``geex-jobs-<pid>-*``), locked
    for as long as this process lives or until ``remove_jobs_root``; stale ones are swept first.
    ``mkdtemp`` creates it atomically under a random name, owned by us."""
    _remove_stale_jobs_roots()
    root = Path(tempfile.mkdtemp(prefix=f"geex-jobs-{os.getpid()}-"))
    # locked before it gets its name: a sweeper never sees the lock file free while we live
    fd = os.open(root / (JOBS_LOCK + ".new"), os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.rename(root / (JOBS_LOCK + ".new"), root / JOBS_LOCK)
    _held_jobs_roots[root] = fd
    # 0711: the sandbox uids reach their own work directories (in the modes without namespaces),
    # nobody lists them
    root.chmod(0o711)
    return root


def remove_jobs_root(root: Path) -> None:
    """Remove a root made by ``make_jobs_root`` and release its lock."""
    shutil.rmtree(root, ignore_errors=True)
    fd = _held_jobs_roots.pop(root, None)
    if fd is not None:
        os.close(fd)


def write_file(workdir: Path, name: str, text: str | bytes) -> None:
    """Write a harness file into a work directory: never through a link planted there, never into
    a file that someone else still has open for writing (the old one is unlinked first), and owned
    like the directory (whoever it was handed to)."""
    dir_fd = os.open(workdir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        try:
            os.unlink(name, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                     dir_fd=dir_fd)
        try:
            data = text.encode("utf-8") if isinstance(text, str) else text
            while data:
                data = data[os.write(fd, data):]
            st = os.fstat(dir_fd)
            if st.st_uid != os.geteuid():
                os.fchown(fd, st.st_uid, st.st_gid)
        finally:
            os.close(fd)
    finally:
        os.close(dir_fd)


def hand_over(workdir: Path, uid: int) -> None:
    """Give a work directory and everything in it to ``uid`` (0700: nobody else can read it, plant a
    link in it or swap a compiled file between compile and run). Links are changed, not followed."""
    if os.geteuid() != 0:
        return  # without root every step runs as ourselves: nothing to give
    for dirpath, dirnames, filenames in os.walk(workdir):
        for name in (*dirnames, *filenames):
            os.chown(os.path.join(dirpath, name), uid, uid, follow_symlinks=False)
    os.chown(workdir, uid, uid, follow_symlinks=False)
    os.chmod(workdir, 0o700)


@dataclass
class Outcome:
    """What happened to one program."""

    verdict: Verdict
    phase: str  # "compile" or "run" (where the verdict was decided) or "harness"
    compile_s: float = 0.0
    run_s: float = 0.0
    exit_code: int | None = None
    signal: int | None = None
    detail: str = ""  # short stderr/stdout excerpt
    node: str | None = None  # the cluster node that ran it (None: this machine)

    def as_dict(self) -> dict:
        out = {
            "verdict": self.verdict.value, "phase": self.phase, "compile_s": round(self.compile_s, 4),
            "run_s": round(self.run_s, 4), "exit_code": self.exit_code, "signal": self.signal,
            "detail": self.detail,
        }
        return out if self.node is None else {**out, "node": self.node}


@dataclass
class ToolStatus:
    available: bool
    version: str
    problem: str = ""  # why not available / what is missing
    hint: str = ""  # how to install


@dataclass
class RunContext:
    """What one worker needs: the sandbox, its slot (→ uid), a root for work directories."""

    sandbox: Sandbox
    jobs_root: Path
    slot: int
    timeout_s: float = 10.0
    helpers: dict = field(default_factory=dict)  # per-slot long-lived helpers (javac server)

    def _lease(self, name: str) -> int:
        if not self.sandbox.isolation.drops_uid:
            return os.getuid()  # nothing to switch to: programs run as the harness's own user
        lease = self.helpers.get(name)
        if lease is None:
            lease = self.helpers[name] = UidLease()
            kill_uid(lease.uid)  # leftovers of a holder that died without cleaning up
        return lease.uid

    @property
    def uid(self) -> int:
        """The uid this worker's programs run as (leased: no other geex process uses it)."""
        return self._lease("uid")

    @property
    def helper_uid(self) -> int:
        """A second leased uid for long-lived helpers (javac server), never swept per sample."""
        return self._lease("helper-uid")

    def new_workdir(self) -> Path:
        """A fresh, private (0700, ours) directory: the harness writes its files, then hands it over."""
        return Path(tempfile.mkdtemp(prefix=f"s{self.slot}-", dir=self.jobs_root))

    def close(self) -> None:
        for name, helper in list(self.helpers.items()):
            if not isinstance(helper, UidLease):
                helper.close()
        for helper in self.helpers.values():
            if isinstance(helper, UidLease):
                helper.release()
        self.helpers.clear()


class Runner:
    """Base recipe; subclasses set the language and override the steps they need."""

    language: str = ""
    source_name: str = "main"
    install_hint: str = "run scripts/setup.sh"
    compile_limits = Limits(wall_s=60, cpu_s=60, address_space_mb=4096, nproc=256, fsize_mb=256, tmp_mb=256)
    proof_files: tuple[str, ...] = ()  # files of ``harness/`` the language's proof of completion needs
    # of those, scripts copied next to the program (readable by the program's uid in every sandbox
    # mode, no bind mount); the others are installed, built, into ``proof_dir`` at preparation
    proof_scripts: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._prepared = False
        self._prepare_lock = threading.Lock()
        self._prepare_error: str | None = None

    # -- description -----------------------------------------------------------------------
    def status(self) -> ToolStatus:
        raise NotImplementedError

    @functools.cached_property
    def cached_status(self) -> ToolStatus:
        return self.status()

    def toolchain_key(self) -> str:
        """Names what is built once for this toolchain (precompiled header, crates, Go packages, the
        javac server, the proof harness): changes with the toolchain's version, the recipes and the
        harness files, not with the limits a run is given."""
        parts = [RECIPE_VERSION, harness_digest(self.proof_files), self.language, self.cached_status.version]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]

    def verdict_key(self, timeout_s: float) -> str:
        """Changes whenever this runner's verdict on a program could change: the toolchain key and
        the limits of a run (the orchestrator adds the sandbox's mode and the harness's code)."""
        limits = json.dumps(self.run_limits(timeout_s).__dict__, sort_keys=True)
        return hashlib.sha256(f"{self.toolchain_key()}\n{limits}".encode()).hexdigest()[:16]

    def cache_dir(self) -> Path:
        return cache_root() / "toolchains" / self.language

    # -- steps -----------------------------------------------------------------------------
    def prepare(self, sandbox: Sandbox) -> None:
        """Build caches once per process (PCH, crates, Go cache, javac server classes)."""
        with self._prepare_lock:
            if self._prepared:
                if self._prepare_error:
                    raise RuntimeError(self._prepare_error)
                return
            self._prepared = True
            try:
                self.cache_dir().mkdir(parents=True, exist_ok=True)
                with open(self.cache_dir() / ".prepare.lock", "w") as lock:
                    fcntl.flock(lock, fcntl.LOCK_EX)  # another geex process may be building the same cache
                    self._prepare(sandbox)
            except Exception as e:
                self._prepare_error = f"{self.language} toolchain preparation failed: {e}"
                raise RuntimeError(self._prepare_error) from e

    def _prepare(self, sandbox: Sandbox) -> None:
        pass

    @property
    def proof_dir(self) -> Path:
        """Where the language's proof-of-completion harness is installed (bound read-only into runs)."""
        return self.cache_dir() / f"proof-{self.toolchain_key()}"

    def _install_proof(self, build=None) -> None:
        install(self.proof_dir, self.proof_files, build)

    def required_paths(self) -> tuple[Path, ...]:
        """Host paths (after ``prepare``) without which no sample can compile or run correctly."""
        return ()

    def unreachable_paths(self, sandbox: Sandbox) -> list[Path]:
        """Required paths the sandbox uid cannot read. Only without namespaces: bubblewrap binds
        them in with traversable parents, whereas a bare uid drop leaves e.g. a toolchain under
        root's 0700 home out of reach, and every sample would fail as if it were the model's fault."""
        if not sandbox.isolation.drops_uid or sandbox.isolation.namespaces:
            return []
        return [p for p in self.required_paths() if not _world_readable(p)]

    def write(self, program: Program, workdir: Path) -> None:
        write_file(workdir, f"{self.source_name}.{program.language.extension}", program.source)
        if program.layout:
            write_file(workdir, f"{self.source_name}.layout.json", program.layout)
        for name in self.proof_scripts:
            write_file(workdir, name, harness_text(name))

    def compile_uid(self, ctx: RunContext) -> int:
        """The uid the compile step writes the work directory as (the javac server has its own)."""
        return ctx.uid

    def compile(self, workdir: Path, ctx: RunContext) -> ExecResult | None:
        return None  # interpreted

    def run_argv(self, workdir: Path) -> list[str]:
        raise NotImplementedError

    def run_env(self) -> dict[str, str]:
        return {}

    def run_ro_binds(self) -> tuple[Path, ...]:
        return ()

    def run_limits(self, timeout_s: float) -> Limits:
        return Limits(wall_s=timeout_s, cpu_s=int(timeout_s) + 1, address_space_mb=2048, nproc=128)

    def harness_fault(self, result: ExecResult) -> str | None:
        """A failure that is the harness's fault (e.g. a missing library), or None.

        Decided from the harness's own state (``result.harness_error``, what is installed), never
        from the program's output alone: a program could print any message to have its failure
        left out of pass@k.
        """
        return result.harness_error

    # -- the whole thing ---------------------------------------------------------------------
    def execute(self, program: Program, ctx: RunContext) -> Outcome:
        status = self.cached_status
        if not status.available:
            return Outcome(Verdict.HARNESS_ERROR, "harness", detail=f"{status.problem}; {status.hint}")
        try:
            self.prepare(ctx.sandbox)
        except RuntimeError as e:
            return Outcome(Verdict.HARNESS_ERROR, "harness", detail=str(e)[-600:])
        unreachable = self.unreachable_paths(ctx.sandbox)
        if unreachable:
            return Outcome(Verdict.HARNESS_ERROR, "harness", detail=(
                f"{', '.join(map(str, unreachable))} not readable by the sandbox uid in "
                f"'{ctx.sandbox.isolation.value}' mode (a parent directory is private): install "
                f"bubblewrap, or move the toolchain / ${ENV_CACHE} to a world-readable place"))
        workdir = ctx.new_workdir()
        try:
            self.write(program, workdir)
            written = _files(workdir)  # everything there now is the harness's
            lost = _lost(workdir, written, "before the compile")
            if lost:
                return Outcome(Verdict.HARNESS_ERROR, "harness", detail=lost)
            t0 = time.monotonic()
            compile_uid = self.compile_uid(ctx)
            hand_over(workdir, compile_uid)
            try:
                compiled = self.compile(workdir, ctx)
            except OSError:  # e.g. no work directory to start the compiler in
                lost = _lost(workdir, written, "during the compile")
                if lost:
                    return Outcome(Verdict.HARNESS_ERROR, "compile", time.monotonic() - t0, detail=lost)
                raise
            if compile_uid != ctx.uid:
                hand_over(workdir, ctx.uid)
            compile_s = time.monotonic() - t0
            if compiled is not None:
                failure = classify_compile(compiled)
                if failure is not None:
                    # compilers run no sample code: a file gone is someone else's doing
                    fault = self.harness_fault(compiled) or _lost(workdir, written, "during the compile")
                    return Outcome(
                        Verdict.HARNESS_ERROR if fault else failure, "compile", compile_s,
                        exit_code=compiled.returncode, signal=compiled.signal,
                        detail=fault or excerpt(compiled.stderr + compiled.stdout),
                    )
                written = _files(workdir)  # + what the compiler made
            owner = ctx.uid if ctx.sandbox.isolation.drops_uid else None
            with ProofChannel(program.proofs, owner) as channel:
                try:
                    result = ctx.sandbox.run(
                        self.run_argv(workdir), cwd=workdir, limits=self.run_limits(ctx.timeout_s), uid=ctx.uid,
                        env={**self.run_env(), **channel.env}, ro_binds=self.run_ro_binds(), cwd_writable=False,
                        stdin=channel.stdin, pass_fds=channel.pass_fds,
                    )
                except OSError:
                    lost = _lost(workdir, written, "before the run")
                    if lost:
                        return Outcome(Verdict.HARNESS_ERROR, "run", compile_s, detail=lost)
                    raise
                proof = channel.collect()
            verdict = classify_run(self.language, result, proof=proof)
            fault = None
            if verdict is not Verdict.PASSED:
                fault = self.harness_fault(result)
                if not fault and ctx.sandbox.isolation.namespaces:  # read-only to the program there
                    fault = _lost(workdir, written, "during the run")
            detail = excerpt(result.stderr + "\n" + result.stdout)
            if result.ok and proof is not Proof.SHOWN:
                detail = failure_detail(proof) + (f"\n{detail}" if detail else "")
            return Outcome(
                Verdict.HARNESS_ERROR if fault else verdict, "run", compile_s, result.wall_s,
                result.returncode, result.signal, "" if verdict is Verdict.PASSED else (fault or detail),
            )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def _files(workdir: Path) -> frozenset[str]:
    try:
        return frozenset(os.listdir(workdir))
    except OSError:
        return frozenset()


def _lost(workdir: Path, names: frozenset[str], when: str) -> str | None:
    """A harness error if files the harness put in ``workdir`` are gone (or it is), else None."""
    missing = sorted(names - _files(workdir)) if workdir.is_dir() else ["the work directory"]
    if not missing:
        return None
    return (f"{', '.join(missing)} missing from {workdir} {when}: removed by something else than "
            "the harness (another process sweeping the temporary directory?)")


def _world_readable(path: Path) -> bool:
    """Whether any uid can reach ``path`` (search permission on every parent) and read it."""
    try:
        path = path.resolve()
        for parent in reversed(path.parents):
            if not parent.stat().st_mode & 0o001:
                return False
        return bool(path.stat().st_mode & (0o005 if path.is_dir() else 0o004))
    except OSError:
        return False
