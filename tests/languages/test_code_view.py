"""``code_view`` against views marked by hand: in each case the comments, literals and fence lines are
written between ⟦ and ⟧, and the view must be the text with exactly those spans blanked (spaces,
newlines kept). Every lexer rule has a case: line and block comments, escapes, unterminated
literals, C++/Rust multi-line strings, Java text blocks, JS templates with code inside, Go and Rust
raw strings, character literals against lifetimes and stray quotes, Markdown fences."""

from __future__ import annotations

import re

import pytest

from geex.languages.cleanup import code_view, function_end

_MARKED = re.compile("⟦(.*?)⟧", re.S)


def _case(marked: str) -> tuple[str, str]:
    """(text, the view it must have) of a hand-marked case."""
    text = marked.replace("⟦", "").replace("⟧", "")
    view = _MARKED.sub(lambda m: re.sub(r"[^\n]", " ", m.group(1)), marked)
    return text, view


CASES = [
    # C++: comments, strings with escapes, multi-line strings, character literals
    ("cpp", 'int a = b / c; ⟦// } x⟧\nint d;'),
    ("cpp", 'x = 1; ⟦/* } \n { */⟧ y = 2;'),
    ("cpp", 'auto s = ⟦"a\\"}"⟧; auto t = ⟦"\\\\"⟧; }'),
    ("cpp", 'auto s = ⟦"two\nlines}"⟧; }'),
    ("cpp", "char c = ⟦'}'⟧; char q = ⟦'\\''⟧; char b = ⟦'\\\\'⟧; }"),
    ("cpp", "char o = ⟦'\\175'⟧; }"),  # an octal escape: C's character literals, not Rust's
    ("cpp", "x = 1; ⟦/* never closed } {⟧"),
    ("cpp", "int⟦/* c */⟧x;"),  # code right after the comment
    ("cpp", "x; ⟦/*/ } */⟧ y;"),  # "/*/" opens a comment that "*/" later closes
    ("cpp", 'auto s = ⟦""⟧⟦"}"⟧; }'),  # two strings side by side: no Java text block
    ("js", 'a = ⟦""⟧⟦"}"⟧; }'),  # nor in JavaScript or Rust (a model may write """ there)
    ("rust", 'a = ⟦""⟧⟦"}"⟧; }'),
    ("cpp", "x; ⟦/**/⟧ }"),  # an empty block comment: its "*/" starts right after "/*"
    ("cpp", "a'⟦\"}\"⟧ }"),  # a stray quote right before a string
    ("js", "const r = a /⟦'}'⟧.length;"),  # a division right before a string
    ("cpp", 'f(); ⟦"never closed }⟧'),
    # Java: text blocks, strings that end at their line when unterminated
    ("java", 'String s = ⟦"""\n  a } "quoted" \n"""⟧; }'),
    ("java", 'String s = ⟦"open }⟧\nint x = 1; }'),
    ("java", "char c = ⟦'{'⟧; }"),
    ("java", 'String s = ⟦"""\n never closed }⟧'),
    ("java", 'x = ⟦"""\n{\n"""⟧}'),  # code right after the closing quotes
    # JavaScript: templates (code inside ${...} stays), single-quoted strings, nested templates
    ("js", 'const s = ⟦`a ${⟧x + {k: 1}.k⟦}`⟧; }'),
    ("js", 'const s = ⟦`a ${⟧f(⟦`b ${⟧y⟦}`⟧)⟦} c`⟧; }'),
    ("js", "const q = ⟦'it\\'s }'⟧; }"),
    ("js", 'const s = ⟦`line\n} line`⟧; }'),
    ("js", "const t = ⟦'open }⟧\nlet u = 2; }"),
    ("js", "const s = ⟦`cost: $`⟧; }"),  # a "$" that starts no substitution
    # Go: raw strings
    ("go", 'x := ⟦`raw } "\n {`⟧\n}'),
    ("go", 'x := ⟦"a\\"}"⟧\n}'),
    # Rust: raw strings with hashes, characters against lifetimes, multi-line strings
    ("rust", 'let s = ⟦r#"a "} b"#⟧; }'),
    ("rust", 'let s = ⟦r"}"⟧; let t = ⟦br"{"⟧; }'),
    ("rust", "fn f<'a>(x: &'a str) -> char { ⟦'}'⟧ }"),
    ("rust", "let c = ⟦'\\u{7d}'⟧; let d = ⟦'\\''⟧; }"),
    ("rust", 'let s = ⟦"multi\n}line"⟧; }'),
    ("go", 'x := ⟦``⟧ + ⟦"}"⟧\n}'),  # an empty raw string
    ("go", 'x := ⟦`a`⟧ + ⟦"}"⟧\n}'),
    ("go", "x := ⟦`a`⟧+y"),
    ("go", "x := ⟦`never closed }⟧"),
    # backticks are Go's and JavaScript's only: elsewhere they are not strings
    ("java", "x = `a` {"),
    ("cpp", 'a` ⟦"}"⟧ }'),  # and lexing goes on after one
    ("python", "y = `b`\n"),
    # Markdown fences in model output are not code -- only where a line starts with them
    ("python", "x = 1\n⟦```python⟧\ny = 2\n⟦```⟧\n"),
    ("python", "\n⟦```python⟧\nx = 1"),
    ("python", "a = 1\nx```python\ny = 2\n"),
    ("cpp", "int x;\n⟦```cpp⟧\n}\n⟦```⟧"),
]


@pytest.mark.parametrize("language,marked", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_code_view_blanks_exactly_the_marked_spans(language, marked):
    text, view = _case(marked)
    got = code_view(language, text, final=True)
    assert len(got) == len(text)
    assert got == view


def test_a_character_literal_still_streaming_in_is_not_code():
    """Not final: ``'}`` may yet become ``'}'``, so its brace is no brace yet; final: a stray quote."""
    assert code_view("cpp", "char c = '}", final=False) == "char c = " + "  "
    assert code_view("cpp", "char c = '}", final=True) == "char c = '}"


def test_hundreds_of_literals():
    """Span bookkeeping past small numbers: 300 strings, every one blanked."""
    text = 'x = "}";\n' * 300
    assert code_view("cpp", text, final=True) == "x =    ;\n" * 300


def test_hundreds_of_comments():
    """Comments are recorded by the lexer itself (strings by their own scanner): 300 of them."""
    text = "x; /* } */\n" * 300
    assert code_view("cpp", text, final=True) == ("x;" + " " * 8 + "\n") * 300


def test_function_end_treats_the_text_as_streaming_unless_told():
    """``'}`` at the end may be a character literal still arriving: no end yet; in a final text it is a
    stray quote and the body's closing brace."""
    text = "    return '}"
    assert function_end("cpp", text) is None
    assert function_end("cpp", text, final=True) == len(text)
