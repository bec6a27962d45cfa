"""HumanEval-X fixed: a versioned, documented list of corrections to the published data.

Each fix names its task, says what was wrong and how we know (evidence), and edits the problem by
exact text replacement: if the published text is not found, loading fails loudly instead of
silently skipping the fix (so a changed upstream file cannot yield a half-fixed benchmark).
The human-readable list is ``docs/data-fixes.md``; reports record ``FIXES_VERSION``.
"""

from __future__ import annotations

from dataclasses import dataclass

from geex.humanevalx.dataset import Problem

FIXES_VERSION = "humaneval-x-fixed/1"


@dataclass(frozen=True)
class Edit:
    """Replace ``old`` by ``new`` in one field (``count`` occurrences, all of them if None)."""

    field: str
    old: str
    new: str
    count: int | None = 1


@dataclass(frozen=True)
class Fix:
    task_id: str
    kind: str  # "wrong-reference", "vacuous-test", "wrong-prompt", "typo", ...
    summary: str  # what was wrong
    evidence: str  # how we know
    edits: tuple[Edit, ...]

    def apply(self, problem: Problem) -> Problem:
        changes: dict[str, str] = {}
        for edit in self.edits:
            text = changes.get(edit.field, problem.get(edit.field))
            found = text.count(edit.old)
            if found == 0 or (edit.count is not None and found != edit.count):
                raise RuntimeError(
                    f"data fix for {self.task_id} does not apply: {edit.field!r} holds "
                    f"{found} occurrence(s) of the text to replace (expected {edit.count or 'some'}); "
                    "is this the published HumanEval-X data? Use --original to skip fixes."
                )
            changes[edit.field] = text.replace(edit.old, edit.new)
        return problem.with_fields(**changes)


FIXES: tuple[Fix, ...] = ()


def fixes_for(task_id: str) -> list[Fix]:
    return [fix for fix in FIXES if fix.task_id == task_id]


def apply_fixes(problems: list[Problem]) -> list[Problem]:
    """The fixed variant of a language's problems (order kept)."""
    return [_apply_all(p) for p in problems]


def _apply_all(problem: Problem) -> Problem:
    for fix in fixes_for(problem.task_id):
        problem = fix.apply(problem)
    return problem
