"""Completion stop modes, golden cases in the six HumanEval-X languages: what a model wrote at the
cursor (fed token by token through the CodeGeeX tokenizer), and the completion an editor must get.

Every case also checks the streaming contract: what was shown while generating is exactly the
start of the final completion (a rule never takes back text it released)."""

from __future__ import annotations

import pytest

from geex.engine.stops import BlockRule, LineRule, RepetitionRule, SuffixOverlapRule, TimeRule, indent_of_cursor_line
from geex.engine.streaming import HeldText


def _complete(tokenizer, raw: str, rules, stop=()) -> tuple[str, str | None]:
    held = HeldText(tokenizer, stop, rules=rules)
    shown = ""
    for token in tokenizer.encode(raw):
        shown += held.add(token)
        assert held.text == shown
    if held.stopped is None:
        shown += held.finish()
    assert shown == held.text and raw.startswith(shown)
    return shown, held.stopped


# (language, prefix up to the cursor, what the model wrote, completion in block mode)
BLOCK = [
    ("python", "def add(a, b):\n    ", "return a + b\n\n\ndef sub(a, b):\n    return a - b\n", "return a + b"),
    ("python", "def f(xs):\n    for x in xs:\n        ", "if x:\n            yield x\n    return\n",
     "if x:\n            yield x"),
    ("python", "", "def add(a, b):\n    return a + b\n\nprint(add(1, 2))\n", "def add(a, b):\n    return a + b"),
    ("cpp", "int add(int a, int b) {\n    ", "return a + b;\n}\n\nint main() {\n", "return a + b;"),
    ("cpp", "", "int add(int a, int b) {\n    return a + b;\n}\nint main() { return add(1, 2); }\n",
     "int add(int a, int b) {\n    return a + b;\n}"),
    ("java", "class A {\n    int f(int x) {\n        ", "if (x > 0) {\n            return x;\n        }\n"
     "        return -x;\n    }\n    int g() {}\n", "if (x > 0) {\n            return x;\n        }\n        return -x;"),
    ("js", "function add(a, b) {\n  ", "return a + b;\n}\nconsole.log(add(1, 2));\n", "return a + b;"),
    ("go", "func Add(a int, b int) int {\n\t", "return a + b\n}\n\nfunc main() {\n", "return a + b"),
    ("rust", "fn add(a: i32, b: i32) -> i32 {\n    ", "a + b\n}\n\nfn main() {\n", "a + b"),
    ("rust", "", "fn add(a: i32, b: i32) -> i32 {\n    a + b\n}\n\n\nfn main() {}\n",
     "fn add(a: i32, b: i32) -> i32 {\n    a + b\n}"),
]


@pytest.mark.parametrize("language,prefix,raw,want", BLOCK, ids=[f"{c[0]}-{i}" for i, c in enumerate(BLOCK)])
def test_block_mode_ends_at_the_dedent(codegeex_tokenizer, language, prefix, raw, want):
    got, detail = _complete(codegeex_tokenizer, raw, [BlockRule(indent_of_cursor_line(prefix))])
    assert (got, detail) == (want, "indent")


LINE = [
    ("python", "x = compute(\n", "x = compute("),
    ("cpp", "return a + b;\n}\n", "return a + b;"),
    ("java", "\n        return -x;\n", "\n        return -x;"),  # a leading newline: the line after it
    ("js", "const y = x * 2;  // double\nconsole.log(y);\n", "const y = x * 2;  // double"),
    ("go", "return a + b\n}\n", "return a + b"),
    ("rust", "a.iter().map(|x| x * 2).collect()\n}\n", "a.iter().map(|x| x * 2).collect()"),
]


@pytest.mark.parametrize("language,raw,want", LINE, ids=[c[0] for c in LINE])
def test_line_mode_ends_at_the_first_newline_after_text(codegeex_tokenizer, language, raw, want):
    assert _complete(codegeex_tokenizer, raw, [LineRule()]) == (want, "line")


SUFFIX = [  # (language, the suffix's first non-blank line, what the model wrote, completion)
    ("python", "return result", "result = [c for c in s if ord(c) < 128]\n    return result\n",
     "result = [c for c in s if ord(c) < 128]"),
    ("cpp", "return total;", "for (int x : v) total += x;\n    return total;\n}\n", "for (int x : v) total += x;"),
    ("java", "return sb.toString();", "sb.append(s);\n        return sb.toString();\n", "sb.append(s);"),
    ("js", "return out;", "out.push(x);\n\n  return out;\n", "out.push(x);"),
    ("go", "return n", "n++\n\treturn n\n}\n", "n++"),
    ("rust", "v", "v.push(1);\n    v\n}\n", "v.push(1);"),
]


@pytest.mark.parametrize("language,line,raw,want", SUFFIX, ids=[c[0] for c in SUFFIX])
def test_output_that_reaches_the_suffix_ends_before_it(codegeex_tokenizer, language, line, raw, want):
    assert _complete(codegeex_tokenizer, raw, [SuffixOverlapRule(line)]) == (want, "suffix_overlap")


def test_a_line_that_only_starts_like_the_suffix_is_kept(codegeex_tokenizer):
    raw = "    return results[0]\n    return result\n"
    assert _complete(codegeex_tokenizer, raw, [SuffixOverlapRule("return result")]) == (
        "    return results[0]", "suffix_overlap")
    assert _complete(codegeex_tokenizer, "    return res", [SuffixOverlapRule("return result")]) == (
        "    return res", None)  # held while it could become the suffix line, released at the end


REPEAT = [
    ("python", "x += 1\nx += 1\nx += 1\nx += 1\n", "x += 1"),
    ("cpp", "i++;\n    i++;\n    i++;\n", "i++;"),
    ("java", "a = b;\nsum += a;\nsum += a;\n\nsum += a;\n", "a = b;\nsum += a;"),
    ("js", "log(x);\nlog(x);\nlog(x);\n", "log(x);"),
    ("go", "n--\nn--\nn--\n", "n--"),
    ("rust", "v.push(0);\nv.push(0);\nv.push(0);\n", "v.push(0);"),
]


@pytest.mark.parametrize("language,raw,want", REPEAT, ids=[c[0] for c in REPEAT])
def test_a_line_written_three_times_in_a_row_ends_it(codegeex_tokenizer, language, raw, want):
    assert _complete(codegeex_tokenizer, raw, [RepetitionRule()]) == (want, "repetition")


def test_closing_braces_and_twice_written_lines_are_not_repetition(codegeex_tokenizer):
    raw = "      }\n    }\n  }\n}\nx = 1;\nx = 1;\ny = 2;\n"
    assert _complete(codegeex_tokenizer, raw, [RepetitionRule()]) == (raw, None)


def test_the_time_limit_ends_at_the_end_of_the_line_being_written(codegeex_tokenizer):
    now = [0.0]
    rule = TimeRule(0.5, clock=lambda: now[0])
    held = HeldText(codegeex_tokenizer, rules=[rule])
    for token in codegeex_tokenizer.encode("a = 1\nb = 2\nc = 3"):
        held.add(token)
        if held.raw.endswith("\nb"):
            now[0] = 1.0  # time runs out inside "b = 2": it ends at that line's end
    assert (held.text, held.stopped) == ("a = 1\nb = 2", "time")


def test_rules_and_stop_strings_the_earliest_wins(codegeex_tokenizer):
    raw = "x = 1  # END\n    y = 2\n"
    assert _complete(codegeex_tokenizer, raw, [LineRule()], stop=["END"]) == ("x = 1  # ", "stop_string")
    assert _complete(codegeex_tokenizer, "x = 1\ny END", [LineRule()], stop=["END"]) == ("x = 1", "line")


def test_indent_of_the_cursor_line():
    assert indent_of_cursor_line("def f():\n    ") == 4
    assert indent_of_cursor_line("def f():\n\tif x:\n\t\tret") == 2
    assert indent_of_cursor_line("") == 0 and indent_of_cursor_line("x = 1\n") == 0
