"""The CodeGeeX IDE's tasks besides completion: code from a description, translation between
languages, explanation. Each task has a prompt for base models (CodeGeeX's own conventions: the
language tag, HumanEval-X's translation prompt, comment-led explanations) and one for chat models
(an instruction in the model's chat template), and a rule for where the answer ends.

Knows nothing of HTTP; ``geex.serve.tasks`` serves these.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from geex.engine.stops import BlockRule, CommentBlockRule, LineRule, Rule
from geex.languages import Language

EXPLAIN_STYLES = ("line_comments", "docstring", "summary")
_FENCED = re.compile(r"```[^\n]*\n(.*?)(?:```|\Z)", re.S)


@dataclass
class TaskPrompt:
    """A task's prompt: ``text`` for a base model (a completion prompt), or ``messages`` for a chat
    model; ``rules``: where a base model's output ends (code: after the first top-level item, the
    block rule at column 0; comments: at the first line that is not one); ``kind`` tells
    ``finish`` how to take the answer out of the output."""

    text: str | None = None
    messages: list[dict] | None = None
    rules: tuple[Rule, ...] = ()
    kind: str = "code"  # code | comments | prose

    def finish(self, output: str) -> str:
        """The answer in the output: the code of a chat reply taken out of its fence; otherwise the
        output as the rules ended it, trailing blank lines dropped."""
        if self.messages is not None and self.kind == "code":
            fenced = _FENCED.search(output)
            return (fenced.group(1) if fenced else output).strip("\n")
        return output.rstrip()


def _comment(language: Language, text: str) -> str:
    return "\n".join(f"{language.comment} {line}".rstrip() for line in text.strip().splitlines())


def generate(description: str, language: Language, chat: bool, header: str = "") -> TaskPrompt:
    """NL→code. Base models: the language tag, the description as comments, then ``header`` (a
    signature the code must start with, if given), as CodeGeeX was prompted."""
    if chat:
        ask = (f"Write {language.display} code for this task. Answer with the code only, in one "
               f"```{language.name} block.\n\n{description.strip()}")
        if header:
            ask += f"\n\nStart from:\n```{language.name}\n{header}\n```"
        return TaskPrompt(messages=[{"role": "user", "content": ask}])
    text = f"{language.tag}\n{_comment(language, description)}\n{header}"
    return TaskPrompt(text=text, rules=(BlockRule(0),))


def translate(code: str, source: Language, target: Language, chat: bool) -> TaskPrompt:
    """Base models: HumanEval-X's translation prompt (``code translation``, the source under its
    language's name, then the target's name); the output ends after its first top-level item (a
    line back at column 0 after the item's body; closing brackets belong to it)."""
    if chat:
        ask = (f"Translate this {source.display} code to {target.display}. Answer with the code only, in one "
               f"```{target.name} block.\n\n```{source.name}\n{code.rstrip()}\n```")
        return TaskPrompt(messages=[{"role": "user", "content": ask}])
    return TaskPrompt(text=f"code translation\n{source.display}:\n{code.rstrip()}\n{target.display}:\n",
                      rules=(BlockRule(0),))


def explain(code: str, language: Language, style: str, chat: bool) -> TaskPrompt:
    """``line_comments``: what each line does; ``docstring``: a docstring or doc comment for the
    code; ``summary``: one paragraph. Base models continue a comment that the prompt starts."""
    if style not in EXPLAIN_STYLES:
        raise ValueError(f"style must be one of {', '.join(EXPLAIN_STYLES)}, got {style!r}")
    if chat:
        what = {"line_comments": "Explain this code line by line, as a numbered list.",
                "docstring": f"Write the documentation comment ({'a docstring' if language.name == 'python' else 'a doc comment'}) "
                             "for this code. Answer with the comment only.",
                "summary": "Summarize what this code does in one short paragraph."}[style]
        return TaskPrompt(messages=[{"role": "user", "content": f"{what}\n\n```{language.name}\n{code.rstrip()}\n```"}],
                          kind="prose")
    c = language.comment
    head = f"{language.tag}\n{code.rstrip()}\n\n"
    if style == "line_comments":
        return TaskPrompt(text=head + f"{c} Explanation of the code above, line by line:\n{c} 1.",
                          rules=(CommentBlockRule(c),), kind="comments")
    if style == "docstring":
        return TaskPrompt(text=head + f"{c} Documentation of the code above:\n{c}", rules=(CommentBlockRule(c),),
                          kind="comments")
    return TaskPrompt(text=head + f"{c} Summary of the code above: it", rules=(LineRule(),), kind="prose")
