"""Flaky programs: detected from disagreeing runs, every copy run, never frozen in the cache.

Three levels: ``ProgramRuns`` on its own (which runs are started, what each copy gets, what the
cache keeps); whole evaluations whose runner outcomes are scripted per program (every path,
deterministically, including a later evaluation reusing the cache); and a real evaluation of
programs that pass or fail on a coin flip from ``os.urandom`` inside the sandbox.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest

from geex.humanevalx.dataset import load_language
from geex.humanevalx.evaluate import EvalConfig, evaluate
from geex.humanevalx.execution import runners as runners_mod
from geex.humanevalx.execution.runners import Outcome, cache_root
from geex.humanevalx.execution.verdict import Verdict
from geex.humanevalx.flaky import ProgramRuns
from geex.humanevalx.store import VerdictCache
from geex.languages import get_language

P, W, T, H = "passed", "wrong_answer", "timeout", "harness_error"


def o(verdict: str, tag: str = "") -> dict:
    return {"verdict": verdict, "detail": tag}


# -- ProgramRuns ------------------------------------------------------------------------------------
def feed(runs: ProgramRuns, verdicts: list[str]) -> list[int]:
    """Add outcomes while the program wants runs; returns the 'more runs' answers."""
    answers = []
    it = iter(verdicts)
    wanted = runs.first_runs()
    while wanted:
        wanted -= 1
        more = runs.add(o(next(it), str(len(runs.fresh))))
        answers.append(more)
        wanted += more
    assert runs.done
    assert list(it) == [], "more outcomes scripted than runs started"
    return answers


def test_single_sample_without_cache_runs_once():
    runs = ProgramRuns(1)
    assert runs.first_runs() == 1
    feed(runs, [W])
    assert not runs.flaky and [x["verdict"] for x in runs.outcomes()] == [W]
    assert runs.cache_update() == (o(W, "0"), 1)


def test_copies_run_twice_and_agreeing_runs_decide_all_copies():
    runs = ProgramRuns(5)
    assert runs.first_runs() == 2
    assert feed(runs, [P, P]) == [0, 0]
    assert not runs.flaky and runs.outcomes() == [o(P, "0")] * 5
    assert runs.cache_update() == (o(P, "0"), 2)


def test_disagreeing_copies_are_each_run():
    runs = ProgramRuns(4)
    assert feed(runs, [P, W, W, P]) == [0, 2, 0, 0]
    assert runs.flaky
    assert [x["verdict"] for x in runs.outcomes()] == [P, W, W, P]
    assert [x["detail"] for x in runs.outcomes()] == ["0", "1", "2", "3"]  # one run per copy
    assert runs.verdicts_seen() == {P: 2, W: 2}
    assert runs.cache_update() is None  # dropped


def test_cached_verdict_seen_once_is_run_again():
    runs = ProgramRuns(1, (o(P, "cached"), 1))
    assert not runs.trusted and runs.first_runs() == 1
    feed(runs, [P])
    assert runs.outcomes() == [o(P, "0")] and not runs.flaky
    assert runs.cache_update() == (o(P, "0"), 2)


def test_cached_verdict_contradicted_makes_a_flaky_program():
    runs = ProgramRuns(3, (o(P, "cached"), 1))
    assert feed(runs, [W, P, W]) == [2, 0, 0]
    assert runs.flaky and [x["verdict"] for x in runs.outcomes()] == [W, P, W]
    assert runs.verdicts_seen() == {P: 2, W: 2}  # the cached run counts
    assert runs.cache_update() is None


def test_confirmed_cached_verdict_is_served_without_running():
    runs = ProgramRuns(3, (o(P, "cached"), 2))
    assert runs.trusted and runs.first_runs() == 0 and runs.done
    assert runs.outcomes() == [o(P, "cached")] * 3
    assert runs.cache_update() == (o(P, "cached"), 2)


def test_timeouts_count_as_disagreement():
    runs = ProgramRuns(2)
    feed(runs, [T, P])
    assert runs.flaky and runs.verdicts_seen() == {P: 1, T: 1}


@pytest.mark.parametrize(("cached", "verdicts", "copies", "expected", "update"), [
    (None, [H, P], 2, [P, P], 1),  # the harness error neither contradicts nor confirms
    (None, [H, H], 2, [H, H], None),  # nothing else seen: the copies carry the harness error
    ((o(W), 1), [H], 1, [H], "unchanged"),
])
def test_harness_errors_are_no_observation(cached, verdicts, copies, expected, update):
    runs = ProgramRuns(copies, cached)
    feed(runs, verdicts)
    assert not runs.flaky
    assert [x["verdict"] for x in runs.outcomes()] == expected
    got = runs.cache_update()
    if update == "unchanged":
        assert got is cached
    elif update is None:
        assert got is None or got[0]["verdict"] == H  # (the cache refuses harness errors anyway)
    else:
        assert got[1] == update and got[0]["verdict"] == P


# -- whole evaluations, runner outcomes scripted per program -------------------------------------
@pytest.fixture
def script(monkeypatch) -> dict:
    """``script[task_id]``: an iterator of verdicts the runner returns for that task's program,
    one per execution; ``script["calls"]``: task ids in execution order."""
    state: dict = {"calls": []}

    def execute(self, program, ctx):
        task = next(t for t in state if t != "calls" and f"#task {t}\n" in program.source)
        state["calls"].append(task)
        verdict = next(state[task])
        return Outcome(Verdict(verdict), "run", detail=f"run {state['calls'].count(task)}")

    monkeypatch.setattr(runners_mod.Runner, "execute", execute)
    return state


def _samples(path: Path, copies: dict[str, int]) -> Path:
    rows = []
    for task, n in copies.items():
        rows += [{"task_id": task, "completion": f"    #task {task}\n    return 0\n"}] * n
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _evaluate(samples: Path, out: Path, **kw) -> tuple[dict, list[dict]]:
    report = evaluate(EvalConfig(samples=str(samples), out_dir=out, workers=2, ks=(1,), timeout_s=5,
                                 progress=False, **kw))
    return report, [json.loads(l) for l in (out / "results.jsonl").read_text().splitlines()]


def test_evaluation_marks_flaky_programs_and_reports_them(tmp_path, cache_dir, script):
    script.update({
        "Python/1": itertools.cycle([P, W]),  # 3 copies, flips every run
        "Python/2": itertools.repeat(W),  # 3 copies, stable
        "Python/3": itertools.repeat(P),  # single
        "Python/4": iter([T, P]),  # 2 copies: a timeout, then a pass
    })
    samples = _samples(tmp_path / "s.jsonl", {"Python/1": 3, "Python/2": 3, "Python/3": 1, "Python/4": 2})
    report, recs = _evaluate(samples, tmp_path / "out")
    by_task = {t: [r for r in recs if r["task_id"] == t] for t in ("Python/1", "Python/2", "Python/3", "Python/4")}
    calls = script["calls"]
    assert calls.count("Python/1") == 3 and calls.count("Python/2") == 2 and calls.count("Python/3") == 1
    assert calls.count("Python/4") == 2

    one = by_task["Python/1"]
    assert all(r["flaky"] for r in one) and sorted(r["verdict"] for r in one) == [P, P, W]
    assert sorted(r["detail"] for r in one) == ["run 1", "run 2", "run 3"]  # each copy its own run
    assert all(r["verdicts_seen"] == {P: 2, W: 1} for r in one)
    assert [r["verdict"] for r in by_task["Python/2"]] == [W, W, W]
    assert not any(r["flaky"] for r in by_task["Python/2"] + by_task["Python/3"])
    assert all("verdicts_seen" not in r for r in by_task["Python/2"])
    assert sorted(r["verdict"] for r in by_task["Python/4"]) == [P, T] and by_task["Python/4"][0]["flaky"]

    assert report["flaky"] == {"samples": 5, "task_ids": ["Python/1", "Python/4"]}
    assert report["groups"]["python"]["verdicts"][P] == 2 + 1 + 1
    md = (tmp_path / "out" / "report.md").read_text()
    assert "**5 flaky samples** in 2 tasks" in md and "Python/1, Python/4" in md
    assert json.loads((tmp_path / "out" / "report.json").read_text())["flaky"]["samples"] == 5

    cache = VerdictCache(cache_root() / "humanevalx" / "verdicts.sqlite")
    try:
        shas = {t: rs[0]["program_sha256"] for t, rs in by_task.items()}
        fp = one[0]["fingerprint"]
        assert cache.lookup(shas["Python/1"], fp) is None and cache.lookup(shas["Python/4"], fp) is None
        assert cache.lookup(shas["Python/2"], fp)[1] == 2  # two agreeing runs: confirmed
        assert cache.lookup(shas["Python/3"], fp)[1] == 1  # one run: to be confirmed
    finally:
        cache.close()


def test_reused_cache_is_confirmed_once_then_trusted(tmp_path, cache_dir, script):
    script.update({"Python/1": iter([P, W, W]), "Python/2": iter([P, P]), "Python/3": iter([W, W, W])})
    samples = _samples(tmp_path / "s.jsonl", {"Python/1": 1, "Python/2": 1, "Python/3": 2})
    _, first = _evaluate(samples, tmp_path / "a")
    assert script["calls"].count("Python/3") == 2 and not any(r["flaky"] for r in first)
    script["calls"].clear()

    # a new output directory: the verdicts seen once are run again; Python/3's two runs are trusted
    _, second = _evaluate(samples, tmp_path / "b")
    assert sorted(script["calls"]) == ["Python/1", "Python/2"]
    got = {r["task_id"]: r for r in second}
    assert got["Python/1"]["flaky"] and got["Python/1"]["verdict"] == W
    assert got["Python/1"]["verdicts_seen"] == {P: 1, W: 1} and not got["Python/1"]["cached"]
    assert not got["Python/2"]["flaky"] and got["Python/2"]["verdict"] == P and not got["Python/2"]["cached"]
    assert all(r["cached"] and r["verdict"] == W for r in second if r["task_id"] == "Python/3")
    script["calls"].clear()

    # third: Python/2 is confirmed now; the flaky Python/1 was dropped, so it runs (once: one copy)
    _, third = _evaluate(samples, tmp_path / "c")
    assert script["calls"] == ["Python/1"]
    assert {r["task_id"]: r["cached"] for r in third} == {"Python/1": False, "Python/2": True, "Python/3": True}


def test_no_cache_still_checks_duplicates(tmp_path, cache_dir, script):
    script.update({"Python/1": itertools.cycle([W, P])})
    samples = _samples(tmp_path / "s.jsonl", {"Python/1": 2})
    report, recs = _evaluate(samples, tmp_path / "out", use_cache=False)
    assert [r["verdict"] for r in recs] == [W, P] or [r["verdict"] for r in recs] == [P, W]
    assert report["flaky"]["samples"] == 2
    assert not (cache_dir / "humanevalx" / "verdicts.sqlite").exists()


# -- real randomness ------------------------------------------------------------------------------
# Python/53 (add): each process flips one coin from os.urandom and is then right or off by one for
# the whole test. Two runs of a program disagree with probability 1/2; with 36 distinct programs the
# chance that none shows it is 2**-36 (< 1.5e-11).
COIN = (
    "    import os\n"
    "    global _coin\n"
    "    try:\n"
    "        _coin\n"
    "    except NameError:\n"
    "        _coin = os.urandom(1)[0] < 128  # variant {i}\n"
    "    return x + y + (0 if _coin else 1)\n"
)
N_PROGRAMS = 36


@pytest.mark.toolchains
def test_real_coin_flipping_programs_are_caught(tmp_path, cache_dir):
    task = next(p for p in load_language(get_language("python")) if p.task_id == "Python/53")
    rows = [{"task_id": task.task_id, "completion": COIN.format(i=i), "completion_id": 2 * i + k}
            for i in range(N_PROGRAMS) for k in range(2)]
    samples = tmp_path / "s.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report, recs = _evaluate(samples, tmp_path / "out", clean=False)
    assert {r["verdict"] for r in recs} <= {P, W}
    by_program: dict[str, list[dict]] = {}
    for r in recs:
        by_program.setdefault(r["program_sha256"], []).append(r)
    assert len(by_program) == N_PROGRAMS and all(len(v) == 2 for v in by_program.values())
    flaky = [v for v in by_program.values() if v[0]["flaky"]]
    assert flaky, "no coin flip disagreed in 36 programs (chance 2**-36): the detection is broken"
    for copies in by_program.values():
        verdicts = sorted(r["verdict"] for r in copies)
        if copies[0]["flaky"]:
            assert all(r["flaky"] for r in copies)
            assert verdicts == [P, W] and copies[0]["verdicts_seen"] == {P: 1, W: 1}
        else:
            assert verdicts[0] == verdicts[1] and not any(r["flaky"] for r in copies)
    assert report["flaky"] == {"samples": 2 * len(flaky), "task_ids": ["Python/53"]}
    cache = VerdictCache(cache_root() / "humanevalx" / "verdicts.sqlite")
    try:
        for copies in by_program.values():
            hit = cache.lookup(copies[0]["program_sha256"], copies[0]["fingerprint"])
            assert (hit is None) if copies[0]["flaky"] else (hit[1] == 2 and hit[0]["verdict"] == copies[0]["verdict"])
    finally:
        cache.close()
