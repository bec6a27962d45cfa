"""One engine, three callers: ``geex humanevalx run --backend openai`` against ``geex serve`` writes
the same greedy completions, and gets the same pass@1, as ``--backend native`` on the same problems
(the default model, the first Python problems)."""

from __future__ import annotations

import copy
import json

import torch

from geex.cli import main
from geex.models import registry
from geex.serve.config import ServeConfig
from tests.serve.conftest import default_engine, start_server

ARGS = ["--languages", "python", "--limit", "3", "--greedy", "--max-new-tokens", "40", "--workers", "2"]


def _samples(out) -> list[dict]:
    lines = (out / "samples.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if '"task_id"' in line]


def _reuse_the_sessions_load(default_model_fp32, monkeypatch) -> None:
    """The native backend's registry.load(None): a copy of the session's load of the same file instead
    of a second ~5 s read (the backend still prepares it itself, as the CLI does)."""
    real_load = registry.load

    def load(spec=None, **kw):
        if spec is None and kw == {"dtype": torch.float32, "device": "cpu", "quantize": None}:
            return registry.LoadedModel(copy.deepcopy(default_model_fp32.model), default_model_fp32.tokenizer,
                                        default_model_fp32.name)
        return real_load(spec, **kw)

    monkeypatch.setattr(registry, "load", load)


def _native_and_served(default_model, tmp_path, command: str, out: str, args: list[str]) -> None:
    """``geex humanevalx COMMAND`` with ``args`` natively into ``native{out}``, then against ``geex
    serve`` (the same engine) into ``served{out}``."""
    running = start_server(ServeConfig(port=0), engine=default_engine(default_model))
    try:
        assert main(["humanevalx", command, "--out", str(tmp_path / f"native{out}"), *args]) == 0
        assert main(["humanevalx", command, "--out", str(tmp_path / f"served{out}"), *args, "--backend", "openai",
                     "--base-url", running.url + "/v1", "--model", default_model.name]) == 0
    finally:
        running.stop()


def test_openai_backend_against_geex_serve_equals_native(default_model, default_model_fp32, tmp_path, monkeypatch):
    _reuse_the_sessions_load(default_model_fp32, monkeypatch)
    _native_and_served(default_model, tmp_path, "run", "", ARGS)
    native, served = _samples(tmp_path / "native"), _samples(tmp_path / "served")
    assert [s["task_id"] for s in native] == [s["task_id"] for s in served] and len(native) == 3
    assert [s["completion"] for s in native] == [s["completion"] for s in served]
    reports = [json.loads((tmp_path / d / "report.json").read_text()) for d in ("native", "served")]
    assert reports[0]["overall"] == reports[1]["overall"]  # pass@1 and every verdict count
    verdicts = [[json.loads(line)["verdict"] for line in (tmp_path / d / "results.jsonl").read_text().splitlines()]
                for d in ("native", "served")]
    assert verdicts[0] == verdicts[1] and len(verdicts[0]) == 3


def test_translation_through_geex_serve_equals_native(default_model, default_model_fp32, tmp_path, monkeypatch):
    """``--task translation`` (CodeGeeX's translation prompt) against ``geex serve``: the same greedy
    samples as the native backend."""
    _reuse_the_sessions_load(default_model_fp32, monkeypatch)
    args = ["--task", "translation", "--pairs", "python:js", "--limit", "2", "--greedy", "--max-new-tokens", "40",
            "--workers", "2"]
    _native_and_served(default_model, tmp_path, "run", "", args)
    native, served = _samples(tmp_path / "native"), _samples(tmp_path / "served")
    assert len(native) == 2 and [s["task_id"] for s in native] == [s["task_id"] for s in served]
    assert [s["completion"] for s in native] == [s["completion"] for s in served]


def test_chat_prompts_through_geex_serve_equal_native(default_model, default_model_fp32, tmp_path, monkeypatch):
    """``--prompt-style chat``: the instruction through the model's chat template, natively and as
    ``/v1/chat/completions`` of ``geex serve``: the same greedy answers, the same extracted code."""
    from geex.humanevalx.generate import iter_samples

    _reuse_the_sessions_load(default_model_fp32, monkeypatch)
    args = ["--languages", "python", "--limit", "2", "--greedy", "--max-new-tokens", "48", "--prompt-style", "chat"]
    _native_and_served(default_model, tmp_path, "generate", ".jsonl", args)
    native, served = (list(iter_samples(tmp_path / f"{d}.jsonl")) for d in ("native", "served"))
    assert len(native) == 2 and [s["raw"] for s in native] == [s["raw"] for s in served]
    assert [(s["completion"], s["extraction"]) for s in native] == [(s["completion"], s["extraction"]) for s in served]
    assert all("```" in s["prompt"] and s["raw"] for s in native)  # an instruction, and an answer to it
