"""Python: the harness's own interpreter (it has numpy), isolated mode, running ``main.py`` through
geex's harness script (``harness/geex_run.py``: proof of completion, the test apart from the
completion's names, results compared as plain data), written next to the program as bytecode (the
interpreter runs a ``.pyc`` file as a script: 2 ms less per sample than compiling the script)."""

from __future__ import annotations

import functools
import importlib.util
import marshal
import sys
from pathlib import Path

from geex.humanevalx.execution.proof import harness_text
from geex.humanevalx.execution.runners.base import Runner, ToolStatus, tool_output


@functools.cache
def _harness_bytecode() -> bytes:
    """``geex_run.py`` as an unchecked hash-based ``.pyc`` (PEP 552) for this interpreter, which is
    the one that runs the samples."""
    source = harness_text("geex_run.py").encode()
    code = compile(source, "geex_run.py", "exec", dont_inherit=True)
    flags = 0b01  # hash-based, source not checked
    return (importlib.util.MAGIC_NUMBER + flags.to_bytes(4, "little") + importlib.util.source_hash(source)
            + marshal.dumps(code))


class PythonRunner(Runner):
    language = "python"
    install_hint = "pip install numpy into the interpreter that runs geex"

    @property
    def interpreter(self) -> Path:
        return Path(sys.executable)

    def status(self) -> ToolStatus:
        version = tool_output([str(self.interpreter), "-c", "import sys, numpy; print(sys.version.split()[0], 'numpy', numpy.__version__)"])
        if version is None:
            return ToolStatus(False, "", "the interpreter cannot import numpy", self.install_hint)
        return ToolStatus(True, f"Python {version}")

    proof_files = ("geex_run.py",)

    def write(self, program, workdir: Path) -> None:
        super().write(program, workdir)
        (workdir / "geex_run.pyc").write_bytes(_harness_bytecode())

    def run_argv(self, workdir: Path) -> list[str]:
        return [str(self.interpreter), "-I", "-B", "geex_run.pyc"]

    def run_env(self) -> dict[str, str]:
        # one BLAS thread: numpy's thread pool would otherwise reserve address space per core
        return {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

    def required_paths(self) -> tuple[Path, ...]:
        return (self.interpreter, *self.run_ro_binds())

    def run_ro_binds(self) -> tuple[Path, ...]:
        prefixes = {Path(sys.prefix), Path(sys.base_prefix), self.interpreter.resolve().parent.parent}
        return tuple(sorted(prefixes))
