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


def test_invalid_utf8_output_is_read_leniently():
    assert _capped(b"ok \xff\xfe end") == ("ok \ufffd\ufffd end", 9)


@pytest.mark.parametrize("returncode, via_bwrap, decoded", [
    (0, True, (0, None)), (3, True, (3, None)), (-9, False, (None, 9)), (-9, True, (None, 9)),
    (128 + signal.SIGKILL, True, (None, 9)), (128 + signal.SIGXCPU, True, (None, 24)),
    (128 + signal.SIGKILL, False, (137, None)),  # a program's own exit(137) without bwrap
    (128, True, (128, None)), (128 + 64, True, (None, 64)), (128 + 65, True, (193, None)), (255, True, (255, None))])
def test_bwraps_128_plus_n_reads_as_signal_n(returncode, via_bwrap, decoded):
    """bwrap reports a child killed by signal N (1..64, the real-time ones included) as 128 + N."""
    assert sandbox._decode_status(returncode, via_bwrap) == decoded


@pytest.mark.parametrize("report, status", [
    (b"exit 0", (0, None)), (b"exit 3\n", (3, None)), (b"signal 9", (None, 9)),
    (b"", None), (b"exit", None), (b"exit x", None), (b"quit 3", None), (b"exit 3 4", None)])
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
