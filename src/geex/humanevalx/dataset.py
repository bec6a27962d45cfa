"""HumanEval-X problems: loading (local directory or the Hugging Face Hub) and the fixed variant.

Where the data comes from, in order: ``--dataset DIR``, ``$GEEX_HUMANEVALX``, the Hub
(``THUDM/humaneval-x``, five languages; Rust is not published there). A directory holds
``humaneval_<lang>.jsonl.gz`` (or ``.jsonl``), the layout of the original repository.
"""

from __future__ import annotations

import os
from pathlib import Path

from geex import jsonl
from geex.errors import UserError
from geex.humanevalx.fixes import apply_fixes
from geex.humanevalx.problem import FIELDS, Problem
from geex.languages import Language, language_of_task

ENV_DATASET = "GEEX_HUMANEVALX"
HUB_REPO = "THUDM/humaneval-x"
HUB_LANGUAGES = ("python", "cpp", "java", "js", "go")
N_PROBLEMS = 164
_REQUIRED = ("task_id", "prompt", "declaration", "canonical_solution", "test")


def _problem_from_row(row: dict, where: str) -> Problem:
    missing = [k for k in _REQUIRED if not isinstance(row.get(k), str)]
    if missing:
        raise UserError(f"{where}: problem lacks field(s) {', '.join(missing)}")
    example = row.get("example_test")
    return Problem(
        task_id=row["task_id"],
        language=language_of_task(row["task_id"]),
        prompt=row["prompt"],
        declaration=row["declaration"],
        canonical_solution=row["canonical_solution"],
        test=row["test"],
        example_test=example if isinstance(example, str) and example != "None" else None,
        extra={k: v for k, v in row.items() if k not in FIELDS and isinstance(v, str)},
    )


def _read_jsonl(path: Path) -> list[dict]:
    return [row for _, row in jsonl.objects(path)]


def _local_file(directory: Path, lang: Language) -> Path:
    for name in (f"humaneval_{lang.name}.jsonl.gz", f"humaneval_{lang.name}.jsonl"):
        if (directory / name).is_file():
            return directory / name
    raise UserError(f"{directory} has no humaneval_{lang.name}.jsonl.gz (or .jsonl)")


def _check_online(host: str = "huggingface.co") -> None:
    """Fail fast when the Hub cannot be reached (the client would retry for ~25 s)."""
    import socket

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise OSError("HF_HUB_OFFLINE is set")
    try:
        socket.getaddrinfo(host, 443)
    except OSError as e:
        raise OSError(f"cannot resolve {host}") from e


def _hub_file(lang: Language) -> Path:
    if lang.name not in HUB_LANGUAGES:
        raise UserError(
            f"{HUB_REPO} on the Hugging Face Hub has no {lang.display} data; "
            f"pass `dataset`=DIR (or set {ENV_DATASET}) with humaneval_{lang.name}.jsonl.gz"
        )
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError
    except ImportError as e:  # pragma: no cover - declared dependency
        raise UserError(f"huggingface_hub is not installed ({e})") from None
    filename = f"data/{lang.name}/data/humaneval.jsonl"
    try:  # a copy downloaded earlier needs no network
        return Path(hf_hub_download(HUB_REPO, filename, repo_type="dataset", local_files_only=True))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError):
        pass
    try:
        _check_online()
        return Path(hf_hub_download(HUB_REPO, filename, repo_type="dataset"))
    except (LocalEntryNotFoundError, HfHubHTTPError, OSError) as e:
        raise UserError(
            f"could not fetch {lang.display} problems from the Hugging Face Hub ({HUB_REPO}): "
            f"{type(e).__name__}. Offline? Pass `dataset`=DIR or set {ENV_DATASET} to a directory "
            f"of humaneval_<lang>.jsonl.gz files"
        ) from None


def resolve_dataset_dir(dataset: str | Path | None) -> Path | None:
    """The local directory to read from, or None to use the Hub."""
    chosen = dataset if dataset is not None else os.environ.get(ENV_DATASET)
    if not chosen:
        return None
    path = Path(chosen).expanduser()
    if not path.is_dir():
        source = "`dataset`" if dataset is not None else f"${ENV_DATASET}"
        raise UserError(f"{source}: {path} is not a directory")
    return path


def load_language(lang: Language, dataset: str | Path | None = None, original: bool = False) -> list[Problem]:
    """All problems of one language, in task order, fixed unless ``original``."""
    directory = resolve_dataset_dir(dataset)
    path = _local_file(directory, lang) if directory is not None else _hub_file(lang)
    problems = []
    for i, row in enumerate(_read_jsonl(path), 1):
        problem = _problem_from_row(row, f"{path}:{i}")
        if problem.language != lang:
            raise UserError(f"{path}:{i}: task {problem.task_id} is not a {lang.display} task")
        problems.append(problem)
    problems.sort(key=lambda p: p.number)
    numbers = [p.number for p in problems]
    if len(set(numbers)) != len(numbers):
        dup = next(n for n in numbers if numbers.count(n) > 1)
        raise UserError(f"{path}: task {lang.task_prefix}/{dup} appears more than once")
    if not original:
        problems = apply_fixes(problems)
    return problems


def load_problems(
    languages: list[Language], dataset: str | Path | None = None, original: bool = False
) -> dict[str, Problem]:
    """Problems of several languages keyed by task id."""
    out: dict[str, Problem] = {}
    for lang in languages:
        for problem in load_language(lang, dataset, original):
            out[problem.task_id] = problem
    return out
