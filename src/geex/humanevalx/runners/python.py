"""Python: the harness's own interpreter (it has numpy), isolated mode, running ``main.py`` through
geex's harness script (``harness/geex_run.py``: proof of completion, the test apart from the
completion's names, results compared as plain data)."""

from __future__ import annotations

import sys
from pathlib import Path

from geex.humanevalx.runners import Runner, ToolStatus, tool_output


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

    proof_files = proof_scripts = ("geex_run.py",)

    def run_argv(self, workdir: Path) -> list[str]:
        return [str(self.interpreter), "-I", "-B", "geex_run.py"]

    def run_env(self) -> dict[str, str]:
        # one BLAS thread: numpy's thread pool would otherwise reserve address space per core
        return {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

    def required_paths(self) -> tuple[Path, ...]:
        return (self.interpreter, *self.run_ro_binds())

    def run_ro_binds(self) -> tuple[Path, ...]:
        prefixes = {Path(sys.prefix), Path(sys.base_prefix), self.interpreter.resolve().parent.parent}
        return tuple(sorted(prefixes))
