"""The CLI: help texts, and user mistakes reported in one line (exit 2), never as a traceback."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys

import pytest

from geex.cli import build_parser, main


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


# ------------------------------------------------------------------------------ options, across commands
def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command words, parser) of every command and subcommand."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*path, name))


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions
            if not isinstance(a, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction))]


def test_every_option_and_command_says_what_it_does():
    """Help text that only gives a default, "(default 512)", does not say what the option does."""
    vague = []
    for path, parser in _commands(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                vague += [f"{' '.join(path)} {c.dest}: command help {c.help!r}" for c in action._choices_actions
                          if len(re.findall(r"\w+", c.help or "")) < 3]
        for action in _options(parser):
            if action.help == argparse.SUPPRESS:  # a hidden old spelling: its visible twin must explain it
                assert any(a.dest == action.dest and a.help != argparse.SUPPRESS for a in _options(parser))
                continue
            words = re.findall(r"\w+", re.sub(r"\([^)]*\)", "", action.help or ""))
            if len(words) < 2:
                vague.append(f"geex {' '.join(path)} {'/'.join(action.option_strings) or action.dest}: {action.help!r}")
    assert not vague, "\n".join(vague)


SHARED = {"--out": "-o", "--quiet": "-q", "--workers": "-j", "--languages": "-l"}
WHERE = {  # the shared options each command takes: those that apply to it
    "doctor": {"--languages"},
    "model convert": set(),
    "data build": {"--out", "--quiet", "--workers"},
    "data pack": {"--out", "--quiet", "--workers"},
    "tokenizer train": {"--out", "--quiet"},
    "train": {"--out", "--quiet"},
    "generate": {"--quiet"},
    "serve": set(),
    "humanevalx evaluate": {"--out", "--quiet", "--workers", "--languages"},
    "humanevalx report": {"--out"},
    "humanevalx generate": {"--out", "--quiet", "--languages"},
    "humanevalx run": {"--out", "--quiet", "--workers", "--languages"},
    "humanevalx paper": {"--out", "--quiet", "--workers", "--languages"},
}


def test_shared_options_are_spelt_the_same_everywhere():
    leaves = {" ".join(path): parser for path, parser in _commands(build_parser())
              if path and not any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)}
    assert set(leaves) == set(WHERE)
    for name, parser in leaves.items():
        found = set()
        for action in _options(parser):
            spellings = set(action.option_strings)
            for long, short in SHARED.items():
                if long in spellings or short in spellings:
                    assert {long, short} <= spellings, f"geex {name}: {action.option_strings} (want {long}/{short})"
                    found.add(long)
        assert found == WHERE[name], f"geex {name}: {sorted(found)}"


def test_train_out_is_run_out():
    from geex.cli.train import _train_overrides
    from geex.train.config import load_config

    args = build_parser().parse_args(["train", "--set", "run.out=a", "-o", "b", "--set", "optim.lr=0.1"])
    cfg = load_config(None, _train_overrides(args))
    assert (cfg.run.out, cfg.optim.lr) == ("b", 0.1)


def test_doctor_checks_only_the_languages_given():
    r = _geex("doctor", "-l", "python")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Python" in r.stdout and "C++" not in r.stdout and "Rust" not in r.stdout
