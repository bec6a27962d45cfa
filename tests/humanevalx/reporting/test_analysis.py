"""geex.humanevalx.reporting.analysis: budget allocation, bootstrap intervals and loading evaluated runs.

Every expected number is worked out here, by hand or from ``math.comb``, never by the code under test.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import pytest

from geex.errors import UserError
from geex.humanevalx.reporting.analysis import STRATEGIES, allocate, budget_table, load_run, pass_at_k_ci, solved_share

BEST, UNIFORM, WEIGHTED = "best single language", "uniform", "weighted by pass rate"


def fail_all(n: int, c: int, k: int) -> Fraction:
    """P(all k samples drawn without replacement from n, c passing, fail) = C(n-c, k) / C(n, k)."""
    return Fraction(math.comb(n - c, k), math.comb(n, k))


def share(counts: dict, alloc: dict) -> float:
    """Expected share of solved problems over the problems every language has."""
    common = set.intersection(*(set(per) for per in counts.values()))
    total = Fraction(0)
    for p in common:
        fail = Fraction(1)
        for lang, k in alloc.items():
            n, c = counts[lang][p]
            fail *= fail_all(n, c, k)
        total += 1 - fail
    return float(total / len(common))


def pass_at(n: int, c: int, k: int) -> float:
    return 1 - math.comb(n - c, k) / math.comb(n, k)


# --- solved_share -------------------------------------------------------------------------------------

# Problem 5 is only in python, problem 7 only in cpp: both are left out (intersection).
COUNTS = {"python": {0: (4, 1), 1: (4, 2), 5: (4, 4)}, "cpp": {0: (2, 1), 1: (2, 0), 7: (3, 3)}}


def test_solved_share_all_in_one_language():
    # p0: P(2 of 4 with 1 passing all fail) = C(3,2)/C(4,2) = 3/6; p1: C(2,2)/C(4,2) = 1/6.
    # solved = ((1 - 1/2) + (1 - 1/6)) / 2 = (3/6 + 5/6) / 2 = 2/3
    assert solved_share(COUNTS, {"python": 2, "cpp": 0}) == pytest.approx(2 / 3)
    assert solved_share(COUNTS, {"python": 2, "cpp": 0}) == pytest.approx(share(COUNTS, {"python": 2, "cpp": 0}))


def test_solved_share_split_over_languages():
    # p0: fail = 3/4 (python, 1 of 4 with 1 passing) * 1/2 (cpp, 1 of 2 with 1 passing) = 3/8 -> 5/8
    # p1: fail = 2/4 * 1 (cpp has no passing sample) = 1/2 -> 1/2;  mean = (5/8 + 4/8) / 2 = 9/16
    assert solved_share(COUNTS, {"python": 1, "cpp": 1}) == pytest.approx(9 / 16)
    # zero samples everywhere solves nothing; problem 5 (python only, all passing) would otherwise count
    assert solved_share(COUNTS, {"python": 0, "cpp": 0}) == 0.0
    assert solved_share(COUNTS, {"python": 0, "cpp": 2}) == pytest.approx(share(COUNTS, {"python": 0, "cpp": 2}))
    assert share(COUNTS, {"python": 0, "cpp": 2}) == pytest.approx(1 / 2)  # p0 always solved, p1 never


def test_solved_share_matches_pass_at_k_for_one_language():
    counts = {"python": {0: (5, 2), 1: (5, 0), 2: (5, 4)}, "cpp": {0: (5, 5), 1: (5, 5), 2: (5, 5)}}
    for k in range(1, 6):
        expected = sum(pass_at(n, c, k) for n, c in counts["python"].values()) / 3
        assert solved_share(counts, {"python": k, "cpp": 0}) == pytest.approx(expected)


# --- allocate -----------------------------------------------------------------------------------------


def test_best_single_language_takes_everything_first_on_ties():
    assert allocate(BEST, 4, {"python": 0.2, "cpp": 0.5, "java": 0.1}) == {"python": 0, "cpp": 4, "java": 0}
    assert allocate(BEST, 4, {"python": 0.2, "cpp": 0.5, "java": 0.5}) == {"python": 0, "cpp": 4, "java": 0}
    assert allocate(BEST, 3, {"go": 0.3, "rust": 0.3}) == {"go": 3, "rust": 0}


def test_uniform_splits_evenly_with_largest_remainders():
    rates = {"python": 0.4, "cpp": 0.4, "java": 0.4}
    assert allocate(UNIFORM, 6, rates) == {"python": 2, "cpp": 2, "java": 2}
    assert allocate(UNIFORM, 5, rates) == {"python": 2, "cpp": 2, "java": 1}  # 5/3 each: ties kept in order
    assert allocate(UNIFORM, 1, rates) == {"python": 1, "cpp": 0, "java": 0}
    # uniform ignores the rates' size; with 7 over 3 one language gets 3 and the others 2
    got = allocate(UNIFORM, 7, {"python": 0.1, "cpp": 0.9, "java": 0.5})
    assert sorted(got.values()) == [2, 2, 3] and list(got) == ["python", "cpp", "java"]


def test_weighted_follows_the_rates():
    assert allocate(WEIGHTED, 10, {"python": 0.6, "cpp": 0.3, "java": 0.1}) == {"python": 6, "cpp": 3, "java": 1}
    # 3 * (0.5, 0.25, 0.25) = (1.5, 0.75, 0.75): floors 1, 0, 0; remainders .5 < .75 = .75 -> cpp, java
    assert allocate(WEIGHTED, 3, {"python": 0.5, "cpp": 0.25, "java": 0.25}) == {"python": 1, "cpp": 1, "java": 1}
    # 4 * (3/4, 1/4) = (3, 1)
    assert allocate(WEIGHTED, 4, {"python": 0.3, "cpp": 0.1}) == {"python": 3, "cpp": 1}
    # a language that never passes gets nothing while the others take the budget
    assert allocate(WEIGHTED, 5, {"python": 0.5, "cpp": 0.0, "java": 0.5}) == {"python": 3, "cpp": 0, "java": 2}


def test_weighted_with_all_zero_rates_is_uniform():
    rates = {"python": 0.0, "cpp": 0.0, "java": 0.0}
    assert allocate(WEIGHTED, 6, rates) == {"python": 2, "cpp": 2, "java": 2}
    assert allocate(WEIGHTED, 4, rates) == {"python": 2, "cpp": 1, "java": 1}


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("rates", [
    {"python": 0.6, "cpp": 0.3, "java": 0.1},
    {"python": 1 / 3, "cpp": 1 / 7, "java": 0.0, "js": 0.99, "go": 0.5, "rust": 1 / 11},
    {"python": 0.0, "cpp": 0.0},
    {"python": 0.7},
])
def test_allocations_sum_to_the_budget(strategy, rates):
    total = sum(rates.values())
    for budget in range(0, 25):
        got = allocate(strategy, budget, rates)
        assert list(got) == list(rates)
        assert all(isinstance(v, int) and v >= 0 for v in got.values())
        assert sum(got.values()) == budget, (budget, got)
        if strategy != BEST:  # each language within one of its exact share
            weights = rates if strategy == WEIGHTED and total > 0 else {lang: 1.0 for lang in rates}
            for lang, v in got.items():
                exact = budget * weights[lang] / sum(weights.values())
                assert math.floor(exact + 1e-9) <= v <= math.ceil(exact - 1e-9), (budget, lang, got)


# --- budget_table -------------------------------------------------------------------------------------

# Common problems {0, 1}; problem 2 only in python, 4 only in cpp (ignored); the pair is ignored.
# rates: python (2/3 + 1/3) / 2 = 1/2, cpp (0 + 1/3) / 2 = 1/6; every language has 3 samples a problem.
TABLE_COUNTS = {
    "python": {0: (3, 2), 1: (3, 1), 2: (3, 0)},
    "cpp": {0: (3, 0), 1: (3, 1), 4: (3, 3)},
    "python->cpp": {0: (1, 0), 1: (1, 0)},
}


def test_budget_table_against_hand_computed_values():
    got = budget_table(TABLE_COUNTS, [1, 2, 3, 4, 6, 7])
    assert list(got) == list(STRATEGIES)
    common = {g: {p: TABLE_COUNTS[g][p] for p in (0, 1)} for g in ("python", "cpp")}
    # allocations worked out by hand (python, cpp); budgets needing > 3 samples in a language are left out
    allocations = {
        BEST: {1: (1, 0), 2: (2, 0), 3: (3, 0)},                                  # 4 would need 4 python
        UNIFORM: {1: (1, 0), 2: (1, 1), 3: (2, 1), 4: (2, 2), 6: (3, 3)},          # 7 -> (4, 3)
        WEIGHTED: {1: (1, 0), 2: (2, 0), 3: (2, 1), 4: (3, 1)},                    # 3:1 split; 6 -> (5, 1)
    }
    for strategy, per_budget in allocations.items():
        assert sorted(got[strategy]) == sorted(per_budget), strategy
        for b, (py, cpp) in per_budget.items():
            expected = share(common, {"python": py, "cpp": cpp})
            assert got[strategy][b] == pytest.approx(expected), (strategy, b)
    # the same, as fractions by hand
    assert got[BEST] == pytest.approx({1: 1 / 2, 2: 5 / 6, 3: 1.0})
    assert got[UNIFORM] == pytest.approx({1: 1 / 2, 2: 11 / 18, 3: 8 / 9, 4: 17 / 18, 6: 1.0})
    assert got[WEIGHTED] == pytest.approx({1: 1 / 2, 2: 5 / 6, 3: 8 / 9, 4: 1.0})


def test_budget_table_omits_budgets_beyond_the_observed_samples():
    counts = {"python": {0: (2, 1), 1: (2, 0)}, "cpp": {0: (2, 0), 1: (2, 2)}}
    got = budget_table(counts, [1, 2, 3, 5])
    assert sorted(got[BEST]) == [1, 2]  # 3 samples of one language are not there
    # rates: python (1/2 + 0) / 2 = 1/4, cpp (0 + 1) / 2 = 1/2; uniform 3 -> 1.5 each, the tied remainder
    # goes to the higher pass rate: (1, 2); 5 -> (2, 3) needs 3 cpp samples
    assert sorted(got[UNIFORM]) == [1, 2, 3]
    assert got[UNIFORM][3] == pytest.approx(share(counts, {"python": 1, "cpp": 2}))
    assert got[UNIFORM][3] == pytest.approx(3 / 4)  # p0: fail 1/2 * 1; p1: cpp always passes


def test_budget_table_needs_two_generation_languages():
    with pytest.raises(UserError, match="at least two languages"):
        budget_table({"python": {0: (2, 1)}, "python->cpp": {0: (2, 1)}, "cpp->python": {0: (2, 2)}}, [1])
    with pytest.raises(UserError):
        budget_table({"python->cpp": {0: (2, 1)}, "java->cpp": {0: (2, 2)}}, [1])
    with pytest.raises(UserError):
        budget_table({}, [1])


def test_budget_table_ignores_translation_groups():
    base = {g: v for g, v in TABLE_COUNTS.items() if "->" not in g}
    extra = dict(TABLE_COUNTS, **{"cpp->python": {0: (9, 9), 1: (9, 9), 2: (9, 9)}})
    assert budget_table(extra, [1, 2, 3]) == budget_table(base, [1, 2, 3])


# --- pass_at_k_ci -------------------------------------------------------------------------------------

CI_COUNTS = {0: (5, 2), 1: (5, 0), 2: (5, 5), 3: (4, 1), 7: (6, 3)}


@pytest.mark.parametrize("k", [1, 2, 4])
def test_ci_mean_is_the_average_pass_at_k(k):
    expected = sum(pass_at(n, c, k) for n, c in CI_COUNTS.values()) / len(CI_COUNTS)
    mean, lo, hi = pass_at_k_ci(CI_COUNTS, k, iterations=300, seed=1)
    assert mean == pytest.approx(expected)
    assert lo <= mean <= hi
    assert 0.0 <= lo <= hi <= 1.0


def test_ci_by_hand_k1():
    # pass@1 = c/n: 2/5, 0, 1, 1/4, 1/2 -> mean = (0.4 + 0 + 1 + 0.25 + 0.5) / 5 = 0.43
    assert pass_at_k_ci(CI_COUNTS, 1, iterations=50)[0] == pytest.approx(0.43)


def test_ci_is_deterministic_for_a_seed():
    a = pass_at_k_ci(CI_COUNTS, 1, iterations=300, seed=7)
    assert pass_at_k_ci(CI_COUNTS, 1, iterations=300, seed=7) == a
    assert pass_at_k_ci(CI_COUNTS, 1, iterations=300) == pass_at_k_ci(CI_COUNTS, 1, iterations=300, seed=0)


def test_ci_has_zero_width_when_every_problem_is_the_same():
    mean, lo, hi = pass_at_k_ci({p: (3, 1) for p in range(8)}, 1, iterations=200, seed=3)
    assert mean == pytest.approx(1 / 3) and lo == pytest.approx(1 / 3) and hi == pytest.approx(1 / 3)
    mean, lo, hi = pass_at_k_ci({p: (4, 0) for p in range(5)}, 2, iterations=200)
    assert (mean, lo, hi) == (0.0, 0.0, 0.0)


def test_ci_narrows_as_problems_grow():
    base = [(5, 0), (5, 1), (5, 3), (5, 5), (5, 2), (5, 4), (5, 0), (5, 5), (5, 1), (5, 2)]
    small = dict(enumerate(base))
    large = dict(enumerate(base * 10))
    m_small, lo_small, hi_small = pass_at_k_ci(small, 1, iterations=500, seed=0)
    m_large, lo_large, hi_large = pass_at_k_ci(large, 1, iterations=500, seed=0)
    assert m_small == pytest.approx(m_large) == pytest.approx(23 / 50)
    assert hi_large - lo_large < 0.6 * (hi_small - lo_small)


def test_ci_matches_the_normal_approximation():
    # 100 problems, half solved: the mean of 100 draws has sd sqrt(.25/100) = 0.05, so a 95% interval is
    # about 0.5 +- 1.96 * 0.05 = [0.402, 0.598]
    counts = {p: (1, p % 2) for p in range(100)}
    mean, lo, hi = pass_at_k_ci(counts, 1, iterations=2000, seed=0)
    assert mean == pytest.approx(0.5)
    assert lo == pytest.approx(0.402, abs=0.025) and hi == pytest.approx(0.598, abs=0.025)
    # a narrower level gives a narrower interval inside it (same resamples)
    _, lo50, hi50 = pass_at_k_ci(counts, 1, iterations=2000, seed=0, level=0.5)
    assert lo <= lo50 < hi50 <= hi
    assert lo50 == pytest.approx(0.5 - 0.674 * 0.05, abs=0.02)


def test_ci_none_when_a_problem_has_fewer_than_k_samples():
    counts = {0: (5, 1), 1: (1, 1), 2: (5, 5)}
    assert pass_at_k_ci(counts, 2, iterations=50) is None
    assert pass_at_k_ci(counts, 1, iterations=50) is not None
    assert pass_at_k_ci({}, 1, iterations=50) is None


# --- load_run -----------------------------------------------------------------------------------------


def rec(task: str, cid: int, verdict: str, src: str | None = None) -> dict:
    """A results.jsonl line as docs/formats.md describes it; task like "CPP/3"."""
    lang = {"Python": "python", "CPP": "cpp", "Java": "java", "JavaScript": "js", "Go": "go",
            "Rust": "rust"}[task.split("/")[0]]
    sid = f"{src}->{task}#{cid}" if src else f"{task}#{cid}"
    return {"sample_id": sid, "task_id": task, "language": lang, "source_language": src, "completion_id": cid,
            "program_sha256": "0" * 64, "verdict": verdict, "passed": verdict == "passed", "phase": "run",
            "compile_s": 0.0, "run_s": 0.1, "exit_code": 0, "signal": None, "detail": "", "fingerprint": "f",
            "cached": False}


def write_run(directory: Path, records: list, header: dict | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    (directory / "results.jsonl").write_text("".join(line + "\n" for line in lines))
    if header is not None:
        (directory / "samples.jsonl").write_text(json.dumps(header) + "\n"
                                                 + json.dumps({"task_id": "CPP/0", "completion": "x"}) + "\n")
    return directory


def test_last_line_wins(tmp_path):
    d = write_run(tmp_path / "r", [
        rec("CPP/0", 0, "passed"), rec("CPP/0", 1, "wrong_answer"),
        rec("CPP/0", 0, "compile_error"),  # re-evaluated: now fails
        rec("CPP/0", 1, "passed"),  # re-evaluated: now passes
        rec("CPP/0", 2, "timeout"), rec("CPP/0", 2, "passed"), rec("CPP/0", 2, "runtime_error"),
    ])
    run = load_run(d)
    assert len(run.records) == 3
    assert run.groups() == {"cpp": {0: (3, 1)}}
    v = run.verdicts()["cpp"]
    assert (v["passed"], v["compile_error"], v["runtime_error"], v["wrong_answer"], v["timeout"]) == (1, 1, 1, 0, 0)


def test_harness_errors_left_out_of_groups_but_counted_in_verdicts(tmp_path):
    d = write_run(tmp_path / "r", [
        rec("Python/0", 0, "passed"), rec("Python/0", 1, "harness_error"), rec("Python/0", 2, "wrong_answer"),
        rec("Python/1", 0, "harness_error"),  # the problem's only sample: the problem is not in the group
        rec("Python/2", 0, "harness_error"), rec("Python/2", 1, "passed"),
    ])
    run = load_run(d)
    assert run.groups() == {"python": {0: (2, 1), 2: (1, 1)}}
    v = run.verdicts()["python"]
    assert v["harness_error"] == 3 and v["passed"] == 2 and v["wrong_answer"] == 1
    assert sum(v.values()) == 6
    assert set(v) == {"passed", "wrong_answer", "compile_error", "runtime_error", "timeout", "resource_limit",
                      "harness_error"}


def test_translation_groups_and_group_order(tmp_path):
    d = write_run(tmp_path / "r", [
        rec("Rust/0", 0, "passed"),
        rec("Python/0", 0, "passed", src="rust"),
        rec("Go/0", 0, "wrong_answer"),
        rec("CPP/1", 0, "passed", src="python"),
        rec("CPP/1", 1, "timeout", src="python"),
        rec("JavaScript/0", 0, "passed"),
        rec("Python/0", 0, "passed", src="cpp"),
        rec("Java/2", 0, "passed"),
        rec("CPP/0", 0, "passed"),
        rec("Rust/3", 0, "compile_error", src="go"),
        rec("Java/0", 0, "wrong_answer", src="python"),
        rec("Python/4", 0, "passed"),
        rec("Python/3", 0, "wrong_answer"),
        rec("CPP/0", 0, "passed", src="python"),
    ])
    run = load_run(d)
    groups = run.groups()
    assert list(groups) == ["python", "cpp", "java", "js", "go", "rust",
                            "python->cpp", "python->java", "cpp->python", "go->rust", "rust->python"]
    assert list(run.verdicts()) == list(groups)
    assert groups["python->cpp"] == {0: (1, 1), 1: (2, 1)}
    assert groups["python"] == {3: (1, 0), 4: (1, 1)}
    assert list(groups["python"]) == [3, 4]  # problems in order
    assert groups["go->rust"] == {3: (1, 0)}
    assert groups["cpp->python"] == {0: (1, 1)} and groups["rust->python"] == {0: (1, 1)}


def test_generation_records_without_source_language_field(tmp_path):
    r = rec("Go/5", 0, "passed")
    del r["source_language"]
    run = load_run(write_run(tmp_path / "r", [r]))
    assert run.groups() == {"go": {5: (1, 1)}}


@pytest.mark.parametrize("bad", ["not json", "{\"task_id\": \"CPP/0\"}", "[1, 2]", "\"a string\""])
def test_bad_line_names_file_and_line(tmp_path, bad):
    lines = [rec("CPP/0", 0, "passed"), rec("CPP/0", 1, "passed"), bad, rec("CPP/1", 0, "passed")]
    d = write_run(tmp_path / "r", lines)
    with pytest.raises(UserError) as e:
        load_run(d)
    assert f"{d / 'results.jsonl'}:3" in str(e.value)


def test_blank_lines_and_an_unfinished_last_line_are_skipped(tmp_path):
    d = write_run(tmp_path / "r", [rec("CPP/0", 0, "passed"), "", rec("CPP/0", 1, "wrong_answer")])
    with open(d / "results.jsonl", "a") as f:
        f.write('{"sample_id": "CPP/1#0", "task_')  # an evaluation still writing
    assert load_run(d).groups() == {"cpp": {0: (2, 1)}}


def test_line_without_verdict_is_a_user_error(tmp_path):
    d = write_run(tmp_path / "r", [rec("CPP/0", 0, "passed"), {"sample_id": "CPP/0#1", "task_id": "CPP/0"}])
    with pytest.raises(UserError, match="results.jsonl:2"):
        load_run(d).groups()


def test_missing_results_is_a_user_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no results.jsonl"):
        load_run(tmp_path / "empty")
    with pytest.raises(UserError, match="no results.jsonl"):
        load_run(tmp_path / "does-not-exist")


def test_model_name_from_samples_header_else_directory(tmp_path):
    records = [rec("CPP/0", 0, "passed")]
    header = {"geex": "samples/1", "task": "generation", "backend": "native", "model": "codegeex-13b", "n": 1}
    with_header = load_run(write_run(tmp_path / "with-header", records, header))
    assert with_header.name == "codegeex-13b"
    assert with_header.header == header
    assert with_header.directory == tmp_path / "with-header"

    without = load_run(write_run(tmp_path / "no-samples", records))
    assert without.name == "no-samples" and without.header == {}

    d = write_run(tmp_path / "headerless", records)  # samples.jsonl whose first line is a sample, not a header
    (d / "samples.jsonl").write_text(json.dumps({"task_id": "CPP/0", "completion": "x", "model": "nope"}) + "\n")
    assert load_run(d).name == "headerless" and load_run(d).header == {}

    d = write_run(tmp_path / "no-model", records, {"geex": "samples/1", "task": "generation"})
    assert load_run(d).name == "no-model"


def test_budget_table_without_common_problems_is_a_user_error():
    with pytest.raises(UserError):
        budget_table({"python": {0: (2, 1)}, "cpp": {1: (2, 1)}}, [1, 2])


def test_budget_table_limit_is_per_language():
    # rates: python 5/10 = 1/2, cpp 0/2 = 0 -> best single language: python takes all 4 (4 <= 10 observed)
    got = budget_table({"python": {0: (10, 5)}, "cpp": {0: (2, 0)}}, [4])
    assert got[BEST][4] == pytest.approx(1 - math.comb(5, 4) / math.comb(10, 4))


def test_corrupt_samples_header_is_a_user_error(tmp_path):
    d = write_run(tmp_path / "r", [rec("CPP/0", 0, "passed")])
    (d / "samples.jsonl").write_text("{not json\n")
    with pytest.raises(UserError, match="samples.jsonl"):
        load_run(d)


def test_gzipped_results_and_samples(tmp_path):
    import gzip

    records = [rec("CPP/0", 0, "passed"), rec("CPP/0", 1, "wrong_answer"), rec("CPP/0", 1, "passed"),
               rec("CPP/1", 0, "harness_error"), rec("Python/1", 0, "passed", src="cpp")]
    d = tmp_path / "gz"
    d.mkdir()
    with gzip.open(d / "results.jsonl.gz", "wt", encoding="utf-8") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    with gzip.open(d / "samples.jsonl.gz", "wt", encoding="utf-8") as f:
        f.write(json.dumps({"geex": "samples/1", "model": "zipped-model"}) + "\n")
    run = load_run(d)
    assert run.name == "zipped-model"
    assert run.groups() == {"cpp": {0: (2, 2)}, "cpp->python": {1: (1, 1)}}
    assert run.verdicts()["cpp"]["harness_error"] == 1
