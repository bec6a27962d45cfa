"""OUT belongs to one evaluation: another samples file (or dataset variant, language selection,
cleanup) is refused with a one-line error, the same one resumes; and two ``evaluate`` processes
never write one OUT at once (a flock the kernel drops on exit, ``kill -9`` included). Real
``geex humanevalx evaluate`` processes throughout."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

import geex
from geex.humanevalx.dataset import load_language
from geex.humanevalx.outdir import RUN_FILE
from geex.languages import get_language

SRC = str(Path(geex.__file__).resolve().parents[1])


@pytest.fixture
def env(tmp_path) -> dict:
    return {**os.environ, "GEEX_CACHE": str(tmp_path / "cache"), "PYTHONPATH": SRC}


def _problems(n: int) -> list:
    return load_language(get_language("python"))[:n]


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _argv(samples: Path | str, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "geex", "humanevalx", "evaluate", str(samples), "--out", str(out),
            "--workers", "1", "--quiet", "--timeout", "10", *extra]


def _run(argv: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)


def _sleepy(n: int, seconds: float = 0.1) -> list[dict]:
    return [{"task_id": p.task_id, "completion": f"    import time\n    time.sleep({seconds})\n" + p.canonical_solution}
            for p in _problems(n)]


def test_another_samples_file_is_refused_and_the_same_one_resumes(tmp_path, env):
    rows = [{"task_id": p.task_id, "completion": p.canonical_solution} for p in _problems(2)]
    first = _write(tmp_path / "a.jsonl", rows)
    out = tmp_path / "out"
    r = _run(_argv(first, out), env)
    assert r.returncode == 0, r.stderr
    log = (out / "results.jsonl").read_bytes()
    recorded = json.loads((out / RUN_FILE).read_text())
    assert recorded["samples_sha256"] and recorded["languages"] is None and recorded["cleanup"] is True

    other = _write(tmp_path / "b.jsonl", rows[:1])  # a different file (a subset)
    r = _run(_argv(other, out), env)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("geex: error: ") and "Traceback" not in r.stderr
    assert "samples_sha256" in lines[0] and "another --out" in lines[0] and str(out) in lines[0]
    assert (out / "results.jsonl").read_bytes() == log  # nothing written

    edited = _write(tmp_path / "a.jsonl", [rows[0], {**rows[1], "completion": "    return None\n"}])
    assert _run(_argv(edited, out), env).returncode == 2  # the same path, other contents

    for extra in (["--original"], ["--languages", "python"], ["--no-cleanup"]):
        _write(tmp_path / "a.jsonl", rows)
        r = _run(_argv(first, out, *extra), env)
        assert r.returncode == 2 and "another --out" in r.stderr, (extra, r.stderr)

    copy = _write(tmp_path / "copy.jsonl", rows)  # the same contents elsewhere: the same evaluation
    r = _run(_argv(copy, out), env)
    assert r.returncode == 0, r.stderr
    assert "resuming: 2 of 2" in r.stderr
    assert (out / "results.jsonl").read_bytes() == log


def test_canonical_and_a_samples_file_do_not_share_an_out(tmp_path, env):
    out = tmp_path / "out"
    # both cores for the 164 references (the last --workers wins); OUT's identity does not include it
    assert _run(_argv("canonical", out, "--languages", "python", "--workers", "2"), env).returncode == 0
    samples = _write(tmp_path / "s.jsonl", [{"task_id": "Python/0", "completion": "    return False\n"}])
    r = _run(_argv(samples, out, "--languages", "python"), env)
    assert r.returncode == 2 and "another --out" in r.stderr


def test_a_directory_from_before_run_json_is_adopted(tmp_path, env):
    rows = [{"task_id": p.task_id, "completion": p.canonical_solution} for p in _problems(1)]
    samples = _write(tmp_path / "s.jsonl", rows)
    out = tmp_path / "out"
    assert _run(_argv(samples, out), env).returncode == 0
    (out / RUN_FILE).unlink()
    r = _run(_argv(samples, out), env)
    assert r.returncode == 0 and "resuming: 1 of 1" in r.stderr
    assert (out / RUN_FILE).is_file()


def test_unreadable_run_json_is_a_user_error(tmp_path, env):
    samples = _write(tmp_path / "s.jsonl", [{"task_id": "Python/0", "completion": "    return False\n"}])
    out = tmp_path / "out"
    out.mkdir()
    (out / RUN_FILE).write_text("{not json")
    r = _run(_argv(samples, out), env)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and RUN_FILE in r.stderr


def _start(argv: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _wait_for_lines(path: Path, n: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= n:
            return
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.02)
    pytest.fail(f"{n} results did not appear within {timeout} s")


def test_a_second_evaluation_of_the_same_out_is_refused_while_the_first_runs(tmp_path, env):
    samples = _write(tmp_path / "s.jsonl", _sleepy(12))
    out = tmp_path / "out"
    first = _start(_argv(samples, out), env)
    try:
        _wait_for_lines(out / "results.jsonl", 1, first)
        second = _run(_argv(samples, out), env)
        assert first.poll() is None, "the first evaluation ended before the second was tried"
        assert second.returncode == 2
        assert second.stderr.strip().startswith("geex: error: ") and "in use by another geex evaluation" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
        assert first.wait(timeout=300) == 0, first.stderr.read()
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
            first.wait()
        first.stderr.close()
    recs = [json.loads(l) for l in (out / "results.jsonl").read_text().splitlines()]
    assert Counter(r["sample_id"] for r in recs) == Counter({f"Python/{i}#0": 1 for i in range(12)})


def test_the_lock_goes_with_a_killed_evaluation(tmp_path, env):
    samples = _write(tmp_path / "s.jsonl", _sleepy(12))
    out = tmp_path / "out"
    first = _start(_argv(samples, out), env)
    try:
        _wait_for_lines(out / "results.jsonl", 2, first)
        os.killpg(first.pid, signal.SIGKILL)
    finally:
        first.wait()
        first.stderr.close()
    done = (out / "results.jsonl").read_text().count("\n")
    assert 2 <= done < 12
    r = _run(_argv(samples, out), env)
    assert r.returncode == 0, r.stderr
    assert f"resuming: {done} of 12" in r.stderr
    recs = [json.loads(l) for l in (out / "results.jsonl").read_text().splitlines()]
    assert len({r["sample_id"] for r in recs}) == 12 and all(r["passed"] for r in recs)
