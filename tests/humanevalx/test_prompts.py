"""Prompt styles: chat instructions and few-shot priming, on the real HumanEval-X problems."""

from __future__ import annotations

import pytest

from geex.errors import UserError
from geex.humanevalx.assembly import generation_prompt, translation_prompt
from geex.humanevalx.dataset import load_problems
from geex.humanevalx.prompts import PromptStyle, choose_shots, generation, style_header, translation
from geex.languages import HUMANEVALX_LANGUAGES, get_language


@pytest.fixture(scope="module")
def problems(dataset_dir):
    return load_problems(list(HUMANEVALX_LANGUAGES), dataset_dir)


def _pool(problems, language: str) -> dict:
    return {t: p for t, p in problems.items() if p.language.name == language}


def test_choose_shots_is_seeded_and_never_the_problem_itself():
    ids = [f"Python/{i}" for i in range(10)]
    a = choose_shots("Python/3", ids, 3, seed=0)
    assert a == choose_shots("Python/3", ids, 3, seed=0) and len(set(a)) == 3 and "Python/3" not in a
    draws = {tuple(choose_shots("Python/3", ids, 3, seed=s)) for s in range(20)}
    assert len(draws) > 10  # the seed decides the draw
    # the rule as recorded (SHOT_RULE), computed independently
    import random

    assert a == random.Random("0:Python/3").sample([i for i in ids if i != "Python/3"], 3)
    assert sorted(choose_shots("Python/0", ids[:3], 5, seed=1)) == ["Python/1", "Python/2"]  # fewer than k exist


@pytest.mark.parametrize("k", [1, 3])
def test_few_shot_prompts_never_show_the_samples_own_problem(problems, k):
    """Every problem of every language: the examples are other problems' (prompt + reference), the
    problem's own prompt comes once, last, after the language tag."""
    for lang in HUMANEVALX_LANGUAGES:
        pool = _pool(problems, lang.name)
        for p in pool.values():
            prompt = generation(p, PromptStyle("few-shot", shots=k), pool, seed=7)
            assert len(prompt.shots) == k and p.task_id not in prompt.shots, p.task_id
            own = generation_prompt(p)
            assert prompt.text.startswith(lang.tag + "\n") and prompt.text.endswith(own)
            assert prompt.text.count(own) == 1, p.task_id
            for t in prompt.shots:
                assert generation_prompt(pool[t]) + pool[t].canonical_solution.rstrip("\n") in prompt.text


def test_few_shot_translation_shows_solved_pairs_of_the_same_pair(problems):
    src, tgt = get_language("python"), get_language("go")
    sources = {p.number: p for p in problems.values() if p.language == src}
    pool = {t.task_id: (sources[t.number], t) for t in problems.values() if t.language == tgt}
    target = problems["Go/5"]
    prompt = translation(sources[5], target, PromptStyle("few-shot", shots=2), pool, seed=0)
    assert len(prompt.shots) == 2 and "Go/5" not in prompt.shots
    assert prompt.text.endswith(translation_prompt(sources[5], target))
    for t in prompt.shots:
        s, g = pool[t]
        assert translation_prompt(s, g) + g.canonical_solution.rstrip("\n") in prompt.text


def test_chat_instruction_holds_the_prompt_in_a_fence_and_the_system_message(problems):
    p = problems["CPP/0"]
    plain = generation(p, PromptStyle("chat"), {}, seed=0)
    assert [role for role, _ in plain.messages] == ["user"]
    text = plain.messages[0][1]
    assert text.startswith("Complete the following C++ function.") and f"```cpp\n{generation_prompt(p).strip()}\n```" in text
    with_system = generation(p, PromptStyle("chat", system="You are terse."), {}, seed=0)
    assert with_system.conversation() == [{"role": "system", "content": "You are terse."},
                                          {"role": "user", "content": text}]


def test_chat_translation_shows_the_source_and_the_target_declaration(problems):
    src, tgt = problems["Python/2"], problems["Rust/2"]
    (role, text), = translation(src, tgt, PromptStyle("chat"), {}, seed=0).messages
    assert "into Rust" in text and src.canonical_solution.strip() in text and tgt.declaration.strip() in text
    assert text.index("```python") < text.index("```rust")


def test_completion_style_is_codegeexs_prompt(problems):
    p = problems["Java/3"]
    assert generation(p, PromptStyle(), {}, seed=0).text == generation_prompt(p, with_tag=True)


def test_style_errors():
    with pytest.raises(UserError, match="unknown prompt style"):
        PromptStyle("zero-shot")
    with pytest.raises(UserError, match="`shots`"):
        PromptStyle("few-shot", shots=0)
    assert style_header(PromptStyle(), 0) is None  # files written before prompt styles keep their identity
    assert style_header(PromptStyle("few-shot", shots=2), 5)["seed"] == 5
