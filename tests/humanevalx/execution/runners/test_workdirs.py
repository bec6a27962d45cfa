"""Jobs roots and work directories: a live run's files are never swept, a lost file is the harness's.

The cause of "open testmain.go: no such file" (a ``compile_error`` for Go/0 and Go/1): the sweep of
stale ``geex-jobs-<pid>-*`` roots judged the owner by its pid. An owner in another PID namespace
sharing /tmp (a container, a sandboxed run) has a pid that is dead, or someone else, here: its live
root was removed under its running compiles. Reproduced for real with ``unshare --pid`` and a chosen
pid; the owner's flock is what decides now. And when a harness-written file does go missing, the
sample gets a ``harness_error`` that says so, never a verdict of its own, while a program that
deletes its own files (where it can) keeps the failure it earned.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import geex
from geex.humanevalx.assembly import assemble
from geex.humanevalx.dataset import load_problems
from geex.humanevalx.execution import runners as runners_mod
from geex.humanevalx.execution.runners import RunContext, get_runner, make_jobs_root, remove_jobs_root
from geex.humanevalx.execution.runners import go as go_runner
from geex.humanevalx.execution.sandbox import Isolation, Sandbox
from geex.humanevalx.execution.verdict import Verdict
from geex.languages import get_language

SRC = str(Path(geex.__file__).resolve().parents[1])
OWNER = """
import os, sys
from geex.humanevalx.execution.runners import make_jobs_root
root = make_jobs_root()
print(os.getpid(), root, flush=True)
sys.stdin.read()  # hold the root until the test ends this process
"""
IN_NAMESPACE = """
import subprocess, sys
with open("/proc/sys/kernel/ns_last_pid", "w") as f:
    f.write(sys.argv[1])  # the next process in this namespace gets this pid + 1
sys.exit(subprocess.call([sys.executable, "-c", sys.argv[2]]))
"""


@pytest.fixture
def tmp_root(tmp_path, monkeypatch) -> Path:
    """A private temporary directory for this test's sweeps (never the machine's /tmp)."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


def _dead_pid() -> int:
    """A pid that no process has here now (high, so that this namespace is unlikely to reach it)."""
    pid_max = int(Path("/proc/sys/kernel/pid_max").read_text())
    for pid in range(pid_max - 2, pid_max - 2000, -1):
        if not Path(f"/proc/{pid}").exists():
            return pid
    pytest.skip("no free pid near pid_max")


def _start_owner(argv: list[str], tmp_root: Path) -> tuple[subprocess.Popen, int, Path]:
    env = {**os.environ, "PYTHONPATH": SRC, "TMPDIR": str(tmp_root)}
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
    line = proc.stdout.readline().split()
    assert len(line) == 2, f"the owner did not start (exit {proc.wait()})"
    return proc, int(line[0]), Path(line[1])


def _wait_unlocked(root: Path) -> None:
    import fcntl

    deadline = time.monotonic() + 20
    with open(root / runners_mod.JOBS_LOCK) as f:
        while time.monotonic() < deadline:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except OSError:
                time.sleep(0.05)
    raise AssertionError("the owner's lock outlived it")


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare")
def test_live_root_of_an_owner_in_another_pid_namespace_is_kept(tmp_root):
    pid = _dead_pid()
    argv = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child",
            sys.executable, "-c", IN_NAMESPACE, str(pid - 1), OWNER]
    proc, inner_pid, root = _start_owner(argv, tmp_root)
    try:
        assert inner_pid == pid and root.name.startswith(f"geex-jobs-{pid}-")
        if Path(f"/proc/{pid}").exists():
            pytest.skip(f"pid {pid} was taken here meanwhile")  # the premise: its pid is dead here
        mine = make_jobs_root()  # sweeps
        remove_jobs_root(mine)
        assert root.is_dir(), "a live run's jobs root was swept"
    finally:
        proc.kill()  # unshare --kill-child: the namespace and its processes go too
        proc.wait()
    _wait_unlocked(root)
    remove_jobs_root(make_jobs_root())
    assert not root.exists(), "the root of a dead owner stays"


def test_root_of_a_killed_owner_is_swept_and_a_live_one_kept(tmp_root):
    live, _, live_root = _start_owner([sys.executable, "-c", OWNER], tmp_root)
    dead, _, dead_root = _start_owner([sys.executable, "-c", OWNER], tmp_root)
    try:
        dead.send_signal(signal.SIGKILL)
        dead.wait()
        _wait_unlocked(dead_root)
        mine = make_jobs_root()
        assert mine.is_dir() and (mine / runners_mod.JOBS_LOCK).is_file()
        assert live_root.is_dir() and not dead_root.exists()
        remove_jobs_root(mine)
        assert not mine.exists()
    finally:
        live.kill()
        live.wait()


def test_root_without_a_lock_file_is_swept_only_when_long_untouched(tmp_root):
    """Roots of an older geex (no lock file): kept while recent or while their pid lives here."""
    dead_old = tmp_root / f"geex-jobs-{_dead_pid()}-old"
    dead_new = tmp_root / f"geex-jobs-{_dead_pid()}-new"
    alive_old = tmp_root / f"geex-jobs-{os.getpid()}-alive"
    for d in (dead_old, dead_new, alive_old):
        (d / "s0-x").mkdir(parents=True)
    past = time.time() - runners_mod.UNLOCKED_STALE_S - 60
    for d in (dead_old, alive_old):
        os.utime(d, (past, past))
    remove_jobs_root(make_jobs_root())
    assert not dead_old.exists()
    assert dead_new.is_dir() and alive_old.is_dir()


# -- a harness-written file that goes missing --------------------------------------------------------
@pytest.fixture
def jobs():
    root = make_jobs_root()
    yield root
    remove_jobs_root(root)


def _ctx(jobs: Path, isolation: Isolation | None = None) -> RunContext:
    sandbox = Sandbox() if isolation is None else Sandbox(isolation=isolation)
    return RunContext(sandbox, jobs, slot=0, timeout_s=10)


@pytest.mark.toolchains
def test_go_testmain_removed_mid_build_is_a_harness_error(dataset_dir, jobs, monkeypatch):
    """What was seen: the test main vanished between the sample's compile and the main's."""
    task = load_problems([get_language("go")], str(dataset_dir), False)["Go/0"]
    original = go_runner.GoRunner._build

    def build(self, workdir, ctx):
        (workdir / "testmain.go").unlink()
        return original(self, workdir, ctx)

    ctx = _ctx(jobs)
    try:
        monkeypatch.setattr(go_runner.GoRunner, "_build", build)
        outcome = get_runner("go").execute(assemble(task, task.canonical_solution), ctx)
        assert (outcome.verdict, outcome.phase) == (Verdict.HARNESS_ERROR, "compile"), outcome
        assert "testmain.go missing" in outcome.detail and "during the compile" in outcome.detail
        monkeypatch.undo()
        assert get_runner("go").execute(assemble(task, task.canonical_solution), ctx).verdict is Verdict.PASSED
    finally:
        ctx.close()


@pytest.mark.toolchains
@pytest.mark.parametrize(("removed", "message"), [
    ("the work directory", "the work directory missing"),  # the sandbox cannot even start in it
    ("main.py", "main.py missing from"),  # the interpreter starts, finds no program, fails
])
def test_files_removed_before_the_run_are_a_harness_error(dataset_dir, jobs, monkeypatch, removed, message):
    task = load_problems([get_language("python")], str(dataset_dir), False)["Python/0"]
    ctx = _ctx(jobs)
    original = ctx.sandbox.run

    def run(argv, *, cwd, **kw):
        if not kw.get("cwd_writable", True):  # the test run: its files disappear first
            shutil.rmtree(cwd) if removed == "the work directory" else (cwd / removed).unlink()
        return original(argv, cwd=cwd, **kw)

    try:
        monkeypatch.setattr(ctx.sandbox, "run", run)
        outcome = get_runner("python").execute(assemble(task, task.canonical_solution), ctx)
    finally:
        ctx.close()
    assert (outcome.verdict, outcome.phase) == (Verdict.HARNESS_ERROR, "run"), outcome
    assert message in outcome.detail


SELF_DELETING = "    import os\n    os.remove('main.py')\n    raise SystemExit(1)\n"


@pytest.mark.toolchains
@pytest.mark.parametrize("isolation", [None, Isolation.RLIMITS], ids=["strongest", "rlimits"])
def test_a_program_deleting_its_own_file_keeps_its_failure(dataset_dir, jobs, isolation):
    """Where the program can write its work directory (no namespaces) it may delete its own file:
    that must not turn its failure into a harness error; where it cannot, it simply fails."""
    task = load_problems([get_language("python")], str(dataset_dir), False)["Python/0"]
    ctx = _ctx(jobs, isolation)
    try:
        outcome = get_runner("python").execute(assemble(task, SELF_DELETING, clean=False), ctx)
    finally:
        ctx.close()
    assert (outcome.verdict, outcome.phase) == (Verdict.RUNTIME_ERROR, "run"), outcome
