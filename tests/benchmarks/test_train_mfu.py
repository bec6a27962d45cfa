"""benchmarks/train_mfu.py runs (a CPU smoke run under torchrun: FSDP2 and tensor-parallel variants),
so the multi-GPU measurements of the 13B issue start from a script known to work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_the_training_benchmark_runs_its_variants_under_torchrun(tmp_path):
    out = tmp_path / "rows.jsonl"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={free_port()}", str(ROOT / "benchmarks" / "train_mfu.py"), "--device", "cpu",
           "--presets", "codegeex-tiny", "--batch", "tiny=2", "--seq", "32", "--steps", "2", "--warmup", "1",
           "--variants", "geex+eager,geex+eager+tp2,geex+eager+ac+keep+lastsync", "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["variant"], r["gpus"], r["tp"]) for r in rows] == [
        ("geex+eager", 2, 1), ("geex+eager+tp2", 2, 2), ("geex+eager+ac+keep+lastsync", 2, 1)]
    for r in rows:
        assert set(r["step_split_s"]) == {"forward", "backward", "optimizer"}
        assert 0 < sum(r["step_split_s"].values()) <= r["step_s"] * 1.05
        assert 10 < r["warmup_losses"][0] < 11.5  # random tokens: about ln(50432) at the start
    # two data-parallel ranks read twice the tokens of one tensor-parallel pair in the same time budget
    per_step = {r["variant"]: r["tokens_per_s"] * r["step_s"] for r in rows}
    assert round(per_step["geex+eager"]) == 2 * 2 * 2 * 32 and round(per_step["geex+eager+tp2"]) == 2 * 2 * 32
