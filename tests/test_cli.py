"""The CLI: help texts, and user mistakes reported in one line (exit 2), never as a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from geex.cli import main


def _geex(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "geex", *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args", [["--help"], ["humanevalx", "--help"], ["humanevalx", "evaluate", "--help"],
                                  ["doctor", "--help"]])
def test_help(args):
    r = _geex(*args)
    assert r.returncode == 0
    assert "usage: geex" in r.stdout


def test_evaluate_help_explains_inputs():
    out = _geex("humanevalx", "evaluate", "--help").stdout
    for word in ("canonical", "--languages", "--out", "--workers", "--timeout", "--dataset", "--original", "resume"):
        assert word in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["humanevalx", "evaluate", "/nonexistent/samples.jsonl"], "does not exist"),
        (["humanevalx", "evaluate", "canonical", "--languages", "cobol"], "unknown language 'cobol'"),
        (["humanevalx", "evaluate", "canonical", "--dataset", "/nonexistent-dir"], "is not a directory"),
    ],
)
def test_user_errors_are_one_line(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert err.count("\n") == 1


def test_bad_option_value_exits_2():
    r = _geex("humanevalx", "evaluate", "canonical", "--workers", "0")
    assert r.returncode == 2
    assert "must be at least 1" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("value", ["nan", "-1", "0", "inf", "soon"])
def test_bad_timeout_is_rejected(value):
    r = _geex("humanevalx", "evaluate", "canonical", "--timeout", value)
    assert r.returncode == 2
    assert "--timeout" in r.stderr
    assert "Traceback" not in r.stderr


def test_unwritable_output_directory_is_a_user_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["humanevalx", "evaluate", "canonical", "--languages", "python", "--out", str(blocker / "out")]) == 2
    err = capsys.readouterr().err
    assert "cannot write the output directory" in err and "Traceback" not in err
