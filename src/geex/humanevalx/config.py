"""The benchmark's run configurations, light enough to import while the command line is parsed:
their fields declare the options the commands take (``geex.options``), so ``geex --help`` builds the
parser without loading the harness."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from geex.options import k_values, option, positive_int, positive_number

if TYPE_CHECKING:
    from geex.languages import Language


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


CANONICAL = "canonical"


@dataclass
class EvalConfig:
    """One evaluation. The fields with a command-line spelling (``geex.options``) are the options
    ``geex humanevalx evaluate`` and ``run`` share, declared here once."""

    samples: str  # a JSONL path, or "canonical"
    out_dir: Path
    languages: list[Language] | None = None
    workers: int = option(0, "--workers", "parallel test workers (default: all cores)", short="-j",
                          parse=positive_int)  # 0: all cores
    ks: tuple[int, ...] = option((1, 10, 100), "--k", "pass@k values (default: {default}; only those ≤ the samples "
                                 "per problem are reported)", parse=k_values)
    timeout_s: float = option(10.0, "--timeout", "wall-clock seconds per test run (default: {default})",
                              parse=positive_number)
    dataset: str | None = None
    original: bool = False
    use_cache: bool = option(True, "--no-cache", "do not read or write the machine-wide verdict cache", negate=True)
    clean: bool = option(True, "--no-cleanup", "splice completions as given (default: cut them where the function "
                         "ends, keeping the helpers it uses)", negate=True)
    progress: bool = True
    console: Any = field(default_factory=_stderr_console)  # a rich Console: progress and messages
