"""Go's unused-import retry: the position-based edit on both compilers' wordings, and real samples
through the installed toolchain (whose compiler prints whichever wording it has).

Go 1.19 (the installed one, checked by ``test_installed_compiler_reports_every_unused_import``):
``main_test.go:4:5: imported and not used: "fmt"`` and ``... "strings" as str``; Go 1.20+:
``"fmt" imported and not used`` and ``"strings" imported as str and not used``.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from geex.humanevalx.assembly import assemble
from geex.humanevalx.dataset import load_problems
from geex.humanevalx.execution.program import Program
from geex.humanevalx.execution.runners import RunContext, get_runner
from geex.humanevalx.execution.runners.go import drop_unused_imports
from geex.humanevalx.execution.sandbox import Sandbox
from geex.humanevalx.execution.verdict import Verdict
from geex.languages import get_language

SOURCE = b"""package main

import (
    "testing"
    "fmt"
    str "strings"
    . "os"
    "sort"
)
import m "math"

func F(t *testing.T) { sort.Ints(nil) }
"""
KEPT = b"""package main

import (
    "testing"
    "sort"
)

func F(t *testing.T) { sort.Ints(nil) }
"""
GO_119 = """# sample
main_test.go:5:5: imported and not used: "fmt"
main_test.go:6:5: imported and not used: "strings" as str
main_test.go:7:5: imported and not used: "os"
main_test.go:10:8: imported and not used: "math" as m
"""
GO_120 = """# sample
./main_test.go:5:5: "fmt" imported and not used
./main_test.go:6:5: "strings" imported as str and not used
./main_test.go:7:5: "os" imported and not used
./main_test.go:10:8: "math" imported as m and not used
"""


@pytest.mark.parametrize("diagnostics", [GO_119, GO_120], ids=["go1.19", "go1.20+"])
def test_drop_unused_imports_by_position(diagnostics: str) -> None:
    assert drop_unused_imports(SOURCE, diagnostics) == KEPT


def test_another_error_means_no_retry() -> None:
    other = GO_119 + "main_test.go:12:30: undefined: foo\n"
    assert drop_unused_imports(SOURCE, other) is None
    assert drop_unused_imports(SOURCE, "main_test.go:12:30: undefined: foo\n") is None
    assert drop_unused_imports(SOURCE, "") is None
    # a position that holds no import spec is left alone rather than guessed at
    assert drop_unused_imports(SOURCE, 'main_test.go:12:1: imported and not used: "x"\n') is None


@pytest.mark.toolchains
def test_installed_compiler_reports_every_unused_import(tmp_path) -> None:
    """The installed ``go tool compile`` rejects SOURCE, and accepts it once its diagnostics are
    applied: whatever its wording, plain, aliased, dot and single-line imports are all found."""
    if shutil.which("go") is None:
        pytest.skip("go not installed")
    tooldir = subprocess.run(["go", "env", "GOTOOLDIR"], capture_output=True, text=True, check=True).stdout.strip()

    def compile_(source: bytes) -> subprocess.CompletedProcess:
        (tmp_path / "main_test.go").write_bytes(source)
        return subprocess.run([f"{tooldir}/compile", "-p", "sample", "-o", "x.a", "main_test.go"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)

    first = compile_(SOURCE)
    assert first.returncode != 0 and "not used" in first.stdout + first.stderr
    fixed = drop_unused_imports(SOURCE, first.stdout + first.stderr)
    assert fixed == KEPT, first.stdout + first.stderr
    assert compile_(fixed).returncode == 0


# -- real samples through the runner ----------------------------------------------------------------


@pytest.fixture(scope="module")
def add_task(dataset_dir):
    return load_problems([get_language("go")], str(dataset_dir), False)["Go/53"]


@pytest.fixture(scope="module")
def ctx():
    jobs = Path(tempfile.mkdtemp(prefix="geex-go-test-"))
    jobs.chmod(0o755)
    context = RunContext(Sandbox(), jobs, slot=0, timeout_s=10)
    yield context
    context.close()
    shutil.rmtree(jobs)


SHADOWED = "    var time struct{ Second int }\n    return x + y + time.Second\n}\n"


@pytest.mark.toolchains
def test_sample_with_an_extra_import_passes(add_task, ctx) -> None:
    """``time.Second`` reads a local variable, so assembly's import of "time" is unused: dropped."""
    program = assemble(add_task, SHADOWED, clean=False)
    assert '"time"' in program.source
    outcome = get_runner("go").execute(program, ctx)
    assert (outcome.verdict, outcome.phase) == (Verdict.PASSED, "run"), outcome.detail


@pytest.mark.toolchains
def test_sample_with_unused_aliased_and_single_line_imports_passes(add_task, ctx) -> None:
    program = assemble(add_task, "    return x + y\n}\n", clean=False)
    head, sep, rest = program.source.partition('    "testing"\n')
    source = head + sep + '    str "strings"\n    . "os"\n' + rest.replace(")\n", ')\nimport m "math"\n', 1)
    outcome = get_runner("go").execute(Program(program.language, source), ctx)
    assert (outcome.verdict, outcome.phase) == (Verdict.PASSED, "run"), outcome.detail


@pytest.mark.toolchains
def test_unused_import_and_a_real_error_is_a_compile_error(add_task, ctx) -> None:
    completion = "    var time struct{ Second int }\n    return x + y + time.Second + undefinedName\n}\n"
    outcome = get_runner("go").execute(assemble(add_task, completion, clean=False), ctx)
    assert (outcome.verdict, outcome.phase) == (Verdict.COMPILE_ERROR, "compile"), outcome.detail
    assert "undefinedName" in outcome.detail
