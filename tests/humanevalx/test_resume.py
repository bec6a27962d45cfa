"""Resume, the results log and the machine-wide verdict cache, end to end on small real evaluations.

Python and JavaScript only (fast to start). ``GEEX_CACHE`` points at a temporary directory in every
test, and ``get_runner``'s process-wide runner objects are dropped around each test so that none
keeps state from another cache root.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from fractions import Fraction
from pathlib import Path

import pytest

from geex.humanevalx.dataset import load_language
from geex.humanevalx.evaluate import EvalConfig, evaluate
from geex.humanevalx.execution.sandbox import Isolation
from geex.humanevalx.execution.verdict import Verdict
from geex.humanevalx.result import Result
from geex.humanevalx.store import ResultsLog, VerdictCache
from geex.languages import get_language

TIMEOUT_S = 2.0
pytestmark = pytest.mark.serial  # programs that pass and time out within 2 s: alone
INFINITE_LOOP = "    while True:\n        pass\n"


def canonical(task_id: str) -> str:
    lang = get_language(task_id.split("/")[0])
    return next(p for p in load_language(lang) if p.task_id == task_id).canonical_solution


def write_samples(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def mixed_rows(with_timeout: bool = True) -> list[dict]:
    """3 Python problems x 2 samples, 3 JS problems x 1 sample; verdicts known in advance."""
    rows = [
        {"task_id": "Python/0", "generation": canonical("Python/0")},  # passed
        {"task_id": "Python/0", "generation": "    return False\n"},  # wrong answer
        {"task_id": "Python/2", "generation": canonical("Python/2")},  # passed
        {"task_id": "Python/2", "generation": canonical("Python/2")},  # passed (same program: run once)
        {"task_id": "Python/4", "generation": "    return 0.0\n"},  # wrong answer
        {"task_id": "Python/4", "generation": INFINITE_LOOP if with_timeout else "    return -1.0\n"},
        {"task_id": "JavaScript/0", "generation": canonical("JavaScript/0")},  # passed
        {"task_id": "JavaScript/2", "generation": "  return 0;\n}\n"},  # wrong answer
        {"task_id": "JavaScript/4", "generation": canonical("JavaScript/4")},  # passed
    ]
    return rows


def run(samples: Path, out: Path, **kw) -> dict:
    cfg = EvalConfig(samples=str(samples), out_dir=out, workers=2, ks=(1, 2, 10), timeout_s=TIMEOUT_S,
                     progress=False, **kw)
    return evaluate(cfg)


def results(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]


# ------------------------------------------------------------------ report, resume, cache
def test_report_resume_and_cache(tmp_path, cache_dir, executions) -> None:
    samples = write_samples(tmp_path / "samples.jsonl", mixed_rows())
    out1 = tmp_path / "out1"
    report = run(samples, out1)

    # first run: every distinct program executed once, except Python/2's, whose two samples share a
    # program: it runs twice, to see that it gives the same verdict each time (flaky.py)
    assert len(executions) == 9 and len(set(executions)) == 8
    recs = results(out1)
    assert len(recs) == 9
    assert Counter(r["sample_id"] for r in recs) == Counter(
        ["Python/0#0", "Python/0#1", "Python/2#0", "Python/2#1", "Python/4#0", "Python/4#1",
         "JavaScript/0#0", "JavaScript/2#0", "JavaScript/4#0"])
    by_id = {r["sample_id"]: r for r in recs}
    expected = {
        "Python/0#0": "passed", "Python/0#1": "wrong_answer", "Python/2#0": "passed", "Python/2#1": "passed",
        "Python/4#0": "wrong_answer", "Python/4#1": "timeout", "JavaScript/0#0": "passed",
        "JavaScript/2#0": "wrong_answer", "JavaScript/4#0": "passed",
    }
    assert {k: r["verdict"] for k, r in by_id.items()} == expected
    assert not any(r["cached"] or r["flaky"] for r in recs)
    assert all(r["passed"] == (r["verdict"] == "passed") for r in recs)

    # report.json
    on_disk = json.loads((out1 / "report.json").read_text())
    assert on_disk == json.loads(json.dumps(report))
    py, js = on_disk["groups"]["python"], on_disk["groups"]["js"]
    assert (py["n_problems"], py["n_samples"], js["n_problems"], js["n_samples"]) == (3, 6, 3, 3)
    # python: (n, c) = (2, 1), (2, 2), (2, 0); js: (1, 1), (1, 0), (1, 1)
    assert py["pass@k"] == pytest.approx({"pass@1": float(Fraction(1, 2)), "pass@2": float(Fraction(2, 3))})
    assert js["pass@k"] == pytest.approx({"pass@1": float(Fraction(2, 3))})  # k <= n only
    assert on_disk["overall"]["pass@k"] == pytest.approx({"pass@1": (0.5 + 1 + 0 + 1 + 0 + 1) / 6})
    assert on_disk["overall"]["n_samples"] == 9 and on_disk["overall"]["n_problems"] == 6
    assert py["verdicts"] == {"passed": 3, "wrong_answer": 2, "compile_error": 0, "runtime_error": 0,
                              "timeout": 1, "resource_limit": 0, "harness_error": 0}
    assert js["verdicts"]["passed"] == 2 and js["verdicts"]["wrong_answer"] == 1
    assert sum(js["verdicts"].values()) == 3
    assert on_disk["isolation"] in {i.value for i in Isolation}
    assert set(on_disk["toolchains"]) == {"python", "js"}
    assert on_disk["toolchains"]["python"].startswith("Python 3") and "node" in on_disk["toolchains"]["js"]
    assert on_disk["harness_errors"] == 0
    md = (out1 / "report.md").read_text()
    assert "| python | 3 | 6 | 50.00 | 66.67 | – |" in md
    assert "| js | 3 | 3 | 66.67 | – | – |" in md

    # second run into the same directory: nothing is executed, nothing is appended
    before = (out1 / "results.jsonl").read_bytes()
    executions.clear()
    again = run(samples, out1)
    assert executions == []
    assert (out1 / "results.jsonl").read_bytes() == before
    assert again["groups"] == report["groups"] and again["overall"] == report["overall"]

    # a new directory: Python/2's verdict (two agreeing runs) comes from the machine-wide cache;
    # the verdicts seen by one run so far are run once more; the timeout (never cached) runs
    out2 = tmp_path / "out2"
    third = run(samples, out2)
    recs2 = {r["sample_id"]: r for r in results(out2)}
    assert {k: r["verdict"] for k, r in recs2.items()} == expected
    assert {k for k, r in recs2.items() if r["cached"]} == {"Python/2#0", "Python/2#1"}
    assert sorted(executions) == sorted({r["program_sha256"] for k, r in by_id.items() if not k.startswith("Python/2")})
    assert third["groups"] == report["groups"]
    assert (cache_dir / "humanevalx" / "verdicts.sqlite").is_file()

    # and a third directory: everything confirmed comes from the cache, except the timeout
    executions.clear()
    fourth = run(samples, tmp_path / "out3")
    recs3 = {r["sample_id"]: r for r in results(tmp_path / "out3")}
    assert {k for k, r in recs3.items() if not r["cached"]} == {"Python/4#1"}
    assert executions == [by_id["Python/4#1"]["program_sha256"]]
    assert fourth["groups"] == report["groups"]

    # --no-cache: executed again (the duplicate twice), and the cache is neither read nor written
    executions.clear()
    run(samples, tmp_path / "out4", use_cache=False)
    assert len(executions) == 9
    assert not any(r["cached"] for r in results(tmp_path / "out4"))


def test_torn_last_line_is_dropped_and_rerun(tmp_path, cache_dir, executions) -> None:
    samples = write_samples(tmp_path / "samples.jsonl", mixed_rows(with_timeout=False))
    out = tmp_path / "out"
    run(samples, out, use_cache=False)
    path = out / "results.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    assert len(lines) == 9
    torn = json.loads(lines[-1])
    path.write_bytes(b"".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])  # killed mid-write

    executions.clear()
    report = run(samples, out, use_cache=False)
    assert executions == [torn["program_sha256"]]
    after = path.read_bytes().splitlines(keepends=True)
    assert after[:-1] == lines[:-1]  # earlier lines untouched
    assert len(after) == 9 and after[-1].endswith(b"\n")
    redone = json.loads(after[-1])
    assert redone["sample_id"] == torn["sample_id"] and redone["verdict"] == torn["verdict"]
    assert Counter(json.loads(l)["sample_id"] for l in after).most_common(1)[0][1] == 1
    assert report["overall"]["n_samples"] == 9


def test_torn_last_line_served_from_cache(tmp_path, cache_dir, executions) -> None:
    """The torn sample's verdict is in the cache, seen by one run: it runs once more to confirm it;
    torn again, it is served from the cache."""
    samples = write_samples(tmp_path / "samples.jsonl", mixed_rows(with_timeout=False))
    out = tmp_path / "out"
    run(samples, out)
    path = out / "results.jsonl"
    data = path.read_bytes()
    torn = json.loads(data.splitlines()[-1])
    for confirmed in (False, True):
        path.write_bytes(data[:-7])
        executions.clear()
        run(samples, out)
        assert executions == ([] if confirmed else [torn["program_sha256"]])
        recs = results(out)
        assert len(recs) == 9 and recs[-1]["sample_id"] == torn["sample_id"]
        assert [r["cached"] for r in recs] == [False] * 8 + [confirmed]
        assert recs[-1]["verdict"] == torn["verdict"]
        data = path.read_bytes()


# -------------------------------------------------------------------------------- kill -9
def test_kill_9_mid_run_then_resume(tmp_path, cache_dir) -> None:
    """A real ``geex humanevalx evaluate`` killed with SIGKILL, then run again: one line per sample."""
    probs = load_language(get_language("python"))[:20]
    rows = []
    for p in probs:  # 40 distinct programs, each sleeping a little so that the kill lands mid-run
        rows.append({"task_id": p.task_id, "generation": "    import time\n    time.sleep(0.05)\n" + p.canonical_solution})
        rows.append({"task_id": p.task_id, "generation": "    import time\n    time.sleep(0.1)\n    return None\n"})
    samples = write_samples(tmp_path / "samples.jsonl", rows)
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "geex", "humanevalx", "evaluate", str(samples), "--out", str(out),
            "--workers", "2", "--quiet", "--timeout", "10"]
    env = {**os.environ, "GEEX_CACHE": str(cache_dir)}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    log = out / "results.jsonl"
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            if log.exists() and log.read_bytes().count(b"\n") >= 6:
                break
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.02)
        else:
            pytest.fail("no results appeared within 120 s")
        assert proc.poll() is None  # still running: the kill lands mid-run
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    before = log.read_bytes()
    complete_before = [l for l in before.splitlines(keepends=True) if l.endswith(b"\n")]
    assert 6 <= len(complete_before) < 40

    r = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "resuming:" in r.stderr
    after = log.read_bytes().splitlines(keepends=True)
    recs = [json.loads(l) for l in after]
    ids = Counter(rec["sample_id"] for rec in recs)
    assert len(recs) == 40 and len(ids) == 40 and set(ids.values()) == {1}
    assert set(complete_before) <= set(after)  # what was recorded before the kill was kept, not redone
    report = json.loads((out / "report.json").read_text())
    assert report["overall"]["n_samples"] == 40
    assert sum(report["overall"]["verdicts"].values()) == 40
    assert report["overall"]["verdicts"]["passed"] == 20
    assert report["groups"]["python"]["pass@k"]["pass@1"] == pytest.approx(0.5)


# ---------------------------------------------------------------------- store, directly
def _rec(sample_id: str, sha: str = "h", verdict: str = "passed") -> Result:
    return Result(sample_id, "Python/0", "python", Verdict(verdict), program_sha256=sha, fingerprint="fp")


def test_results_log_recovery(tmp_path) -> None:
    path = tmp_path / "results.jsonl"
    log = ResultsLog(path)
    log.append(_rec("A#0"))
    log.append(_rec("A#1", verdict="wrong_answer"))
    log.append(_rec("A#0", sha="h2", verdict="wrong_answer"))  # re-run after an edit: the last wins
    log.close()
    good = path.read_bytes()
    path.write_bytes(good + b'{"sample_id": "A#2", "program_sh')
    log = ResultsLog(path)
    assert log.torn_lines == 1
    assert path.read_bytes() == good  # the torn tail is cut off before appending
    assert set(log.records) == {"A#0", "A#1"}
    assert log.done("A#0", "h2", "fp").verdict == "wrong_answer"
    assert log.done("A#0", "h2", "other") is None  # another toolchain/limits/isolation: run again
    assert log.done("A#0", "h", "fp") is None  # a different program is not done
    assert log.done("A#2", "h", "fp") is None
    log.append(_rec("A#2"))
    log.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[-1])["sample_id"] == "A#2"


@pytest.mark.parametrize("cut", [1, 2, 30])
def test_results_log_drops_a_last_line_without_newline(tmp_path, cut: int) -> None:
    """Even a last line that parses (only its newline is missing) may be incomplete: re-run it."""
    path = tmp_path / "results.jsonl"
    text = json.dumps(_rec("A#0").to_json()) + "\n" + json.dumps(_rec("A#1").to_json()) + "\n"
    path.write_text(text[:-cut])
    log = ResultsLog(path)
    log.close()
    assert set(log.records) == {"A#0"} and log.torn_lines == 1
    assert path.read_text() == text.split("\n")[0] + "\n"


def test_results_log_skips_garbage_in_the_middle(tmp_path) -> None:
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps(_rec("A#0").to_json()) + "\n" + "not json\n" + json.dumps(_rec("A#1").to_json()) + "\n")
    log = ResultsLog(path)
    log.close()
    assert set(log.records) == {"A#0", "A#1"}
    assert path.read_text().count("\n") == 3  # a complete file is not truncated


def test_verdict_cache_persists_and_skips_transient_outcomes(tmp_path) -> None:
    db = tmp_path / "c" / "verdicts.sqlite"
    cache = VerdictCache(db)
    cache.put("p1", "fp", {"verdict": "passed", "detail": ""})
    cache.put("p2", "fp", {"verdict": "timeout", "detail": ""})
    cache.put("p3", "fp", {"verdict": "harness_error", "detail": "no node"})
    cache.put("p4", "fp", {"verdict": "wrong_answer", "detail": "x"})
    cache.close()
    cache = VerdictCache(db)
    assert cache.get("p1", "fp") == {"verdict": "passed", "detail": ""}
    assert cache.get("p4", "fp")["verdict"] == "wrong_answer"
    assert cache.get("p2", "fp") is None and cache.get("p3", "fp") is None
    assert cache.get("p1", "other-toolchain") is None
    cache.close()


def test_evaluate_exits_3_when_the_harness_failed(tmp_path, cache_dir, monkeypatch, capsys):
    """``geex humanevalx evaluate``: 0 when every sample was judged, 3 when the harness itself failed
    on some (a broken step here: every run reports a harness error), with the count on stderr;
    harness errors never count as failures in pass@k."""
    from geex.cli import main
    from geex.humanevalx.execution import runners as runners_mod
    from geex.humanevalx.execution.verdict import Verdict

    samples = write_samples(tmp_path / "s.jsonl", [{"task_id": "Python/0", "generation": canonical("Python/0")}])
    assert main(["humanevalx", "evaluate", str(samples), "--out", str(tmp_path / "ok"), "-q"]) == 0

    def broken(self, program, ctx):  # as when a toolchain is gone or a sandbox step fails
        return runners_mod.Outcome(Verdict.HARNESS_ERROR, "harness", detail="the harness broke (test)")

    monkeypatch.setattr(runners_mod.Runner, "execute", broken)
    capsys.readouterr()
    assert main(["humanevalx", "evaluate", str(samples), "--out", str(tmp_path / "broken"), "--no-cache", "-q"]) == 3
    assert "1 harness errors" in capsys.readouterr().err
    report = json.loads((tmp_path / "broken" / "report.json").read_text())
    assert report["harness_errors"] == 1
