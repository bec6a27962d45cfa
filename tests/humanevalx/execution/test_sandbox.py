"""The sandbox's own mechanisms, one by one, each against the host's view and with a control:
the allow-list view, the memory cgroup, the exact exit status, nested user namespaces, the uid
lease directory and the work directories' ownership."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import tempfile
import warnings
from pathlib import Path

import pytest

from geex.humanevalx.execution import uids
from geex.humanevalx.execution.cgroups import MemoryControl
from geex.humanevalx.execution.runners import RunContext, hand_over, make_jobs_root, remove_jobs_root, write_file
from geex.humanevalx.execution.sandbox import Isolation, Limits, Sandbox, detect_isolation


def _strong() -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return os.geteuid() == 0 and shutil.which("bwrap") is not None and detect_isolation() is Isolation.BUBBLEWRAP_UID


pytestmark = [pytest.mark.skipif(not _strong(), reason="needs root and bubblewrap (bubblewrap+uid)"),
              pytest.mark.serial]  # programs timed against their limits: alone


@pytest.fixture
def lease():
    lease = uids.UidLease()
    yield lease.uid
    lease.release()


@pytest.fixture
def work():
    path = Path(tempfile.mkdtemp(prefix="geex-sbx-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def _sh(sandbox: Sandbox, script: str, work: Path, uid: int, **limits):
    return sandbox.run(["/bin/sh", "-c", script], cwd=work, uid=uid, cwd_writable=False,
                       limits=Limits(wall_s=20, cpu_s=20, **limits))


def test_allow_list_view(work, lease):
    """Only system directories, the binds and the work directory exist inside: this checkout, the
    dataset beside it, root's home and /var do not; /proc/1/cmdline names no host path."""
    here = Path(__file__).resolve()
    r = _sh(Sandbox(), f"ls / ; test -e {here} && echo LE''AK-CHECKOUT; test -e /var && echo LE''AK-VAR; "
                       f"ls -a /root 2>/dev/null | grep -v '^\\.*$' | grep -v '^.cache$' ; "
                       f"tr '\\0' ' ' < /proc/1/cmdline", work, lease)
    assert r.returncode == 0, r.stderr
    top = set(r.stdout.split("\n", 20)[:12])
    assert "LEAK" not in r.stdout
    cmdline = r.stdout.splitlines()[-1]
    assert str(work) not in cmdline and "--ro-bind" not in cmdline and "--bind" not in cmdline, cmdline
    assert {"usr", "etc", "proc", "dev", "tmp"} <= top
    # control: the uid mode (no namespaces) sees the checkout
    r = _sh(Sandbox(isolation=Isolation.UID), f"test -e {here} && echo SEEN", work, lease)
    assert "SEEN" in r.stdout or "Permission denied" in r.stderr or r.returncode != 0


def test_exit_status_is_not_read_as_a_signal(work, lease):
    sandbox = Sandbox()
    assert sandbox.helper is not None
    for script, expected in (("exit 137", (137, None)), ("exit 152", (152, None)), ("kill -9 $$", (None, 9)),
                             ("kill -XCPU $$", (None, 24))):
        r = _sh(sandbox, script, work, lease)
        assert (r.returncode, r.signal) == expected, script
        assert r.exact_status
        assert not r.cpu_limited  # a SIGKILL at once is not the CPU-time limit's (control of that test)
    # control: without geex-exec, bwrap's 128 + N reading turns exit 137 into SIGKILL
    blind = Sandbox()
    blind.__dict__["helper"] = None
    r = _sh(blind, "exit 137", work, lease)
    assert (r.returncode, r.signal) == (None, 9)


def test_memory_cgroup_bounds_shared_memory(work, lease):
    """1.5 GB in memfd files (each below RLIMIT_FSIZE, none mapped: no address space used) is
    stopped at the run's 512 MB cgroup limit; without the cgroup the same program finishes."""
    script = ("python3 -c 'import os\nfds = [os.memfd_create(str(i)) for i in range(48)]\n"
              "[os.write(fd, bytes(32 << 20)) for fd in fds]\nprint(\"done\")'")
    sandbox = Sandbox()
    assert sandbox.memory_mechanism.startswith("cgroup"), sandbox.memory_mechanism
    r = _sh(sandbox, script, work, lease, memory_mb=512)
    assert r.memory_limited and r.returncode != 0 and "done" not in r.stdout, r
    uncapped = Sandbox()
    uncapped.__dict__["memory"] = MemoryControl(None, 0)
    r = _sh(uncapped, script, work, lease, memory_mb=512)
    assert r.returncode == 0 and "done" in r.stdout and not r.memory_limited, r.stderr
    # the other way into a cgroup: a fresh one a run, joined by geex-exec before it runs the program
    # (cgroup v2's, and v1's where a slot cannot be made), whatever this machine's hierarchy is
    shared = sandbox.memory
    joined = Sandbox()
    joined.__dict__["memory"] = MemoryControl(shared.parent, shared.version)
    joined.memory.use_slots = False
    r = _sh(joined, script, work, lease, memory_mb=512)
    assert r.memory_limited and r.returncode != 0 and "done" not in r.stdout, r


_MEMFD_MB = "python3 -c 'import os\nfds = [os.memfd_create(str(i)) for i in range({n})]\n" \
            "[os.write(fd, bytes(16 << 20)) for fd in fds]\nprint(\"done\")'"


def test_memory_limit_and_oom_are_each_runs_own(work, lease):
    """Runs reuse cgroups (v1 slots): each run gets its own limit, lowered or raised, and its own
    OOM reading; a run beside an OOM-killed one, or after it, is not reported as killed."""
    import threading

    sandbox = Sandbox()
    assert sandbox.memory_mechanism.startswith("cgroup"), sandbox.memory_mechanism
    hog = _MEMFD_MB.format(n=24)  # 384 MB
    assert _sh(sandbox, hog, work, lease, memory_mb=256).memory_limited
    after = _sh(sandbox, hog, work, lease, memory_mb=768)  # raised: fits now
    assert after.returncode == 0 and "done" in after.stdout and not after.memory_limited, after
    again = _sh(sandbox, hog, work, lease, memory_mb=256)  # lowered again
    assert again.memory_limited and "done" not in again.stdout, again
    results = {}
    other = uids.UidLease()
    try:
        threads = [threading.Thread(target=lambda: results.update(hog=_sh(sandbox, hog, work, lease, memory_mb=256))),
                   threading.Thread(target=lambda: results.update(calm=_sh(sandbox, "sleep 1; echo calm", work, other.uid,
                                                                           memory_mb=256)))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        other.release()
    assert results["hog"].memory_limited
    assert results["calm"].returncode == 0 and results["calm"].stdout.strip() == "calm", results["calm"]
    assert not results["calm"].memory_limited

def _proc_self(sandbox: Sandbox, work: Path, uid: int, limits: Limits) -> tuple[dict[str, str], dict[str, tuple[str, str]]]:
    """The program's own /proc/self/status fields and /proc/self/limits rows, as the kernel sees them."""
    r = sandbox.run(["/bin/sh", "-c", "cat /proc/self/status; echo ===; cat /proc/self/limits"],
                    cwd=work, uid=uid, cwd_writable=False, limits=limits)
    assert r.returncode == 0, r.stderr
    status_text, limits_text = r.stdout.split("===\n")
    status = dict(line.split(":", 1) for line in status_text.splitlines() if ":" in line)
    rows = {}
    for line in limits_text.splitlines()[1:]:
        name, soft, hard = line[:26].strip(), *line[26:].split()[:2]
        rows[name] = (soft, hard)
    return {k: v.strip() for k, v in status.items()}, rows


@pytest.mark.parametrize("mode", ["bubblewrap+uid", "uid+rlimits", "bubblewrap+uid, no geex-exec",
                                  "uid+rlimits, no geex-exec"])
def test_program_runs_unprivileged_with_its_limits(mode, work, lease):
    """What the kernel says of the program: the leased uid and gid in all four slots, no
    supplementary groups, no capability in any set (the bounding set included), no_new_privs, and
    every rlimit of ``Limits`` (CPU soft/hard one second apart, no core files)."""
    sandbox = Sandbox(isolation=Isolation.UID if mode.startswith("uid") else Isolation.BUBBLEWRAP_UID)
    if "no geex-exec" in mode:
        sandbox.__dict__["helper"] = None
    limits = Limits(wall_s=20, cpu_s=7, address_space_mb=1536, nproc=77, fsize_mb=33, nofile=99)
    status, rows = _proc_self(sandbox, work, lease, limits)
    assert status["Uid"].split() == [str(lease)] * 4 and status["Gid"].split() == [str(lease)] * 4, status
    assert status["Groups"] == ""
    for caps in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(status[caps], 16) == 0, (caps, status[caps])
    assert status["NoNewPrivs"] == "1"
    mb = 1024 * 1024
    assert rows["Max cpu time"] == ("7", "8")
    assert rows["Max address space"] == (str(1536 * mb),) * 2
    assert rows["Max file size"] == (str(33 * mb),) * 2
    assert rows["Max processes"] == ("77", "77")
    assert rows["Max open files"] == ("99", "99")
    assert rows["Max core file size"] == ("0", "0")


def test_no_nested_user_namespace(work, lease):
    r = _sh(Sandbox(), "unshare -U true && echo NESTED", work, lease)
    assert "NESTED" not in r.stdout and "Operation not permitted" in r.stderr
    r = _sh(Sandbox(isolation=Isolation.UID), "unshare -U true && echo NESTED", work, lease)
    assert "NESTED" in r.stdout, r.stderr  # control: without the seccomp rule the kernel allows it


def test_lease_directory_is_private_and_refuses_links(tmp_path, monkeypatch):
    lease = uids.UidLease()
    try:
        st = os.stat(lease.directory)
        assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o700
    finally:
        lease.release()
    # a planted link or a world-writable directory is refused, not followed
    target = tmp_path / "elsewhere"
    target.mkdir()
    link = tmp_path / "leases"
    link.symlink_to(target)
    monkeypatch.setattr(uids, "LOCK_DIRS", (link,))
    with pytest.raises(uids.LeaseDirError):
        uids.UidLease()
    open_dir = tmp_path / "open"
    open_dir.mkdir(mode=0o777)
    open_dir.chmod(0o777)
    monkeypatch.setattr(uids, "LOCK_DIRS", (open_dir / "leases",))
    with pytest.raises(uids.LeaseDirError):
        uids.UidLease()


def test_work_directories_are_private(lease):
    """The jobs root cannot be listed by others; a work directory and its files belong to the
    sample's uid alone; the harness never writes through a planted link."""
    root = make_jobs_root()
    try:
        assert stat.S_IMODE(root.stat().st_mode) == 0o711
        ctx = RunContext(Sandbox(), root, slot=0)
        work = ctx.new_workdir()
        assert work.stat().st_uid == 0 and stat.S_IMODE(work.stat().st_mode) == 0o700
        write_file(work, "main.py", "print(1)\n")
        hand_over(work, lease)
        for p in (work, work / "main.py"):
            assert p.stat().st_uid == lease
        assert stat.S_IMODE(work.stat().st_mode) == 0o700
        # another user: cannot list the root, cannot enter the work directory
        probe = subprocess.run(
            ["setpriv", "--reuid=4242", "--regid=4242", "--clear-groups", "sh", "-c",
             f"ls {root}; ls {work}; echo x > {work}/main.py"], capture_output=True, text=True)
        assert probe.stderr.count("Permission denied") == 3, probe.stderr
        # a link planted where the harness writes is replaced, its target untouched
        victim = root / "victim"
        victim.write_text("keep")
        (work / "testmain.go").symlink_to(victim)
        write_file(work, "testmain.go", "package main\n")
        assert victim.read_text() == "keep"
        assert not (work / "testmain.go").is_symlink() and (work / "testmain.go").stat().st_uid == lease
    finally:
        remove_jobs_root(root)


def test_private_tmp_is_size_capped(work, lease):
    """``Limits.tmp_mb``: /tmp is a tmpfs of that size. 3 MB into a 2 MB /tmp fails with ENOSPC,
    1.9 MB fits (control); the file size limit (64 MB) is not what stops it."""
    write = "head -c {n} /dev/zero > /tmp/big; echo rc=$?"
    r = _sh(Sandbox(), write.format(n=3 * 1024 * 1024), work, lease, tmp_mb=2)
    assert "rc=0" not in r.stdout and "No space left on device" in r.stderr, (r.stdout, r.stderr)
    r = _sh(Sandbox(), write.format(n=1900 * 1024), work, lease, tmp_mb=2)  # just under the cap fits
    assert "rc=0" in r.stdout, r.stderr


def test_output_bytes_count_both_streams(work, lease):
    r = _sh(Sandbox(), "head -c 1000 /dev/zero; head -c 234 /dev/zero >&2", work, lease)
    assert r.ok and r.output_bytes == 1234 and len(r.stdout) == 1000 and len(r.stderr) == 234
    # 2 MB is far below the 64 MB output cap: not limited, every byte counted
    r = _sh(Sandbox(), "head -c 2000000 /dev/zero", work, lease)
    assert r.ok and not r.output_limited and r.output_bytes == 2_000_000


def test_a_run_takes_its_wall_time_and_leaves_no_descriptor_open(work, lease):
    sandbox = Sandbox()
    _sh(sandbox, "true", work, lease)  # the first run builds what later runs reuse
    fds = len(os.listdir("/proc/self/fd"))
    r = _sh(sandbox, "sleep 1.2", work, lease)
    assert r.ok and 1.2 <= r.wall_s < 10
    for _ in range(3):
        _sh(sandbox, "true", work, lease)
    assert len(os.listdir("/proc/self/fd")) == fds  # pidfds, pipes and output files all closed


def test_cpu_time_limit_stops_a_spinning_program(work, lease):
    """``Limits.cpu_s``: a program that only burns CPU is stopped by the kernel after about that
    much CPU time (SIGXCPU, or SIGKILL at the hard limit for one that ignores it), long before the
    wall-clock limit, and the result says so (the verdict is then a timeout)."""
    sandbox = Sandbox()
    for script in ("while :; do :; done", "trap '' XCPU; while :; do :; done"):
        r = sandbox.run(["/bin/sh", "-c", script], cwd=work, uid=lease, cwd_writable=False,
                        limits=Limits(wall_s=30, cpu_s=1))
        assert not r.timed_out and r.wall_s < 10, r
        assert r.signal == signal.SIGXCPU or r.cpu_limited, r


def test_the_cpu_limit_is_judged_with_every_core_the_program_may_use(work, lease, monkeypatch):
    """``cpu_s`` of CPU time runs out ``cores`` times as fast on every core the program may use (its
    affinity, as ours): the kill at the hard limit is judged with that count (``_cpu_limited``'s
    arithmetic is tested on its own in test_sandbox_parts.py)."""
    from geex.humanevalx.execution import sandbox as sandbox_module

    seen = []
    judge = sandbox_module._cpu_limited
    monkeypatch.setattr(sandbox_module, "_cpu_limited", lambda *args: seen.append(args) or judge(*args))
    _sh(Sandbox(), "true", work, lease)
    assert seen and seen[-1][4] == len(os.sched_getaffinity(0)), seen


def test_an_output_flood_stopped_late_is_not_a_cpu_limit(work, lease):
    """A program stopped for its output (the harness's own SIGKILL) after enough wall time to have
    used its CPU limit on every core: output limited, not CPU limited."""
    r = Sandbox().run(["/bin/sh", "-c", "trap '' XFSZ; sleep 1.2; head -c 100000000 /dev/zero; sleep 30"],
                      cwd=work, uid=lease, cwd_writable=False, limits=Limits(wall_s=20, cpu_s=1))
    assert r.output_limited and r.signal == signal.SIGKILL and r.wall_s >= 1.2, r
    assert not r.cpu_limited and not r.timed_out, r


def test_a_program_is_stopped_at_its_deadline_not_before(work, lease):
    """The wall-clock limit: killed once the deadline has passed, and promptly after it (the
    watcher looks every 50 ms; the bound leaves room for a busy machine)."""
    r = Sandbox().run(["/bin/sh", "-c", "sleep 30"], cwd=work, uid=lease, cwd_writable=False,
                      limits=Limits(wall_s=1.5, cpu_s=20))
    assert r.timed_out and 1.5 <= r.wall_s < 2.2, r


def test_the_default_umask_is_022_for_run_and_popen(work, lease):
    """Files a program creates are not writable by others unless it asks (umask 022 by default)."""
    assert _sh(Sandbox(), "umask", work, lease).stdout.strip() == "0022"
    proc = Sandbox().popen(["/bin/sh", "-c", "umask"], cwd=work, uid=lease, limits=Limits(wall_s=20, cpu_s=20),
                           cwd_writable=False, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out, _ = proc.communicate(timeout=20)
    assert out.decode().strip() == "0022"


def test_a_system_path_among_the_binds_does_not_end_them(work, lease):
    """A read-only bind of what the system view already shows (/usr/share) is skipped, and the binds
    after it (here the working directory) are still made."""
    r = Sandbox().run(["/bin/sh", "-c", "pwd; ls /usr/share >/dev/null && echo seen"], cwd=work, uid=lease,
                      cwd_writable=False, ro_binds=(Path("/usr/share"),), limits=Limits(wall_s=20, cpu_s=20))
    assert r.ok and r.stdout.split() == [str(work), "seen"], r


def test_the_watcher_sleeps_while_the_program_runs(work, lease):
    """Waiting for a program costs the harness no CPU: it blocks on the process (a pidfd) between
    its looks at the output size, instead of polling."""
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF)
    r = _sh(Sandbox(), "sleep 1.5", work, lease)
    after = resource.getrusage(resource.RUSAGE_SELF)
    assert r.ok, r
    assert (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime) < 0.5


def test_the_watcher_kills_a_program_found_past_its_deadline():
    """A look that comes after the deadline (a busy machine overslept the last wait) kills at once
    and reports a timeout; it never waits a negative time."""
    import time

    from geex.humanevalx.execution import sandbox as sandbox_module

    proc = subprocess.Popen(["sleep", "30"], start_new_session=True)  # its own group: the kill's target
    try:
        assert sandbox_module._watch(proc, time.monotonic() - 1.0, lambda: False) == (True, False)
        assert proc.returncode == -signal.SIGKILL
    finally:
        proc.kill()
        proc.wait()


def test_the_working_directory_is_writable_unless_asked_otherwise(work, lease):
    """``run`` and ``popen`` bind the working directory writable by default (a runner compiles there);
    ``cwd_writable=False`` binds it read-only, whatever its permissions."""
    os.chown(work, lease, lease)
    script = "echo x > made && echo wrote"
    r = Sandbox().run(["/bin/sh", "-c", script], cwd=work, uid=lease, limits=Limits(wall_s=20, cpu_s=20))
    assert r.ok and r.stdout.strip() == "wrote", r
    proc = Sandbox().popen(["/bin/sh", "-c", script.replace("made", "made2")], cwd=work, uid=lease,
                           limits=Limits(wall_s=20, cpu_s=20), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.communicate(timeout=20)[0].decode().strip() == "wrote" and proc.returncode == 0
    r = _sh(Sandbox(), script.replace("made", "made3"), work, lease)  # cwd_writable=False
    assert r.returncode != 0 and not (work / "made3").exists(), r

