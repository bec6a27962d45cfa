"""benchmarks/mutation.py's own logic (cosmic-ray itself is not installed by set-up): which mutants
are skipped as annotations, and how a survivor is matched to its explanation."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("mutation", ROOT / "benchmarks" / "mutation.py")
mutation = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mutation)

SOURCE = '''from __future__ import annotations

def f(a: int | None = 1 | 2, *b: str | bytes, c: x | y, **d: e | f) -> list[int | None]:
    x: int | None = a | 4
    return x | 8
'''


def _bars(source: str) -> list[tuple[int, int]]:
    return [(row, col) for row, line in enumerate(source.splitlines(), 1) for col, ch in enumerate(line) if ch == "|"]


def _inside(pos, spans) -> bool:
    return any(start <= pos and (pos[0], pos[1] + 1) <= end for start, end in spans)


def test_every_annotation_and_nothing_else_is_skipped():
    spans = mutation.annotation_spans(SOURCE)
    inside = [p for p in _bars(SOURCE) if _inside(p, spans)]
    outside = [p for p in _bars(SOURCE) if not _inside(p, spans)]
    # six annotation bars (a, b, c, d, the return, x); three operators that run (1 | 2, a | 4, x | 8)
    assert len(inside) == 6 and len(outside) == 3
    lines = SOURCE.splitlines()
    assert sorted(lines[r - 1][c - 2:c + 3] for r, c in outside) == ["1 | 2", "a | 4", "x | 8"]


def test_evaluated_annotations_are_not_skipped():
    """Without ``from __future__ import annotations`` an annotation runs (pydantic reads it): keep it."""
    assert mutation.annotation_spans(SOURCE.split("\n", 1)[1]) == []


def test_a_survivor_is_explained_only_by_a_matching_entry():
    entries = [{"module": "m.py", "line": "n - c < k", "operators": ["core/ReplaceBinaryOperator_Sub_*"],
                "kind": "equivalent", "why": "shortcut"}]
    hit = mutation.explain(entries, "m.py", "if n - c < k:", "core/ReplaceBinaryOperator_Sub_Add")
    assert hit == {"kind": "equivalent", "why": "shortcut"}
    for module, text, op in [("other.py", "if n - c < k:", "core/ReplaceBinaryOperator_Sub_Add"),
                             ("m.py", "if n + c < k:", "core/ReplaceBinaryOperator_Sub_Add"),
                             ("m.py", "if n - c < k:", "core/ReplaceComparisonOperator_Lt_LtE")]:
        assert mutation.explain(entries, module, text, op)["kind"] == "unexplained"


def test_the_committed_survivors_file_is_well_formed():
    entries = mutation.explanations()
    assert entries
    for e in entries:
        assert e["module"] in mutation.MODULES and e["kind"] in ("equivalent", "unseen")
        assert e["line"] in (ROOT / "src/geex" / e["module"]).read_text(), e  # still names real code
        assert e["operators"] and e["why"].strip()
