"""benchmarks/train_13b.py on the CPU with a tiny preset: the layouts mode compares its layouts at one
global batch, and the reshard mode saves a checkpoint on 2 processes and continues it on 1 and as
tensor parallel, with curves that match the uninterrupted run (what the GPU run then shows at 13B)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.train.test_train import packed  # noqa: F401 - the shared fixture

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = str(ROOT / "benchmarks" / "train_13b.py")
ENV = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}


def _run(*args: str) -> str:
    done = subprocess.run([sys.executable, SCRIPT, *args, "--preset", "codegeex-tiny", "--device", "cpu"],
                          capture_output=True, text=True, env=ENV, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done.stdout


def test_layouts_share_the_global_batch_and_report_failures(tmp_path):
    out = tmp_path / "rows.jsonl"
    # two layouts that run (activation checkpointing; tensor parallel, which changes the batch split) and
    # one refused before running; plain FSDP2 and offload run in tests/train/test_distributed.py
    _run("layouts", "--gpus", "2", "--seq", "32", "--steps", "2", "--warmup", "1", "--out", str(out),
         "--layouts", "fsdp-ac2,fsdp-tp2,tp4")
    rows = {r["layout"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert list(rows) == ["fsdp-ac2", "fsdp-tp2", "tp4"]
    for name in ("fsdp-ac2", "fsdp-tp2"):
        r = rows[name]
        assert "error" not in r, r
        assert r["batch"] * r["accum"] * r["gpus"] // r["tp"] == 8  # the global batch: 4 sequences a process
        assert r["tokens_per_s"] * r["step_s"] == pytest.approx(8 * 32, rel=1e-2)
    assert (rows["fsdp-tp2"]["tp"], rows["fsdp-tp2"]["batch"], rows["fsdp-tp2"]["accum"]) == (2, 4, 2)
    assert rows["tp4"] == {"layout": "tp4", "error": "4-way tensor parallelism needs a multiple of 4 GPUs"}


def test_reshard_continues_a_checkpoint_on_other_layouts(packed, tmp_path):  # noqa: F811
    text = _run("reshard", "--gpus", "2", "--data", str(packed), "--work", str(tmp_path), "--to", "1")
    result = json.loads((tmp_path / "reshard.json").read_text())
    assert [r["step"] for r in result["first"]["log"]] == [1, 2, 3, 4, 5]
    assert "resumed on 1" in text
    # a second call reuses the first run and adds a target
    text = _run("reshard", "--gpus", "2", "--data", str(packed), "--work", str(tmp_path), "--to", "2:tp2")
    again = json.loads((tmp_path / "reshard.json").read_text())
    assert again["first"] == result["first"] and set(again) == {"first", "1", "2:tp2"}
    assert "resumed on 2:tp2" in text
    for target in ("1", "2:tp2"):
        r = again[target]
        assert r["steps"] == [4, 5]
        # bf16 on other process counts: the same curve to bf16 precision, not bitwise
        assert r["max_relative_difference"]["loss"] < 2e-3 and r["max_relative_difference"]["eval_loss"] < 2e-3
        assert not (tmp_path / target.replace(":", "-") / "checkpoints").exists()


def test_reshard_checks_its_targets_before_the_first_run(tmp_path):
    for bad in ("2:offlaod", "4:tp", "3"):  # a typo, no K, and 8 sequences over 3 ranks
        done = subprocess.run([sys.executable, SCRIPT, "reshard", "--gpus", "2", "--data", str(tmp_path),
                               "--work", str(tmp_path / "w"), "--to", bad, "--device", "cpu"],
                              capture_output=True, text=True, env=ENV, timeout=60)
        assert done.returncode == 1 and f"--to {bad}" in done.stderr.replace("'", "")
        assert "Traceback" not in done.stderr and not (tmp_path / "w").exists()


def test_a_failed_run_reports_the_workers_error(tmp_path):
    """torchrun's own summary (ChildFailedError) is not the error: the worker's exception is."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from train_13b import _torchrun

    script = tmp_path / "fail.py"
    script.write_text("raise ValueError('bad data in shard 3')\n")
    assert "ValueError: bad data in shard 3" in _torchrun(1, [str(script)], tmp_path / "log", 120)
    script.write_text("import time\ntime.sleep(600)\n")
    assert _torchrun(1, [str(script)], tmp_path / "log", 5) == "did not finish in 5 s"
    assert not any(str(script).encode() in cmd for cmd in _command_lines())  # no worker left holding a GPU


def _command_lines() -> list[bytes]:
    out = []
    for path in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            out.append(path.read_bytes())
        except OSError:  # the process ended meanwhile
            pass
    return out
