"""The paper's protocol: the table takes pass@1 from the T=0.2 runs and pass@10/100 from the T=0.8 runs
(values worked out by hand from the counts), and ``geex humanevalx paper`` runs the four runs with
those temperatures, resumably, and writes the table and the report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from math import comb

import pytest

from geex.humanevalx.reporting.paper import paper_table, to_markdown

from .test_report import samples_of, write_run


def test_each_k_comes_from_its_temperature(tmp_path):
    # T=0.2: 3 samples a problem; Python/0 1 passes, Python/1 3 pass -> pass@1 = (1/3 + 1) / 2
    cold = write_run(tmp_path / "cold", samples_of("Python/0", 1) + samples_of("Python/1", 3))
    # T=0.8: 12 samples a problem; Python/0 1 passes, Python/1 none -> pass@10 = (1 - C(11,10)/C(12,10)) / 2
    hot = write_run(tmp_path / "hot", samples_of("Python/0", 1, n=12) + samples_of("Python/1", 0, n=12))
    table = paper_table({0.2: [cold], 0.8: [hot]}, iterations=200)
    row = table["groups"]["python"]
    assert row["pass@1"]["mean"] == pytest.approx((1 / 3 + 1) / 2)
    assert row["pass@1"]["temperature"] == 0.2
    assert row["pass@10"]["mean"] == pytest.approx((1 - comb(11, 10) / comb(12, 10)) / 2)
    assert row["pass@10"]["temperature"] == 0.8
    assert "pass@100" not in row  # 12 samples cannot estimate it
    low, high = row["pass@1"]["ci95"]
    assert 1 / 3 - 1e-9 <= low <= row["pass@1"]["mean"] <= high <= 1
    md = to_markdown(table, "t")
    assert "| python | 66.67 [" in md and "| – |" in md


@pytest.mark.toolchains
def test_the_paper_command_runs_both_temperatures_and_resumes(tmp_path):
    out = tmp_path / "paper"
    cmd = [sys.executable, "-m", "geex", "humanevalx", "paper", "--out", str(out), "--languages", "python",
           "--pairs", "python:js", "-n", "2", "--limit", "1", "--max-new-tokens", "16", "--quiet", "--no-cache"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    runs = {}
    for task in ("generation", "translation"):
        for t in (0.2, 0.8):
            header = json.loads((out / f"{task}-t{t}" / "samples.jsonl").read_text().splitlines()[0])
            assert (header["task"], header["sampling"]["temperature"], header["sampling"]["top_p"], header["n"]) == \
                (task, t, 0.95, 2)
            runs[task, t] = [json.loads(line) for line in (out / f"{task}-t{t}" / "results.jsonl").read_text().splitlines()]
    table = json.loads((out / "paper.json").read_text())
    assert list(table["groups"]) == ["python", "python->js"]
    for group, task in (("python", "generation"), ("python->js", "translation")):  # 1 problem: the pass rate
        rows = runs[task, 0.2]
        assert len(rows) == 2
        assert table["groups"][group]["pass@1"]["mean"] == pytest.approx(sum(r["passed"] for r in rows) / 2)
    assert (out / "paper.md").read_text() in first.stdout and (out / "report" / "summary.md").is_file()
    before = {p: p.read_bytes() for p in out.rglob("samples.jsonl")}
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and again.stderr.count("resuming: 2 of 2 samples") == 4, again.stderr[-2000:]
    assert {p: p.read_bytes() for p in out.rglob("samples.jsonl")} == before
