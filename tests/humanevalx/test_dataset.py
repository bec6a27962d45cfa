"""Loading HumanEval-X problems: local directories, errors, and the Hub path when offline."""

from __future__ import annotations

import gzip
import json
import shutil

import pytest

from geex.errors import UserError
from geex.humanevalx.dataset import ENV_DATASET, load_language, load_problems
from geex.languages import HUMANEVALX_LANGUAGES, get_language


@pytest.mark.parametrize("lang", HUMANEVALX_LANGUAGES, ids=lambda l: l.name)
def test_every_language_has_164_problems_in_order(lang, dataset_dir):
    problems = load_language(lang, dataset_dir, original=True)
    assert [p.number for p in problems] == list(range(164))
    assert all(p.task_id.startswith(lang.task_prefix + "/") for p in problems)
    assert all(p.prompt and p.declaration and p.canonical_solution and p.test for p in problems)


def test_go_keeps_extra_fields(dataset_dir):
    go = load_language(get_language("go"), dataset_dir, original=True)[0]
    assert go.get("test_setup").startswith("package main")
    assert go.get("import").startswith("import")


def test_rust_example_test_none_is_missing(dataset_dir):
    rust = load_language(get_language("rust"), dataset_dir, original=True)[0]
    assert rust.example_test is None


def test_plain_jsonl_directory(tmp_path, dataset_dir):
    with gzip.open(dataset_dir / "humaneval_js.jsonl.gz", "rt") as f:
        (tmp_path / "humaneval_js.jsonl").write_text(f.read())
    assert len(load_language(get_language("js"), tmp_path, original=True)) == 164


def test_env_variable_is_used(monkeypatch, dataset_dir):
    monkeypatch.setenv(ENV_DATASET, str(dataset_dir))
    assert len(load_problems([get_language("python")])) == 164


def test_missing_language_file_names_it(tmp_path):
    with pytest.raises(UserError, match="humaneval_cpp.jsonl.gz"):
        load_language(get_language("cpp"), tmp_path)


def test_bad_json_line_names_file_and_line(tmp_path, dataset_dir):
    rows = [json.loads(l) for l in gzip.open(dataset_dir / "humaneval_python.jsonl.gz", "rt")][:3]
    text = "\n".join(json.dumps(r) for r in rows[:2]) + "\n{not json\n"
    (tmp_path / "humaneval_python.jsonl").write_text(text)
    with pytest.raises(UserError, match=r"humaneval_python.jsonl:3: not valid JSON"):
        load_language(get_language("python"), tmp_path)


def test_problem_lacking_a_field(tmp_path, dataset_dir):
    row = json.loads(gzip.open(dataset_dir / "humaneval_python.jsonl.gz", "rt").readline())
    del row["test"]
    (tmp_path / "humaneval_python.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(UserError, match=r":1: problem lacks field\(s\) test"):
        load_language(get_language("python"), tmp_path)


def test_task_of_another_language_is_rejected(tmp_path, dataset_dir):
    shutil.copy(dataset_dir / "humaneval_cpp.jsonl.gz", tmp_path / "humaneval_java.jsonl.gz")
    with pytest.raises(UserError, match="not a Java task"):
        load_language(get_language("java"), tmp_path)


def test_hub_offline_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.delenv(ENV_DATASET, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(UserError, match="Offline\\? Pass `dataset`=DIR"):
        load_language(get_language("python"))


def test_hub_has_no_rust(monkeypatch):
    monkeypatch.delenv(ENV_DATASET, raising=False)
    with pytest.raises(UserError, match="has no Rust data"):
        load_language(get_language("rust"))
