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


def test_openai_backend_against_geex_serve_equals_native(default_model, default_model_fp32, tmp_path, monkeypatch):
    _reuse_the_sessions_load(default_model_fp32, monkeypatch)
    running = start_server(ServeConfig(port=0), engine=default_engine(default_model))
    try:
        assert main(["humanevalx", "run", "--out", str(tmp_path / "native"), *ARGS]) == 0
        assert main(["humanevalx", "run", "--out", str(tmp_path / "served"), *ARGS, "--backend", "openai",
                     "--base-url", running.url + "/v1", "--model", default_model.name]) == 0
    finally:
        running.stop()
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
    running = start_server(ServeConfig(port=0), engine=default_engine(default_model))
    try:
        assert main(["humanevalx", "run", "--out", str(tmp_path / "native"), *args]) == 0
        assert main(["humanevalx", "run", "--out", str(tmp_path / "served"), *args, "--backend", "openai",
                     "--base-url", running.url + "/v1", "--model", default_model.name]) == 0
    finally:
        running.stop()
    native, served = _samples(tmp_path / "native"), _samples(tmp_path / "served")
    assert len(native) == 2 and [s["task_id"] for s in native] == [s["task_id"] for s in served]
    assert [s["completion"] for s in native] == [s["completion"] for s in served]
