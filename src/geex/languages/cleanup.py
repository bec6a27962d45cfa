"""Where a generated function body ends: the stop rule while decoding and the cleanup afterwards.

One rule per language, used by the harness (cleaning completions before assembly) and by any
generator (stopping as soon as the function is complete). The text is what a model produced
*after* the prompt, i.e. it starts inside the function body.

- Python: the body ends before the first non-empty line that is not indented.
- C++, Java, JavaScript, Go, Rust: the body ends at the ``}`` that closes the function. Braces are
  counted by a small lexer that skips comments, string and character literals (the original counted
  every ``{``/``}`` character, so ``"}"`` in a string ended the function). Rust gets the same rule
  (the original had none, so Rust generations ran to the token limit).
- Java additionally closes ``class Solution`` after the method, because its test is a separate
  ``public class Main``.

``cleanup`` is idempotent: cleaning a clean completion returns it unchanged.
"""

from __future__ import annotations

import re

from geex.languages import Language, get_language

_BRACE_LANGUAGES = frozenset({"cpp", "java", "js", "go", "rust"})
_RUST_CHAR = re.compile(r"'(?:\\(?:u\{[0-9a-fA-F]{1,6}\}|x[0-9a-fA-F]{2}|.)|[^\\'\n])'")
_C_CHAR = re.compile(r"'(?:\\.[^'\n]{0,8}|[^\\'\n])'")
_RUST_RAW = re.compile(r'b?r(#*)"')


def _lang(language: Language | str) -> Language:
    return language if isinstance(language, Language) else get_language(language)


def _skip_quoted(text: str, i: int, quote: str, multiline: bool) -> int | None:
    """Index just past the literal opened at ``text[i]``; None if unterminated (still streaming)."""
    j = i + 1
    n = len(text)
    while j < n:
        c = text[j]
        if c == "\\":
            j += 2
            continue
        if c == quote:
            return j + 1
        if c == "\n" and not multiline:
            return j  # unterminated single-line literal: a syntax error, resume on the next line
        j += 1
    return None


def function_end(language: Language | str, text: str) -> int | None:
    """Index just after the ``}`` closing the function whose body ``text`` continues, or None.

    Only for brace languages. Counting starts at depth 0 inside the function body; the closing brace
    is the first one that takes the depth below zero outside comments and literals.
    """
    name = _lang(language).name
    depth = 0
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "/" and text.startswith("//", i):
            nl = text.find("\n", i)
            if nl < 0:
                return None
            i = nl + 1
            continue
        if c == "/" and text.startswith("/*", i):
            close = text.find("*/", i + 2)
            if close < 0:
                return None
            i = close + 2
            continue
        if name == "rust" and c in "rb" and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            m = _RUST_RAW.match(text, i)
            if m:
                close = text.find('"' + m.group(1), m.end())
                if close < 0:
                    return None
                i = close + 1 + len(m.group(1))
                continue
        if c == '"':
            if name == "java" and text.startswith('"""', i):  # text block
                close = text.find('"""', i + 3)
                if close < 0:
                    return None
                i = close + 3
                continue
            end = _skip_quoted(text, i, '"', multiline=name in ("rust", "cpp"))
            if end is None:
                return None
            i = end
            continue
        if c == "`" and name in ("js", "go"):  # JS template literal, Go raw string
            if name == "js":
                end = _skip_quoted(text, i, "`", multiline=True)
            else:
                close = text.find("`", i + 1)
                end = None if close < 0 else close + 1
            if end is None:
                return None
            i = end
            continue
        if c == "'":
            if name == "js":
                end = _skip_quoted(text, i, "'", multiline=False)
                if end is None:
                    return None
                i = end
                continue
            m = (_RUST_CHAR if name == "rust" else _C_CHAR).match(text, i)
            i = m.end() if m else i + 1  # a Rust lifetime ('a) is not a literal
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth < 0:
                return i + 1
        i += 1
    return None


def _python_end(text: str) -> int | None:
    """Start of the first non-empty line that is not indented, or None."""
    pos = 0
    for line in text.splitlines(keepends=True):
        if line.strip() and line[0] not in " \t":
            return pos
        pos += len(line)
    return None


def stop_index(language: Language | str, text: str) -> int | None:
    """Where the completion ends in ``text`` (exclusive), or None while it is still unfinished."""
    lang = _lang(language)
    if lang.name == "python":
        return _python_end(text)
    if lang.name in _BRACE_LANGUAGES:
        return function_end(lang, text)
    raise ValueError(f"no stop rule for {lang.name}")


def is_finished(language: Language | str, text: str) -> bool:
    """True once ``text`` holds a complete function body: the generator may stop decoding."""
    return stop_index(language, text) is not None


def cleanup(language: Language | str, text: str) -> str:
    """Cut raw model output to the completion that is spliced after the prompt."""
    lang = _lang(language)
    end = stop_index(lang, text)
    body = text if end is None else text[:end]
    if lang.name == "java" and end is not None:
        body += "\n}"  # close class Solution, which the prompt opened
    return body
