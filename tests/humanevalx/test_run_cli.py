"""``geex humanevalx run`` end to end on the CPU with the default model: generate, then evaluate, into
one directory; a re-run resumes both steps without generating again."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

TAGS = {"python": "# language: Python", "js": "// language: JavaScript"}
VERDICTS = {"passed", "wrong_answer", "compile_error", "runtime_error", "timeout", "resource_limit", "harness_error"}


def _run(args: list[str], cwd: Path, env: dict) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "geex", "humanevalx", "run", *args], capture_output=True, text=True,
                       timeout=300, cwd=cwd, env=env)
    return r, time.monotonic() - start


@pytest.fixture
def env(tmp_path, dataset_dir) -> dict:
    return {**os.environ, "GEEX_HUMANEVALX": str(dataset_dir), "GEEX_CACHE": str(tmp_path / "geex-cache")}


def _rows(dataset_dir: Path, lang: str) -> dict[str, dict]:
    with gzip.open(dataset_dir / f"humaneval_{lang}.jsonl.gz", "rt", encoding="utf-8") as f:
        return {r["task_id"]: r for r in map(json.loads, filter(str.strip, f))}


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def test_run_generation_then_rerun_resumes(tmp_path, env, dataset_dir):
    out = tmp_path / "run"
    args = ["--languages", "python,js", "--limit", "2", "--greedy", "--max-new-tokens", "64", "--out", str(out), "-q"]
    first, first_s = _run(args, tmp_path, env)
    assert first.returncode == 0, first.stderr

    header, *samples = _jsonl(out / "samples.jsonl")
    assert header["geex"] == "samples/1" and header["languages"] == ["python", "js"]
    assert header["sampling"]["greedy"] is True and header["max_new_tokens"] == 64
    assert [(s["task_id"], s["completion_id"]) for s in samples] == [
        ("Python/0", 0), ("Python/1", 0), ("JavaScript/0", 0), ("JavaScript/1", 0)]
    for s in samples:
        lang = s["language"]
        assert s["prompt"] == TAGS[lang] + "\n" + _rows(dataset_dir, lang)[s["task_id"]]["prompt"]
        assert s["finish_reason"] in ("eos", "stop", "length")

    results = _jsonl(out / "results.jsonl")
    assert len(results) == 4
    assert sorted(r["task_id"] for r in results) == ["JavaScript/0", "JavaScript/1", "Python/0", "Python/1"]
    assert all(r["verdict"] in VERDICTS for r in results)
    report = json.loads((out / "report.json").read_text())
    assert set(report["groups"]) == {"python", "js"}
    for lang in ("python", "js"):
        assert report["groups"][lang]["n_problems"] == 2 and report["groups"][lang]["n_samples"] == 2
    passed = sum(r["verdict"] == "passed" for r in results)
    assert report["overall"]["verdicts"]["passed"] == passed
    assert (out / "report.md").is_file()

    samples_bytes, results_bytes = (out / "samples.jsonl").read_bytes(), (out / "results.jsonl").read_bytes()
    again, again_s = _run(args, tmp_path, env)
    assert again.returncode == 0, again.stderr
    assert (out / "samples.jsonl").read_bytes() == samples_bytes  # nothing generated again
    assert (out / "results.jsonl").read_bytes() == results_bytes  # nothing evaluated again
    assert json.loads((out / "report.json").read_text())["groups"] == report["groups"]
    assert again_s < first_s


def test_run_translation(tmp_path, env, dataset_dir):
    out = tmp_path / "tr"
    r, _ = _run(["--task", "translation", "--pairs", "python:js", "--limit", "1", "--greedy", "--max-new-tokens", "48",
                 "--out", str(out), "-q"], tmp_path, env)
    assert r.returncode == 0, r.stderr
    header, *samples = _jsonl(out / "samples.jsonl")
    assert header["task"] == "translation" and header["pairs"] == ["python:js"]
    (s,) = samples
    py, js = _rows(dataset_dir, "python")["Python/0"], _rows(dataset_dir, "js")["JavaScript/0"]
    assert (s["task_id"], s["language"], s["source_language"]) == ("JavaScript/0", "js", "python")
    assert s["prompt"] == (f"code translation\nPython:\n{py['declaration']}\n{py['canonical_solution'].rstrip()}\n"
                           f"JavaScript:\n{js['declaration']}")
    (res,) = _jsonl(out / "results.jsonl")
    assert res["task_id"] == "JavaScript/0" and res["source_language"] == "python" and res["verdict"] in VERDICTS
    report = json.loads((out / "report.json").read_text())
    assert set(report["groups"]) == {"python->js"}
    assert report["groups"]["python->js"]["n_problems"] == 1 and report["groups"]["python->js"]["n_samples"] == 1


def test_run_user_errors(tmp_path, env):
    r, _ = _run(["--task", "translation", "--limit", "1", "--out", str(tmp_path / "x")], tmp_path, env)
    assert r.returncode == 2 and "--pairs" in r.stderr and "Traceback" not in r.stderr
    r, _ = _run(["--task", "translation", "--pairs", "python:python", "--out", str(tmp_path / "y")], tmp_path, env)
    assert r.returncode == 2 and "Traceback" not in r.stderr
