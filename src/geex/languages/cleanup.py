"""Where a generated function body ends: the stop rule while decoding and the cleanup afterwards.

One rule per language, used by the harness (cleaning completions before assembly) and by any
generator (stopping as soon as the function is complete). The text is what a model produced
*after* the prompt, i.e. it starts inside the function body.

- Python: the body ends before the first non-empty line that is not indented (comments aside).
  ``cleanup`` cuts there too: anything after it (a helper included) is dropped.
- C++, Java, JavaScript, Go, Rust: the body ends at the ``}`` that closes the function. Braces are
  counted by a small lexer that skips comments, string and character literals (the original counted
  every ``{``/``}`` character, so ``"}"`` in a string ended the function) and Markdown fence lines.
  Rust gets the same rule (the original had none, so Rust generations ran to the token limit).
- ``is_finished``/``stop_index`` (while decoding) stop at the function's end. ``cleanup`` (raw
  output of any generator) keeps, after the function, only the top-level definitions it needs:
  helpers, types, ``impl`` blocks and globals that the body uses, directly or through other kept
  definitions, never a second definition of the target or of anything the prompt defines
  (``geex.languages.definitions``). Everything else after the closing brace is cut: other
  versions of the function, unused functions, a ``main`` or test of the model's own, prose, fences.
- Java: the completion is a method of ``class Solution``; helper members follow it inside the
  class, which ``cleanup`` then closes (the test is a separate ``public class Main``); top-level
  types the method needs follow the class.

``cleanup`` is idempotent: cleaning a clean completion returns it unchanged.
"""

from __future__ import annotations

import re

from geex.languages import Language, get_language
from geex.languages.definitions import HEADERS, JAVA_TOP_LEVEL, Item, defined_names, items, needed, uses

_BRACE_LANGUAGES = frozenset({"cpp", "java", "js", "go", "rust"})
_RUST_CHAR = re.compile(r"'(?:\\(?:u\{[0-9a-fA-F]{1,6}\}|x[0-9a-fA-F]{2}|.)|[^\\'\n])'")
_C_CHAR = re.compile(r"'(?:\\.[^'\n]{0,8}|[^\\'\n])'")
_CHAR_PREFIX = re.compile(r"'(?:[^\\'\n]|\\[^'\n]{0,10})?\Z")  # the text ends inside a char literal
# Where something other than plain code may start (Rust also: a raw string b?r#*"); braces only
# matter inside a JS template's ${...}, to find its end.
_SPECIAL = re.compile(r"""[/"'`]""")
_RUST_SPECIAL = re.compile(r"""[/"'`]|(?<![\w])b?r(#*)\"""")
_TEMPLATE_CODE_SPECIAL = re.compile(r"""[/"'`{}]""")
_QUOTE_STOPS = {q: re.compile(rf"[\\\\{q}\n]") for q in "\"'`"}
_TEMPLATE_STOPS = re.compile(r"[\\`\n$]")
_FENCE = re.compile(r"```[ \t]*[\w+#.-]*[ \t]*(?=\r?\n|\Z)")  # a Markdown fence line, from its first backtick
_NOT_NEWLINE = re.compile(r"[^\n]")
_BRACE = re.compile(r"[{}]")
_PY_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)?")


def _lang(language: Language | str) -> Language:
    return language if isinstance(language, Language) else get_language(language)


def _blanked(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with each span replaced by spaces, newlines kept (lines stay where they were)."""
    parts = []
    prev = 0
    for start, end in spans:
        piece = text[start:end]
        parts += (text[prev:start], " " * len(piece) if "\n" not in piece else _NOT_NEWLINE.sub(" ", piece))
        prev = end
    parts.append(text[prev:])
    return "".join(parts)


def _fence_at(text: str, i: int) -> bool:
    """A Markdown code fence (a line of three backticks and an info string) starts at ``text[i]``."""
    line_start = text.rfind("\n", 0, i) + 1
    if text[line_start:i].strip(" \t"):
        return False
    return _FENCE.match(text, i) is not None


def _skip_quoted(name: str, text: str, spans: list[tuple[int, int]], i: int, quote: str, multiline: bool, final: bool,
                 template: bool = False) -> int | None:
    """Record the literal opened at ``text[i]`` in ``spans``; index just past it, or None if unterminated.

    ``template``: a JS template literal, whose ``${...}`` substitutions are code (they may hold
    braces, strings and nested templates): they stay in the view, only ``${`` and ``}`` are blanked.
    """
    stops = _TEMPLATE_STOPS if template else _QUOTE_STOPS[quote]
    j = i + 1
    piece = i  # start of the literal part not recorded yet
    while (m := stops.search(text, j)) is not None:
        j = m.start()
        c = text[j]
        if c == "\\":
            j += 2
            continue
        if c == quote:
            spans.append((piece, j + 1))
            return j + 1
        if c == "\n":
            if multiline:
                j += 1
                continue
            spans.append((piece, j))
            return j  # unterminated single-line literal: a syntax error, resume on the next line
        if text.startswith("${", j):  # template substitution
            spans.append((piece, j + 2))
            close = _lex(name, text, spans, j + 2, final, nested=True)
            if close is None:
                return None
            spans.append((close, close + 1))
            j = piece = close + 1
            continue
        j += 1
    return None


def _lex(name: str, text: str, spans: list[tuple[int, int]], i: int, final: bool, nested: bool = False) -> int | None:
    """Record the comments and literals of ``text[i:]`` (in order) in ``spans``, the parts to blank.

    At the top level the result is None. ``nested`` (the code of a JS ``${...}``): the index of the
    ``}`` that closes it, or None if the text ends first. An unterminated comment or literal (text
    still streaming in) is blanked to the end: nothing after it is code yet. A Markdown fence line
    (model output mixing prose and code) is blanked like a comment.
    """
    special = _TEMPLATE_CODE_SPECIAL if nested else _RUST_SPECIAL if name == "rust" else _SPECIAL
    n = len(text)
    depth = 0
    while True:
        m = special.search(text, i)
        if m is None:
            return None
        i = m.start()
        c = text[i]
        mark = len(spans)  # _skip_quoted records its literal's spans itself (a template has several)
        end: int | None = i + 1  # where code resumes; None: unterminated, the rest is not code
        if c == "/":
            if text.startswith("//", i):
                nl = text.find("\n", i)
                end = None if nl < 0 else nl
            elif text.startswith("/*", i):
                close = text.find("*/", i + 2)
                end = None if close < 0 else close + 2
            else:
                i += 1
                continue
        elif c in "rb":  # Rust raw string
            close = text.find('"' + m.group(1), m.end())
            end = None if close < 0 else close + 1 + len(m.group(1))
        elif c == '"':
            if name == "java" and text.startswith('"""', i):  # text block
                close = text.find('"""', i + 3)
                end = None if close < 0 else close + 3
            else:
                end = _skip_quoted(name, text, spans, i, '"', name in ("rust", "cpp"), final)
        elif c == "`":
            if _fence_at(text, i):
                nl = text.find("\n", i)
                end = n if nl < 0 else nl
            elif name == "js":  # template literal
                end = _skip_quoted(name, text, spans, i, "`", True, final, template=True)
            elif name == "go":  # raw string
                close = text.find("`", i + 1)
                end = None if close < 0 else close + 1
            else:
                i += 1
                continue
        elif c == "'":
            if name == "js":
                end = _skip_quoted(name, text, spans, i, "'", False, final)
            else:
                lit = (_RUST_CHAR if name == "rust" else _C_CHAR).match(text, i)
                if lit is None and not final and _CHAR_PREFIX.match(text, i):
                    end = None  # a character literal still streaming in ('}' must not count yet)
                elif lit is None:  # a Rust lifetime ('a) or a stray quote: code
                    i += 1
                    continue
                else:
                    end = lit.end()
        else:  # a brace: code
            depth += 1 if c == "{" else -1
            if nested and depth < 0:
                return i
            i += 1
            continue
        if end is None:
            del spans[mark:]
            spans.append((i, n))
            return None
        if len(spans) == mark:
            spans.append((i, end))
        i = end


def code_view(language: Language | str, text: str, final: bool = False) -> str:
    """``text`` with comments, literals and Markdown fence lines blanked (same length, same lines).

    What is left is code: its braces are the real ones and its names are real uses. ``final``:
    the text is complete (see ``stop_index``).
    """
    name = _lang(language).name
    spans: list[tuple[int, int]] = []
    _lex(name, text, spans, 0, final)
    return _blanked(text, spans)


def _body_close(code: str) -> int | None:
    """Index just after the ``}`` that closes the body a code view starts in, or None."""
    depth = 0
    for m in _BRACE.finditer(code):
        depth += 1 if m.group() == "{" else -1
        if depth < 0:
            return m.end()
    return None


def function_end(language: Language | str, text: str, final: bool = False) -> int | None:
    """Index just after the ``}`` closing the function whose body ``text`` continues, or None."""
    lang = _lang(language)
    return _body_close(code_view(lang, text, final))


def _with_gaps(text: str, kept: list[Item]) -> str:
    """The kept items, each after the white space that preceded it in ``text``."""
    out = []
    for it in kept:
        gap = it.start
        while gap > 0 and text[gap - 1].isspace():
            gap -= 1
        out.append(text[gap:it.end])
    return "".join(out)


def _brace_cleanup(name: str, text: str, context: str) -> str | None:
    """The function and the definitions after it that it needs; None if the function is not closed."""
    code = code_view(name, text, final=True)
    end = _body_close(code)
    if end is None:
        return None
    used = uses(name, code[:end])
    known = defined_names(name, code_view(name, context, final=True)) if context else frozenset()
    if name != "java":
        found, _ = items(name, code, end, HEADERS[name])
        return text[:end] + _with_gaps(text, needed(found, used, known))
    members, close = items(name, code, end, HEADERS[name], closes=True)
    types = items(name, code, close + 1, JAVA_TOP_LEVEL)[0] if close is not None else []
    kept = needed(members + types, used, known)
    return (text[:end] + _with_gaps(text, [it for it in members if it in kept]) + "\n}"
            + _with_gaps(text, [it for it in types if it in kept]))


def _python_end(text: str) -> int | None:
    """Start of the first non-empty line that is not indented and not a comment, or None.

    A comment in column 0 inside the body does not end it (the original cut at "\n#" and failed
    correct answers); the next unindented statement does.
    """
    pos = 0
    n = len(text)
    while pos < n:  # lines as Python sees them (str.splitlines also splits at \f, \u2028, ...)
        line = _PY_LINE.match(text, pos).group()
        if line.strip() and line[0] not in " \t#":
            return pos
        pos += len(line)
    return None


def stop_index(language: Language | str, text: str, final: bool = False) -> int | None:
    """Where the completion ends in ``text`` (exclusive), or None while it is still unfinished.

    ``final``: the text is complete (cleanup), so a trailing ``'}`` is a brace, not the start of
    the literal ``'}'`` that a model may still be writing.
    """
    lang = _lang(language)
    if lang.name == "python":
        return _python_end(text)
    if lang.name in _BRACE_LANGUAGES:
        return function_end(lang, text, final)
    raise ValueError(f"no stop rule for {lang.name}")


def is_finished(language: Language | str, text: str) -> bool:
    """True once ``text`` holds a complete function body: the generator may stop decoding."""
    return stop_index(language, text) is not None


def cleanup(language: Language | str, text: str, context: str = "") -> str:
    """Cut raw model output to the completion that is spliced after the prompt.

    Python: up to the first unindented line. Brace languages: through the function, plus the
    definitions after it that the function needs (see the module doc; the reference solutions of
    Go/72, Rust/137 and Rust/145 define helpers after the function). Java then closes ``class
    Solution``. Unfinished text is returned unchanged.

    ``context``: the code the completion continues (the generation prompt, or the declaration for
    translation; brace languages only). Names it defines, the target function's first, are never
    defined again: without it, a recursive function followed by a second version of itself keeps
    that version (the body calls it).
    """
    lang = _lang(language)
    if lang.name == "python":
        end = _python_end(text)
        return text if end is None else text[:end]
    if lang.name not in _BRACE_LANGUAGES:
        raise ValueError(f"no cleanup rule for {lang.name}")
    kept = _brace_cleanup(lang.name, text, context)
    return text if kept is None else kept
