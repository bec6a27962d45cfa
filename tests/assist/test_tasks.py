"""Task prompts (CodeGeeX's conventions for base models, an instruction for chat models) and how
the answer is taken out of what the model wrote."""

from __future__ import annotations

import pytest

from geex.assist import tasks
from geex.humanevalx.assembly import translation_prompt
from geex.humanevalx.dataset import load_problems
from geex.languages import get_language

PY, JS, CPP = (get_language(n) for n in ("python", "js", "cpp"))


def test_translate_prompt_is_humanevalx_s():
    """The base-model prompt is HumanEval-X's translation prompt for the same code (its source is the
    problem's declaration and solution, its target part the target's declaration)."""
    problems = load_problems([PY, JS])
    src, dst = problems["Python/3"], problems["JavaScript/3"]
    code = f"{src.declaration}\n{src.canonical_solution.rstrip()}"
    prompt = tasks.translate(code, PY, JS, chat=False)
    assert prompt.text + dst.declaration == translation_prompt(src, dst)
    assert prompt.messages is None


def test_generate_prompt_is_the_language_tag_and_the_description_as_comments():
    p = tasks.generate("Return the sum\nof two numbers.", CPP, chat=False, header="int add(int a, int b) {")
    assert p.text == "// language: C++\n// Return the sum\n// of two numbers.\nint add(int a, int b) {"
    chat = tasks.generate("Return the sum of two numbers.", PY, chat=True)
    assert chat.text is None and "```python" in chat.messages[0]["content"]


def _ended(tokenizer, prompt, raw: str) -> str:
    from geex.engine.streaming import HeldText

    held = HeldText(tokenizer, rules=prompt.rules)
    for t in tokenizer.encode(raw):
        held.add(t)
    return prompt.finish(held.text if held.stopped else held.text + held.finish())


@pytest.mark.parametrize("target,raw,want", [
    (JS, "function f() {\n  return 1;\n}\n\nconsole.log(f());\n", "function f() {\n  return 1;\n}"),
    (PY, "import math\ndef f():\n    return 1\n\nprint(f())\n", "import math\ndef f():\n    return 1"),
    (CPP, "#include <vector>\nint f() {\n    if (1) {\n        return 1;\n    }\n}\nint main() {}\n",
     "#include <vector>\nint f() {\n    if (1) {\n        return 1;\n    }\n}"),
])
def test_a_base_translation_ends_after_its_first_item(codegeex_tokenizer, target, raw, want):
    base = tasks.translate("def f():\n    return 1", PY, target, chat=False)
    assert _ended(codegeex_tokenizer, base, raw) == want


def test_a_chat_answer_is_its_fenced_code():
    chat = tasks.translate("x = 1", PY, JS, chat=True)
    assert chat.finish("Here it is:\n```javascript\nlet x = 1;\n```\nDone.") == "let x = 1;"
    assert chat.finish("let x = 1;") == "let x = 1;"  # no fence: the reply as it is


def test_explain_styles(codegeex_tokenizer):
    from geex.engine.streaming import HeldText

    p = tasks.explain("x = 1\ny = x + 1", PY, "line_comments", chat=False)
    assert p.text.endswith("# Explanation of the code above, line by line:\n# 1.")
    held = HeldText(codegeex_tokenizer, rules=p.rules)
    for t in codegeex_tokenizer.encode(" sets x to 1\n# 2. sets y\nprint(y)\n"):
        held.add(t)
    assert (held.text, held.stopped) == (" sets x to 1\n# 2. sets y", "comment_end")
    with pytest.raises(ValueError):
        tasks.explain("x", PY, "haiku", chat=False)
    assert "one short paragraph" in tasks.explain("x", PY, "summary", chat=True).messages[0]["content"]
