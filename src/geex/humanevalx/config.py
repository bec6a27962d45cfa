"""The benchmark's run configurations, light enough to import while the command line is parsed:
their fields declare the options the commands take (``geex.options``), so ``geex --help`` builds the
parser without loading the harness, and ``run`` takes ``generate``'s and ``evaluate``'s options from
the same declarations as they do."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from geex.engine.sampling_params import SamplingParams
from geex.errors import UserError
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
    ray: str | None = option(None, "--ray", "use a Ray cluster: its address (host:port), or none for the one this "
                             "machine belongs to (`ray start`). Generation: a copy of the model a GPU (with --device "
                             "cuda; else one a node); evaluation: the programs on every node, each node's "
                             "toolchains checked first", const="auto", metavar="ADDRESS")
    clean: bool = option(True, "--no-cleanup", "splice completions as given (default: cut them where the function "
                         "ends, keeping the helpers it uses)", negate=True)
    progress: bool = True
    console: Any = field(default_factory=_stderr_console)  # a rich Console: progress and messages


TASKS = ("generation", "translation")
STYLES = ("completion", "chat", "few-shot")


@dataclass(frozen=True)
class PromptStyle:
    """How prompts are written (``geex.humanevalx.prompts`` writes them); part of a samples file's
    identity (``prompts.style_header``)."""

    name: str = option("completion", "--prompt-style", "completion (CodeGeeX's prompts, for base models; default), "
                       "chat (an instruction through the model's chat template, the code taken out of the answer; "
                       "for instruct models) or few-shot (--shots worked examples of other problems before the "
                       "prompt)", choices=STYLES)
    shots: int = option(3, "--shots", "few-shot: worked examples a prompt, chosen by a seeded rule (--seed; "
                        "default {default})", parse=positive_int, metavar="K", only_if_given=True)
    system: str | None = option(None, "--system-prompt", "chat: a system message before the instruction "
                                "(default: none)", metavar="TEXT")

    def __post_init__(self) -> None:
        if self.name not in STYLES:
            raise UserError(f"unknown prompt style {self.name!r} (known: {', '.join(STYLES)})")
        if self.name == "few-shot" and self.shots < 1:
            raise UserError("`shots` must be at least 1 for few-shot prompts")


@dataclass(kw_only=True)
class GenerateConfig:
    """One ``generate`` run: what is asked and how tokens are chosen. The fields with a command-line
    spelling are the options ``geex humanevalx generate`` and ``run`` share, declared here once."""

    task: str = option("generation", "--task", "generation (complete each problem's prompt, default) or "
                       "translation (rewrite a solution in another language: --pairs)", choices=TASKS)
    languages: list[Language]  # generation: the languages; translation: unused (see pairs)
    pairs: list[tuple[Language, Language]] = field(default_factory=list)
    n: int = option(1, "--n", "samples per problem (default {default})", parse=positive_int, short="-n")
    params: SamplingParams = SamplingParams(greedy=True)
    max_new_tokens: int = option(512, "--max-new-tokens", "most tokens generated after the prompt (default "
                                 "{default})", parse=positive_int)
    seed: int = option(0, "--seed", "seed of the sampling (batch i draws with seed + i) and of the few-shot "
                       "examples' choice (default {default})", parse=int)
    batch_size: int = option(8, "--batch-size", "prompts decoded together (default {default}); part of the "
                             "file's identity", parse=positive_int)
    limit: int | None = option(None, "--limit", "only the first N problems of each language", parse=positive_int,
                               metavar="N")
    dataset: str | None = None
    original: bool = False
    style: PromptStyle = PromptStyle()
