"""Report aggregation: groups, the overall row, harness errors."""

from __future__ import annotations

from geex.humanevalx.execution.verdict import Verdict
from geex.humanevalx.reporting.metrics import pass_at_k
from geex.humanevalx.reporting.run_report import build_report
from geex.humanevalx.result import Result


def _rec(task: str, lang: str, verdict: str, source: str | None = None) -> Result:
    return Result(f"{task}#?", task, lang, Verdict(verdict), source_language=source)


def test_overall_does_not_pool_generation_and_translation_of_one_task():
    records = [_rec("CPP/0", "cpp", "passed"), _rec("CPP/0", "cpp", "wrong_answer", source="python")]
    report = build_report(records, (1, 2), {})
    assert set(report["groups"]) == {"cpp", "python->cpp"}
    overall = report["overall"]
    assert overall["n_problems"] == 2  # two problems of one sample each, not one of two
    assert overall["pass@k"] == {"pass@1": 0.5}  # pass@2 needs 2 samples per problem


def test_harness_errors_are_left_out_of_pass_at_k_and_counted():
    records = [_rec("Go/1", "go", "passed"), _rec("Go/1", "go", "harness_error"), _rec("Go/1", "go", "timeout")]
    report = build_report(records, (1, 2), {})
    go = report["groups"]["go"]
    assert go["n_samples"] == 3
    assert go["pass@k"]["pass@1"] == pass_at_k(2, 1, 1) == 0.5
    assert go["pass@k"]["pass@2"] == 1.0
    assert report["harness_errors"] == 1
    assert go["verdicts"]["timeout"] == 1
