"""Prompts and program layout per language (reference §5.2, §5.4, §5.7, §6.2)."""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import sys

import pytest

from geex.humanevalx.assembly import (
    JS_ASSERT,
    RUST_STD_MACROS,
    assemble,
    generation_prompt,
    go_imports,
    program_source,
    prove_rust_tests,
    translation_prompt,
)
from geex.humanevalx.dataset import load_language
from geex.humanevalx.execution.runners.cpp import CPP_HEADERS
from geex.humanevalx.problem import Problem
from geex.languages import LANGUAGE_NAMES, get_language
from geex.languages.cleanup import cleanup

# The reference's Python import helper (§5.4), numpy aside.
PY_HELPER_LINES = [
    "import math", "import re", "import sys", "import copy", "import datetime", "import itertools",
    "import collections", "import heapq", "import statistics", "import functools", "import hashlib",
    "import string", "from typing import *", "from collections import *",
]
GO_SETUP_PLAIN = 'package main\n\nimport (\n    "testing"\n    "github.com/stretchr/testify/assert"\n)\n'


@functools.cache
def problems(name: str) -> dict[int, Problem]:
    return {p.number: p for p in load_language(get_language(name))}


def go_import_paths(source: str) -> list[str]:
    """Every import path of a Go file (all import blocks and single imports)."""
    paths = []
    for block in re.findall(r"^import\s*\(([^)]*)\)", source, re.M):
        paths += re.findall(r'"([^"]+)"', block)
    paths += re.findall(r'^import\s+"([^"]+)"', source, re.M)
    return paths


# ------------------------------------------------------------------------------------- Python
def test_python_layout_is_helper_prompt_completion_test() -> None:
    p = problems("python")[0]
    source = assemble(p, p.canonical_solution).source
    helper = "\n".join(PY_HELPER_LINES) + "\n"
    assert source == helper + "\n" + p.prompt + p.canonical_solution + "\n" + p.test


@pytest.mark.parametrize("translation", [False, True], ids=["generation", "translation"])
@pytest.mark.parametrize("number", range(164))
def test_python_layout_names_the_parts(number: int, translation: bool) -> None:
    """What the harness runs apart: the preamble, the prompt's helpers (everything before the last
    top-level def), the function under test (the one the test's ``check`` gets) and the test."""
    p = problems("python")[number]
    program = assemble(p, p.canonical_solution, translation=translation)
    layout = json.loads(program.layout)
    source = program.source
    head = p.declaration if translation else p.prompt
    prelude_end = layout["prelude"][1]
    assert layout["prelude"][0] == 0 and source[:prelude_end].splitlines()[: len(PY_HELPER_LINES)] == PY_HELPER_LINES
    start, end = layout["helpers"]
    assert start == prelude_end + 1 and source[start:].startswith(head)
    assert source[end:].startswith(f"def {layout['entry']}(")
    assert "\ndef " not in "\n" + source[end + 1 : start + len(head)]  # the last def of the head
    assert source[layout["test"]:] == p.test
    assert re.search(rf"check\({layout['entry']}\)\s*$", p.test)


def test_python_layout_without_a_function() -> None:
    p = problems("python")[0].with_fields(prompt="x = 1\n")
    layout = json.loads(assemble(p, "").layout)
    assert (layout["helpers"], layout["entry"]) == (None, None)


def test_python_numpy_only_when_used() -> None:
    p = problems("python")[0]
    plain = assemble(p, p.canonical_solution).source
    assert "numpy" not in plain and "np" not in re.findall(r"\w+", plain)
    uses_np = "    a = np.array(numbers)\n    return bool((abs(a[:, None] - a[None, :]) + np.eye(len(a)) * 1e9 < threshold).any())\n"
    source = assemble(p, uses_np).source
    head = source.split("\n\n", 1)[0].splitlines()
    assert "import numpy as np" in head
    assert head[: len(PY_HELPER_LINES)] == PY_HELPER_LINES


@pytest.mark.parametrize(
    "completion, passes",
    [
        (None, True),  # the reference solution
        ("    a = np.array(numbers)\n    d = np.abs(a[:, None] - a[None, :]) + np.eye(len(a)) * 1e9\n"
         "    return bool((d < threshold).any())\n", True),
        ("    return False\n", False),
    ],
)
def test_python_programs_run(completion: str | None, passes: bool, tmp_path) -> None:
    p = problems("python")[0]
    program = assemble(p, p.canonical_solution if completion is None else completion)
    (tmp_path / "main.py").write_text(program.source)
    r = subprocess.run([sys.executable, "main.py"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert (r.returncode == 0) is passes, r.stderr
    if not passes:
        assert "AssertionError" in r.stderr


def test_python_cleanup_applies_unless_disabled() -> None:
    p = problems("python")[0]
    junk = "print(has_close_elements([1.0], 0.5))\n"
    assert assemble(p, p.canonical_solution + junk).source == assemble(p, p.canonical_solution).source
    assert junk in assemble(p, p.canonical_solution + junk, clean=False).source


# ---------------------------------------------------------------------------------------- C++
def _includes(text: str) -> list[str]:
    return re.findall(r"#\s*include\s*<([^>]+)>", text)


def test_cpp_headers_injected_only_when_missing() -> None:
    p = problems("cpp")[0]  # its prompt includes stdio.h, vector and math.h
    assert _includes(p.prompt) == ["stdio.h", "vector", "math.h"]
    source = assemble(p, p.canonical_solution).source
    injected, rest = source.split("\n\n", 1)
    assert _includes(injected) == ["stdlib.h", "algorithm", "string", "climits", "cstring", "iostream"]
    assert rest == p.prompt + cleanup("cpp", p.canonical_solution) + "\n#undef main\n" + p.test
    completion = "    #include <iostream>\n" + p.canonical_solution
    assert "iostream" not in _includes(assemble(p, completion).source.split("\n\n", 1)[0])


@pytest.mark.parametrize("number", range(164))
def test_cpp_every_standard_header_present_once(number: int) -> None:
    p = problems("cpp")[number]
    source = assemble(p, p.canonical_solution).source
    own = _includes(p.prompt + p.canonical_solution + p.test)
    found = _includes(source)
    for header in CPP_HEADERS:
        assert found.count(header) == max(1, own.count(header)), header


# ----------------------------------------------------------------------------------------- Java
def test_java_layout_and_class_close() -> None:
    p = problems("java")[0]
    method_only = p.canonical_solution.rstrip()[: -1].rstrip()  # the model did not close the class
    assert method_only.endswith("}")
    source = assemble(p, method_only + "\n\n    public static void main(String[] a) {}\n").source
    assert source == p.prompt + method_only + "\n}" + "\n" + p.test
    assert source.count("public static void main") == 1  # only the test's


# ------------------------------------------------------------------------------------------- JS
JS_SHIM_PREFIX = f"const {JS_ASSERT} = "


def test_js_layout() -> None:
    p = problems("js")[0]
    source = assemble(p, p.canonical_solution).source
    first, rest = source.split("\n", 1)
    assert first.startswith(JS_SHIM_PREFIX) and "console.assert =" in first
    assert rest == p.prompt + cleanup("js", p.canonical_solution) + "\n" + p.test.replace("console.assert(", f"{JS_ASSERT}(")


@pytest.mark.parametrize("number", range(164))
def test_js_test_calls_the_assert_const(number: int) -> None:
    """Every console.assert of the test, and nothing else, now calls the module-level const."""
    p = problems("js")[number]
    rest = assemble(p, p.canonical_solution).source.split("\n", 1)[1]
    test = rest[len(p.prompt + cleanup("js", p.canonical_solution) + "\n"):]
    assert "console.assert" not in test
    assert test.count(f"{JS_ASSERT}(") == p.test.count("console.assert(") > 0


def test_js_rewrite_leaves_strings_comments_and_members_alone() -> None:
    p = problems("js")[0]
    test = ('// console.assert(1)\nconst s = "console.assert(";\nfoo.console.assert(1)\n'
            "console . assert(true)\nconsole.assertions = 1\n")
    source = assemble(p.with_fields(test=test), p.canonical_solution).source
    assert source.endswith('// console.assert(1)\nconst s = "console.assert(";\nfoo.console.assert(1)\n'
                           f"{JS_ASSERT}(true)\nconsole.assertions = 1\n")


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
@pytest.mark.parametrize(
    "completion, passes",
    [
        (None, True),
        # correct, but prints: the original (pass = no output) failed this one
        ("  console.log('checking', numbers.length);\n  for (let i = 0; i < numbers.length; i++)\n"
         "    for (let j = i + 1; j < numbers.length; j++)\n"
         "      if (Math.abs(numbers[i] - numbers[j]) < threshold) return true;\n  return false;\n}\n", True),
        ("  return false;\n}\n", False),  # wrong: console.assert must fail the program
    ],
)
def test_js_console_assert_fails_the_program(completion: str | None, passes: bool, tmp_path) -> None:
    p = problems("js")[0]
    program = assemble(p, p.canonical_solution if completion is None else completion)
    (tmp_path / "test.js").write_text(program.source)
    r = subprocess.run(["node", "test.js"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert (r.returncode == 0) is passes, r.stderr
    if not passes:
        assert "console.assert failed" in r.stderr


# ------------------------------------------------------------------------------------------- Go
# Correct solutions that do not use the package the test needs (reference §6.2).
GO_WITHOUT_PACKAGE = {
    2: ("math", "    return number - float64(int(number))\n}\n"),
    4: ("math", "    sum := 0.0\n    for _, x := range numbers {\n        sum += x\n    }\n"
                "    mean := sum / float64(len(numbers))\n    dev := 0.0\n    for _, x := range numbers {\n"
                "        d := x - mean\n        if d < 0 {\n            d = -d\n        }\n        dev += d\n    }\n"
                "    return dev / float64(len(numbers))\n}\n"),
    44: ("strconv", "    if x < base {\n        return string(rune('0' + x))\n    }\n"
                    "    return ChangeBase(x/base, base) + string(rune('0' + x%base))\n}\n"),
    151: ("math", "    sum := 0\n    for _, x := range lst {\n"
                  "        if x > 0 && x == float64(int(x)) && int(x)%2 == 1 {\n            sum += int(x) * int(x)\n"
                  "        }\n    }\n    return sum\n}\n"),
}


@pytest.mark.parametrize("number", sorted(GO_WITHOUT_PACKAGE))
def test_go_imports_what_the_test_uses(number: int) -> None:
    p = problems("go")[number]
    package, completion = GO_WITHOUT_PACKAGE[number]
    assert f"{package}." not in completion and f"{package}." in p.test
    source = assemble(p, completion).source
    paths = go_import_paths(source)
    assert paths.count(package) == 1
    assert sorted(paths) == sorted(["testing", "github.com/stretchr/testify/assert", package])
    assert source.startswith(p.get("test_setup"))


def test_go_prompt_import_block_is_replaced() -> None:
    p = problems("go")[0]  # prompt imports math; the test does not use it
    assert p.prompt.startswith('import (\n    "math"\n)')
    plain = "    for i := range numbers {\n        for j := range numbers {\n            d := numbers[i] - numbers[j]\n" \
            "            if i != j && d < threshold && -d < threshold {\n                return true\n            }\n" \
            "        }\n    }\n    return false\n}\n"
    source = assemble(p, plain).source
    assert "math" not in go_import_paths(source)  # "imported and not used" would not compile
    assert source == GO_SETUP_PLAIN + "\n" + p.prompt[p.prompt.index("//"):] + cleanup("go", plain) + "\n" + p.test
    with_math = assemble(p, p.canonical_solution).source
    assert go_import_paths(with_math).count("math") == 1


def test_go_no_import_for_package_names_in_comments_or_strings() -> None:
    p = problems("go")[0]
    completion = (
        "    // math.Abs would do, and strings.Split too\n"
        "    /* fmt.Println(sort.Ints) */\n"
        '    msg := "strconv.Itoa(1) time.Now()"\n'
        "    raw := `regexp.MustCompile bytes.Buffer`\n"
        "    _ = msg + raw\n"
        "    return false\n}\n"
    )
    assert go_import_paths(assemble(p, completion).source) == ["testing", "github.com/stretchr/testify/assert"]
    assert go_imports(completion, GO_SETUP_PLAIN) == []


def test_go_imports_beyond_the_original_ten() -> None:
    code = "    r := []rune(s)\n    if unicode.IsUpper(r[0]) { h := &IntHeap{}; heap.Init(h) }\n" \
           "    n := utf8.RuneCountInString(s)\n    x := strings.ToLower(s)\n"
    assert go_imports(code, GO_SETUP_PLAIN) == ["container/heap", "strings", "unicode", "unicode/utf8"]
    # a package test_setup already imports is not imported twice; method calls on values are not packages
    setup_math = 'package main\n\nimport (\n    "testing"\n    "math"\n)\n'
    assert go_imports("    return math.Sqrt(x) + obj.Len() + s.math.Pi", setup_math) == []


@pytest.mark.parametrize("number", range(164))
def test_go_every_reference_program_imports_each_package_once(number: int) -> None:
    p = problems("go")[number]
    source = assemble(p, p.canonical_solution).source
    paths = go_import_paths(source)
    assert len(paths) == len(set(paths)), paths
    assert source.count("\npackage ") + source.startswith("package ") == 1
    # every package the test refers to is imported
    for name, path in (("math", "math"), ("strconv", "strconv"), ("strings", "strings"), ("rand", "math/rand")):
        if re.search(rf"(?<![\w.]){name}\.[A-Z]", p.test):
            assert path in paths, (name, paths)


# ----------------------------------------------------------------------------------------- Rust
@pytest.mark.parametrize("number", range(164))
def test_rust_signature_in_generation_prompt_and_program(number: int) -> None:
    p = problems("rust")[number]
    signature = [line for line in p.declaration.splitlines() if re.match(r"(pub\s+)?fn ", line)][-1]
    prompt = generation_prompt(p)
    assert prompt.rstrip("\n").endswith(signature)  # the model continues inside the function
    assert p.prompt.strip() in prompt  # the docstring is kept
    assert prompt.index(p.prompt.strip()) < prompt.rindex(signature)
    assert prompt.startswith(p.declaration[: p.declaration.index("use ")])  # the `use` lines first
    assert generation_prompt(p, with_tag=True) == "// language: Rust\n" + prompt
    source = assemble(p, p.canonical_solution).source
    assert source.startswith("fn main(){}\n" + prompt)
    assert len(re.findall(r"^fn main\s*\(", source, re.M)) == 1
    assert source.count(signature) == 1


@pytest.mark.parametrize("number", range(164))
def test_rust_every_test_function_owes_a_proof(number: int) -> None:
    p = problems("rust")[number]
    program = assemble(p, p.canonical_solution)
    assert program.proofs == 1 == program.source.count("let __geex_proof_guard = __geex_proof::Guard;")
    body = program.source[program.source.index("#[test]"):]
    assert body.index("__geex_proof") < body.index("::std::assert")  # at the start of the test's body
    test = program.source[program.source.index("#[cfg(test)]"):]
    bare = [m for m in re.findall(r"(?<![\w:])(\w+)!\s*[(\[{]", test) if m in RUST_STD_MACROS]
    assert not bare  # std's macros by path: a completion's macro_rules! cannot replace them
    assert "::std::assert" in test


def test_rust_proof_insertion_reads_code_only() -> None:
    test = (
        "#[cfg(test)]\nmod tests {\n    use super::*;\n    // #[test] fn in_a_comment() {}\n"
        '    const S: &str = "#[test] fn in_a_string() { assert!(x) }";\n'
        "    fn helper<'a>(s: &'a str) -> &'a str { s }\n"
        "    #[test]\n    fn first() -> () {\n        let c = '{';\n        assert!(helper(\"a\") == \"a\");\n    }\n"
        '    #[test]\n    #[allow(unused)]\n    fn second() {\n        assert_eq!(vec![1], r#"x"#.len());\n    }\n}\n'
    )
    proved, count = prove_rust_tests(test)
    assert count == 2
    assert '"#[test] fn in_a_string() { assert!(x) }"' in proved and "// #[test] fn in_a_comment() {}" in proved
    assert "fn first() -> () {\n// geex:" in proved and "fn second() {\n// geex:" in proved
    assert "::std::assert!(helper" in proved and "::std::assert_eq!(::std::vec![1]" in proved
    assert "let c = '{';" in proved


# --------------------------------------------------------------------------------------- prompts
@pytest.mark.parametrize("name, tag", [
    ("python", "# language: Python"), ("cpp", "// language: C++"), ("java", "// language: Java"),
    ("js", "// language: JavaScript"), ("go", "// language: Go"), ("rust", "// language: Rust"),
])
def test_generation_prompt_tags(name: str, tag: str) -> None:
    p = problems(name)[7]
    assert generation_prompt(p, with_tag=True) == tag + "\n" + generation_prompt(p)
    if name != "rust":
        assert generation_prompt(p) == p.prompt


# ----------------------------------------------------------------------------------- translation
DISPLAY = {"python": "Python", "cpp": "C++", "java": "Java", "js": "JavaScript", "go": "Go", "rust": "Rust"}


@pytest.mark.parametrize("src, tgt", [(a, b) for a in LANGUAGE_NAMES for b in LANGUAGE_NAMES if a != b])
def test_translation_prompt_format(src: str, tgt: str) -> None:
    s, t = problems(src)[12], problems(tgt)[12]
    expected = (
        "code translation\n"
        + DISPLAY[src] + ":\n" + s.declaration + "\n" + s.canonical_solution.rstrip() + "\n"
        + DISPLAY[tgt] + ":\n" + t.declaration
    )
    assert translation_prompt(s, t) == expected


def test_translation_prompt_literal_example() -> None:
    s, t = problems("python")[0], problems("cpp")[0]
    text = translation_prompt(s, t)
    assert text.startswith("code translation\nPython:\nfrom typing import List\n\n\ndef has_close_elements(")
    assert "\n    return False\nC++:\n#include<stdio.h>\n" in text
    assert text.endswith("bool has_close_elements(vector<float> numbers, float threshold){\n")
    assert "Check if in given" not in text  # docstrings are left out


@pytest.mark.parametrize("tgt", LANGUAGE_NAMES)
def test_translation_program_uses_target_declaration(tgt: str) -> None:
    t = problems(tgt)[0]
    s = problems("python" if tgt != "python" else "cpp")[0]
    prompt = translation_prompt(s, t)
    completion = t.canonical_solution
    source = assemble(t, completion, translation=True).source
    assert "code translation" not in source
    assert s.declaration.strip().splitlines()[-1] not in source  # nothing of the source program
    assert source == program_source(t, t.declaration, cleanup(tgt, completion))
    assert t.declaration + cleanup(tgt, completion) + "\n" in source
    # the docstring is in the generation prompt only
    assert "closer to each other" in assemble(t, completion).source
    assert "closer to each other" not in source
    assert not source.startswith(prompt)


def test_program_hash_changes_with_the_program() -> None:
    p = problems("python")[0]
    a = assemble(p, p.canonical_solution)
    b = assemble(p, p.canonical_solution.replace("<", "<="))
    assert a.sha256 == assemble(p, p.canonical_solution).sha256
    assert a.sha256 != b.sha256
    assert re.fullmatch(r"[0-9a-f]{64}", a.sha256)


# ------------------------------------------------------------------- the programs really run
@pytest.mark.toolchains
def test_assembled_programs_pass_in_the_real_toolchains(tmp_path) -> None:
    """The layouts above compile and pass (and a wrong answer fails), through the evaluator."""
    import json

    from geex.humanevalx.evaluate import EvalConfig, evaluate
    from geex.humanevalx.execution.runners import get_runner

    needed = {"go": "go", "java": "javac", "js": "node", "rust": "rustc", "cpp": "g++"}
    missing = [lang for lang, tool in needed.items() if not get_runner(lang).cached_status.available]
    if missing:
        pytest.skip(f"toolchains missing: {missing}")
    java = problems("java")[0].canonical_solution.rstrip()[:-1].rstrip() + "\n\n    public static void main(String[] a) {}\n"
    rows = [
        *({"task_id": f"Go/{n}", "generation": code} for n, (_, code) in GO_WITHOUT_PACKAGE.items()),
        {"task_id": "Go/0", "generation": "    // math.Abs is not needed\n    _ = \"strings.Split\"\n"
                                          + problems("go")[0].canonical_solution.replace("math.Abs(", "abs64(")
                                          + "\nfunc abs64(x float64) float64 {\n    if x < 0 {\n        return -x\n"
                                            "    }\n    return x\n}\n"},
        {"task_id": "Java/0", "generation": java},
        {"task_id": "JavaScript/0", "generation": "  console.log('noise');\n" + problems("js")[0].canonical_solution},
        {"task_id": "Rust/0", "generation": problems("rust")[0].canonical_solution + "\nfn main() {}\n"},
        {"task_id": "CPP/0", "generation": "    #include <iostream>\n" + problems("cpp")[0].canonical_solution},
        {"task_id": "CPP/0", "generation": problems("cpp")[0].canonical_solution, "source_language": "python"},
        {"task_id": "Go/2", "generation": "    return 0.0\n}\n", "completion_id": 1},  # wrong answer
    ]
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = evaluate(EvalConfig(samples=str(samples), out_dir=tmp_path / "out", workers=2,
                                 progress=False, use_cache=False, timeout_s=20))
    records = [json.loads(line) for line in (tmp_path / "out" / "results.jsonl").read_text().splitlines()]
    verdicts = {r["sample_id"]: r["verdict"] for r in records}
    wrong = "Go/2#1"
    assert verdicts.pop(wrong) == "wrong_answer"
    assert all(v == "passed" for v in verdicts.values()), [r for r in records if r["verdict"] != "passed"]
    assert len(verdicts) == len(rows) - 1
    assert report["overall"]["verdicts"]["passed"] == len(rows) - 1
