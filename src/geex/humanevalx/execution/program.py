"""What execution takes: a ``Program``, one complete source file with what its harness needs to
know, and the one lexing helper both the assembly (which builds programs) and the runners (which
check them) use. Nothing here knows of prompts, problems or samples."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from geex.languages import Language

# C-family comments, string/char literals and Go raw strings: what is not code for a name search
COMMENT_OR_LITERAL = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|`[^`]*`|\'(?:\\.|[^\'\\\n])*\'', re.S)


@dataclass(frozen=True)
class Program:
    """A complete source file for one sample, ready for a language runner.

    ``layout``: JSON for a harness that runs parts of the program apart (Python: offsets of the
    preamble, the prompt's helpers and the test, and the name of the function under test).
    ``proofs``: how many proofs of completion a passing run writes (Rust: one per ``#[test]``).
    """

    language: Language
    source: str
    layout: str = ""
    proofs: int = 1

    @property
    def sha256(self) -> str:
        extra = f"\0{self.layout}\0{self.proofs}" if self.layout or self.proofs != 1 else ""
        return hashlib.sha256(f"{self.language.name}\0{self.source}{extra}".encode()).hexdigest()


def code_only(text: str) -> str:
    """``text`` (C family, Go, Java, JS) with comments and literals blanked (one space each)."""
    return COMMENT_OR_LITERAL.sub(" ", text)
