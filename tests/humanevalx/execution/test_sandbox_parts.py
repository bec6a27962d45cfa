"""The sandbox's small pure pieces, each against an outside answer: the documented limits, what a
run's result calls "ok", how output is cut, how an exit status is read, which directories a bind
needs. They run on any machine (the mechanisms themselves: ``test_sandbox.py``, ``test_hostile.py``)."""

from __future__ import annotations

import os
import re
import signal
import tempfile
from dataclasses import fields
from pathlib import Path

import pytest

from geex.humanevalx.execution import sandbox
from geex.humanevalx.execution.sandbox import ExecResult, Limits

README = Path(__file__).resolve().parents[3] / "README.md"


def test_the_default_limits_are_the_documented_ones():
    """The README states each default limit; a changed default must change what users read."""
    text = " ".join(README.read_text().split())
    said = re.search(r"Limits of a run \(`sandbox.Limits`.*?\): (.*?)\.", text).group(1)
    number = lambda pattern: float(re.search(pattern, said).group(1))  # noqa: E731
    documented = {
        "wall_s": number(r"wall clock (\d+) s"), "cpu_s": number(r"CPU time (\d+) s"),
        "memory_mb": number(r"memory (\d+) MB"), "address_space_mb": number(r"(\d+) MB of address space"),
        "nproc": number(r"(\d+) processes"), "nofile": number(r"(\d+) open files"),
        "fsize_mb": number(r"(\d+) MB a written file"), "tmp_mb": number(r"(\d+) MB private `/tmp`"),
    }
    assert {f.name for f in fields(Limits)} == set(documented)
    assert {name: float(getattr(Limits(), name)) for name in documented} == documented


@pytest.mark.parametrize("returncode, timed_out, output_limited, ok", [
    (0, False, False, True), (1, False, False, False), (None, False, False, False),
    (0, True, False, False), (0, False, True, False), (0, True, True, False)])
def test_ok_is_a_clean_exit_within_every_limit(returncode, timed_out, output_limited, ok):
    r = ExecResult(returncode, None, timed_out, 0.1, "", "", output_limited=output_limited)
    assert r.ok is ok


def test_a_result_built_elsewhere_claims_no_limit_by_default():
    """Runners build results of their own (the javac server's compiles): unless they say so, nothing
    was limited, killed for memory or CPU, or read from geex-exec."""
    r = ExecResult(1, None, False, 0.2, "", "error: x")
    assert (r.output_bytes, r.output_limited, r.harness_error, r.cpu_limited, r.memory_limited, r.exact_status) == \
        (0, False, None, False, False, False)


def _capped(data: bytes, **kw) -> tuple[str, int]:
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.flush()
        f.seek(7)  # the reader must not trust the file position
        return sandbox._read_capped(f, **kw)


def test_long_output_keeps_its_head_and_tail_and_says_how_much_was_cut():
    data = bytes(range(48, 58)) * 3000  # 30,000 bytes of digits, each position knowable
    text, size = _capped(data)
    assert size == 30_000
    head, rest = text[:16384], text[16384:]
    assert head == data[:16384].decode()
    assert rest == f"\n[... {30_000 - 16384 - 4096} bytes cut ...]\n" + data[-4096:].decode()
    small, small_size = _capped(b"x" * (16384 + 4096))  # exactly head + tail: nothing cut
    assert small == "x" * (16384 + 4096) and small_size == 16384 + 4096
    assert _capped(b"abcdefgh", head=3, tail=2) == ("abc\n[... 3 bytes cut ...]\ngh", 8)
    assert _capped(b"abcd", head=3, tail=2) == ("abcd", 4)  # within head + tail: nothing cut


def test_invalid_utf8_output_is_read_leniently():
    assert _capped(b"ok \xff\xfe end") == ("ok \ufffd\ufffd end", 9)


@pytest.mark.parametrize("sig, stopped, wall, cpu_s, cores, limited", [
    (signal.SIGKILL, False, 2.0, 1, 1, True), (signal.SIGKILL, False, 0.5, 1, 2, True),  # 1 s of CPU on 2 cores
    (signal.SIGKILL, False, 0.49, 1, 2, False), (signal.SIGKILL, False, 0.9, 1, 1, False),  # too soon: a kill
    (signal.SIGKILL, True, 5.0, 1, 1, False),  # the harness's own kill (timeout, output cap, OOM)
    (signal.SIGXCPU, False, 5.0, 1, 1, False), (None, False, 5.0, 1, 1, False),  # another signal, an exit
    (signal.SIGKILL, False, 2.5, 10, 4, True), (signal.SIGKILL, False, 2.4, 10, 4, False)])
def test_the_cpu_time_limit_is_told_from_a_kill(sig, stopped, wall, cpu_s, cores, limited):
    assert sandbox._cpu_limited(sig, stopped, wall, cpu_s, cores) is limited


@pytest.mark.parametrize("returncode, via_bwrap, decoded", [
    (0, True, (0, None)), (3, True, (3, None)), (-9, False, (None, 9)), (-9, True, (None, 9)), (-1, True, (None, 1)),
    (128 + signal.SIGKILL, True, (None, 9)), (128 + signal.SIGXCPU, True, (None, 24)),
    (128 + signal.SIGKILL, False, (137, None)),  # a program's own exit(137) without bwrap
    (128, True, (128, None)), (129, True, (None, 1)), (128 + 64, True, (None, 64)), (128 + 65, True, (193, None)),
    (255, True, (255, None))])
def test_bwraps_128_plus_n_reads_as_signal_n(returncode, via_bwrap, decoded):
    """bwrap reports a child killed by signal N (1..64, the real-time ones included) as 128 + N."""
    assert sandbox._decode_status(returncode, via_bwrap) == decoded


@pytest.mark.parametrize("report, status", [
    (b"exit 0", (0, None)), (b"exit 3\n", (3, None)), (b"signal 9", (None, 9)),
    (b"", None), (b"exit", None), (b"exit x", None), (b"quit 3", None), (b"exit 3 4", None), (b"abort 3", None)])
def test_geex_exec_status_reports(report, status):
    r, w = os.pipe()
    try:
        os.write(w, report)
        assert sandbox._read_status(r) == status
    finally:
        os.close(r)
        os.close(w)


def test_a_status_pipe_with_nothing_written_yet_does_not_block():
    r, w = os.pipe()
    try:
        assert sandbox._read_status(r) is None  # geex-exec was killed before reporting
    finally:
        os.close(r)
        os.close(w)


def test_bind_targets_get_their_missing_parents_once(monkeypatch):
    monkeypatch.setattr(sandbox, "_in_system", lambda p: str(p) in ("/usr", "/usr/lib"))
    made: set[Path] = set()
    first = sandbox._mount_point_dirs(Path("/srv/geex/cache/go/pkg"), made)
    assert first == ["--perms", "0755", "--dir", "/srv", "--perms", "0755", "--dir", "/srv/geex",
                     "--perms", "0755", "--dir", "/srv/geex/cache", "--perms", "0755", "--dir", "/srv/geex/cache/go"]
    assert sandbox._mount_point_dirs(Path("/srv/geex/cache/rust/x"), made) == [
        "--perms", "0755", "--dir", "/srv/geex/cache/rust"]
    assert sandbox._mount_point_dirs(Path("/usr/lib/jvm/java/bin"), made) == [
        "--perms", "0755", "--dir", "/usr/lib/jvm", "--perms", "0755", "--dir", "/usr/lib/jvm/java"]


def test_bubblewrap_arguments_beyond_the_pipe_buffer_are_refused():
    fd = sandbox._pipe_holding(b"a" * 65536)
    try:
        assert len(os.read(fd, 70000)) == 65536
    finally:
        os.close(fd)
    with pytest.raises(ValueError, match="too long"):
        sandbox._pipe_holding(b"a" * 65537)


def _bwrap_works() -> bool:
    """The test's own probe: bubblewrap can make the namespaces the sandbox uses."""
    import shutil
    import subprocess

    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return False
    done = subprocess.run([bwrap, "--ro-bind", "/", "/", "--unshare-all", "--dev", "/dev", "--proc", "/proc", "true"],
                          capture_output=True, timeout=30)
    return done.returncode == 0


def test_the_strongest_isolation_the_machine_offers_is_chosen(monkeypatch):
    """From the machine's facts, found independently here: root, setpriv, a working bubblewrap."""
    import shutil
    import warnings

    from geex.humanevalx.execution.sandbox import Isolation

    root, setpriv, bwrap = os.geteuid() == 0, shutil.which("setpriv") is not None, _bwrap_works()
    expected = (Isolation.BUBBLEWRAP_UID if bwrap and root and setpriv else Isolation.BUBBLEWRAP if bwrap
                else Isolation.UID if root and setpriv else Isolation.RLIMITS)
    monkeypatch.delenv(sandbox.ENV_SANDBOX, raising=False)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert sandbox.detect_isolation.__wrapped__() is expected
    assert any("SANDBOX DEGRADED" in str(w.message) for w in seen) == (expected is not Isolation.BUBBLEWRAP_UID)
    # $GEEX_SANDBOX forces a weaker mode, never a stronger one than the machine has
    order = list(Isolation)
    # the spellings sandbox.ENV_SANDBOX documents, and the mode each one names
    spelled = {"rlimits": Isolation.RLIMITS, "uid": Isolation.UID, "uid+rlimits": Isolation.UID,
               "bubblewrap": Isolation.BUBBLEWRAP, "bubblewrap+uid": Isolation.BUBBLEWRAP_UID, " UID ": Isolation.UID}
    for forced, wanted in spelled.items():
        monkeypatch.setenv(sandbox.ENV_SANDBOX, forced)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = sandbox.detect_isolation.__wrapped__()
        assert got is max(wanted, expected, key=order.index), forced


@pytest.mark.parametrize("root, setpriv, expected", [(True, True, "uid+rlimits"), (True, False, "rlimits"),
                                                     (False, True, "rlimits"), (False, False, "rlimits")])
def test_without_bubblewrap_the_uid_drop_needs_root_and_setpriv(root, setpriv, expected, monkeypatch):
    import warnings

    monkeypatch.delenv(sandbox.ENV_SANDBOX, raising=False)
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: f"/usr/bin/{name}" if name == "setpriv" and setpriv
                        else None)
    monkeypatch.setattr(sandbox.os, "geteuid", lambda: 0 if root else 1000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert sandbox.detect_isolation.__wrapped__().value == expected


def test_a_forced_mode_stronger_than_the_machine_offers_is_not_taken(monkeypatch):
    """On a machine without bubblewrap (root and setpriv: uid+rlimits at best), $GEEX_SANDBOX naming
    a bubblewrap mode leaves uid+rlimits; naming a weaker one takes it."""
    import warnings

    from geex.humanevalx.execution.sandbox import Isolation

    monkeypatch.setattr(sandbox.shutil, "which", lambda name: f"/usr/bin/{name}" if name == "setpriv" else None)
    monkeypatch.setattr(sandbox.os, "geteuid", lambda: 0)
    for forced, wanted in (("bubblewrap+uid", Isolation.UID), ("bubblewrap", Isolation.UID),
                           ("uid", Isolation.UID), ("rlimits", Isolation.RLIMITS)):
        monkeypatch.setenv(sandbox.ENV_SANDBOX, forced)
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            assert sandbox.detect_isolation.__wrapped__() is wanted, forced
        # the degraded-mode warning names what is missing: bubblewrap, and how to install it
        assert any("missing: bubblewrap (apt-get install bubblewrap). " in str(w.message) for w in seen), forced


def test_a_bubblewrap_that_fails_or_is_missing_is_not_used(tmp_path, capfd):
    dies = tmp_path / "bwrap"
    dies.write_text("#!/bin/sh\nkill -9 $$\n")  # killed by a signal: a negative return code
    dies.chmod(0o755)
    assert sandbox._probe_bwrap(str(dies)) is False
    complains = tmp_path / "complains"
    complains.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    complains.chmod(0o755)
    assert sandbox._probe_bwrap(str(complains)) is False
    assert capfd.readouterr() == ("", "")  # the probe's failure is the degraded-mode warning's, not a stray line
    assert sandbox._probe_bwrap(str(tmp_path / "missing")) is False
    ok = tmp_path / "ok"
    ok.write_text("#!/bin/sh\nexit 0\n")
    ok.chmod(0o755)
    assert sandbox._probe_bwrap(str(ok)) is True


def test_pids_of_a_uid_are_its_processes():
    mine = sandbox.pids_of_uid(os.getuid())
    assert os.getpid() in mine
    assert sandbox.pids_of_uid(2_000_009_999) == []  # a uid nothing runs under


@pytest.mark.skipif(os.geteuid() != 0 or not __import__("shutil").which("setpriv"), reason="needs root and setpriv")
def test_pids_of_a_sandbox_uid_are_found():
    """The uids the sandbox leases are large numbers (not Python's cached small ints): a process
    started under one is found, and nothing else."""
    import subprocess

    from geex.humanevalx.execution.uids import UidLease

    lease = UidLease()
    proc = subprocess.Popen(["setpriv", f"--reuid={lease.uid}", f"--regid={lease.uid}", "--clear-groups",
                             "sleep", "30"])
    try:
        for _ in range(200):  # setpriv execs sleep under the uid at once; wait for the switch
            if proc.pid in sandbox.pids_of_uid(lease.uid):
                break
            __import__("time").sleep(0.01)
        assert sandbox.pids_of_uid(lease.uid) == [proc.pid]
        assert proc.pid not in sandbox.pids_of_uid(lease.uid - 1)  # a neighbour's sweep does not reach it
    finally:
        proc.kill()
        proc.wait()
        lease.release()


def test_a_geex_exec_that_cannot_be_built_leaves_the_sandbox_without_it(monkeypatch):
    """No C compiler (an OSError from the build): the sandbox runs without geex-exec and says what
    that costs, instead of failing."""
    import warnings

    def no_compiler():
        raise FileNotFoundError(2, "No such file or directory", "cc")

    monkeypatch.setattr(sandbox, "geex_exec", no_compiler)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert sandbox.Sandbox().helper is None
    assert any("geex-exec could not be built" in str(w.message) for w in seen)


def test_killing_a_uid_without_setpriv_falls_back_quietly(monkeypatch):
    """``kill -1`` as the uid needs setpriv; without it (not on PATH) the sweep goes on without it."""
    monkeypatch.setenv("PATH", "/nonexistent")
    assert sandbox._kill_all_as(2_000_009_999) is None


def test_a_process_that_ends_during_the_scan_is_skipped(monkeypatch):
    """/proc lists a pid whose status is gone by the time it is read (it exited): not an error."""
    real = os.scandir

    class Gone:
        name = "4194304"  # above the largest pid Linux hands out: no /proc/4194304/status

    monkeypatch.setattr(sandbox.os, "scandir", lambda path: [Gone(), *real(path)])  # first: the scan goes on
    assert os.getpid() in sandbox.pids_of_uid(os.getuid())


def test_the_system_directories_and_what_is_below_them():
    assert sandbox._in_system(Path("/usr")) and sandbox._in_system(Path("/usr/lib/jvm/java-17"))
    assert sandbox._in_system(Path("/etc/ssl"))
    assert not sandbox._in_system(Path("/usrlocal")) and not sandbox._in_system(Path("/srv/usr"))
    assert not sandbox._in_system(Path("/")) and not sandbox._in_system(Path("/root"))


def test_kill_uid_kills_at_once_then_each_survivor_and_warns_when_they_outlive_the_wait(monkeypatch):
    """The sweep's steps with the processes stood in for: one kill(-1) as the uid first, then SIGKILL
    to each pid still found, until none is left, or a warning after ``wait_s``."""
    import time
    import warnings

    calls: list = []
    alive = {"rounds": 3}

    def pids(uid):
        alive["rounds"] -= 1
        return [101, 102] if alive["rounds"] >= 0 else []

    monkeypatch.setattr(sandbox, "pids_of_uid", pids)
    monkeypatch.setattr(sandbox, "_kill_all_as", lambda uid: calls.append(("all", uid)))
    monkeypatch.setattr(sandbox.os, "kill", lambda pid, sig: calls.append((pid, sig)))
    slept: list[float] = []
    monkeypatch.setattr(sandbox.time, "sleep", slept.append)
    assert sandbox.kill_uid(7, wait_s=5) == 2
    assert calls == [("all", 7)] + [(101, signal.SIGKILL), (102, signal.SIGKILL)] * 3
    assert slept == [0.002, 0.004, 0.008]  # the wait doubles from 2 ms between looks
    monkeypatch.undo()
    monkeypatch.setattr(sandbox, "_kill_all_as", lambda uid: calls.append(("all", uid)))
    monkeypatch.setattr(sandbox.os, "kill", lambda pid, sig: calls.append((pid, sig)))
    # processes that never die: a warning once the wait is over, not before
    calls.clear()
    monkeypatch.setattr(sandbox, "pids_of_uid", lambda uid: [103])
    real_sleep, slept = time.sleep, []
    monkeypatch.setattr(sandbox.time, "sleep", lambda s: (slept.append(s), real_sleep(s)))
    started = time.monotonic()
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert sandbox.kill_uid(8, wait_s=0.3) == 1
    assert slept[:7] == [0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.1] and max(slept) == 0.1  # capped
    assert 0.3 <= time.monotonic() - started < 1.5  # polls back off to 0.1 s, no more
    assert [str(w.message) for w in seen] == ["1 process(es) of sandbox uid 8 survived SIGKILL for 0.3 s"]
    assert calls[0] == ("all", 8) and calls.count(("all", 8)) == 1 and (103, signal.SIGKILL) in calls
