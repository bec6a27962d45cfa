"""What a model is asked for each benchmark unit, in one of three styles.

- ``completion``: CodeGeeX's prompts (``assembly.generation_prompt`` after the language tag line;
  ``assembly.translation_prompt``): the model continues the code. For base models.
- ``chat``: the problem as an instruction (``GENERATION_INSTRUCTION`` / ``TRANSLATION_INSTRUCTION``,
  an optional system message), sent through the model's chat template; the code is taken out of
  the answer afterwards (``geex.humanevalx.extraction``). For instruct models, as evalplus'
  and bigcode's instruct modes do.
- ``few-shot``: K worked examples of *other* problems of the same language (prompt + reference
  solution; for translation, solved translation pairs of the same language pair) before the
  completion prompt — the priming the CodeGeeX paper names as its open question. The examples
  are chosen by ``choose_shots``, a seeded rule recorded in the samples file's header, and listed
  in each sample (``shots``); a sample's own problem is never one of them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from geex.humanevalx.assembly import generation_prompt, translation_prompt
from geex.humanevalx.config import PromptStyle  # declared with the options; the prompts are written here
from geex.humanevalx.problem import Problem

FENCE = {"python": "python", "cpp": "cpp", "java": "java", "js": "javascript", "go": "go", "rust": "rust"}
GENERATION_INSTRUCTION = (
    "Complete the following {language} function. Reply with the whole function in one ```{fence}``` code block.\n"
    "\n```{fence}\n{prompt}\n```"
)
TRANSLATION_INSTRUCTION = (
    "Translate the following {source} code into {target}.\n"
    "\n```{source_fence}\n{code}\n```\n"
    "\nThe {target} function begins like this:\n"
    "\n```{fence}\n{declaration}\n```\n"
    "\nReply with the whole {target} function in one ```{fence}``` code block."
)
SHOT_RULE = "random.Random(f'{seed}:{task_id}').sample(other problems' task ids in dataset order, k)"


def style_header(style: PromptStyle, seed: int) -> dict | None:
    """What the samples depend on besides the model and sampling; None for CodeGeeX's own completion
    prompts (the header of files written before prompt styles existed)."""
    if style.name == "completion":
        return None
    if style.name == "chat":
        return {"style": "chat", "system": style.system, "generation": GENERATION_INSTRUCTION,
                "translation": TRANSLATION_INSTRUCTION}
    return {"style": "few-shot", "shots": style.shots, "seed": seed, "rule": SHOT_RULE}


@dataclass(frozen=True)
class Prompt:
    """One unit's prompt: ``text`` to continue, or chat ``messages`` ((role, content) pairs);
    ``shots``: the task ids of the worked examples it shows."""

    text: str
    messages: tuple[tuple[str, str], ...] = ()
    shots: tuple[str, ...] = ()

    def conversation(self) -> list[dict]:
        return [{"role": role, "content": content} for role, content in self.messages]


def choose_shots(task_id: str, candidates: list[str], k: int, seed: int) -> list[str]:
    """``k`` task ids of ``candidates`` other than ``task_id`` (all of them if fewer), by the seeded
    rule ``SHOT_RULE``: the same seed gives every sample of a problem the same examples, and
    another seed another draw."""
    others = [c for c in candidates if c != task_id]
    return random.Random(f"{seed}:{task_id}").sample(others, min(k, len(others)))


def _chat(style: PromptStyle, instruction: str) -> Prompt:
    messages = ((("system", style.system),) if style.system else ()) + (("user", instruction),)
    return Prompt(instruction, messages)


def generation(problem: Problem, style: PromptStyle, pool: dict[str, Problem], seed: int) -> Prompt:
    """The prompt of a generation unit; ``pool``: the problems of the same language by task id
    (the few-shot examples' source)."""
    lang = problem.language
    if style.name == "chat":
        return _chat(style, GENERATION_INSTRUCTION.format(language=lang.display, fence=FENCE[lang.name],
                                                          prompt=generation_prompt(problem).strip("\n")))
    if style.name == "completion":
        return Prompt(generation_prompt(problem, with_tag=True))
    shots = choose_shots(problem.task_id, list(pool), style.shots, seed)
    examples = [generation_prompt(pool[t]) + pool[t].canonical_solution.rstrip("\n") + "\n\n\n" for t in shots]
    return Prompt(f"{lang.tag}\n" + "".join(examples) + generation_prompt(problem), shots=tuple(shots))


def translation(source: Problem, target: Problem, style: PromptStyle,
                pool: dict[str, tuple[Problem, Problem]], seed: int) -> Prompt:
    """The prompt of a translation unit; ``pool``: (source, target) problem pairs of the same
    language pair by the target's task id (the few-shot examples' source)."""
    if style.name == "chat":
        s, t = source.language, target.language
        code = f"{source.declaration}{source.canonical_solution}".strip("\n")
        return _chat(style, TRANSLATION_INSTRUCTION.format(
            source=s.display, target=t.display, source_fence=FENCE[s.name], fence=FENCE[t.name], code=code,
            declaration=target.declaration.strip("\n")))
    if style.name == "completion":
        return Prompt(translation_prompt(source, target))
    shots = choose_shots(target.task_id, list(pool), style.shots, seed)
    examples = [translation_prompt(*pool[t]) + pool[t][1].canonical_solution.rstrip("\n") + "\n\n\n" for t in shots]
    return Prompt("".join(examples) + translation_prompt(source, target), shots=tuple(shots))
