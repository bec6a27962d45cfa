"""Prompts and programs: what a model is asked, and the file that tests its answer.

Generation: program = preamble + generation prompt + completion + test.
Translation: program = preamble + *target* declaration + completion + test (never the stored
translation prompt, which the original spliced into programs so that they could not compile).

Per-language preambles reproduce what the original harness added (Python's import helper, the C++
standard headers) plus what a correct harness needs (a JS ``console.assert`` that fails the program,
Go imports decided from the generated code *and* the test, Rust's ``fn main`` and signature).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from geex.humanevalx.dataset import Problem
from geex.languages import Language
from geex.languages.cleanup import cleanup

TEMPLATE_VERSION = "humanevalx-assembly/1"

_PY_IMPORTS = (
    "import math\nimport re\nimport sys\nimport copy\nimport datetime\nimport itertools\n"
    "import collections\nimport heapq\nimport statistics\nimport functools\nimport hashlib\n"
    "import string\nfrom typing import *\nfrom collections import *\n"
)
# numpy costs ~0.2 s per interpreter start: imported (as the original always did) only when used.
_PY_NUMPY = "import numpy\nimport numpy as np\n"
_PY_USES_NUMPY = re.compile(r"\b(numpy|np)\b")

CPP_HEADERS = (
    "stdlib.h", "algorithm", "math.h", "stdio.h", "vector", "string", "climits", "cstring", "iostream",
)

_JS_PREAMBLE = (
    'const __geexAssert = require("node:assert"); '
    "console.assert = (ok, ...msg) => { if (!ok) throw new __geexAssert.AssertionError("
    '{ message: "console.assert failed" + (msg.length ? ": " + msg.join(" ") : "") }); };\n'
)

# Go packages a solution or test may use without importing them (the prompt's import block is
# replaced). Name in code -> import path. Wider than the original's ten: unicode, container/heap …
GO_PACKAGES: dict[str, str] = {
    "math": "math", "strings": "strings", "fmt": "fmt", "strconv": "strconv", "time": "time",
    "bytes": "bytes", "regexp": "regexp", "sort": "sort", "rand": "math/rand", "md5": "crypto/md5",
    "unicode": "unicode", "utf8": "unicode/utf8", "heap": "container/heap", "list": "container/list",
    "bits": "math/bits", "big": "math/big", "cmplx": "math/cmplx", "hex": "encoding/hex",
    "errors": "errors", "reflect": "reflect", "os": "os", "bufio": "bufio", "sha256": "crypto/sha256",
}
_GO_IMPORT_BLOCK = re.compile(r"^import\s*(\([^)]*\)|\"[^\"]*\")\s*\n?", re.MULTILINE)
# C-family comments, string/char literals and Go raw strings: what is not code for a name search
_COMMENT_OR_LITERAL = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|`[^`]*`|\'(?:\\.|[^\'\\\n])*\'', re.S)


@dataclass(frozen=True)
class Program:
    """A complete source file for one sample, ready for a language runner."""

    language: Language
    source: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(f"{self.language.name}\0{self.source}".encode()).hexdigest()


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
    if problem.language.name == "rust" and "fn " not in _code_only(problem.prompt):
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


def _code_only(text: str) -> str:
    """``text`` with comments and literals blanked (one space each)."""
    return _COMMENT_OR_LITERAL.sub(" ", text)


def go_imports(code: str, already: str) -> list[str]:
    """Import paths for the packages ``code`` refers to (``pkg.Name``) and ``already`` lacks."""
    used = set(re.findall(r"(?<![\w.])([a-z][a-z0-9]*)\.[A-Za-z_]", _code_only(code)))
    return sorted(path for name, path in GO_PACKAGES.items() if name in used and f'"{path}"' not in already)


def _go_program(problem: Problem, head: str, completion: str) -> str:
    setup = problem.get("test_setup") or 'package main\n\nimport (\n    "testing"\n    "github.com/stretchr/testify/assert"\n)\n'
    head = _GO_IMPORT_BLOCK.sub("", head, count=1) if head.lstrip().startswith("import") else head
    body = head + completion + "\n" + problem.test
    imports = go_imports(body, setup)
    block = "import (\n" + "".join(f'    "{p}"\n' for p in imports) + ")\n" if imports else ""
    return setup + "\n" + block + body


def program_source(problem: Problem, head: str, completion: str) -> str:
    """Splice head (prompt or declaration) + completion + test into one program text."""
    lang = problem.language.name
    if lang == "python":
        code = head + completion + "\n" + problem.test
        numpy = _PY_NUMPY if _PY_USES_NUMPY.search(code) else ""
        return _PY_IMPORTS + numpy + "\n" + code
    if lang == "cpp":
        code = head + completion + "\n" + problem.test
        missing = [h for h in CPP_HEADERS if not re.search(rf"#\s*include\s*<{re.escape(h)}>", code)]
        return "".join(f"#include<{h}>\n" for h in missing) + "\n" + code
    if lang == "java":
        return head + completion + "\n" + problem.test
    if lang == "js":
        return _JS_PREAMBLE + head + completion + "\n" + problem.test
    if lang == "go":
        return _go_program(problem, head, completion)
    if lang == "rust":
        return "fn main(){}\n" + head + completion + "\n" + problem.test
    raise ValueError(f"no assembly for {lang}")


def assemble(problem: Problem, completion: str, *, translation: bool = False, clean: bool = True) -> Program:
    """The program testing ``completion`` for ``problem`` (the target problem for translation)."""
    head = problem.declaration if translation else generation_prompt(problem)
    if clean:  # the head's definitions (the target function first) are never repeated
        completion = cleanup(problem.language, completion, head)
    return Program(problem.language, program_source(problem, head, completion))
