"""One HumanEval-X task in one language: the type the dataset loads, the fixes correct, assembly
turns into programs and generation prompts. Its own module so that each of those imports it
without importing the others (the dataset applies the fixes, which take problems)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from geex.languages import Language


@dataclass(frozen=True)
class Problem:
    """One HumanEval-X task in one language, with the fields every language shares."""

    task_id: str
    language: Language
    prompt: str
    declaration: str
    canonical_solution: str
    test: str
    example_test: str | None = None
    extra: dict[str, str] = field(default_factory=dict)  # e.g. Go's "import", "test_setup"

    @property
    def number(self) -> int:
        return int(self.task_id.split("/")[1])

    def with_fields(self, **changes: str) -> "Problem":
        """A copy with some fields replaced; keys not in the dataclass go to ``extra``."""
        known = {k: v for k, v in changes.items() if k in FIELDS}
        extra = {**self.extra, **{k: v for k, v in changes.items() if k not in FIELDS}}
        return replace(self, **known, extra=extra)

    def get(self, name: str) -> str:
        """Any field by its name in the published data (``test_setup``, ``import`` …)."""
        if name in FIELDS:
            return getattr(self, name) or ""
        return self.extra.get(name, "")


# the published fields that are attributes; any other string field of a row goes to ``extra``
FIELDS = {"task_id", "prompt", "declaration", "canonical_solution", "test", "example_test"}
