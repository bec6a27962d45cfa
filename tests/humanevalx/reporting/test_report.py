"""``geex humanevalx report``: summarize_runs (summary.json, summary.md, PNG figures) and the CLI.

The runs are written by hand; every expected number is worked out here from the pass@k formula
(``math.comb``) and hand arithmetic, never by the code under test.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from geex.humanevalx.reporting.report import summarize_runs

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LANG_OF = {"Python": "python", "CPP": "cpp", "Java": "java", "JavaScript": "js", "Go": "go", "Rust": "rust"}
BUDGETS = (1, 2, 3, 4, 6, 8, 12)
BEST, UNIFORM, WEIGHTED = "best single language", "uniform", "weighted by pass rate"


def pass_at(n: int, c: int, k: int) -> float:
    return 1 - math.comb(n - c, k) / math.comb(n, k)


def rec(task: str, cid: int, verdict: str, src: str | None = None) -> dict:
    sid = f"{src}->{task}#{cid}" if src else f"{task}#{cid}"
    return {"sample_id": sid, "task_id": task, "language": LANG_OF[task.split("/")[0]], "source_language": src,
            "completion_id": cid, "program_sha256": "0" * 64, "verdict": verdict, "passed": verdict == "passed",
            "phase": "run", "compile_s": 0.0, "run_s": 0.1, "exit_code": 0, "signal": None, "detail": "",
            "fingerprint": "f", "cached": False}


def samples_of(task: str, passing: int, n: int = 3, fail: str = "wrong_answer", src: str | None = None) -> list:
    return [rec(task, i, "passed" if i < passing else fail, src) for i in range(n)]


HEADER = {"geex": "samples/1", "task": "generation", "backend": "native", "model": "tiny-model",
          "sampling": {"temperature": 0.8, "top_k": 0, "top_p": 0.95, "greedy": False}, "max_new_tokens": 64,
          "n": 3, "seed": 5, "batch_size": 8, "limit": 2, "languages": ["python", "cpp", "java"], "pairs": None,
          "template": "codegeex-humanevalx/1", "dataset": "humaneval-x-fixed"}

# Generation: 3 samples a problem, problems 0 and 1. (passing samples)
#   python: 3, 1   cpp: 2, 0   java: 0, 0 (+ one harness error on Java/1, left out)
GEN_COUNTS = {"python": {0: (3, 3), 1: (3, 1)}, "cpp": {0: (3, 2), 1: (3, 0)}, "java": {0: (3, 0), 1: (3, 0)}}
# Translation: python->cpp 1 sample a problem (0 passes, 1 fails); java->python 2 a problem (1 and 2 pass)
TRANS_COUNTS = {"python->cpp": {0: (1, 1), 1: (1, 0)}, "java->python": {0: (2, 1), 1: (2, 2)}}


def write_run(directory: Path, records: list, header: dict | None = None) -> Path:
    directory.mkdir(parents=True)
    with open(directory / "results.jsonl", "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    if header is not None:
        with open(directory / "samples.jsonl", "w") as f:
            f.write(json.dumps(header) + "\n")
    return directory


def generation_run(directory: Path, header: dict | None = HEADER) -> Path:
    records = (samples_of("Python/0", 3) + samples_of("Python/1", 1)
               + samples_of("CPP/0", 2, fail="compile_error") + samples_of("CPP/1", 0, fail="compile_error")
               + samples_of("Java/0", 0, fail="runtime_error") + samples_of("Java/1", 0, fail="timeout")
               + [rec("Java/1", 3, "harness_error")])
    return write_run(directory, records, header)


def translation_run(directory: Path) -> Path:
    records = (samples_of("CPP/0", 1, n=1, src="python") + samples_of("CPP/1", 0, n=1, src="python")
               + samples_of("Python/0", 1, n=2, src="java") + samples_of("Python/1", 2, n=2, src="java"))
    return write_run(directory, records)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    gen, trans = generation_run(root / "gen"), translation_run(root / "trans")
    out = root / "summary"
    summary = summarize_runs([gen, trans], out, ks=(1, 2), budgets=BUDGETS, iterations=200)
    return gen, trans, out, summary


def mean_pass(counts: dict, k: int) -> float:
    return sum(pass_at(n, c, k) for n, c in counts.values()) / len(counts)


def test_summary_json_numbers(two_runs):
    gen, trans, out, returned = two_runs
    summary = json.loads((out / "summary.json").read_text())
    assert summary == json.loads(json.dumps(returned))
    assert summary["ks"] == [1, 2] and summary["bootstrap"]["iterations"] == 200
    g, t = summary["runs"]
    assert g["name"] == "tiny-model" and g["header"] == HEADER and Path(g["directory"]) == gen
    assert t["name"] == "trans" and t["header"] == {} and Path(t["directory"]) == trans

    assert list(g["groups"]) == ["python", "cpp", "java"]
    assert list(t["groups"]) == ["python->cpp", "java->python"]
    # by hand: pass@1 python (1 + 1/3) / 2 = 2/3, cpp (2/3 + 0) / 2 = 1/3, java 0
    #          pass@2 python (1 + (1 - C(2,2)/C(3,2))) / 2 = 5/6, cpp (1 + 0) / 2 = 1/2, java 0
    by_hand = {"python": {1: 2 / 3, 2: 5 / 6}, "cpp": {1: 1 / 3, 2: 1 / 2}, "java": {1: 0.0, 2: 0.0}}
    for group, counts in GEN_COUNTS.items():
        row = g["groups"][group]
        assert row["n_problems"] == 2 and row["n_samples"] == 6  # the harness error is not a sample
        for k in (1, 2):
            cell = row["pass@k"][f"pass@{k}"]
            assert cell["mean"] == pytest.approx(mean_pass(counts, k)) == pytest.approx(by_hand[group][k])
            lo, hi = cell["ci95"]
            assert lo <= cell["mean"] <= hi
    assert g["groups"]["java"]["pass@k"]["pass@1"]["ci95"] == [0.0, 0.0]
    # translation: python->cpp pass@1 1/2, no pass@2 (1 sample a problem); java->python pass@1 3/4, pass@2 1
    pc, jp = t["groups"]["python->cpp"], t["groups"]["java->python"]
    assert (pc["n_problems"], pc["n_samples"], jp["n_problems"], jp["n_samples"]) == (2, 2, 2, 4)
    assert pc["pass@k"]["pass@1"]["mean"] == pytest.approx(1 / 2) and "pass@2" not in pc["pass@k"]
    assert jp["pass@k"]["pass@1"]["mean"] == pytest.approx(3 / 4)
    assert jp["pass@k"]["pass@2"] == {"mean": pytest.approx(1.0), "ci95": [pytest.approx(1.0), pytest.approx(1.0)]}

    # verdict counts, harness error included
    assert g["verdicts"]["python"]["passed"] == 4 and g["verdicts"]["python"]["wrong_answer"] == 2
    assert g["verdicts"]["cpp"]["passed"] == 2 and g["verdicts"]["cpp"]["compile_error"] == 4
    assert (g["verdicts"]["java"]["runtime_error"], g["verdicts"]["java"]["timeout"],
            g["verdicts"]["java"]["harness_error"], g["verdicts"]["java"]["passed"]) == (3, 3, 1, 0)
    assert t["verdicts"]["java->python"]["passed"] == 3


def budget_share(alloc: dict) -> float:
    """Expected share of the 2 problems solved with ``alloc`` samples a problem per language."""
    total = 0.0
    for p in (0, 1):
        fail = 1.0
        for lang, k in alloc.items():
            n, c = GEN_COUNTS[lang][p]
            fail *= math.comb(n - c, k) / math.comb(n, k)
        total += 1 - fail
    return total / 2


def test_summary_json_budget_table(two_runs):
    _, _, out, _ = two_runs
    g, t = json.loads((out / "summary.json").read_text())["runs"]
    assert t["budget"] is None  # no generation samples
    # rates: python 2/3, cpp 1/3, java 0; 3 samples a language at most. Allocations (python, cpp, java) by hand:
    allocations = {
        BEST: {1: (1, 0, 0), 2: (2, 0, 0), 3: (3, 0, 0)},
        # B/3 each, remainders to the higher pass rate first
        UNIFORM: {1: (1, 0, 0), 2: (1, 1, 0), 3: (1, 1, 1), 4: (2, 1, 1), 6: (2, 2, 2), 8: (3, 3, 2)},
        # B * (2/3, 1/3, 0), largest remainders
        WEIGHTED: {1: (1, 0, 0), 2: (1, 1, 0), 3: (2, 1, 0), 4: (3, 1, 0)},
    }
    assert set(g["budget"]) == set(allocations)
    for strategy, per_budget in allocations.items():
        assert sorted(g["budget"][strategy], key=int) == [str(b) for b in per_budget], strategy
        for b, (py, cpp, java) in per_budget.items():
            expected = budget_share({"python": py, "cpp": cpp, "java": java})
            assert g["budget"][strategy][str(b)] == pytest.approx(expected), (strategy, b)
    assert g["budget"][BEST] == pytest.approx({"1": 2 / 3, "2": 5 / 6, "3": 1.0})
    assert g["budget"][UNIFORM]["8"] == pytest.approx(1.0) and g["budget"][WEIGHTED]["3"] == pytest.approx(5 / 6)


def pct(x: float) -> str:
    return f"{100 * x:.1f}"


def test_summary_markdown(two_runs):
    _, _, out, summary = two_runs
    md = (out / "summary.md").read_text()
    assert md.startswith("# HumanEval-X results")
    assert "## tiny-model" in md and "## trans" in md
    assert "- backend native, task generation, n=3, T=0.8, top-p=0.95, max_new_tokens=64, seed=5, limit=2" in md
    assert "| group | problems | samples | pass@1 | pass@2 |" in md
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    for group in ("python", "cpp", "java", "python->cpp", "java->python"):  # one row a group (+ matrix rows)
        assert sum(re.match(rf"\| {group} \| \d+ \| \d+ \| ", line) is not None for line in rows) == 1, group
    # the python row: pass@1 2/3, pass@2 5/6, with their intervals as written in summary.json
    cell = summary["runs"][0]["groups"]["python"]["pass@k"]
    lo1, hi1 = cell["pass@1"]["ci95"]
    lo2, hi2 = cell["pass@2"]["ci95"]
    assert (f"| python | 2 | 6 | {pct(2 / 3)} [{pct(lo1)}, {pct(hi1)}] | {pct(5 / 6)} [{pct(lo2)}, {pct(hi2)}] |"
            in rows)
    assert "| java | 2 | 6 | 0.0 [0.0, 0.0] | 0.0 [0.0, 0.0] |" in rows
    assert any(line.startswith("| python->cpp | 2 | 2 | 50.0 [") and line.endswith("| – |") for line in rows)
    assert "| java->python | 2 | 4 | 75.0 [" in md and "| 100.0 [100.0, 100.0] |" in md

    # translation matrix: sources are rows, targets columns, languages in HumanEval-X order
    assert "| source \\ target | python | cpp | java |" in md
    assert "| python | – | 50.0 | – |" in rows
    assert "| cpp | – | – | – |" in rows
    assert "| java | 75.0 | – | – |" in rows

    # the budget table (generation run only); B=12 needs 4 samples a language in every strategy: no column
    assert md.count("| strategy | B=1 | B=2 | B=3 | B=4 | B=6 | B=8 |\n") == 1
    assert f"| best single language | {pct(2 / 3)} | {pct(5 / 6)} | 100.0 | – | – | – |" in rows
    uniform = [budget_share(a) for a in ({"python": 1}, {"python": 1, "cpp": 1}, {"python": 1, "cpp": 1, "java": 1},
                                         {"python": 2, "cpp": 1, "java": 1}, {"python": 2, "cpp": 2, "java": 2},
                                         {"python": 3, "cpp": 3, "java": 2})]
    assert "| uniform | " + " | ".join(pct(x) for x in uniform) + " |" in rows
    weighted = [2 / 3, 2 / 3, 5 / 6, 1.0]
    assert "| weighted by pass rate | " + " | ".join(pct(x) for x in weighted) + " | – | – |" in rows

    # the figures are linked
    for name in summary["figures"]:
        assert f"]({name})" in md


def test_summary_figures_are_pngs(two_runs):
    _, _, out, summary = two_runs
    figures = summary["figures"]
    assert {"pass_at_1.png", "pass_at_2.png"} <= set(figures)
    # per run: verdicts; generation: per-problem pass rate and budget; translation: the matrix
    assert sum("verdict" in f for f in figures) == 2
    assert sum("budget" in f for f in figures) == 1
    assert sum("translation" in f for f in figures) == 1
    assert sum("pass_rate" in f for f in figures) == 1
    assert sorted(p.name for p in out.glob("*.png")) == sorted(figures)
    for name in figures:
        data = (out / name).read_bytes()
        assert data[:8] == PNG_MAGIC, name
        assert len(data) > 5000, (name, len(data))


def test_runs_with_the_same_model_are_told_apart(tmp_path):
    a, b = generation_run(tmp_path / "first"), generation_run(tmp_path / "second")
    summary = summarize_runs([a, b], tmp_path / "out", ks=(1,), budgets=(1,), iterations=50)
    names = [r["name"] for r in summary["runs"]]
    assert len(set(names)) == 2
    assert all("tiny-model" in n for n in names)
    md = (tmp_path / "out" / "summary.md").read_text()
    assert all(f"## {n}\n" in md for n in names)
    pngs = list((tmp_path / "out").glob("*.png"))
    assert len(pngs) == len(summary["figures"]) == len(set(summary["figures"]))


def test_same_model_in_same_named_directories_are_told_apart(tmp_path):
    a, b = generation_run(tmp_path / "a" / "eval"), generation_run(tmp_path / "b" / "eval")
    summary = summarize_runs([a, b], tmp_path / "out", ks=(1,), budgets=(1,), iterations=50)
    names = [r["name"] for r in summary["runs"]]
    assert len(set(names)) == 2
    assert len(set(summary["figures"])) == len(summary["figures"])


# --- the CLI ------------------------------------------------------------------------------------------


def _geex(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "geex", *args], capture_output=True, text=True, timeout=300)


def test_report_cli(tmp_path):
    gen, trans = generation_run(tmp_path / "gen"), translation_run(tmp_path / "trans")
    out = tmp_path / "report"
    r = _geex("humanevalx", "report", str(gen), str(trans), "--out", str(out), "--k", "1,2", "--bootstrap", "200")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("# HumanEval-X results")
    assert "(200 resamples)" in r.stdout
    assert "| group | problems | samples | pass@1 | pass@2 |" in r.stdout
    assert "| java | 2 | 6 | 0.0 [0.0, 0.0] | 0.0 [0.0, 0.0] |" in r.stdout
    assert "| python | – | 50.0 | – |" in r.stdout
    assert r.stdout.strip() == (out / "summary.md").read_text().strip()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ks"] == [1, 2] and summary["bootstrap"]["iterations"] == 200
    assert summary["runs"][0]["groups"]["python"]["pass@k"]["pass@1"]["mean"] == pytest.approx(2 / 3)
    assert f"{len(summary['figures'])} figures" in r.stderr


def test_report_cli_directory_without_results(tmp_path):
    gen = generation_run(tmp_path / "gen")
    (tmp_path / "empty").mkdir()
    r = _geex("humanevalx", "report", str(gen), str(tmp_path / "empty"), "--out", str(tmp_path / "out"))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert "geex: error:" in r.stderr and str(tmp_path / "empty") in r.stderr and "results.jsonl" in r.stderr


def test_prompt_styles_side_by_side(tmp_path):
    """One model under three prompt styles: each run is named by its style, and one table puts their
    pass@1 next to each other (the chat run solves Python/1 too: 2/2 against 1/2 ... by hand)."""
    chat = {**HEADER, "template": "chat/1", "prompt_style": {"style": "chat", "system": None}}
    shots = {**HEADER, "template": "few-shot/1", "prompt_style": {"style": "few-shot", "shots": 3, "seed": 0}}
    runs = [write_run(tmp_path / "completion", samples_of("Python/0", 3) + samples_of("Python/1", 0), HEADER),
            write_run(tmp_path / "chat", samples_of("Python/0", 3) + samples_of("Python/1", 3), chat),
            write_run(tmp_path / "shots", samples_of("Python/0", 0) + samples_of("Python/1", 0), shots)]
    summary = summarize_runs(runs, tmp_path / "out", ks=(1,), budgets=(1,), iterations=50)
    assert [r["name"] for r in summary["runs"]] == ["tiny-model", "tiny-model [chat]", "tiny-model [3-shot]"]
    md = (tmp_path / "out" / "summary.md").read_text()
    assert "| group | tiny-model | tiny-model [chat] | tiny-model [3-shot] |" in md
    row = next(line for line in md.splitlines() if line.startswith("| python | 50.0 ["))
    assert row.count(" | ") == 3 and "| 100.0 [100.0, 100.0] | 0.0 [0.0, 0.0] |" in row


def test_a_run_evaluated_from_samples_kept_elsewhere_is_named_by_their_header(tmp_path):
    """``geex humanevalx evaluate SAMPLES --out DIR`` leaves the samples where they are; their header
    (model, prompt style) is found through DIR/run.json — unless the file changed since."""
    import hashlib

    chat = {**HEADER, "template": "chat/1", "prompt_style": {"style": "chat", "system": None}}
    run = write_run(tmp_path / "eval", samples_of("Python/0", 1))
    samples = tmp_path / "kept" / "chat.jsonl"
    samples.parent.mkdir()
    samples.write_text(json.dumps(chat) + "\n")
    (run / "samples.jsonl").unlink(missing_ok=True)
    record = {"samples": str(samples), "samples_sha256": hashlib.sha256(samples.read_bytes()).hexdigest()}
    (run / "run.json").write_text(json.dumps(record))
    names = lambda: [r["name"] for r in summarize_runs([run], tmp_path / "out", ks=(1,), budgets=(1,),  # noqa: E731
                                                        iterations=10)["runs"]]
    assert names() == ["tiny-model [chat]"]
    samples.write_text(json.dumps({**chat, "model": "another"}) + "\n")  # not the file that was evaluated
    assert names() == ["eval"]


def test_figure_names_are_plain_file_names():
    """A run named "model [3-shot] (dir)" gives figures named model_3-shot_dir, no brackets or runs of _."""
    from geex.humanevalx.reporting.report import _slug

    assert _slug("smollm2-135m-instruct [3-shot] (generation-few-shot-3)") == \
        "smollm2-135m-instruct_3-shot_generation-few-shot-3"
    assert _slug("a/b: c") == "a_b_c" and _slug("[]") == "run"
