"""HumanEval-X fixed: every data fix applies to the published data and changes what it says.

Fast checks only (no toolchains). That the fixed data is right when *run* (every reference passes,
no test is vacuous) is ``test_reference_sweep.py``.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import re
from pathlib import Path

import pytest

from geex.errors import UserError
from geex.humanevalx.assembly import generation_prompt, translation_prompt
from geex.humanevalx.dataset import load_language, load_problems
from geex.humanevalx.fixes import FIXES, FIXES_VERSION, Edit, Fix, apply_fixes, fixes_for
from geex.languages import HUMANEVALX_LANGUAGES, get_language, language_of_task

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "data-fixes.md"
FIELDS = ("prompt", "declaration", "canonical_solution", "test", "example_test", "test_setup", "import")
KINDS = {
    "typo", "vacuous-test", "wrong-reference", "wrong-prompt", "wrong-declaration", "flaky-test",
    "broken-example-test", "test-setup", "rand-api",
}
FIXED_TASKS = sorted({f.task_id for f in FIXES})


@pytest.fixture(scope="module")
def original(dataset_dir):
    return load_problems(list(HUMANEVALX_LANGUAGES), dataset_dir, original=True)


@pytest.fixture(scope="module")
def fixed(dataset_dir):
    return load_problems(list(HUMANEVALX_LANGUAGES), dataset_dir)


def _changed_fields(before, after) -> set[str]:
    names = set(FIELDS) | set(before.extra) | set(after.extra)
    return {f for f in names if before.get(f) != after.get(f)}


# ------------------------------------------------------------------------------ the list itself
def test_version_and_list_shape():
    assert FIXES_VERSION == "humaneval-x-fixed/2"
    assert FIXES, "no fixes"
    for fix in FIXES:
        language_of_task(fix.task_id)  # a real task id
        assert fix.kind in KINDS, fix
        assert fix.summary.strip() and fix.evidence.strip(), fix.task_id
        assert fix.edits, fix.task_id
        for edit in fix.edits:
            assert edit.old != edit.new, (fix.task_id, edit)
            assert edit.field in FIELDS, (fix.task_id, edit.field)
    # one entry per (task, kind): the doc table has one row per entry
    keys = [(f.task_id, f.kind) for f in FIXES]
    assert len(keys) == len(set(keys))


def test_known_defects_are_all_fixed():
    expected = {
        "JavaScript/112", "JavaScript/155", "CPP/23", "CPP/38", "CPP/27", "CPP/77", "Java/22",
        "Rust/77", "Python/142", "Rust/32", "Rust/10", "Rust/38", "Rust/50",
        "Go/10", "Go/32", "Go/38", "Go/50", "Go/95",
    }
    assert expected <= set(FIXED_TASKS)


# ------------------------------------------------------------------ each fix on the published data
@pytest.mark.parametrize("index", range(len(FIXES)), ids=[f"{f.task_id}:{f.kind}" for f in FIXES])
def test_fix_applies_and_changes_only_its_fields(index, original):
    fix = FIXES[index]
    # the fixes of this task that come before it (a task's fixes apply in order)
    problem = original[fix.task_id]
    for earlier in fixes_for(fix.task_id):
        if earlier is fix:
            break
        problem = earlier.apply(problem)
    after = fix.apply(problem)
    assert _changed_fields(problem, after) == {e.field for e in fix.edits}
    for edit in fix.edits:
        assert edit.old in problem.get(edit.field)
        if edit.new:
            assert edit.new in after.get(edit.field)
    # the same problem otherwise (task id, language, other fields)
    assert (after.task_id, after.language) == (problem.task_id, problem.language)


def test_unfixed_tasks_are_untouched(original, fixed):
    assert original.keys() == fixed.keys()
    for task_id, problem in original.items():
        if task_id not in FIXED_TASKS:
            assert fixed[task_id] == problem, task_id
        else:
            assert fixed[task_id] != problem, task_id


def test_original_is_the_published_text(dataset_dir):
    for lang in HUMANEVALX_LANGUAGES:
        with gzip.open(dataset_dir / f"humaneval_{lang.name}.jsonl.gz", "rt", encoding="utf-8") as f:
            rows = {r["task_id"]: r for r in map(json.loads, f) if r}
        problems = load_language(lang, dataset_dir, original=True)
        assert len(problems) == len(rows) == 164
        for p in problems:
            row = rows[p.task_id]
            for name in ("prompt", "declaration", "canonical_solution", "test"):
                assert p.get(name) == row[name], (p.task_id, name)
            if row.get("example_test") not in (None, "None"):
                assert p.example_test == row["example_test"]
            for name in ("test_setup", "import", "text", "docstring"):
                if name in row:
                    assert p.get(name) == row[name], (p.task_id, name)


def test_default_is_fixed(dataset_dir, original, fixed):
    rust = {p.task_id: p for p in load_language(get_language("rust"), dataset_dir)}
    assert rust["Rust/32"] == fixed["Rust/32"] != original["Rust/32"]


# ----------------------------------------------------------------------------- failing loudly
def test_missing_text_raises(original):
    problem = original["CPP/23"]
    bogus = Fix("CPP/23", "typo", "x", "y", (Edit("test", "no such text in the test", "z"),))
    with pytest.raises(UserError, match=r"CPP/23 does not apply.*'test' holds 0 occurrence"):
        bogus.apply(problem)


def test_wrong_occurrence_count_raises(original):
    problem = original["CPP/27"]  # filp_case occurs 3 times in the test
    fix = Fix("CPP/27", "typo", "x", "y", (Edit("test", "filp_case", "flip_case", count=1),))
    with pytest.raises(UserError, match="3 occurrence"):
        fix.apply(problem)


def test_changed_upstream_text_stops_loading(original):
    """A revision of the data where a fix no longer matches must not load half-fixed."""
    problems = [original[f"Rust/{n}"] for n in range(164)]
    problems[32] = problems[32].with_fields(test=problems[32].test.replace("/*", "", 1))
    with pytest.raises(UserError, match="Rust/32"):
        apply_fixes(problems)


def test_fixes_do_not_apply_twice(fixed):
    """Applying a fix to already fixed data fails: the text it replaces is gone."""
    for fix in FIXES:
        with pytest.raises(UserError, match=re.escape(fix.task_id)):
            fix.apply(fixed[fix.task_id])


# --------------------------------------------------------------------- what the fixes achieve
@pytest.mark.parametrize(
    "task_id, old, new",
    [("CPP/27", "filp_case", "flip_case"), ("CPP/77", "iscuber", "iscube"),
     ("Java/22", "filterIntergers", "filterIntegers"), ("Rust/77", "iscuber", "iscube")],
)
def test_typos_renamed_everywhere(task_id, old, new, fixed):
    p = fixed[task_id]
    for name in FIELDS + ("text",):
        assert old not in p.get(name), name
    for name in ("declaration", "test"):
        assert re.search(rf"\b{new}\b", p.get(name)), name


def test_python_142_quote(fixed):
    p = fixed["Python/142"]
    assert '""""' not in p.prompt and '    """\n    This function' in p.prompt
    assert p.declaration == "def sum_squares(lst):\n"


def test_cpp_23_test_calls_the_solution(fixed):
    p = fixed["CPP/23"]
    for name in ("test", "example_test"):
        calls = re.findall(r"strlen\((.*?)\) ==", p.get(name))
        assert calls and all(c.startswith('std::string("') for c in calls), calls


def test_cpp_38_declaration_is_a_signature(fixed):
    p = fixed["CPP/38"]
    assert p.declaration.endswith("}\n\n\nstring decode_cyclic(string s){ \n")
    # a translation into C++ continues right after decode_cyclic's signature, not inside its body
    assert translation_prompt(fixed["Python/38"], p).endswith("string decode_cyclic(string s){ \n")


def test_js_references(fixed):
    assert "return [t, false]" in fixed["JavaScript/112"].canonical_solution
    assert "(z, " not in fixed["JavaScript/112"].canonical_solution
    assert "String(Math.abs(num))" in fixed["JavaScript/155"].canonical_solution


def test_js_32_test_is_seeded(fixed):
    test = fixed["JavaScript/32"].test
    assert "Math.random" not in test and "let seed = 42" in test
    example = fixed["JavaScript/32"].example_test
    assert "testfindZero" not in example and example.rstrip().endswith("testPoly()")


def test_go_162_setup_imports_only_what_the_test_uses(fixed):
    setup = fixed["Go/162"].get("test_setup")
    assert "crypto/md5" not in setup and '"testing"' in setup


def test_no_rust_test_is_commented_out_or_uses_rand_04(fixed):
    for n in range(164):
        test = fixed[f"Rust/{n}"].test
        assert not re.search(r"/\*", test), n
        assert "#[cfg(test)]" in test and "#[test]" in test, n
        assert not re.search(r"gen_range\([^()]*,", test), n  # rand 0.4's gen_range(a, b)


# Rust tasks whose helper (function or type) now precedes the requested function in `declaration`.
RUST_HELPERS = {
    "Rust/10": ("fn is_palindrome_10(", "make_palindrome"),
    "Rust/32": ("fn poly(", "find_zero"),
    "Rust/38": ("pub fn encode_cyclic(", "decode_cyclic"),
    "Rust/50": ("fn encode_shift(", "decode_shift"),
    "Rust/137": ("pub enum RtnType<", "compare_one"),
}


@pytest.mark.parametrize("task_id", sorted(RUST_HELPERS))
def test_rust_helper_layout(task_id, fixed, original):
    helper, requested = RUST_HELPERS[task_id]
    p = fixed[task_id]
    last_fn = re.findall(r"^(?:pub\s+)?fn (\w+)", p.declaration, re.M)[-1]
    assert last_fn == requested  # the signature the model continues is the one the test calls
    assert re.search(rf"\b{requested}\(", p.test)
    assert p.declaration.count(helper) == 1
    assert helper not in p.canonical_solution  # the reference is only the requested body
    assert not re.search(rf"fn {requested}\b", p.canonical_solution)
    prompt = generation_prompt(p)
    # use lines, helper (complete), docstring, then the requested signature
    assert prompt.index("use rand::Rng;") < prompt.index(helper) < prompt.index(p.prompt.strip())
    assert prompt.rstrip("\n").splitlines()[-1].startswith(("fn " + requested, "pub fn " + requested))
    # the helper's body is what the published reference held (moved, at most re-indented)
    moved = p.declaration[p.declaration.index(helper):p.declaration.rindex("fn " + requested)]
    body = moved.split("{", 1)[1]
    assert " ".join(body.split()) in " ".join(original[task_id].canonical_solution.split())


# Go tasks whose helper the prompt defines; the declaration (head of translation programs) now too.
GO_HELPERS = {
    "Go/10": ("IsPalindrome", "MakePalindrome"),
    "Go/32": ("Poly", "FindZero"),
    "Go/38": ("EncodeCyclic", "DecodeCyclic"),
    "Go/50": ("EncodeShift", "DecodeShift"),
}


@pytest.mark.parametrize("task_id", sorted(GO_HELPERS))
def test_go_helper_in_declaration(task_id, fixed, original):
    helper, requested = GO_HELPERS[task_id]
    p = fixed[task_id]
    funcs = re.findall(r"^func (\w+)", p.declaration, re.M)
    assert funcs == [helper, requested]  # the signature a translation continues is the last one
    assert re.search(rf"\b{helper}\(", p.test) or re.search(rf"\b{helper}\(", p.canonical_solution)
    # the helper is the prompt's, verbatim with its comment; the requested docstring stays out
    head = p.declaration[:p.declaration.index(f"func {requested}(")].strip()
    assert head in p.prompt and p.prompt.index(head) < p.prompt.index(f"func {requested}(")
    assert not any(line.startswith("//") for line in p.declaration[p.declaration.index(head) + len(head):].splitlines())
    assert head in original[task_id].prompt or task_id == "Go/50"  # Go/50's helper is also corrected
    # the requested signature itself is unchanged
    assert p.declaration.endswith(original[task_id].declaration.lstrip("\n"))


def test_go_50_encode_shift_shifts(fixed, original):
    p, published = fixed["Go/50"], original["Go/50"]
    for text in (p.prompt, p.declaration):
        encode = text[text.index("func EncodeShift("):text.index("func DecodeShift(")]
        assert "return string(newRunes)" in encode and "return string(runes)" not in encode
    assert "return string(runes)" in published.prompt  # the published helper returned its input
    assert "(ch-5-'a'+26)%26+'a'" in p.canonical_solution and "return string(newRunes)" in p.canonical_solution


def test_go_95_reference_checks_every_key(fixed, original):
    """No early exit once two keys agree: the verdict must not depend on map iteration order."""
    early_exit = re.compile(r'state = "mixed"\s*break\s*\}\s*else\s*\{\s*break\s*\}')
    assert early_exit.search(original["Go/95"].canonical_solution)
    assert not early_exit.search(fixed["Go/95"].canonical_solution)
    assert fixed["Go/95"].canonical_solution.count("break") == original["Go/95"].canonical_solution.count("break") - 1


def test_rust_32_reference_is_bisection(fixed):
    body = fixed["Rust/32"].canonical_solution
    assert "while end - begin > 1e-10" in body and "driv" not in body


# ------------------------------------------------------------------------------------- the doc
def test_doc_lists_every_fix():
    text = DOC.read_text(encoding="utf-8")
    assert FIXES_VERSION in text and "--original" in text
    rows = {
        tuple(cell.strip() for cell in line.strip("|").split("|")[:2])
        for line in text.splitlines() if line.startswith("| ")
    }
    missing = [(f.task_id, f.kind) for f in FIXES if (f.task_id, f.kind) not in rows]
    assert not missing, f"docs/data-fixes.md lacks a table row for {missing}"
    listed = {task for task, _ in rows if re.fullmatch(r"[A-Za-z]+/\d+", task)}
    assert listed == set(FIXED_TASKS), f"rows without a fix: {sorted(listed - set(FIXED_TASKS))}"


def test_fix_objects_are_immutable():
    with pytest.raises(dataclasses.FrozenInstanceError):
        FIXES[0].task_id = "Python/0"  # type: ignore[misc]
