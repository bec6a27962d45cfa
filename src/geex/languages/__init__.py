"""Language facts shared by every component: names, aliases, tags, stop rules and cleanup.

This package is the single source of truth for what a language *is* in geex. The harness uses it
to assemble programs, the generator to stop decoding, the data pipeline to tag files.
"""

from __future__ import annotations

from dataclasses import dataclass

from geex.errors import UserError


@dataclass(frozen=True)
class Language:
    """One programming language as HumanEval-X and CodeGeeX see it."""

    name: str  # canonical id used everywhere in geex: python, cpp, java, js, go, rust
    display: str  # name in language tags and translation prompts ("C++", "JavaScript")
    task_prefix: str  # HumanEval-X task id prefix ("CPP" in "CPP/12")
    extension: str  # source file extension, without the dot
    comment: str  # line-comment sign used for the language tag
    aliases: tuple[str, ...] = ()

    @property
    def tag(self) -> str:
        """CodeGeeX's language tag line (without the newline), e.g. ``# language: Python``."""
        return f"{self.comment} language: {self.display}"


HUMANEVALX_LANGUAGES: tuple[Language, ...] = (
    Language("python", "Python", "Python", "py", "#", ("py", "python3")),
    Language("cpp", "C++", "CPP", "cpp", "//", ("c++", "cxx")),
    Language("java", "Java", "Java", "java", "//"),
    Language("js", "JavaScript", "JavaScript", "js", "//", ("javascript", "node")),
    Language("go", "Go", "Go", "go", "//", ("golang",)),
    Language("rust", "Rust", "Rust", "rs", "//", ("rs",)),
)

_BY_KEY: dict[str, Language] = {}
for _lang in HUMANEVALX_LANGUAGES:
    for _key in (_lang.name, _lang.display, _lang.task_prefix, *_lang.aliases):
        _BY_KEY[_key.lower()] = _lang

LANGUAGE_NAMES: tuple[str, ...] = tuple(lang.name for lang in HUMANEVALX_LANGUAGES)


def get_language(key: str) -> Language:
    """Resolve a name, alias or task prefix (case-insensitive) to a Language."""
    lang = _BY_KEY.get(key.strip().lower())
    if lang is None:
        known = ", ".join(LANGUAGE_NAMES)
        raise UserError(f"unknown language {key!r} (known: {known})")
    return lang


def parse_languages(spec: str | list[str] | None) -> list[Language]:
    """Parse ``"python,cpp"`` / ``["python", "cpp"]`` / ``None`` (= all six), keeping order, no repeats."""
    if spec is None:
        return list(HUMANEVALX_LANGUAGES)
    items = spec.split(",") if isinstance(spec, str) else [p for s in spec for p in s.split(",")]
    out: list[Language] = []
    for item in items:
        if item.strip() and (lang := get_language(item)) not in out:
            out.append(lang)
    if not out:
        raise UserError("no language given")
    return out


def _split_task_id(task_id: str) -> tuple[str, int]:
    prefix, sep, number = task_id.strip().partition("/")
    if not sep or not (number.isascii() and number.isdigit()):
        raise UserError(f"malformed task id {task_id!r} (expected e.g. 'Python/0', 'CPP/12')")
    return prefix, int(number)


def language_of_task(task_id: str) -> Language:
    """``"CPP/12"`` → cpp. Raises UserError for a malformed id."""
    return get_language(_split_task_id(task_id)[0])


def canonical_task_id(task_id: str) -> str:
    """HumanEval-X's spelling of a task id. The prefix may be any name or alias of a language in any
    case (``python/0``, ``PYTHON/0``, ``cpp/3``, ``js/7`` → ``Python/0``, ``CPP/3``, ``JavaScript/7``):
    it names one language whatever its spelling, so accepting it is safe. ``HumanEval/N`` (OpenAI's
    Python-only benchmark) is refused with the id HumanEval-X uses, rather than guessed."""
    prefix, number = _split_task_id(task_id)
    if prefix.lower() == "humaneval":
        raise UserError(f"unknown task id {task_id!r}: HumanEval-X calls it 'Python/{number}' "
                        "(ids are Python/N, CPP/N, Java/N, JavaScript/N, Go/N, Rust/N)")
    try:
        return f"{get_language(prefix).task_prefix}/{number}"
    except UserError as e:
        raise UserError(f"unknown task id {task_id!r}: {e}") from None
