"""Java: a long-lived compile server per worker (javac in a warm JVM), one JVM per test run.

A fresh ``javac`` costs 1.4-2.5 s of JVM start-up and JIT warm-up per sample; the server compiles
a sample in a fraction of that. It runs sandboxed under its own uid with annotation processing off,
so it executes no generated code. A compile that exceeds its time budget kills the server (a new one
starts for the next sample).

A server that dies on a sample (an out-of-memory exit on a giant constant, a crash, a kill) is
never taken for the harness's fault on its word: a fresh server compiles a known-good control
program, and if that works the sample is to blame (``resource_limit`` when the JVM ran out of
memory, else ``compile_error``) and the fresh server serves the next sample; only when the control
fails as well is it a ``harness_error``. A sample cannot leave pass@k by killing the compiler.

The test runs as ``java -cp <harness>:. GeexMain``: geex's main class (``harness/GeexMain.java``,
compiled once, first on the class path) holds the proof of completion and calls ``Main.main``.

A class of the program shadows, for the test too, a class of a package imported on demand
(``import java.util.*``, ``java.lang``): a completion's ``class Arrays`` whose ``asList`` returns an
empty list disarms almost every Java test. So the JDK classes the test names are imported by
single-type imports (written on the program's first line; the list of each package's public
classes comes from the JDK at preparation, ``harness/GeexClasses.java``): such a completion is a
compile error.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
from importlib import resources
from pathlib import Path

from geex.humanevalx.execution.program import code_only
from geex.humanevalx.execution.runners.base import (
    ExecResult,
    RunContext,
    Runner,
    ToolStatus,
    hand_over,
    tool_output,
    write_file,
)
from geex.humanevalx.execution.sandbox import Limits, _decode_status, kill_uid
from geex.humanevalx.execution.verdict import excerpt

JVM_FLAGS = [
    "-Xss16m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:-UsePerfData",
    "-XX:CompressedClassSpaceSize=64m", "-XX:ReservedCodeCacheSize=64m", "-XX:MaxMetaspaceSize=192m",
    "-Xshare:auto",
]
# The server exits on its first OutOfMemoryError rather than going on in a state javac may have
# left half-updated (its caches outlive a compile); VM messages go to stderr, not into the protocol.
SERVER_FLAGS = [*JVM_FLAGS, "-XX:+ExitOnOutOfMemoryError", "-XX:+DisplayVMOutputToStderr"]
SERVER_DIED = "javac server died"
CONTROL_SOURCE = 'public class Main {\n    public static void main(String[] args) { System.out.println(1); }\n}\n'
# packages whose classes a test may name through an on-demand import (java.lang: always)
JDK_PACKAGES = ("java.lang", "java.util", "java.util.function", "java.util.stream", "java.math", "java.security",
                "java.io", "java.text")
CLASS_LIST = "jdk-classes.txt"
_ON_DEMAND = re.compile(r"^\s*import\s+([\w.]+)\.\*\s*;", re.MULTILINE)
_DECLARED = re.compile(r"\b(?:class|interface|enum|record)\s+([A-Za-z_$][\w$]*)")
_IDENTIFIER = re.compile(r"(?<![\w$.])[A-Za-z_$][\w$]*")


def test_class_imports(head: str, test: str, jdk_classes: dict[str, set[str]]) -> str:
    """Single-type imports (one line, no newline: line numbers stay) of the JDK classes the test
    names through an on-demand import of the head or the test, but does not declare itself."""
    trusted = code_only(head + "\n" + test)
    packages = {"java.lang", *_ON_DEMAND.findall(trusted)}
    declared = set(_DECLARED.findall(trusted))
    imports = []
    for name in sorted(set(_IDENTIFIER.findall(code_only(test))) - declared):
        found = jdk_classes.get(name, set()) & packages
        if len(found) == 1:  # two would make the test's own name ambiguous: leave it as it is
            imports.append(f"import {found.pop()}.{name}; ")
    return "".join(imports)


class JavacServer:
    """One sandboxed JVM running GeexJavac, fed one directory per compile."""

    def __init__(self, runner: "JavaRunner", ctx: RunContext) -> None:
        self.stderr = tempfile.TemporaryFile()  # why it died, if it does (read from ``_mark`` on)
        self._mark = 0
        self.proc = ctx.sandbox.popen(
            ["java", *SERVER_FLAGS, "-cp", str(runner.server_dir), "GeexJavac"],
            cwd=ctx.jobs_root, limits=runner.server_limits, uid=ctx.helper_uid,
            ro_binds=(runner.server_dir,), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self.stderr,
        )
        self.uid = ctx.helper_uid
        self.sandbox = ctx.sandbox
        self.timed_out = False  # why the last compile() returned None: True = too slow, False = died

    def compile(self, workdir: Path, timeout: float) -> tuple[bool, str] | None:
        """(ok, diagnostics), or None if the server died or exceeded ``timeout`` (see ``timed_out``)."""
        deadline = time.monotonic() + timeout
        self._mark = os.fstat(self.stderr.fileno()).st_size
        try:
            self.proc.stdin.write(f"{workdir}\n".encode())
            self.proc.stdin.flush()
            header = self._read_line(deadline)
            if header is None:
                return None
            status, _, size = header.partition(" ")
            body = self._read_exact(int(size), deadline)
            if body is None:
                return None
            return status == "OK", body.decode("utf-8", errors="replace")
        except (OSError, ValueError):
            return None

    def _wait_readable(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining > 0 and select.select([self.proc.stdout], [], [], remaining)[0]:
            return True
        self.timed_out = True
        return False

    def _read_line(self, deadline: float) -> str | None:
        buf = b""
        while not buf.endswith(b"\n"):
            if not self._wait_readable(deadline):
                return None
            chunk = os.read(self.proc.stdout.fileno(), 1)
            if not chunk:
                return None  # EOF: the server died
            buf += chunk
        return buf.decode().strip()

    def _read_exact(self, n: int, deadline: float) -> bytes | None:
        buf = b""
        while len(buf) < n:
            if not self._wait_readable(deadline):
                return None
            chunk = os.read(self.proc.stdout.fileno(), n - len(buf))
            if not chunk:
                return None
            buf += chunk
        return buf

    def death(self, wait_s: float = 5.0) -> tuple[int | None, int | None, str]:
        """(exit code, signal, what it wrote to stderr during the last compile) of a server whose
        answer never came; closes it. A server still running after ``wait_s`` (it broke the
        protocol) is killed, and reads as killed by SIGKILL."""
        try:
            self.proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            pass
        self.stderr.seek(self._mark)
        said = self.stderr.read(16384).decode("utf-8", errors="replace")
        self.close()
        code, sig = _decode_status(self.proc.returncode, self.sandbox.isolation.namespaces)
        return code, sig, said

    def close(self) -> None:
        try:
            os.killpg(self.proc.pid, 9)
        except OSError:
            pass
        self.proc.wait()
        for pipe in (self.proc.stdin, self.proc.stdout, self.stderr):
            try:
                pipe.close()
            except OSError:
                pass
        if self.sandbox.isolation.drops_uid:  # gone before the uid's lease is given back
            kill_uid(self.uid)


class JavaRunner(Runner):
    language = "java"
    source_name = "Main"
    install_hint = "apt-get install openjdk-17-jdk-headless"
    server_limits = Limits(wall_s=1e9, cpu_s=10**6, address_space_mb=8192, nproc=256, fsize_mb=64, tmp_mb=64)

    def status(self) -> ToolStatus:
        javac, java = shutil.which("javac"), shutil.which("java")
        if not javac or not java:
            return ToolStatus(False, "", "javac/java not found", self.install_hint)
        version = tool_output([javac, "-version"])
        runtime = tool_output([java, "-version"])
        if version is None or runtime is None:
            return ToolStatus(False, "", "javac/java do not run", self.install_hint)
        return ToolStatus(True, f"{version}; {runtime}")

    @property
    def server_dir(self) -> Path:
        return self.cache_dir() / f"javac-server-{self.toolchain_key()}"

    def _prepare(self, sandbox) -> None:
        self._install_main()
        if (self.server_dir / "GeexJavac.class").is_file():
            return
        self.server_dir.mkdir(parents=True, exist_ok=True)
        source = self.server_dir / "GeexJavac.java"
        source.write_text(resources.files("geex.humanevalx.execution").joinpath("java/GeexJavac.java").read_text())
        subprocess.run(["javac", "-d", str(self.server_dir), str(source)], check=True, capture_output=True, timeout=300)
        self.server_dir.chmod(0o755)

    def compile_uid(self, ctx: RunContext) -> int:
        return ctx.helper_uid  # the javac server reads the sources and writes the classes

    def _server(self, ctx: RunContext) -> JavacServer:
        server = ctx.helpers.get("javac")
        if server is None or server.proc.poll() is not None:
            server = ctx.helpers["javac"] = JavacServer(self, ctx)
        return server

    def compile(self, workdir: Path, ctx: RunContext) -> ExecResult:
        """Through the worker's javac server. A server that is too slow is the sample's timeout; one
        that dies is judged by a control compile on a fresh server (see the module docstring)."""
        t0 = time.monotonic()
        server = self._server(ctx)
        answer = server.compile(workdir, self.compile_limits.wall_s)
        if answer is not None:
            ok, diagnostics = answer
            return ExecResult(0 if ok else 1, None, False, time.monotonic() - t0, "", diagnostics)
        del ctx.helpers["javac"]  # hung or crashed: never reuse it
        if server.timed_out:
            server.close()
            return ExecResult(None, None, True, time.monotonic() - t0, "", "javac timed out")
        code, sig, said = server.death()
        wall = time.monotonic() - t0
        how = f"killed by signal {sig}" if sig else f"exit status {code}"
        control = self._control(ctx)
        if control is not None:
            return ExecResult(None, sig, False, wall, "", SERVER_DIED, harness_error=(
                f"{SERVER_DIED} on this sample ({how}), and a fresh one {control} on a known-good control "
                "program: a toolchain or sandbox problem"))
        # the sample's doing: its verdict is read from how the JVM ended (out of memory: resource_limit)
        return ExecResult(None if sig else (code or 1), sig, False, wall, "", excerpt(
            f"{said.strip()}\n{SERVER_DIED} compiling this sample ({how}); "
            "a fresh server compiled a control program"))

    def _control(self, ctx: RunContext) -> str | None:
        """None if a fresh server compiles ``CONTROL_SOURCE`` (and is kept for the next sample),
        else what went wrong."""
        workdir = ctx.new_workdir()
        try:
            write_file(workdir, "Main.java", CONTROL_SOURCE)
            hand_over(workdir, ctx.helper_uid)
            server = ctx.helpers["javac"] = JavacServer(self, ctx)
            answer = server.compile(workdir, self.compile_limits.wall_s)
            if answer is not None and answer[0] and (workdir / "Main.class").is_file():
                return None
            del ctx.helpers["javac"]
            if answer is None:
                problem = "timed out" if server.timed_out else "died too"
                code, sig, said = server.death()
                return f"{problem} ({f'signal {sig}' if sig else f'exit status {code}'}: {excerpt(said, 200) or 'no message'})"
            server.close()
            return f"failed ({excerpt(answer[1], 200) or 'no class file written'})"
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def required_paths(self) -> tuple[Path, ...]:
        return (self.server_dir, self.proof_dir)

    proof_files = ("GeexMain.java", "GeexClasses.java")

    def _install_main(self) -> None:
        def build(tmp: Path) -> None:
            # inline string concatenation: the default (invokedynamic) spins up java.lang.invoke,
            # 30-80 ms at every JVM start
            subprocess.run(["javac", "-XDstringConcat=inline", "-d", str(tmp), str(tmp / "GeexMain.java"),
                            str(tmp / "GeexClasses.java")], check=True, capture_output=True, timeout=300)
            listed = subprocess.run(["java", "-cp", str(tmp), "GeexClasses", *JDK_PACKAGES], check=True,
                                    capture_output=True, text=True, timeout=300)
            (tmp / CLASS_LIST).write_text(listed.stdout)

        self._install_proof(build)
        self._jdk_classes = None

    @property
    def jdk_classes(self) -> dict[str, set[str]]:
        """Simple name -> the packages of :data:`JDK_PACKAGES` with a public class of that name."""
        if getattr(self, "_jdk_classes", None) is None:
            classes: dict[str, set[str]] = {}
            for line in (self.proof_dir / CLASS_LIST).read_text().split():
                package, _, name = line.rpartition(".")
                classes.setdefault(name, set()).add(package)
            self._jdk_classes = classes
        return self._jdk_classes

    def write(self, program, workdir: Path) -> None:
        source = program.source
        if program.layout:
            layout = json.loads(program.layout)
            head, test = source[: layout["head"]], source[layout["test"]:]
            source = test_class_imports(head, test, self.jdk_classes) + source
        (workdir / "Main.java").write_text(source, encoding="utf-8")

    def run_argv(self, workdir: Path) -> list[str]:
        return ["java", *JVM_FLAGS, "-cp", f"{self.proof_dir}:.", "GeexMain"]

    def run_ro_binds(self) -> tuple[Path, ...]:
        return (self.proof_dir,)

    def run_limits(self, timeout_s: float) -> Limits:
        return Limits(wall_s=timeout_s, cpu_s=int(timeout_s) + 2, address_space_mb=8192, nproc=128)
