"""Prompts and programs: what a model is asked, and the file that tests its answer.

Generation: program = preamble + generation prompt + completion + test.
Translation: program = preamble + *target* declaration + completion + test (never the stored
translation prompt, which the original spliced into programs so that they could not compile).

Per-language preambles reproduce what the original harness added (Python's import helper, the C++
standard headers) plus what a correct harness needs (a JS ``console.assert`` that fails the program,
Go imports decided from the generated code *and* the test, Rust's ``fn main`` and signature).

What the proof of completion needs in the program text (see ``proof.py``), so that a completion
can neither end the program early with status 0 nor disarm the test's assertions:

- Python: ``Program.layout`` says where the preamble, the prompt's helpers, the function under
  test and the test lie; the harness runs the test apart from the completion's names.
- C++: ``#undef main`` before the test (the link wraps the test's ``main``; a completion that
  defines its own ``main`` and renames the test's with a macro gets a duplicate ``main``).
- JavaScript: the test's ``console.assert`` calls go to a module-level ``const`` (a completion
  cannot reassign or redeclare it; reassigning ``console.assert`` does nothing).
- Java: ``Program.layout`` says where the head and the test lie; the Java runner imports the JDK
  classes the test names by single-type imports (a completion's ``class Arrays`` cannot replace
  ``java.util.Arrays`` in the test).
- Rust: each ``#[test]`` function gets the proof items of ``harness/proof.rs`` (``Program.proofs``
  counts them), and the test's standard macros are called by path (``::std::assert!``): a
  completion's ``macro_rules! assert`` would otherwise replace them in the test.

Go needs nothing here: its harness is a generated test main and a package the runner imports.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from geex.humanevalx.execution.program import COMMENT_OR_LITERAL, Program, code_only
from geex.humanevalx.execution.proof import harness_text
from geex.humanevalx.execution.runners.cpp import CPP_HEADERS
from geex.humanevalx.execution.runners.go import GO_PACKAGES
from geex.humanevalx.problem import Problem
from geex.languages import get_language
from geex.languages.cleanup import cleanup, code_view

_PY_IMPORTS = (
    "import math\nimport re\nimport sys\nimport copy\nimport datetime\nimport itertools\n"
    "import collections\nimport heapq\nimport statistics\nimport functools\nimport hashlib\n"
    "import string\nfrom typing import *\nfrom collections import *\n"
)
# numpy costs ~0.2 s per interpreter start: imported (as the original always did) only when used.
_PY_NUMPY = "import numpy\nimport numpy as np\n"
_PY_USES_NUMPY = re.compile(r"\b(numpy|np)\b")

JS_ASSERT = "__geexAssert"  # the module-level const the test's console.assert calls become
_JS_PREAMBLE = (
    f"const {JS_ASSERT} = ((E) => (ok, ...msg) => {{ if (!ok) throw new E("
    '{ message: "console.assert failed" + (msg.length ? ": " + msg.join(" ") : "") }); })'
    f'(require("node:assert").AssertionError); console.assert = {JS_ASSERT};\n'
)
_JS_CONSOLE_ASSERT = r"(?<![\w$.])console\s*\.\s*assert\b"

_GO_IMPORT_BLOCK = re.compile(r"^import\s*(\([^)]*\)|\"[^\"]*\")\s*\n?", re.MULTILINE)
# Rust: comments, (raw, byte) strings and char literals, never a lifetime ('a)
_RUST_NOT_CODE = (r'//[^\n]*|/\*[\s\S]*?\*/|b?r(?P<hashes>#*)"[\s\S]*?"(?P=hashes)|b?"(?:\\[\s\S]|[^"\\])*"'
                  r"|b?'(?:\\(?:u\{[0-9a-fA-F]{1,6}\}|x[0-9a-fA-F]{2}|.)|[^\\'\n])'")
# std's macros, called by path in Rust tests (textual macro_rules! scope would win over the prelude)
RUST_STD_MACROS = (
    "assert", "assert_eq", "assert_ne", "debug_assert", "debug_assert_eq", "debug_assert_ne", "panic",
    "unreachable", "unimplemented", "todo", "vec", "format", "format_args", "print", "println", "eprint",
    "eprintln", "write", "writeln", "matches", "dbg", "concat", "stringify", "line", "column", "file",
    "module_path", "cfg", "env", "option_env", "include", "include_str", "include_bytes", "compile_error",
    "thread_local",
)
_RUST_STD_MACRO = r"(?<![\w:$])(?:" + "|".join(RUST_STD_MACROS) + r")(?=\s*!)"
_PY_TOP_DEF = re.compile(r"^(?:async\s+)?def\s+([A-Za-z_]\w*)", re.MULTILINE)


def _rust_signature_start(declaration: str) -> int:
    """Offset of the last top-level ``fn`` line in a Rust declaration (the requested function)."""
    starts = [m.start() for m in re.finditer(r"^(?:pub\s+)?fn ", declaration, re.MULTILINE)]
    if not starts:
        raise ValueError("Rust declaration has no top-level fn")
    return starts[-1]


def generation_prompt(problem: Problem, with_tag: bool = False) -> str:
    """The text a model continues for code generation (docstring + signature for every language).

    Rust's published prompt is only the docstring (the signature sits in ``declaration``); here the
    docstring goes between the ``use`` lines and the signature, so the model sees what to write.
    """
    text = problem.prompt
    if problem.language.name == "rust" and "fn " not in code_only(problem.prompt):
        cut = _rust_signature_start(problem.declaration)
        text = problem.declaration[:cut] + problem.prompt.lstrip("\n") + problem.declaration[cut:]
    return f"{problem.language.tag}\n{text}" if with_tag else text


def translation_prompt(source: Problem, target: Problem) -> str:
    """CodeGeeX's translation prompt (docstring left out on purpose); the model writes the body."""
    return (
        "code translation\n"
        f"{source.language.display}:\n{source.declaration}\n{source.canonical_solution.rstrip()}\n"
        f"{target.language.display}:\n{target.declaration}"
    )


def go_imports(code: str, already: str) -> list[str]:
    """Import paths for the packages ``code`` refers to (``pkg.Name``) and ``already`` lacks."""
    used = set(re.findall(r"(?<![\w.])([a-z][a-z0-9]*)\.[A-Za-z_]", code_only(code)))
    return sorted(path for name, path in GO_PACKAGES.items() if name in used and f'"{path}"' not in already)


def _go_program(problem: Problem, head: str, completion: str) -> str:
    setup = problem.get("test_setup") or 'package main\n\nimport (\n    "testing"\n    "github.com/stretchr/testify/assert"\n)\n'
    head = _GO_IMPORT_BLOCK.sub("", head, count=1) if head.lstrip().startswith("import") else head
    body = head + completion + "\n" + problem.test
    imports = go_imports(body, setup)
    block = "import (\n" + "".join(f'    "{p}"\n' for p in imports) + ")\n" if imports else ""
    return setup + "\n" + block + body


def _substitute_code(text: str, not_code: str, pattern: str, replace: Callable[[str], str]) -> str:
    """Each match of ``pattern`` replaced by ``replace(match)`` where it is code, never inside a
    comment or a literal (``not_code``)."""
    return re.sub(f"(?P<skip>{not_code})|{pattern}",
                  lambda m: m.group(0) if m.group("skip") is not None else replace(m.group(0)), text)


def _rust_mask(text: str) -> str:
    """``text`` with Rust comments and literals blanked, offsets kept."""
    return re.sub(_RUST_NOT_CODE, lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def prove_rust_tests(test: str) -> tuple[str, int]:
    """The test with the proof items of ``harness/proof.rs`` at the start of the body of every
    ``#[test]`` function and std's macros called by path; and how many functions got them."""
    test = _substitute_code(test, _RUST_NOT_CODE, _RUST_STD_MACRO, lambda name: "::std::" + name)
    masked = _rust_mask(test)
    proof = "\n" + harness_text("proof.rs")
    cuts = []
    for attr in re.finditer(r"#\s*\[\s*test\s*\]", masked):
        fn = re.compile(r"\bfn\s+\w+").search(masked, attr.end())
        brace = masked.find("{", fn.end()) if fn else -1
        if brace >= 0:
            cuts.append(brace + 1)
    for cut in reversed(cuts):
        test = test[:cut] + proof + test[cut:]
    return test, len(cuts)


def _python_program(head: str, completion: str, test: str) -> Program:
    code = head + completion + "\n" + test
    prelude = _PY_IMPORTS + (_PY_NUMPY if _PY_USES_NUMPY.search(code) else "")
    source = prelude + "\n" + code
    head_at = len(prelude) + 1
    entry = list(_PY_TOP_DEF.finditer(head))
    layout = {
        "prelude": [0, len(prelude)],
        "helpers": [head_at, head_at + entry[-1].start()] if entry else None,
        "entry": entry[-1].group(1) if entry else None,
        "test": len(source) - len(test),
    }
    return Program(get_language("python"), source, json.dumps(layout, sort_keys=True))


_HOISTED = {  # lines of a completion that only work at the top of the file
    "cpp": re.compile(r"^[ \t]*#[ \t]*include\b[^\n]*\n?", re.MULTILINE),
    "java": re.compile(r"^[ \t]*import[ \t]+(?:static[ \t]+)?[\w.]+(?:\.\*)?[ \t]*;[ \t]*\n?", re.MULTILINE),
}


def _hoisted(language: str, completion: str) -> tuple[str, str]:
    """(the completion without its C++ ``#include`` / Java ``import`` lines, those lines): a chat
    answer's includes and imports (``extraction``), or a completion's include before a helper, go to
    the top of the program, where they declare what they name for the head, the body and the test
    alike. A line inside a comment or a literal stays."""
    found = list(_HOISTED[language].finditer(code_view(language, completion, final=True)))
    if not found:
        return completion, ""
    lines = "".join(completion[m.start():m.end()].strip() + "\n" for m in found)
    for m in reversed(found):
        completion = completion[:m.start()] + completion[m.end():]
    return completion, lines


def _program(problem: Problem, head: str, completion: str) -> Program:
    lang = problem.language
    if lang.name == "python":
        return _python_program(head, completion, problem.test)
    if lang.name == "cpp":
        completion, hoisted = _hoisted(lang.name, completion)
        code = hoisted + head + completion + "\n#undef main\n" + problem.test
        missing = [h for h in CPP_HEADERS if not re.search(rf"#\s*include\s*<{re.escape(h)}>", code)]
        return Program(lang, "".join(f"#include<{h}>\n" for h in missing) + "\n" + code)
    if lang.name == "java":
        completion, hoisted = _hoisted(lang.name, completion)
        source = hoisted + head + completion + "\n" + problem.test
        layout = {"head": len(hoisted + head), "test": len(source) - len(problem.test)}
        return Program(lang, source, json.dumps(layout, sort_keys=True))
    if lang.name == "js":
        test = _substitute_code(problem.test, COMMENT_OR_LITERAL.pattern, _JS_CONSOLE_ASSERT, lambda _: JS_ASSERT)
        return Program(lang, _JS_PREAMBLE + head + completion + "\n" + test)
    if lang.name == "go":
        return Program(lang, _go_program(problem, head, completion))
    if lang.name == "rust":
        test, proofs = prove_rust_tests(problem.test)
        return Program(lang, "fn main(){}\n" + head + completion + "\n" + test, proofs=max(proofs, 1))
    raise ValueError(f"no assembly for {lang.name}")


def program_source(problem: Problem, head: str, completion: str) -> str:
    """Splice head (prompt or declaration) + completion + test into one program text."""
    return _program(problem, head, completion).source


def assemble(problem: Problem, completion: str, *, translation: bool = False, clean: bool = True) -> Program:
    """The program testing ``completion`` for ``problem`` (the target problem for translation)."""
    head = problem.declaration if translation else generation_prompt(problem)
    if clean:  # the head's definitions (the target function first) are never repeated
        completion = cleanup(problem.language, completion, head)
    return _program(problem, head, completion)
