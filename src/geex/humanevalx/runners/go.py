"""Go: ``go test -c`` in GOPATH mode against Debian's testify, with a warm shared build cache.

Compiling runs no generated code, so the build cache may be shared and writable there; the test
binary then runs in a sandbox that cannot see the cache. Imports are decided by assembly from the
generated code and the test; an import the compiler reports as unused is dropped and the program
compiled once more (what goimports would do).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from geex.humanevalx.runners import ExecResult, Runner, RunContext, ToolStatus, tool_output

GOPATH = Path("/usr/share/gocode")
_UNUSED = re.compile(r'"([\w/]+)" imported and not used')
_WARM = (
    'package main\n\nimport (\n    "testing"\n    "github.com/stretchr/testify/assert"\n'
    '    "math"\n    "strings"\n    "fmt"\n    "strconv"\n    "sort"\n)\n\n'
    "func TestWarm(t *testing.T) {\n    assert.Equal(t, 1.0, math.Abs(-1))\n"
    '    _ = strings.ToUpper("a") + fmt.Sprint(1) + strconv.Itoa(1)\n    sort.Ints([]int{})\n}\n'
)


class GoRunner(Runner):
    language = "go"
    install_hint = "apt-get install golang-go golang-github-stretchr-testify-dev"

    def status(self) -> ToolStatus:
        go = shutil.which("go")
        version = tool_output([go, "version"]) if go else None
        if version is None:
            return ToolStatus(False, "", "go not found", self.install_hint)
        if not (GOPATH / "src/github.com/stretchr/testify/assert").is_dir():
            return ToolStatus(False, version, f"testify missing from {GOPATH}", self.install_hint)
        return ToolStatus(True, version)

    @property
    def gocache(self) -> Path:
        return self.cache_dir() / "gocache"

    def _env(self) -> dict[str, str]:
        return {"GO111MODULE": "off", "GOPATH": str(GOPATH), "GOCACHE": str(self.gocache),
                "GOFLAGS": "", "CGO_ENABLED": "0", "GOTOOLCHAIN": "local", "GOPROXY": "off"}

    def _go_test_c(self, workdir: Path, ctx) -> ExecResult:
        return ctx.sandbox.run(
            ["go", "test", "-c", "-vet=off", "-o", "main.test", "main_test.go"], cwd=workdir,
            limits=self.compile_limits, uid=ctx.uid, env=self._env(), rw_binds=(self.gocache,), umask=0,
        )

    def _prepare(self, sandbox) -> None:
        self.gocache.mkdir(parents=True, exist_ok=True)
        self.gocache.chmod(0o777)
        self.cache_dir().chmod(0o755)
        import tempfile

        from geex.humanevalx.runners import RunContext

        with tempfile.TemporaryDirectory(prefix="geex-go-warm-") as tmp:
            root = Path(tmp)
            root.chmod(0o755)
            ctx = RunContext(sandbox, root, slot=0)
            try:
                workdir = ctx.new_workdir()
                (workdir / "main_test.go").write_text(_WARM)
                r = self._go_test_c(workdir, ctx)
            finally:
                ctx.close()
            if not r.ok:
                raise RuntimeError(f"warming the Go build cache failed: {(r.stderr + r.stdout)[-800:]}")

    def write(self, program, workdir: Path) -> None:
        (workdir / "main_test.go").write_text(program.source, encoding="utf-8")

    def compile(self, workdir: Path, ctx: RunContext) -> ExecResult:
        result = self._go_test_c(workdir, ctx)
        unused = set(_UNUSED.findall(result.stderr + result.stdout)) if not result.ok else set()
        if unused:
            path = workdir / "main_test.go"
            source = path.read_text(encoding="utf-8")
            for pkg in unused:
                source = source.replace(f'    "{pkg}"\n', "", 1)
            path.write_text(source, encoding="utf-8")
            result = self._go_test_c(workdir, ctx)
        return result

    def run_argv(self, workdir: Path) -> list[str]:
        return ["./main.test", "-test.count=1"]
