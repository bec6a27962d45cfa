"""Reading samples files: accepted layouts, and malformed input reported with file and line."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from geex.cli import main
from geex.errors import UserError
from geex.humanevalx.samples import read_samples
from geex.languages import get_language


def write_lines(path: Path, lines: list[str | dict]) -> Path:
    text = "".join((json.dumps(x) if isinstance(x, dict) else x) + "\n" for x in lines)
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------ valid
def test_generation_and_completion_fields(tmp_path) -> None:
    path = write_lines(tmp_path / "s.jsonl", [
        {"task_id": "Python/0", "generation": "    return True\n", "prompt": "ignored", "finish": 2},
        {"task_id": "CPP/3", "completion": "    return 1;\n}\n"},
    ])
    a, b = read_samples(path)
    assert (a.task_id, a.language.name, a.completion, a.completion_id, a.line) == ("Python/0", "python", "    return True\n", 0, 1)
    assert (b.task_id, b.language.name, b.completion, b.completion_id, b.line) == ("CPP/3", "cpp", "    return 1;\n}\n", 0, 2)
    assert a.source_language is None
    assert (a.sample_id, b.sample_id) == ("Python/0#0", "CPP/3#0")


def test_header_line_is_skipped_and_blank_lines_ignored(tmp_path) -> None:
    path = write_lines(tmp_path / "s.jsonl", [
        {"geex": "samples/1", "model": "codegeex-13b", "temperature": 0.2},
        "",
        {"task_id": "JavaScript/1", "generation": "  return [];\n}\n"},
        "   ",
        {"task_id": "Go/1", "generation": "    return nil\n}\n"},
    ])
    samples = read_samples(path)
    assert [(s.task_id, s.line) for s in samples] == [("JavaScript/1", 3), ("Go/1", 5)]


def test_gzip_file(tmp_path) -> None:
    path = tmp_path / "s.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        for i in range(3):
            f.write(json.dumps({"task_id": "Rust/5", "generation": f"    vec![{i}]\n}}\n"}) + "\n")
    samples = read_samples(path)
    assert [s.completion for s in samples] == ["    vec![0]\n}\n", "    vec![1]\n}\n", "    vec![2]\n}\n"]
    assert [s.completion_id for s in samples] == [0, 1, 2]


def test_completion_id_auto_numbering_per_task(tmp_path) -> None:
    path = write_lines(tmp_path / "s.jsonl", [
        {"task_id": "Python/0", "generation": "a"},
        {"task_id": "Python/1", "generation": "b"},
        {"task_id": "Python/0", "generation": "c"},
        {"task_id": "Python/0", "generation": "d", "completion_id": 7},
        {"task_id": "Python/0", "generation": "e"},  # continues after the largest id seen
        {"task_id": "Python/1", "generation": "f"},
    ])
    got = [(s.task_id, s.completion_id) for s in read_samples(path)]
    assert got == [("Python/0", 0), ("Python/1", 0), ("Python/0", 1), ("Python/0", 7), ("Python/0", 8), ("Python/1", 1)]


def test_translation_source_language(tmp_path) -> None:
    path = write_lines(tmp_path / "s.jsonl", [
        {"task_id": "CPP/0", "generation": "x", "source_language": "python"},
        {"task_id": "CPP/0", "generation": "y", "source_language": "JavaScript"},
        {"task_id": "CPP/0", "generation": "z"},
        {"task_id": "CPP/0", "generation": "w", "source_language": "py"},
    ])
    a, b, c, d = read_samples(path)
    assert a.source_language == get_language("python") and a.language == get_language("cpp")
    assert b.source_language == get_language("js")
    assert c.source_language is None
    # numbering is per (source, target): no clash between the pairs
    assert [(s.sample_id, s.completion_id) for s in (a, b, c, d)] == [
        ("python->CPP/0#0", 0), ("js->CPP/0#0", 0), ("CPP/0#0", 0), ("python->CPP/0#1", 1),
    ]


def test_language_field_consistent_with_task_is_accepted(tmp_path) -> None:
    path = write_lines(tmp_path / "s.jsonl", [{"task_id": "JavaScript/3", "generation": "x", "language": "js"}])
    assert read_samples(path)[0].language.name == "js"


# -------------------------------------------------------------------------------- malformed
MALFORMED = [
    ("bad_json", ['{"task_id": "Python/0", "generation": "x"}', '{"task_id": "Python/1", "generation": '], 2,
     "not valid JSON"),
    ("not_object", ['{"task_id": "Python/0", "generation": "x"}', "[1, 2]"], 2, "expected a JSON object"),
    ("missing_task_id", [{"generation": "x"}], 1, "task_id"),
    ("non_string_task_id", [{"task_id": 3, "generation": "x"}], 1, "task_id"),
    ("non_string_completion", [{"task_id": "Python/0", "generation": "ok"}, {"task_id": "Python/0", "completion": 5}], 2,
     "'generation' or 'completion'"),
    ("no_completion", [{"task_id": "Python/0"}], 1, "'generation' or 'completion'"),
    ("unknown_language", [{"task_id": "Python/0", "generation": "x"}, {"task_id": "Kotlin/0", "generation": "x"}], 2,
     "unknown language 'Kotlin'"),
    ("malformed_task_id", [{"task_id": "Python-0", "generation": "x"}], 1, "malformed task id"),
    ("unknown_source_language", [{"task_id": "CPP/0", "generation": "x", "source_language": "cobol"}], 1,
     "unknown language 'cobol'"),
    ("unknown_declared_language", [{"task_id": "CPP/0", "generation": "x", "language": "cobol"}], 1,
     "unknown language 'cobol'"),
    ("contradicting_language", [{"task_id": "CPP/0", "generation": "x", "language": "python"}], 1, "contradicts"),
    ("duplicate", [{"task_id": "Go/3", "generation": "a"}, {"task_id": "Go/4", "generation": "b"},
                   {"task_id": "Go/3", "generation": "c", "completion_id": 0}], 3, "duplicate sample Go/3#0"),
    ("bad_completion_id", [{"task_id": "Go/3", "generation": "a", "completion_id": "1"}], 1, "completion_id"),
    ("negative_completion_id", [{"task_id": "Go/3", "generation": "a", "completion_id": -1}], 1, "completion_id"),
    ("header_after_samples", [{"task_id": "Go/3", "generation": "a"}, {"geex": "samples/1"}], 2, "task_id"),
]


@pytest.mark.parametrize("name, lines, lineno, message", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_lines_name_file_and_line(tmp_path, name, lines, lineno, message) -> None:
    path = write_lines(tmp_path / f"{name}.jsonl", lines)
    with pytest.raises(UserError) as err:
        read_samples(path)
    text = str(err.value)
    assert text.startswith(f"{path}:{lineno}: "), text
    assert message in text


def test_non_utf8_names_file_and_line(tmp_path) -> None:
    path = tmp_path / "latin1.jsonl"
    good = json.dumps({"task_id": "Python/0", "generation": "x"}).encode()
    bad = '{"task_id": "Python/1", "generation": "# café"}'.encode("latin-1")
    path.write_bytes(good + b"\n" + good.replace(b"Python/0", b"Python/2") + b"\n" + bad + b"\n")
    with pytest.raises(UserError) as err:
        read_samples(path)
    assert str(err.value).startswith(f"{path}:3: ")
    assert "UTF-8" in str(err.value)


def test_non_utf8_in_gzip_names_file_and_line(tmp_path) -> None:
    path = tmp_path / "s.jsonl.gz"
    with gzip.open(path, "wb") as f:
        f.write(b'{"task_id": "Python/0", "generation": "\xff"}\n')
    with pytest.raises(UserError, match=rf"^{path}:1: .*UTF-8"):
        read_samples(path)


def test_utf8_text_is_fine(tmp_path) -> None:
    path = write_lines(tmp_path / "s.jsonl", ['{"task_id": "Python/0", "generation": "    return \'café ✓\'\\n"}'])
    assert read_samples(path)[0].completion == "    return 'café ✓'\n"


@pytest.mark.parametrize("content", ["", "\n\n  \n", json.dumps({"geex": "samples/1"}) + "\n"], ids=["empty", "blank", "header_only"])
def test_empty_file(tmp_path, content) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text(content)
    with pytest.raises(UserError, match=rf"^{path} holds no samples"):
        read_samples(path)


def test_missing_file_and_broken_gzip(tmp_path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        read_samples(tmp_path / "nope.jsonl")
    path = tmp_path / "broken.jsonl.gz"
    data = gzip.compress("".join(json.dumps({"task_id": f"Python/{i}", "generation": "x" * 50}) + "\n"
                                 for i in range(50)).encode())
    path.write_bytes(data[: len(data) // 2])  # a download cut short
    with pytest.raises(UserError, match=rf"^{path}: truncated or corrupt gzip data"):
        read_samples(path)


# ------------------------------------------------------------------------------------ CLI
@pytest.mark.parametrize(
    "lines, expected",
    [
        (['{"task_id": "Python/0", "generation": "x"}', "{oops"], ":2: not valid JSON"),
        ([{"task_id": "Python/0"}], ":1: needs a string 'generation' or 'completion'"),
        ([{"task_id": "Python/0", "generation": "x"}, {"task_id": "Python/0", "generation": "x", "completion_id": 0}],
         ":2: duplicate sample Python/0#0"),
        ([{"task_id": "Python/0", "generation": "x"}, {"task_id": "Python/999", "generation": "x"}],
         ":2: unknown task 'Python/999'"),
    ],
)
def test_cli_reports_one_line_and_exits_2(tmp_path, capsys, lines, expected) -> None:
    path = write_lines(tmp_path / "s.jsonl", lines)
    out = tmp_path / "out"
    assert main(["humanevalx", "evaluate", str(path), "--out", str(out), "--quiet"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"geex: error: {path}{expected}")
    assert captured.err.count("\n") == 1 and captured.err.endswith("\n")
    assert "Traceback" not in captured.err + captured.out
    assert not (out / "results.jsonl").exists()  # nothing evaluated


def test_cli_non_utf8(tmp_path, capsys) -> None:
    path = tmp_path / "s.jsonl"
    path.write_bytes(b'{"task_id": "Python/0", "generation": "\xe9"}\n')
    assert main(["humanevalx", "evaluate", str(path), "--out", str(tmp_path / "out"), "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"geex: error: {path}:1: not UTF-8") and err.count("\n") == 1


def test_lone_surrogate_in_a_completion_does_not_crash(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"task_id": "Python/0", "completion": "    return \\ud800 True\\n"}\n')
    (sample,) = read_samples(path)
    assert sample.completion == "    return ? True\n"  # storable and hashable


def test_non_string_source_language_is_an_error(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"task_id": "Python/0", "completion": "x", "source_language": 3}\n')
    with pytest.raises(UserError, match=r"s.jsonl:1: 'source_language' must be a language name"):
        read_samples(path)
