"""The harness's code identity: which files it covers, and that a change to any of them (and only
to them) changes it; a changed identity keeps a warm cache from answering for the new harness."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import geex
from geex.humanevalx import identity as identity_mod
from geex.humanevalx.dataset import load_language
from geex.humanevalx.evaluate import EvalConfig, evaluate
from geex.humanevalx.identity import closure, harness_identity, identity
from geex.languages import get_language

PACKAGE = Path(geex.__file__).resolve().parent


@pytest.fixture
def copy(tmp_path) -> Path:
    """A copy of the geex package's sources (no caches)."""
    dest = tmp_path / "geex"
    shutil.copytree(PACKAGE, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def _edit(path: Path, text: str = "\n# edited\n") -> None:
    path.write_text(path.read_text() + text)


def test_closure_holds_what_decides_a_verdict():
    files = {p.relative_to(PACKAGE).as_posix() for p in closure(PACKAGE)}
    for needed in ("humanevalx/execution/sandbox.py", "humanevalx/execution/verdict.py", "humanevalx/assembly.py",
                   "humanevalx/execution/runners/__init__.py", "humanevalx/execution/runners/java.py", "humanevalx/execution/runners/go.py",
                   "humanevalx/execution/java/GeexJavac.java", "humanevalx/execution/uids.py", "languages/cleanup.py"):
        assert needed in files
    for outside in ("humanevalx/evaluate.py", "humanevalx/reporting/run_report.py", "humanevalx/reporting/report.py", "cli/__init__.py",
                    "train/loop.py"):
        assert outside not in files


def test_identity_is_the_contents_not_the_place(copy):
    assert identity(copy) == identity(PACKAGE) == harness_identity()


@pytest.mark.parametrize("changed", ["humanevalx/execution/sandbox.py", "humanevalx/execution/verdict.py", "humanevalx/execution/runners/rust.py",
                                     "humanevalx/execution/java/GeexJavac.java", "languages/cleanup.py"])
def test_a_change_inside_changes_it(copy, changed):
    before = identity(copy)
    _edit(copy / changed, "\n// edited\n" if changed.endswith(".java") else "\n# edited\n")
    assert identity(copy) != before


@pytest.mark.parametrize("changed", ["humanevalx/reporting/run_report.py", "humanevalx/evaluate.py", "train/loop.py"])
def test_a_change_outside_keeps_it(copy, changed):
    before = identity(copy)
    _edit(copy / changed)
    assert identity(copy) == before


def test_a_new_module_imported_by_a_runner_joins_without_a_list(copy):
    (copy / "humanevalx" / "newdep.py").write_text("X = 1\n")
    before = identity(copy)  # not imported yet: outside
    _edit(copy / "humanevalx" / "newdep.py")
    assert identity(copy) == before
    runner = copy / "humanevalx" / "execution" / "runners" / "python.py"
    runner.write_text(runner.read_text().replace("from __future__ import annotations\n",
                                                 "from __future__ import annotations\n\nfrom ... import newdep\n", 1))
    with_import = identity(copy)
    assert with_import != before
    assert copy / "humanevalx" / "newdep.py" in closure(copy)
    _edit(copy / "humanevalx" / "newdep.py", "Y = 2\n")
    assert identity(copy) != with_import


@pytest.mark.toolchains
def test_a_harness_change_is_not_masked_by_a_warm_cache(tmp_path, monkeypatch, cache_dir, executions):
    executed = executions
    task = next(p for p in load_language(get_language("python")) if p.task_id == "Python/0")
    samples = tmp_path / "s.jsonl"
    samples.write_text(json.dumps({"task_id": "Python/0", "completion": task.canonical_solution}) + "\n")

    def run(out: str) -> dict:
        evaluate(EvalConfig(samples=str(samples), out_dir=tmp_path / out, workers=1, progress=False))
        return json.loads((tmp_path / out / "results.jsonl").read_text())

    for out in ("a", "b"):  # seen, then confirmed: the cache now answers without running
        run(out)
    executed.clear()
    assert run("c")["cached"] and executed == []
    monkeypatch.setattr(identity_mod, "harness_identity", lambda: "a-changed-harness")
    again = run("d")
    assert executed and not again["cached"] and again["verdict"] == "passed"
