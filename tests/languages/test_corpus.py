"""CodeGeeX's corpus languages: tags as the original's LANGUAGE_TAG table, detection by extension
and #! line (codegeex-reference.md §4.2)."""

from __future__ import annotations

import pytest

from geex.errors import UserError
from geex.languages import HUMANEVALX_LANGUAGES
from geex.languages.corpus import CORPUS_LANGUAGES, corpus_language, detect


@pytest.mark.parametrize("name, tag", [
    ("python", "# language: Python"), ("cpp", "// language: C++"), ("c", "// language: C"),
    ("csharp", "// language: C#"), ("swift", "// language: swift"), ("objectivecpp", "// language: Objective-C++"),
    ("shell", "# language: Shell"), ("r", "# language: R"), ("tex", "% language: TeX"),
    ("clojure", "; language: Clojure"), ("haskell", "-- language: Haskell"), ("vb", "' language: Visual Basic"),
    ("css", "/* language: CSS */"), ("html", "<!--language: HTML-->"), ("markdown", "<!--language: Markdown-->"),
    ("vue", "<!--language: Vue-->"), ("fortran", "!language: Fortran"), ("delphi", "{language: Delphi}"),
    ("abap", "* language: Abap"),
])
def test_tags_are_the_originals(name, tag):
    assert corpus_language(name).tag == tag


def test_the_humanevalx_languages_are_the_same_objects():
    assert [c.language for c in CORPUS_LANGUAGES[:6]] == list(HUMANEVALX_LANGUAGES)
    names = [c.name for c in CORPUS_LANGUAGES]
    assert len(names) == len(set(names)) and len(names) >= 23
    extensions = [e for c in CORPUS_LANGUAGES for e in c.extensions]
    assert len(extensions) == len(set(extensions))  # one language an extension


@pytest.mark.parametrize("path, head, expected", [
    ("a/b/x.py", b"", "python"), ("X.HPP", b"", "cpp"), ("lib.h", b"", "c"), ("k.kt", b"", "kotlin"),
    ("Makefile", b"", None), ("notes.txt", b"#!/usr/bin/env python3\n", None),  # an extension decides
    ("tool", b"#!/usr/bin/env python3.11\nprint(1)\n", "python"), ("tool", b"#!/bin/bash -eu\n", "shell"),
    ("tool", b"#! /usr/bin/perl -w\n", "perl"), ("tool", b"#!/usr/bin/env -S node --harmony\n", "js"),
    ("tool", b"#!/usr/bin/env ruby\n", "ruby"), ("tool", b"#!/usr/bin/env unknown-thing\n", None),
    ("tool", b"print(1)\n", None),
])
def test_detection(path, head, expected):
    found = detect(path, head)
    assert (found.name if found else None) == expected


def test_lookup_by_alias_and_errors():
    assert corpus_language("C++").name == "cpp" and corpus_language("javascript").name == "js"
    assert corpus_language("C#").name == "csharp"
    with pytest.raises(UserError, match="unknown corpus language"):
        corpus_language("klingon")
