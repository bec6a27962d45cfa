"""The one schema of a results.jsonl line: lines written by earlier geex versions read back and are
written again with every field and its order kept; what is not a result is refused with the reason."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from geex.humanevalx.execution.verdict import Verdict
from geex.humanevalx.result import Result

RUNS = Path(__file__).resolve().parents[2] / "docs" / "results" / "humanevalx-smollm2-135m"


@pytest.mark.parametrize("run", ["generation-greedy", "translation-greedy"])
def test_committed_result_lines_round_trip_exactly(run):
    """Lines an earlier version wrote (committed in docs/results) are an outside record of the format."""
    lines = gzip.decompress((RUNS / run / "results.jsonl.gz").read_bytes()).decode().splitlines()
    assert len(lines) > 100
    for line in lines:
        obj = json.loads(line)
        result = Result.from_json(obj)
        again = result.to_json()
        # every field kept, in its order; older lines lack only "flaky" (added later, false by default)
        assert [k for k in again if k in obj] == list(obj)
        assert {k: again[k] for k in obj} == obj
        assert {k: again[k] for k in again if k not in obj} in ({}, {"flaky": False})
        assert result.passed == obj["passed"] == (obj["verdict"] == "passed")


def test_a_minimal_line_gets_defaults_and_its_group():
    r = Result.from_json({"sample_id": "CPP/3#0", "task_id": "CPP/3", "language": "cpp", "verdict": "timeout"})
    assert r.verdict is Verdict.TIMEOUT and not r.passed
    assert (r.source_language, r.program_sha256, r.fingerprint, r.flaky, r.verdicts_seen) == (None, "", "", False, None)
    assert r.group == "cpp"
    t = Result.from_json({"sample_id": "x", "task_id": "CPP/3", "language": "cpp", "source_language": "python",
                          "verdict": "passed", "passed": True})
    assert t.group == "python->cpp" and t.passed


def test_outcome_fields_are_taken_and_unknown_keys_dropped():
    outcome = {"verdict": "runtime_error", "phase": "run", "compile_s": 0, "run_s": 0.25, "exit_code": 1,
               "signal": None, "detail": "boom", "stdout_tail": "ignored"}
    r = Result.from_outcome(outcome=outcome, sample_id="Go/1#2", task_id="Go/1", language="go", completion_id=2,
                            flaky=True, verdicts_seen={"runtime_error": 1, "passed": 1})
    line = r.to_json()
    assert "stdout_tail" not in line
    assert (line["verdict"], line["passed"], line["exit_code"], line["run_s"], line["detail"]) == \
        ("runtime_error", False, 1, 0.25, "boom")
    assert line["verdicts_seen"] == {"runtime_error": 1, "passed": 1}
    assert Result.from_json(line) == r


BASE = {"sample_id": "Python/0#0", "task_id": "Python/0", "language": "python", "verdict": "passed"}


@pytest.mark.parametrize("bad, why", [
    ([BASE], "not a JSON object"),
    ({k: v for k, v in BASE.items() if k != "task_id"}, "needs task_id"),
    ({**BASE, "language": 3}, "needs language"),
    ({**BASE, "verdict": "success"}, "unknown verdict 'success'"),
    ({**BASE, "passed": False}, "contradicts verdict passed"),
    ({**BASE, "verdict": "wrong_answer", "passed": True}, "contradicts"),
    ({**BASE, "passed": 1}, "contradicts"),  # 1 is not True
    ({**BASE, "completion_id": "0"}, "completion_id='0' has the wrong type"),
    ({**BASE, "completion_id": True}, "completion_id=True"),  # a bool is not an int here
    ({**BASE, "run_s": "fast"}, "run_s"),
    ({**BASE, "cached": 0}, "cached=0"),
    ({**BASE, "verdicts_seen": ["passed"]}, "verdicts_seen"),
])
def test_what_is_not_a_result_is_refused_with_the_reason(bad, why):
    with pytest.raises(ValueError, match=why.replace("(", r"\(")):
        Result.from_json(bad)


def test_an_integer_time_is_a_float_field():
    assert Result.from_json({**BASE, "run_s": 2}).run_s == 2
