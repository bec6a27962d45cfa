"""What a client may be shown of a sequence while it is generated: the text settled so far, cut at
the first stop string, minus a tail that could still turn out to be one.

A stop string can arrive split across tokens (``"\\n\\n"`` as two ``"\\n"`` tokens, ``"</code>"`` in
three pieces): streaming every piece as it comes would show the client the start of a stop string
that the final text does not contain. So the tail that is a prefix of some stop string waits until
the next token decides. With a language rule (``geex.languages.cleanup.is_finished``, the
harness's own rule for "the function is complete"), only whole lines are released: the rule can
only judge a line once it has ended, and the line that completes the function is its last.

Used by the server for every streamed request and by ``geex generate`` for its terminal output.
"""

from __future__ import annotations

from collections.abc import Sequence

from geex.engine.generate import TextStream
from geex.engine.stops import Rule
from geex.languages import Language
from geex.languages.cleanup import is_finished
from geex.models.protocols import Tokenizer


class HeldText:
    """Incremental text of one sequence with stop strings and an optional language rule.

    ``add(token)`` returns the text newly released to the client (often ""); ``stopped`` names why
    the sequence is over (``"stop_string"``, ``"language"`` or a rule's detail: ``"line"``,
    ``"indent"``, ``"suffix_overlap"``, ``"time"``), after which nothing more is
    released; ``finish()`` releases what was held back when the sequence ends for another reason.
    ``text`` is everything released.
    """

    def __init__(self, tokenizer: Tokenizer, stop: Sequence[str] = (), language: Language | None = None,
                 rules: Sequence[Rule] = ()) -> None:
        self._stream = TextStream(tokenizer)
        self.rules = tuple(rules)  # line rules (geex.engine.stops), judged after the stop strings
        self.stop = tuple(s for s in stop if s)
        self.language = language
        self.stopped: str | None = None
        self.stop_string: str | None = None  # the stop string that ended it
        self._end: int | None = None  # where the final text ends (a stop string's start)
        self._released = 0
        self._longest = max((len(s) for s in self.stop), default=0)

    @property
    def raw(self) -> str:
        """All decoded text, held back or not, stop strings included."""
        return self._stream.text

    @property
    def text(self) -> str:
        return self._stream.text[:self._released]

    def add(self, token: int) -> str:
        if self.stopped is not None:
            return ""
        before = len(self._stream.text)
        if not self._stream.add(token):
            return ""  # an incomplete character: nothing settled yet
        text = self._stream.text
        if self.stop:
            # a stop string ending in the new piece starts at most len(stop) - 1 before it
            found = [(i, s) for s in self.stop if (i := text.find(s, max(0, before - len(s) + 1))) >= 0]
            if found:
                self._end, self.stop_string = min(found)
                self.stopped = "stop_string"
                return self._release(self._end)
        if self.language is not None and is_finished(self.language, text):
            self.stopped = "language"  # whole lines only: a started line after the function is not its
            self._end = text.rfind("\n") + 1
            return self._release(self._end)
        safe = self._safe_end(text)
        if self.rules:
            judged = [(rule.judge(text), rule) for rule in self.rules]
            ends = [(j.end, rule.detail) for j, rule in judged if j.end is not None]
            if ends:
                self._end, self.stopped = min(ends, key=lambda e: e[0])
                return self._release(self._end)
            safe = min(safe, *(j.release for j, _ in judged))
        return self._release(safe)

    def finish(self) -> str:
        """At the end of the sequence (EOS, length, cancel): release what was held back."""
        if self.stopped is None:
            self._stream.flush()
            text = self._stream.text
            # the last line is complete now: a rule may still cut it (it repeats the suffix's line ...)
            ends = [j.end for rule in self.rules if (j := rule.judge(text + "\n")).end is not None]
            return self._release(min([len(text), *ends]))
        return ""

    def _safe_end(self, text: str) -> int:
        end = len(text)
        if self.language is not None:
            end = text.rfind("\n") + 1
        if self._longest:
            for keep in range(min(self._longest - 1, len(text)), 0, -1):  # the longest tail that could start one
                tail = text[len(text) - keep:]
                if any(s.startswith(tail) for s in self.stop):
                    end = min(end, len(text) - keep)
                    break
        return end

    def _release(self, end: int) -> str:
        if end <= self._released:
            return ""
        piece = self._stream.text[self._released:end]
        self._released = end
        return piece
