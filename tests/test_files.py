"""geex.files: whole-file replacement, the append-only log after a crash, identity differences."""

from __future__ import annotations

import json
import os
import threading

import pytest

from geex import files
from geex.files import Appender, atomic_write, differing, read_log


def _leftovers(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_atomic_write_replaces_the_whole_file(tmp_path):
    path = tmp_path / "run.json"
    atomic_write(path, "first\n")
    atomic_write(path, b"\x00second")
    assert path.read_bytes() == b"\x00second"
    assert _leftovers(tmp_path) == ["run.json"]  # no temporary file stays


def test_a_write_that_fails_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "state.pkl"
    path.write_text("old")

    def crash(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "replace", crash)
    with pytest.raises(OSError):
        atomic_write(path, "new contents")
    assert path.read_text() == "old"
    assert _leftovers(tmp_path) == ["state.pkl"]


def test_the_data_is_synced_before_the_rename(tmp_path, monkeypatch):
    order = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(files.os, "fsync", lambda fd: (order.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(files.os, "replace", lambda a, b: (order.append("replace"), real_replace(a, b))[1])
    atomic_write(tmp_path / "f", "x")
    assert order == ["fsync", "replace"]


def _line(i: int) -> bytes:
    return json.dumps({"sample_id": f"A#{i}", "n": i}).encode() + b"\n"


def test_a_missing_log_is_empty(tmp_path):
    log = read_log(tmp_path / "none.jsonl")
    assert (log.values, log.rejected, log.torn) == ([], 0, False)
    assert not (tmp_path / "none.jsonl").exists()


@pytest.mark.parametrize("cut", [1, 5, len(_line(2)) - 1])
def test_a_torn_last_line_is_cut_even_if_it_parses(tmp_path, cut):
    path = tmp_path / "r.jsonl"
    good = _line(0) + _line(1)
    path.write_bytes(good + _line(2)[:-cut])
    log = read_log(path)
    assert [v["n"] for v in log.values] == [0, 1]
    assert log.torn and log.rejected == 1
    assert path.read_bytes() == good


def test_a_whole_parseable_last_line_missing_only_its_newline_is_torn(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_bytes(_line(0) + _line(1)[:-1])  # '{"sample_id": "A#1", "n": 1}' without '\n'
    log = read_log(path)
    assert [v["n"] for v in log.values] == [0] and log.torn
    assert path.read_bytes() == _line(0)


def _sample_record(value: object) -> dict:
    if not (isinstance(value, dict) and "sample_id" in value):
        raise ValueError("not a sample record")
    return value


def test_rejected_lines_between_good_ones_stay_and_after_the_last_are_cut(tmp_path):
    path = tmp_path / "r.jsonl"
    middle = _line(0) + b"not json\n" + b"[1, 2]\n" + _line(1)
    path.write_bytes(middle + b"{}\n" + b"garbage\n")
    log = read_log(path, parse=_sample_record)
    assert [v["n"] for v in log.values] == [0, 1]
    assert log.rejected == 4 and not log.torn
    assert path.read_bytes() == middle


def test_without_repair_the_file_is_left_alone(tmp_path):
    path = tmp_path / "someone-elses.txt"
    data = b"a line\n" + _line(0) + b"half a li"
    path.write_bytes(data)
    log = read_log(path, repair=False)
    assert [v["n"] for v in log.values] == [0] and log.rejected == 2 and log.torn
    assert path.read_bytes() == data


def test_appended_lines_are_on_disk_when_write_returns(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(files.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    path = tmp_path / "log.jsonl"
    path.write_bytes(_line(0))
    log = Appender(path)
    log.write([{"sample_id": "A#1", "n": 1}, {"sample_id": "A#2", "n": 2}])
    assert len(synced) == 1  # one write, one sync, before returning
    assert [v["n"] for v in read_log(path, repair=False).values] == [0, 1, 2]  # readable before close
    log.write([{"text": "é ∑ 漢"}])
    log.close()
    assert path.read_text(encoding="utf-8").splitlines()[-1] == '{"text": "é ∑ 漢"}'  # not \u-escaped


def test_writes_from_many_threads_never_interleave(tmp_path):
    path = tmp_path / "log.jsonl"
    big = "x" * 20_000  # longer than a buffer: an unlocked write could be split by another thread's
    with Appender(path) as log:
        threads = [threading.Thread(target=lambda t=t: [log.write([{"t": t, "i": i, "pad": big}]) for i in range(25)])
                   for t in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    got = read_log(path, repair=False)
    assert got.rejected == 0 and len(got.values) == 200
    assert sorted((v["t"], v["i"]) for v in got.values) == [(t, i) for t in range(8) for i in range(25)]


def test_differing_names_changed_added_and_removed_keys():
    recorded = {"model": "a", "seed": 1, "n": 5, "started": "09:00", "gone": True}
    current = {"model": "a", "seed": 2, "n": 5, "started": "10:00", "new": 0}
    assert differing(recorded, current, ignore=("started",)) == ["gone", "new", "seed"]
    assert differing(recorded, recorded) == []
    assert differing({"k": None}, {}) == []  # a missing key reads as None: only real values differ


def test_sha256_of_reads_a_large_file_in_blocks(tmp_path):
    import hashlib

    from geex.files import sha256_of

    data = bytes(range(256)) * 9000 + b"tail"  # over two 1 MiB blocks, not a multiple of one
    (tmp_path / "f").write_bytes(data)
    assert sha256_of(tmp_path / "f") == hashlib.sha256(data).hexdigest()
