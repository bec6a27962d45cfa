"""Generation by several processes (``geex.humanevalx.parallel``): the samples file is the one a
single process writes, byte for byte — with the real default model on the CPU in two spawned
processes (``--devices cpu,cpu``) and under ``torchrun``, and (with the deterministic stand-in
backend of ``test_generate``) whatever the number of processes, across interruptions, a torn part
and a resume at another number of processes."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from geex.errors import UserError
from geex.humanevalx.generate import run_generate
from geex.humanevalx.parallel import Share, generate_share, merge, parts_dir
from tests.conftest import free_port

from .test_generate import FakeBackend, py_js_cfg

ARGS = ["--languages", "python,js", "--limit", "3", "--batch-size", "2", "--max-new-tokens", "16", "-n", "2",
        "--temperature", "0.8", "--seed", "3", "--quiet"]


def _generate(out, *launch: str, extra: tuple[str, ...] = ()) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, *launch, "-m", "geex", "humanevalx", "generate", "--out", str(out), *ARGS, *extra]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "samples.jsonl"
    _generate(out)
    return out.read_bytes()


def test_two_spawned_processes_write_the_one_process_file(one_process, tmp_path):
    out = tmp_path / "samples.jsonl"
    _generate(out, extra=("--devices", "cpu,cpu"))
    assert out.read_bytes() == one_process
    assert not parts_dir(out).exists()  # the parts go once the file is whole


def test_two_torchrun_ranks_write_the_one_process_file(one_process, tmp_path):
    out = tmp_path / "samples.jsonl"
    _generate(out, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
              f"--master_port={free_port()}")
    assert out.read_bytes() == one_process


@pytest.mark.parametrize("world", [2, 3])
def test_any_number_of_shares_merges_to_the_one_process_file(tmp_path, dataset_dir, world):
    cfg = py_js_cfg(dataset_dir)
    reference = tmp_path / "one.jsonl"
    run_generate(cfg, FakeBackend(), reference, progress=False)
    out = tmp_path / "many.jsonl"
    made = []
    for rank in reversed(range(world)):  # in any order; the file is whole only with every share
        backend = FakeBackend()
        generate_share(cfg, backend, out, Share(rank, world))
        made.append(sorted(c["seed"] - cfg.seed for c in backend.calls))
        assert merge(cfg, out) is (rank == 0)
    assert out.read_bytes() == reference.read_bytes()
    assert sorted(b for batches in made for b in batches) == [0, 1, 2, 3]  # each batch made once
    assert made[-1] == list(range(0, 4, world))  # rank 0: batches 0, world, ...


def test_an_interrupted_share_resumes_at_another_number_of_processes(tmp_path, dataset_dir):
    """Of two processes, rank 0 dies in its second batch (batch 2; a record of it torn in its part)
    and rank 1 finishes (batches 1 and 3); a merge puts batches 0 and 1 into OUT; then one process
    makes only what is missing (batch 2): the one-process file."""
    cfg = py_js_cfg(dataset_dir)
    reference = tmp_path / "one.jsonl"
    run_generate(cfg, FakeBackend(), reference, progress=False)
    out = tmp_path / "many.jsonl"
    with pytest.raises(KeyboardInterrupt):
        generate_share(cfg, FakeBackend(fail_at_call=1), out, Share(0, 2))
    with open(parts_dir(out) / "rank-0-of-2.jsonl", "a") as f:
        f.write('{"task_id": "JavaScript/0", "batch": 2, "comp')  # a record cut short
    generate_share(cfg, FakeBackend(), out, Share(1, 2))
    assert merge(cfg, out) is False
    lines = reference.read_bytes().splitlines(keepends=True)
    assert out.read_bytes() == b"".join(lines[:7])  # the header, batch 0 (4 samples), batch 1 (2)
    finisher = FakeBackend()
    generate_share(cfg, finisher, out, Share(0, 1))
    assert [c["seed"] - cfg.seed for c in finisher.calls] == [2]  # neither OUT's batches nor rank 1's again
    assert merge(cfg, out)
    assert out.read_bytes() == reference.read_bytes()


def test_a_part_of_other_settings_is_refused(tmp_path, dataset_dir):
    out = tmp_path / "s.jsonl"
    generate_share(py_js_cfg(dataset_dir), FakeBackend(), out, Share(0, 2))
    with pytest.raises(UserError, match="other settings"):
        generate_share(py_js_cfg(dataset_dir, seed=12), FakeBackend(), out, Share(1, 2))
