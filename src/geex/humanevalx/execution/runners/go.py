"""Go: the sample compiled and linked with Go's own compiler and linker against prebuilt packages.

``go test`` spends most of a sample's time in the go command (package loading, vet, a cached link
of a DWARF-laden binary). The harness does what it does, minus that: at preparation the standard
packages a program may import and Debian's testify are built once (``go list -export``) into an
``importcfg``; per sample, ``compile`` turns the test file into a package, a generated test main
(``testing.Main`` over the file's ``TestXxx`` functions) is compiled, and ``link -s -w`` makes the
test binary. No step needs a writable cache, and none runs generated code.

Imports are decided by assembly from the generated code and the test; an import the compiler
reports as unused is dropped and the program compiled again (what goimports would do). The import is
found by the position the compiler reports, not by its wording, which changed in Go 1.20 (1.19:
``imported and not used: "fmt"``, ``... "strings" as str``; 1.20+: ``"fmt" imported and not used``,
``"strings" imported as str and not used``).
``go vet`` is not run (the original's ``go test`` ran it, failing correct programs on style).

Proof of completion (``harness/geexproof.go``): the test file gets a blank import of package
``geexproof`` (so its ``init`` reads the secret before any ``init`` of the sample), and the test
main is ``testing.MainStart`` + ``m.Run()`` with ``-test.paniconexit0`` (the arguments are set by
the test main itself, after every ``init``), reporting the proof only when ``m.Run()`` returned 0
and every test function returned.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from geex.humanevalx.execution.runners.base import ExecResult, RunContext, Runner, ToolStatus, tool_output, write_file
from geex.humanevalx.execution.sandbox import SAFE_PATH

# Go packages a solution or test may use without importing them (the prompt's import block is
# replaced). Name in code -> import path. Wider than the original's ten: unicode, container/heap …
GO_PACKAGES: dict[str, str] = {
    "math": "math", "strings": "strings", "fmt": "fmt", "strconv": "strconv", "time": "time",
    "bytes": "bytes", "regexp": "regexp", "sort": "sort", "rand": "math/rand", "md5": "crypto/md5",
    "unicode": "unicode", "utf8": "unicode/utf8", "heap": "container/heap", "list": "container/list",
    "bits": "math/bits", "big": "math/big", "cmplx": "math/cmplx", "hex": "encoding/hex",
    "errors": "errors", "reflect": "reflect", "os": "os", "bufio": "bufio", "sha256": "crypto/sha256",
}
GOPATH = Path("/usr/share/gocode")
TESTIFY = "github.com/stretchr/testify/assert"
# a positioned compiler diagnostic about the sample's file, and the unused-import message of any Go
_DIAGNOSTIC = re.compile(r"^(?:\./)?main_test\.go:(\d+):(\d+): (.*)$", re.M)
_UNUSED_IMPORT = re.compile(r"\bimported (?:as \S+ )?and not used\b")
# one import spec where the compiler points: optional name (alias, ".", "_"), then the quoted path
_IMPORT_SPEC = re.compile(rb'(?:[\w.]+[ \t]+)?"[^"\n]*"[ \t]*;?[ \t]*')
MAX_IMPORT_RETRIES = 3  # the compiler lists at most 10 errors: more unused imports need another pass
_TEST_FUNC = re.compile(r"^func\s+(Test\w*)\s*\(\s*\w+\s+\*testing\.T\s*\)", re.M)
_TEST_MAIN = """package main

import (
    "os"
    "testing"
    "testing/internal/testdeps"
    "geexproof"
    sample "sample"
)

var returned [{count}]bool // set when a test function returns (not after t.FailNow or os.Exit)

var tests = []testing.InternalTest{{
{entries}}}

func allReturned() bool {{
    for _, r := range returned {{
        if !r {{
            return false
        }}
    }}
    return len(returned) > 0 // no test function: nothing was tested
}}

func main() {{
    m := testing.MainStart(testdeps.TestDeps{{}}, tests, nil, nil, nil)
    os.Args = []string{{os.Args[0], "-test.paniconexit0"}} // whatever an init of the sample put there
    code := m.Run()
    if code == 0 && allReturned() {{
        geexproof.Report()
    }}
    os.Exit(code)
}}
"""
_PROOF_IMPORT = 'import _ "geexproof"\n'
_BUILD = (
    '"$T/compile" -p sample -importcfg importcfg.main -o sample.a main_test.go && '
    '"$T/compile" -p main -importcfg importcfg.main -o main.a testmain.go && '
    '"$T/link" -s -w -importcfg importcfg.main -o main.test main.a'
)


class GoRunner(Runner):
    language = "go"
    install_hint = "apt-get install golang-go golang-github-stretchr-testify-dev"

    def status(self) -> ToolStatus:
        go = shutil.which("go")
        version = tool_output([go, "version"]) if go else None
        if version is None:
            return ToolStatus(False, "", "go not found", self.install_hint)
        if not (GOPATH / "src" / TESTIFY).is_dir():
            return ToolStatus(False, version, f"testify missing from {GOPATH}", self.install_hint)
        return ToolStatus(True, version)

    @property
    def pkg_dir(self) -> Path:
        return self.cache_dir() / f"pkg-{self.toolchain_key()}"

    def _prepare_packages(self, sandbox) -> None:
        self.tooldir = Path(tool_output(["go", "env", "GOTOOLDIR"]) or "")
        if not (self.tooldir / "compile").exists():
            raise RuntimeError(f"go tool compile not found in {self.tooldir}")
        cfg = self.pkg_dir / "importcfg"
        if cfg.is_file():
            return
        build = self.pkg_dir.with_name(self.pkg_dir.name + ".tmp")
        shutil.rmtree(build, ignore_errors=True)
        (build / "gocache").mkdir(parents=True)
        env = {"PATH": SAFE_PATH, "HOME": str(build), "GO111MODULE": "off",
               "GOPATH": str(GOPATH), "GOCACHE": str(build / "gocache"), "CGO_ENABLED": "0", "GOFLAGS": ""}
        packages = sorted({"testing", "testing/internal/testdeps", TESTIFY, *GO_PACKAGES.values()})
        r = subprocess.run(
            ["go", "list", "-export", "-deps", "-f", "{{if .Export}}{{.ImportPath}}={{.Export}}{{end}}", *packages],
            capture_output=True, text=True, env=env, timeout=900,
        )
        if r.returncode != 0:
            raise RuntimeError(f"building Go packages failed: {r.stderr[-800:]}")
        lines = []
        for i, line in enumerate(r.stdout.split()):
            path, export = line.split("=", 1)
            dest = build / f"{i:03d}.a"
            shutil.copyfile(export, dest)
            lines.append(f"packagefile {path}={self.pkg_dir / dest.name}\n")
        shutil.rmtree(build / "gocache")
        (build / "importcfg").write_text("".join(lines))
        for p in [build, *build.iterdir()]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        shutil.rmtree(self.pkg_dir, ignore_errors=True)
        build.rename(self.pkg_dir)

    proof_files = ("geexproof.go",)

    def _prepare(self, sandbox) -> None:
        self._prepare_packages(sandbox)

        def build(tmp: Path) -> None:
            subprocess.run([str(self.tooldir / "compile"), "-p", "geexproof", "-importcfg",
                            str(self.pkg_dir / "importcfg"), "-o", str(tmp / "geexproof.a"), str(tmp / "geexproof.go")],
                           check=True, capture_output=True, timeout=300, env={"PATH": SAFE_PATH, "GOGC": "off"})

        self._install_proof(build)

    def write(self, program, workdir: Path) -> None:
        """The sample (with the proof package imported first), the generated test main and the
        linker's import config: all of them before the compile, so that the runner checks they are
        still there when a step fails."""
        # the blank import right after the package clause: geexproof's init runs before the sample's
        source = re.sub(r"^(package\s+\w+[^\n]*\n)", lambda m: m.group(1) + _PROOF_IMPORT, program.source,
                        count=1, flags=re.M)
        write_file(workdir, "main_test.go", source)
        names = list(dict.fromkeys(_TEST_FUNC.findall(source)))
        entries = "".join(f'    {{"{name}", func(t *testing.T) {{ sample.{name}(t); returned[{i}] = true }}}},\n'
                          for i, name in enumerate(names))
        write_file(workdir, "testmain.go", _TEST_MAIN.format(entries=entries, count=len(names)))
        cfg = self.pkg_dir / "importcfg"
        write_file(workdir, "importcfg.main",
                   cfg.read_text() + f"packagefile geexproof={self.proof_dir / 'geexproof.a'}\n"
                   f"packagefile sample={workdir / 'sample.a'}\n")

    def _build(self, workdir: Path, ctx: RunContext) -> ExecResult:
        return ctx.sandbox.run(
            ["/bin/sh", "-c", _BUILD], cwd=workdir, limits=self.compile_limits, uid=ctx.uid,
            env={"T": str(self.tooldir), "GOGC": "off"},  # GOGC=off: a 12% faster link
            ro_binds=(self.pkg_dir, self.proof_dir),
        )

    def compile(self, workdir: Path, ctx: RunContext) -> ExecResult:
        result = self._build(workdir, ctx)
        path = workdir / "main_test.go"
        for _ in range(MAX_IMPORT_RETRIES):
            if result.ok:
                break
            source = path.read_bytes()
            fixed = drop_unused_imports(source, result.stderr + "\n" + result.stdout)
            if fixed is None or fixed == source:
                break
            write_file(workdir, "main_test.go", fixed)
            result = self._build(workdir, ctx)
        return result

    def required_paths(self) -> tuple[Path, ...]:
        return (self.pkg_dir, self.tooldir, self.proof_dir)

    def run_argv(self, workdir: Path) -> list[str]:
        return ["./main.test"]


def drop_unused_imports(source: bytes, diagnostics: str) -> bytes | None:
    """``source`` without the import specs the compiler reported as unused, or None when the
    diagnostics hold another error as well (the program fails to compile either way).

    Positions are line and byte column (1-based), as every Go compiler prints them; a line left
    with nothing but ``import`` (a single-spec import declaration) goes as a whole.
    """
    found = [(int(line), int(col), msg) for line, col, msg in _DIAGNOSTIC.findall(diagnostics)]
    unused = [(line, col) for line, col, msg in found if _UNUSED_IMPORT.search(msg)]
    if not unused or len(unused) < len(found):
        return None
    lines = source.split(b"\n")
    for line, col in sorted(set(unused), reverse=True):
        if not 1 <= line <= len(lines):
            return None
        text = lines[line - 1]
        spec = _IMPORT_SPEC.match(text, col - 1)
        if spec is None:
            return None
        rest = text[: spec.start()] + text[spec.end():]
        if rest.strip() in (b"", b"import"):
            del lines[line - 1]
        else:
            lines[line - 1] = rest
    return b"\n".join(lines)
