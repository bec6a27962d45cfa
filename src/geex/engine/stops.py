"""Line rules that end a completion at the cursor: one line, the end of the block, the start of the
code that follows the cursor, a time limit.

Each rule reads the text generated so far and says where it must end (if it must) and how much of
it can be shown already (a line the rule has not judged yet is held back). ``HeldText`` applies
them after the stop strings; the earliest end wins, and its rule names the ``finish_detail``.
Where a rule ends the text it also drops the blank lines before the cut: the editor has the code
that follows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

CLOSERS = ("}", ")", "]", "end")  # a line at column 0 that closes the block belongs to it


@dataclass
class Judgement:
    end: int | None  # where the text must end (it is over), or None
    release: int  # how much of the text may be shown now


class Rule(Protocol):
    detail: str  # the finish_detail when this rule ends the text

    def judge(self, text: str) -> Judgement: ...


def _lines(text: str) -> list[tuple[int, str, bool]]:
    """(start, line, complete) for each line of ``text``."""
    out, start = [], 0
    while True:
        nl = text.find("\n", start)
        if nl < 0:
            out.append((start, text[start:], False))
            return out
        out.append((start, text[start:nl], True))
        start = nl + 1


def _content_end(text: str, before: int) -> int:
    """The end of the last line with something on it before ``before`` (blank lines dropped)."""
    end = before
    while end > 0 and text[end - 1] in " \t\r\n":
        end -= 1
    return end


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


@dataclass
class LineRule:
    """``line`` mode: the completion ends at the first newline after something was written
    (Copilot's ``stop: ["\\n"]``, with leading newlines allowed)."""

    detail: str = "line"

    def judge(self, text: str) -> Judgement:
        content = len(text) - len(text.lstrip())
        nl = text.find("\n", content) if content < len(text) else -1
        if nl >= 0:
            return Judgement(_content_end(text, nl), nl)
        return Judgement(None, len(text))


@dataclass
class BlockRule:
    """``block`` mode: the completion ends at a line indented less than ``indent`` (the cursor
    line's indentation; llama.cpp's ``n_indent``), at two blank lines in a row, and, for a block
    begun at column 0, at the next line at column 0 after it (a new top-level item; a line that
    closes brackets is part of the block). The first line continues the cursor's line: it is
    never judged."""

    indent: int
    detail: str = "indent"

    def judge(self, text: str) -> Judgement:
        lines = _lines(text)
        nested = False  # column 0 blocks: an indented line has been written, so the block has a body
        blanks = 0
        for k, (start, line, complete) in enumerate(lines):
            if k == 0:
                nested = _indent(line) > 0 and bool(line.strip())
                continue
            if not line.strip():
                if complete:
                    blanks += 1
                    if blanks >= 2:
                        return Judgement(_content_end(text, start), start)
                    continue
                return Judgement(None, _content_end(text, start))  # undecided: hold from the newline
            blanks = 0
            width = _indent(line)
            if width == len(line) and not complete:
                return Judgement(None, _content_end(text, start))
            if width < self.indent:
                return Judgement(_content_end(text, start), start)
            if self.indent == 0:
                if width > 0:
                    nested = True
                elif nested and not line.lstrip().startswith(CLOSERS):
                    return Judgement(_content_end(text, start), start)
        return Judgement(None, len(text))


@dataclass
class SuffixOverlapRule:
    """The completion ends where it starts to write the first non-blank line of the code after
    the cursor (``line``, stripped): a model that cannot see the suffix (the prefix-only fallback)
    would otherwise write it twice. A line that could still become it is held back."""

    line: str
    detail: str = "suffix_overlap"

    def judge(self, text: str) -> Judgement:
        for start, line, complete in _lines(text):
            got = line.strip()
            if complete and got == self.line:
                return Judgement(_content_end(text, start), start)
            if not complete and (not got or self.line.startswith(got)):
                return Judgement(None, _content_end(text, start))  # it may yet become the suffix's line
        return Judgement(None, len(text))


@dataclass
class TimeRule:
    """``max_time_ms`` (llama.cpp's ``t_max_predict_ms``): once this long has passed since the first
    text, the completion ends at the end of the line being written, so it never stops mid-line."""

    seconds: float
    detail: str = "time"
    clock: object = time.monotonic
    _start: float | None = field(default=None, init=False)
    _line: int | None = field(default=None, init=False)  # the start of the line written when time ran out

    def judge(self, text: str) -> Judgement:
        now = self.clock()
        if self._start is None:
            self._start = now
        if self._line is None and now - self._start >= self.seconds:
            self._line = text.rfind("\n", 0, max(0, len(text) - 1)) + 1
        if self._line is not None:
            nl = text.find("\n", self._line)
            if nl >= 0 and text[:nl].strip():
                return Judgement(_content_end(text, nl), nl)
        return Judgement(None, _content_end(text, len(text)))


@dataclass
class RepetitionRule:
    """A model stuck in a loop writes the same line again and again: the completion ends after the
    first of ``times`` equal lines in a row (Continue's ``stopAtRepeatingLines``). Lines without a
    letter or digit (closing braces, blank lines) never count; a repeat is held back until it is
    known not to be a loop."""

    times: int = 3
    detail: str = "repetition"

    def judge(self, text: str) -> Judgement:
        run, first_end, prev = 0, 0, None
        for start, line, complete in _lines(text):
            got = line.strip()
            if not complete:  # the line being written may turn out a repeat: held from the last line's end
                if not got or (prev is not None and prev.startswith(got)):
                    return Judgement(None, first_end if run >= 2 else _content_end(text, start))
                break
            if not any(c.isalnum() for c in got):
                continue
            if got == prev:
                run += 1
                if run >= self.times:
                    return Judgement(first_end, first_end)
            else:
                prev, run, first_end = got, 1, start + len(line)
        return Judgement(None, first_end if run >= 2 else len(text))


@dataclass
class CommentBlockRule:
    """Text written as comments (an explanation) ends at the first line that is not one, blank lines
    included; the first line continues a comment the prompt started."""

    comment: str
    detail: str = "comment_end"

    def judge(self, text: str) -> Judgement:
        lines = text.split("\n")
        pos = len(lines[0]) + 1
        for k in range(1, len(lines)):
            line = lines[k].lstrip()
            if k == len(lines) - 1 and self.comment.startswith(line):
                return Judgement(None, pos - 1)  # may still become a comment: held from its newline
            if not line.startswith(self.comment):
                return Judgement(pos - 1, pos - 1)
            pos += len(lines[k]) + 1
        return Judgement(None, len(text))


def indent_of_cursor_line(prefix: str) -> int:
    """The indentation of the line the cursor is on (the prefix's last line)."""
    return _indent(prefix[prefix.rfind("\n") + 1:])
