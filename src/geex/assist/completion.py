"""Completion at the cursor, as the endpoints ask for it: the prompt (FIM, or the prefix-only
fallback) and the rules that end the completion (mode, indentation, time, the suffix's line).

Shared by OpenAI's ``/v1/completions`` with ``suffix``, llama.cpp's ``/infill`` and the playground;
knows nothing of HTTP. Rules are built per sequence (``make_rules``): a time rule keeps its own
clock, so ``n`` choices each get their own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from geex.assist.fim import Budget, Fim, Rendered, SourceFile, render
from geex.engine.stops import (
    BlockRule,
    LineRule,
    RepetitionRule,
    Rule,
    SuffixOverlapRule,
    TimeRule,
    indent_of_cursor_line,
)
from geex.languages import Language
from geex.models.protocols import Tokenizer

MODES = ("free", "line", "block")


@dataclass(frozen=True)
class StopMode:
    """How a completion at the cursor ends besides EOS, stop strings and its token budget.

    ``mode``: ``line`` (the first newline after text), ``block`` (a line indented less than
    ``indent``, by default the cursor line's; two blank lines; a new top-level item), ``free``.
    ``max_time_ms``: end at the end of the line being written once this long has passed since the
    first token. A block or free completion also ends when it repeats one line three times."""

    mode: str = "free"
    indent: int | None = None
    max_time_ms: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")


@dataclass
class CursorCompletion:
    """A completion request at the cursor, ready for the scheduler."""

    ids: list[int]
    rendered: Rendered
    make_rules: Callable[[], tuple[Rule, ...]]
    stop_ids: frozenset[int]  # the FIM family's end-of-generation tokens

    def meta(self) -> dict:
        """What the response's ``geex`` block says about the prompt."""
        return {"fim_mode": self.rendered.mode, "truncated": self.rendered.truncated()}


def rules_for(stop: StopMode, prefix: str, suffix_line: str | None = None) -> Callable[[], tuple[Rule, ...]]:
    """A factory of fresh rule objects for one sequence."""
    indent = stop.indent if stop.indent is not None else indent_of_cursor_line(prefix)

    def make() -> tuple[Rule, ...]:
        rules: list[Rule] = []
        if stop.mode == "line":
            rules.append(LineRule())
        else:
            if stop.mode == "block":
                rules.append(BlockRule(indent))
            rules.append(RepetitionRule())
        if suffix_line:
            rules.append(SuffixOverlapRule(suffix_line))
        if stop.max_time_ms:
            rules.append(TimeRule(stop.max_time_ms / 1000))
        return tuple(rules)

    return make


def cursor_completion(tokenizer: Tokenizer, fim: Fim | None, prefix: str, suffix: str, *,
                      stop: StopMode = StopMode(), files: Sequence[SourceFile] = (), path: str | None = None,
                      repo: str | None = None, language: Language | None = None, language_tag: bool = False,
                      middle: str = "", spm: bool = False, budget: Budget = Budget()) -> CursorCompletion:
    """The prompt for the code between ``prefix`` and ``suffix`` and the rules that end it.

    ``language_tag``: the model was trained with CodeGeeX's language tags (the prefix-only prompt
    starts with ``language``'s tag line)."""
    tag = language.tag if (language_tag and language is not None) else None
    rendered = render(tokenizer, fim, prefix, suffix, files=files, path=path, repo=repo,
                      language=language.display if language else None, line_mode=stop.mode == "line", spm=spm,
                      middle=middle, budget=budget, tag=tag)
    return CursorCompletion(rendered.ids, rendered, rules_for(stop, prefix + middle, rendered.suffix_line),
                            fim.stop_ids if fim else frozenset())
