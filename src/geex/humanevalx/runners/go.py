"""Go: the sample compiled and linked with Go's own compiler and linker against prebuilt packages.

``go test`` spends most of a sample's time in the go command (package loading, vet, a cached link
of a DWARF-laden binary). The harness does what it does, minus that: at preparation the standard
packages a program may import and Debian's testify are built once (``go list -export``) into an
``importcfg``; per sample, ``compile`` turns the test file into a package, a generated test main
(``testing.Main`` over the file's ``TestXxx`` functions) is compiled, and ``link -s -w`` makes the
test binary. No step needs a writable cache, and none runs generated code.

Imports are decided by assembly from the generated code and the test; an import the compiler
reports as unused is dropped and the program compiled once more (what goimports would do).
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

from geex.humanevalx.assembly import GO_PACKAGES
from geex.humanevalx.runners import ExecResult, Runner, RunContext, ToolStatus, tool_output
from geex.humanevalx.sandbox import SAFE_PATH

GOPATH = Path("/usr/share/gocode")
TESTIFY = "github.com/stretchr/testify/assert"
_UNUSED = re.compile(r'"([\w/.]+)" imported and not used')
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
        return self.cache_dir() / f"pkg-{self.fingerprint(0)}"

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
        # the blank import right after the package clause: geexproof's init runs before the sample's
        source = re.sub(r"^(package\s+\w+[^\n]*\n)", lambda m: m.group(1) + _PROOF_IMPORT, program.source,
                        count=1, flags=re.M)
        (workdir / "main_test.go").write_text(source, encoding="utf-8")

    def _build(self, workdir: Path, ctx: RunContext) -> ExecResult:
        source = (workdir / "main_test.go").read_text(encoding="utf-8")
        names = list(dict.fromkeys(_TEST_FUNC.findall(source)))
        entries = "".join(f'    {{"{name}", func(t *testing.T) {{ sample.{name}(t); returned[{i}] = true }}}},\n'
                          for i, name in enumerate(names))
        (workdir / "testmain.go").write_text(_TEST_MAIN.format(entries=entries, count=len(names)))
        cfg = self.pkg_dir / "importcfg"
        (workdir / "importcfg.main").write_text(
            cfg.read_text() + f"packagefile geexproof={self.proof_dir / 'geexproof.a'}\n"
            f"packagefile sample={workdir / 'sample.a'}\n")
        return ctx.sandbox.run(
            ["/bin/sh", "-c", _BUILD], cwd=workdir, limits=self.compile_limits, uid=ctx.uid,
            env={"T": str(self.tooldir), "GOGC": "off"},  # GOGC=off: a 12% faster link
            ro_binds=(self.pkg_dir, self.proof_dir),
        )

    def compile(self, workdir: Path, ctx: RunContext) -> ExecResult:
        result = self._build(workdir, ctx)
        unused = set(_UNUSED.findall(result.stderr + result.stdout)) if not result.ok else set()
        if unused:
            path = workdir / "main_test.go"
            source = path.read_text(encoding="utf-8")
            for pkg in unused:
                source = source.replace(f'    "{pkg}"\n', "", 1)
            path.write_text(source, encoding="utf-8")
            result = self._build(workdir, ctx)
        return result

    def required_paths(self) -> tuple[Path, ...]:
        return (self.pkg_dir, self.tooldir, self.proof_dir)

    def run_argv(self, workdir: Path) -> list[str]:
        return ["./main.test"]
