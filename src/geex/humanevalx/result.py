"""One line of ``results.jsonl``: a sample's verdict and where it came from, declared once.

The evaluator builds a ``Result`` per sample (``evaluate.py``), the store writes and re-reads it for
resume (``store.py``), and both reports and the analysis read it back (``reporting/``); the fields and
their meaning are documented in ``docs/formats.md``. ``passed`` is not a field: it is the verdict,
written beside it for readers that do not know the verdict names.

Only ``sample_id``, ``task_id``, ``language`` and ``verdict`` are required of a line read back: the
rest default (results of older geex versions, or written by hand for a report, still load), and a
line whose fields have the wrong types, or whose ``passed`` contradicts its verdict, is not a result.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from geex.humanevalx.execution.verdict import Verdict


@dataclass(frozen=True)
class Result:
    sample_id: str
    task_id: str
    language: str
    verdict: Verdict
    source_language: str | None = None  # a translation's source language; None for generation
    completion_id: int | None = None
    program_sha256: str = ""  # of the assembled program: a result answers only for that program
    phase: str = ""  # where the verdict was decided: "compile", "run" or "harness"
    compile_s: float = 0.0
    run_s: float = 0.0
    exit_code: int | None = None
    signal: int | None = None
    detail: str = ""  # a short excerpt of the program's output
    fingerprint: str = ""  # toolchain, recipe, limits, isolation and harness code (``identity.py``)
    cached: bool = False  # served from the verdict cache without running
    flaky: bool = False  # runs of the same program disagreed
    verdicts_seen: dict[str, int] | None = None  # verdict → how many runs said it (flaky results only)
    node: str | None = None  # the Ray node that ran it (``--ray``; None: this machine, or the cache)

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASSED

    @property
    def group(self) -> str:
        """Its language, or ``source->target`` for a translation: CPP/0 generated and CPP/0
        translated from Python are two different problems."""
        return f"{self.source_language}->{self.language}" if self.source_language else self.language

    @classmethod
    def from_outcome(cls, *, outcome: dict, **fields: object) -> Result:
        """A sample's result from its program's outcome (``Outcome.as_dict()`` or a cached one)."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls.from_json({**{k: v for k, v in outcome.items() if k in known}, **fields})

    def to_json(self) -> dict:
        """The line's object, keys in the order earlier versions wrote them."""
        out: dict = {"sample_id": self.sample_id, "task_id": self.task_id, "language": self.language,
                     "source_language": self.source_language, "completion_id": self.completion_id,
                     "program_sha256": self.program_sha256, "verdict": self.verdict.value, "phase": self.phase,
                     "compile_s": self.compile_s, "run_s": self.run_s, "exit_code": self.exit_code,
                     "signal": self.signal, "detail": self.detail, "passed": self.passed,
                     "fingerprint": self.fingerprint, "cached": self.cached, "flaky": self.flaky}
        if self.verdicts_seen is not None:
            out["verdicts_seen"] = dict(self.verdicts_seen)
        if self.node is not None:
            out["node"] = self.node
        return out

    @classmethod
    def from_json(cls, obj: object) -> Result:
        """A line's object as a ``Result``; ``ValueError`` saying what is wrong if it is not one."""
        if not isinstance(obj, dict):
            raise ValueError("not a JSON object")
        for name in ("sample_id", "task_id", "language", "verdict"):
            if not isinstance(obj.get(name), str):
                raise ValueError(f"needs {name} (a string)")
        try:
            verdict = Verdict(obj["verdict"])
        except ValueError:
            raise ValueError(f"unknown verdict {obj['verdict']!r}") from None
        if "passed" in obj and obj["passed"] is not (verdict is Verdict.PASSED):
            raise ValueError(f"passed={obj['passed']!r} contradicts verdict {verdict.value}")
        values: dict = {"verdict": verdict}
        for f in dataclasses.fields(cls):
            if f.name in values or obj.get(f.name) is None:
                continue
            value = obj[f.name]
            if f.name == "verdicts_seen":
                if not isinstance(value, dict) or not all(isinstance(n, int) for n in value.values()):
                    raise ValueError("verdicts_seen must map verdicts to counts")
            elif not _has_type(value, f.type):
                raise ValueError(f"{f.name}={value!r} has the wrong type (wants {f.type})")
            values[f.name] = value
        return cls(**values)


def _has_type(value: object, annotation: str) -> bool:
    """``value`` fits the field's (string) annotation; bool is not an int, an int is a float."""
    kinds = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,)}
    wanted = [t.strip() for t in annotation.split("|") if t.strip() != "None"]
    return any(isinstance(value, kinds[t]) and (t == "bool" or not isinstance(value, bool)) for t in wanted)
