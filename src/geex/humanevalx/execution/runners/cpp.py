"""C++: g++ with a precompiled header of the standard headers every program gets.

Linked with geex's ``geex_proof.o`` first (its ``.preinit_array`` entry reads the proof secret
before any constructor of the program) and ``-Wl,--wrap=main`` (the test's ``main`` runs inside
geex's, which reports the proof when it returns 0); see ``harness/geex_proof.c``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from geex.humanevalx.execution.runners.base import ExecResult, RunContext, Runner, ToolStatus, tool_output

# the headers every C++ program gets (assembly adds the includes a program lacks; they are the
# precompiled header)
CPP_HEADERS = (
    "stdlib.h", "algorithm", "math.h", "stdio.h", "vector", "string", "climits", "cstring", "iostream",
)
STD = "-std=c++17"  # a superset of the original's c++11 for HumanEval-X code; models write modern C++


class CppRunner(Runner):
    language = "cpp"
    install_hint = "apt-get install g++ libboost-dev libssl-dev"

    def status(self) -> ToolStatus:
        gxx = shutil.which("g++")
        version = tool_output([gxx, "--version"]) if gxx else None
        if version is None:
            return ToolStatus(False, "", "g++ not found", self.install_hint)
        missing = [h for h in ("/usr/include/boost/any.hpp", "/usr/include/openssl/md5.h") if not Path(h).exists()]
        if missing:
            return ToolStatus(False, version, f"missing {', '.join(missing)}", self.install_hint)
        return ToolStatus(True, version)

    @property
    def pch_header(self) -> Path:
        return self.cache_dir() / f"pch-{self.toolchain_key()}" / "geex_std.hpp"

    def _flags(self) -> list[str]:
        return [STD, "-O0", "-w", "-pipe"]

    def _prepare(self, sandbox) -> None:
        self._install_proof_object()
        header = self.pch_header
        gch = header.with_name(header.name + ".gch")
        if gch.is_file():
            return
        header.parent.mkdir(parents=True, exist_ok=True)
        header.write_text("".join(f"#include <{h}>\n" for h in CPP_HEADERS))
        tmp = gch.with_suffix(".tmp")
        subprocess.run(["g++", *self._flags(), "-x", "c++-header", str(header), "-o", str(tmp)],
                       check=True, capture_output=True, timeout=300)
        tmp.rename(gch)
        header.parent.chmod(0o755)

    proof_files = ("geex_proof.c",)

    def _install_proof_object(self) -> None:
        def build(tmp: Path) -> None:
            subprocess.run(["gcc", "-O2", "-w", "-c", str(tmp / "geex_proof.c"), "-o", str(tmp / "geex_proof.o")],
                           check=True, capture_output=True, timeout=300)

        self._install_proof(build)

    def compile(self, workdir: Path, ctx: RunContext) -> ExecResult:
        source = (workdir / "main.cpp").read_text(encoding="utf-8")
        libs = ["-lcrypto", "-lssl"] if "openssl" in source else []
        gold = ["-fuse-ld=gold"] if shutil.which("ld.gold") else []  # links in a third of bfd's time
        proof = str(self.proof_dir / "geex_proof.o")  # first: its .preinit_array entry runs first
        argv = ["g++", *self._flags(), "-include", str(self.pch_header), proof, "main.cpp", "-o", "main",
                "-Wl,--wrap=main", *gold, *libs]
        return ctx.sandbox.run(argv, cwd=workdir, limits=self.compile_limits, uid=ctx.uid,
                               ro_binds=(self.pch_header.parent, self.proof_dir))

    def required_paths(self) -> tuple[Path, ...]:
        return (self.pch_header.parent, self.proof_dir)

    def run_argv(self, workdir: Path) -> list[str]:
        return ["./main"]
