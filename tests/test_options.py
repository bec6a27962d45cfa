"""One declaration per option (``geex.options``): the parser's arguments come from a config's fields —
default, help and spelling — and the config comes back from what was parsed."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import pytest

from geex.humanevalx.config import EvalConfig
from geex.options import add_options, from_args, k_values, option, positive_int


@dataclass
class Demo:
    required: str
    jobs: int = option(0, "--jobs", "workers (default: all)", short="-j", parse=positive_int)
    ks: tuple[int, ...] = option((1, 10), "--k", "pass@k values (default: {default})", parse=k_values)
    rate: float = option(0.5, "--rate", "how fast (default: {default})", parse=float)
    cache: bool = option(True, "--no-cache", "skip the cache", negate=True)
    plain: int = 7  # no command-line spelling


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_options(p, Demo, ("jobs", "ks", "rate", "cache"))
    return p.parse_args(argv)


def test_defaults_help_and_spelling_come_from_the_fields():
    p = argparse.ArgumentParser()
    add_options(p, Demo, ("ks", "rate", "cache", "jobs"))
    help_text = " ".join(p.format_help().split())
    assert "--k K pass@k values (default: 1,10)" in help_text and "--rate RATE how fast (default: 0.5)" in help_text
    assert "--jobs JOBS, -j JOBS workers (default: all)" in help_text and "--no-cache skip the cache" in help_text
    assert help_text.index("--k K") < help_text.index("--rate") < help_text.index("--no-cache") < help_text.index("--jobs")
    cfg = from_args(Demo, _parse([]), required="x")
    assert cfg == Demo("x")  # nothing given: the declared defaults


def test_given_values_are_parsed_and_negated_switches_turn_fields_off():
    cfg = from_args(Demo, _parse(["-j", "3", "--k", "10,1,10", "--rate", "2", "--no-cache"]), required="y")
    assert (cfg.jobs, cfg.ks, cfg.rate, cfg.cache, cfg.plain) == (3, (1, 10), 2.0, False, 7)
    assert from_args(Demo, _parse([]), required="y", plain=9).plain == 9  # the command's own values


def test_a_field_the_command_does_not_offer_keeps_its_default():
    p = argparse.ArgumentParser()
    add_options(p, Demo, ("jobs",))
    cfg = from_args(Demo, p.parse_args([]), required="z")
    assert (cfg.ks, cfg.cache) == ((1, 10), True)
    with pytest.raises(TypeError, match="Demo.required needs a value"):
        from_args(Demo, p.parse_args([]))


def test_bad_values_are_argparse_errors(capsys):
    with pytest.raises(SystemExit) as e:
        _parse(["--jobs", "0"])
    assert e.value.code == 2 and "must be at least 1" in capsys.readouterr().err


def test_evaluate_and_run_take_the_same_evaluation_options():
    """The evaluation options of both commands come from EvalConfig: same spellings, same defaults."""
    from geex.cli import build_parser

    def options(*path: str) -> dict:
        parser = build_parser()
        for name in path:
            parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
        return {a.option_strings[0]: (a.default, a.help) for a in parser._actions
                if a.dest in ("workers", "ks", "timeout_s", "use_cache")}

    assert options("humanevalx", "evaluate") == options("humanevalx", "run")
    assert set(options("humanevalx", "run")) == {"--workers", "--k", "--timeout", "--no-cache"}
    cfg = from_args(EvalConfig, build_parser().parse_args(
        ["humanevalx", "run", "--out", "o", "--timeout", "3", "--no-cache", "--k", "1"]), samples="s", out_dir=Path("o"))
    assert (cfg.timeout_s, cfg.use_cache, cfg.ks, cfg.clean, cfg.workers) == (3.0, False, (1,), True, 0)


@dataclass
class Styled:
    kind: str = option("a", "--kind", "one of a, b (default {default})", choices=("a", "b"))
    rate: float = option(1.0, "--rate", "how fast (default {default})", parse=float, command_default=0.2)
    count: int = option(3, "--count", "how many (default {default})", parse=positive_int, only_if_given=True)
    fast: bool = option(False, "--fast", "go fast")


def test_choices_command_defaults_explicit_values_and_switches():
    p = argparse.ArgumentParser()
    add_options(p, Styled, ("kind", "rate", "count", "fast"))
    help_text = " ".join(p.format_help().split())
    assert "how fast (default 0.2)" in help_text and "how many (default 3)" in help_text
    nothing = p.parse_args([])
    assert "count" not in vars(nothing)  # only a typed value is there: a command can tell it from the default
    assert from_args(Styled, nothing) == Styled(rate=0.2)  # the command line's default, not the library's
    given = p.parse_args(["--kind", "b", "--count", "3", "--fast", "--rate", "2"])
    assert vars(given)["count"] == 3 and from_args(Styled, given) == Styled("b", 2.0, 3, True)
    with pytest.raises(SystemExit):
        p.parse_args(["--kind", "c"])


def test_generate_and_run_take_the_same_generation_options():
    """The generation options of both commands come from GenerateConfig, PromptStyle and
    SamplingParams: same spellings, same defaults, and ``run`` builds the same config."""
    from geex.cli import build_parser
    from geex.engine.sampling_params import SamplingParams
    from geex.humanevalx.config import GenerateConfig, PromptStyle

    def options(*path: str) -> dict:
        parser = build_parser()
        for name in path:
            parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
        return {a.option_strings[0]: (a.default, a.help) for a in parser._actions if a.option_strings}

    generate, run = options("humanevalx", "generate"), options("humanevalx", "run")
    assert {k: v for k, v in run.items() if k in generate and k != "--out"} == {
        k: v for k, v in generate.items() if k != "--out"}  # --out: a file for one, a directory for the other
    assert {"--task", "--n", "--seed", "--batch-size", "--limit", "--max-new-tokens", "--prompt-style", "--shots",
            "--system-prompt", "--temperature", "--top-p", "--top-k", "--greedy"} <= set(generate)
    args = build_parser().parse_args(["humanevalx", "run", "--out", "o", "--n", "4", "--prompt-style", "few-shot",
                                      "--shots", "2", "--top-p", "0.5", "--seed", "7"])
    cfg = from_args(GenerateConfig, args, languages=[], style=from_args(PromptStyle, args),
                    params=from_args(SamplingParams, args))
    assert (cfg.n, cfg.seed, cfg.batch_size, cfg.max_new_tokens, cfg.task) == (4, 7, 8, 512, "generation")
    assert cfg.style == PromptStyle("few-shot", shots=2)
    assert cfg.params == SamplingParams(temperature=0.2, top_p=0.5)  # CodeGeeX's pass@1 temperature
    plain = build_parser().parse_args(["humanevalx", "generate", "--out", "o"])
    # nothing given: CodeGeeX's pass@1 setting (the paper: temperature 0.2, top-p 0.95), not the
    # library's (the OpenAI API's: 1 and 1)
    assert from_args(SamplingParams, plain) == SamplingParams(temperature=0.2, top_p=0.95, top_k=0, greedy=False)
    assert SamplingParams() == SamplingParams(temperature=1.0, top_p=1.0, top_k=0, greedy=False)


def test_the_parser_loads_no_heavy_module():
    """``geex --help`` and option mistakes stay fast: building the parser imports neither torch nor
    the harness (the configs that declare the options are light)."""
    import subprocess
    import sys

    code = ("import sys; from geex.cli import build_parser; build_parser(); "
            "print(sorted(m for m in sys.modules if m in ('torch', 'numpy', 'rich', 'geex.engine.sampling') "
            "or m.startswith(('geex.humanevalx.execution', 'geex.models'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
