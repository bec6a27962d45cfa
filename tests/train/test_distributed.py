"""geex train across processes on the CPU (torchrun, gloo, FSDP2) and the pieces the GPU path adds:
sharded training equals one process, checkpoints reshard across world sizes and resume bitwise,
activation checkpointing changes no number, the MFU formula counts what the model computes, and
TensorBoard receives the logged scalars."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from geex.models.codegeex import get_config
from geex.train.checkpoint import latest
from geex.train.config import load_config
from geex.train.flops import flops_per_token, mfu, peak_flops
from geex.train.loop import train
from tests.conftest import free_port

from .test_train import _cfg, _losses, packed  # noqa: F401 - the shared fixture

STEPS = ("optim.max_steps=10", "run.checkpoint_every=5", "run.eval_every=5", "run.eval_sequences=12")



def _torchrun(procs: int, packed: Path, out: Path, *extra: str) -> None:  # noqa: F811 - the path, not the fixture
    """``geex train`` under torchrun with ``procs`` CPU processes."""
    sets = [f"data.path={packed}", f"run.out={out}", "optim.lr=0.003", "optim.min_lr=0.0003",
            "optim.warmup_steps=10", "run.log_every=1", *STEPS, *extra]
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={procs}", "--master_addr=127.0.0.1",
           f"--master_port={free_port()}", "-m", "geex", "train", "--quiet"]
    for s in sets:
        cmd += ["--set", s]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").open()]


def _assert_close(a: Path, b: Path) -> None:
    ra, rb = _rows(a), _rows(b)
    assert [r["step"] for r in ra] == [r["step"] for r in rb]
    for key in ("loss", "grad_norm", "eval_loss"):
        x = [r[key] for r in ra if key in r]
        y = [r[key] for r in rb if key in r]
        assert len(x) == len(y) and np.allclose(x, y, rtol=2e-5, atol=0), (key, x, y)


def test_a_checkpoint_reshards_from_two_processes_to_one(packed, tmp_path):  # noqa: F811
    """Two processes stop after step 5 of 10; one process continues: the curve equals an
    uninterrupted one-process run's (within float reordering), and a two-process resume of the same
    checkpoint is bitwise the uninterrupted two-process run."""
    train(_cfg(packed, tmp_path / "one", *STEPS, "data.batch_size=8"), progress=False)
    _torchrun(2, packed, tmp_path / "two", "data.batch_size=4")
    _assert_close(tmp_path / "two", tmp_path / "one")  # two FSDP2 processes of 4 = one process of 8
    assert [r["tokens"] for r in _rows(tmp_path / "two")][:2] == [8 * 64, 16 * 64]
    # a two-process run killed after its step-5 checkpoint: the whole run's directory cut back
    stopped = tmp_path / "stopped"
    shutil.copytree(tmp_path / "two", stopped)
    shutil.rmtree(stopped / "checkpoints" / "step-00000010")
    assert latest(stopped).name == "step-00000005"
    shutil.copytree(stopped, tmp_path / "as-one")
    train(_cfg(packed, tmp_path / "as-one", *STEPS, "data.batch_size=8"), progress=False)
    _assert_close(tmp_path / "as-one", tmp_path / "one")
    _torchrun(2, packed, stopped, "data.batch_size=4")
    assert _losses(stopped) == _losses(tmp_path / "two")
    # ... and as two tensor-parallel processes (FSDP2 shards into DTensor column/row splits; the
    # fused AdamW the checkpoint was saved with gives way to this run's per-tensor loop)
    shutil.copytree(tmp_path / "as-one", tmp_path / "as-tp", ignore=shutil.ignore_patterns("step-00000010"))
    _torchrun(2, packed, tmp_path / "as-tp", "data.batch_size=8", "run.tensor_parallel=2")
    _assert_close(tmp_path / "as-tp", tmp_path / "one")


def test_a_resume_must_keep_the_global_batch(packed, tmp_path):  # noqa: F811
    from geex.errors import UserError

    train(_cfg(packed, tmp_path / "run", *STEPS, "data.batch_size=8"), max_steps=5, progress=False)
    with pytest.raises(UserError, match="global batch: 8 sequences a step -> 4"):
        train(_cfg(packed, tmp_path / "run", *STEPS, "data.batch_size=4"), progress=False)
    # the same global batch as 4 x 2 accumulated micro-batches continues
    train(_cfg(packed, tmp_path / "run", *STEPS, "data.batch_size=4", "optim.grad_accum=2"), progress=False)
    assert [r["step"] for r in _rows(tmp_path / "run")] == list(range(1, 11))


def test_activation_checkpointing_changes_no_number(packed, tmp_path):  # noqa: F811
    train(_cfg(packed, tmp_path / "plain", *STEPS), progress=False)
    train(_cfg(packed, tmp_path / "ac", *STEPS, "run.activation_checkpointing=true"), progress=False)
    assert _losses(tmp_path / "ac") == _losses(tmp_path / "plain")
    train(_cfg(packed, tmp_path / "ac2", *STEPS, "run.activation_checkpointing=true",
               "run.activation_checkpointing_every=2"), progress=False)
    assert _losses(tmp_path / "ac2") == _losses(tmp_path / "plain")


@pytest.mark.parametrize("layers,every,wrapped", [(4, 1, [0, 1, 2, 3, "top"]), (4, 2, [0, 2, "top"]),
                                                  (3, 2, [0, 2]), (5, 3, [0, 3])])
def test_activation_checkpointing_every_kth_unit(layers, every, wrapped):
    """Units (the layers, then the top query layer) 0, k, 2k, ... are recomputed."""
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import CheckpointWrapper

    from geex.train.loop import checkpoint_activations

    model = get_config("codegeex-tiny", vocab_size=300, padded_vocab_size=320, n_layer=layers).build()
    checkpoint_activations(model, every)
    t = model.transformer
    found = [i for i, layer in enumerate(t.layers) if isinstance(layer, CheckpointWrapper)]
    found += ["top"] if isinstance(t.topQueryLayer, CheckpointWrapper) else []
    assert found == wrapped


def test_flops_per_token_is_what_the_model_computes():
    """PaLM's 6N + 12LHQT against PyTorch's FLOP counter over a real forward and backward. The counter
    counts matrix products (attention through SDPA's math kernel, whose ops it knows); PaLM's N also
    holds the biases and LayerNorm parameters, 6 FLOPs each a token, which the counter does not see."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    cfg = get_config("codegeex-tiny", vocab_size=300, padded_vocab_size=320)
    model = cfg.build()
    ids = torch.randint(0, 300, (2, 48))
    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
        model(ids).float().square().mean().backward()
    vectors = sum(p.numel() for name, p in model.named_parameters() if name.endswith("bias") or "layernorm" in name)
    assert counter.get_total_flops() / ids.numel() + 6 * vectors == flops_per_token(cfg, 48)
    assert mfu(1000.0, 1e9, 1e12, 2) == 0.5 and mfu(1.0, 1.0, None, 1) is None
    assert peak_flops(torch.device("cpu")) is None and peak_flops(torch.device("cpu"), 2.0) == 2e12


def test_tensorboard_holds_the_logged_scalars(packed, tmp_path):  # noqa: F811
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(_cfg(packed, tmp_path / "run", *STEPS), progress=False)
    events = EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    logged = _rows(tmp_path / "run")
    assert [e.value for e in events.Scalars("train/loss")] == pytest.approx([r["loss"] for r in logged])
    assert [e.step for e in events.Scalars("eval/loss")] == [5, 10]


def test_config_errors_are_user_errors(packed, tmp_path):  # noqa: F811
    from geex.errors import UserError

    with pytest.raises(UserError, match="run.device"):
        train(load_config(None, [f"data.path={packed}", f"run.out={tmp_path}", "run.device=tpu"]), progress=False)


def test_compiled_training_follows_the_eager_curve(packed, tmp_path):  # noqa: F811
    """torch.compile (each layer and the loss; Inductor's C++ backend here) reorders float sums
    only; a checkpoint of the compiled run also resumes eagerly."""
    steps = (*STEPS, "run.eval_sequences=8")  # one evaluation batch of 8: no recompilation for a short last batch
    train(_cfg(packed, tmp_path / "eager", *steps), progress=False)
    train(_cfg(packed, tmp_path / "compiled", *steps, "run.compile=true"), max_steps=5, progress=False)
    train(_cfg(packed, tmp_path / "compiled", *steps), progress=False)
    _assert_close(tmp_path / "compiled", tmp_path / "eager")


def test_fsdp_options_keep_the_numbers(packed, tmp_path):  # noqa: F811
    """Gathered weights kept to the backward, gradients reduced once a step: the same curve as one
    process with the same global batch (2 processes x 2 sequences x 2 micro-batches = 1 x 4 x 2)."""
    train(_cfg(packed, tmp_path / "one", *STEPS, "data.batch_size=4", "optim.grad_accum=2"), progress=False)
    _torchrun(2, packed, tmp_path / "two", "data.batch_size=2", "optim.grad_accum=2",
              "run.reshard_after_forward=false", "run.reduce_last_micro_batch=true")
    _assert_close(tmp_path / "two", tmp_path / "one")
    # FSDP2's CPU offload policy (host-resident shards; on CPU devices the copies are no-ops) with
    # every other layer recomputed: the same curve, and its checkpoint resumes without offload
    _torchrun(2, packed, tmp_path / "off", "data.batch_size=2", "optim.grad_accum=2", "run.cpu_offload=true",
              "run.activation_checkpointing=true", "run.activation_checkpointing_every=2")
    _assert_close(tmp_path / "off", tmp_path / "one")
    shutil.rmtree(tmp_path / "off" / "checkpoints" / "step-00000010")
    _torchrun(2, packed, tmp_path / "off", "data.batch_size=2", "optim.grad_accum=2")
    _assert_close(tmp_path / "off", tmp_path / "one")


PROBE = """
import torch
from geex.train.config import load_config
from geex.train.distributed import setup, units
from geex.train.loop import Trainee
from torch.distributed.fsdp import CPUOffloadPolicy

topo = setup("cpu")
trainee = Trainee(load_config(None, ["run.cpu_offload=true", "run.dtype=bfloat16"]), 300, 32, topo)
groups = [m._get_fsdp_state()._fsdp_param_group for m in [*units(trainee.model), trainee.model]]
assert all(isinstance(g.offload_policy, CPUOffloadPolicy) for g in groups)
# resharded after the forward: every layer but the last unit, and not the root (the tied head)
assert [g.post_forward_mesh_info is not None for g in groups] == [True] * (len(groups) - 2) + [False, False]
print("probe ok")
"""


def test_the_sharding_policies_reach_every_fsdp_unit(tmp_path):
    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={free_port()}", str(script)]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          timeout=300)
    assert done.returncode == 0 and done.stdout.count("probe ok") == 2, done.stderr[-3000:]


def test_a_finished_run_plots_its_loss_curve(packed, tmp_path):  # noqa: F811
    train(_cfg(packed, tmp_path / "run", *STEPS), progress=False)
    png = (tmp_path / "run" / "loss.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_bf16_fsdp_mixed_precision_follows_one_process_autocast(packed, tmp_path):  # noqa: F811
    """bf16 across processes (FSDP2 gathers bf16 weights, reduces fp32 gradients) against bf16
    autocast in one process, with activation checkpointing: the same curve to bf16's precision."""
    extra = ("run.dtype=bfloat16", "run.activation_checkpointing=true")
    train(_cfg(packed, tmp_path / "one", *STEPS, "data.batch_size=8", *extra), progress=False)
    _torchrun(2, packed, tmp_path / "two", "data.batch_size=4", *extra)
    one, two = _rows(tmp_path / "one"), _rows(tmp_path / "two")
    assert np.allclose([r["loss"] for r in two], [r["loss"] for r in one], rtol=2e-4, atol=0)
    assert np.allclose([r["grad_norm"] for r in two], [r["grad_norm"] for r in one], rtol=5e-3, atol=0)


def test_fsdp_and_tensor_parallel_together(packed, tmp_path):  # noqa: F811
    """Four processes as 2 data-parallel (FSDP2) x 2 tensor-parallel ranks, 4 sequences a
    data-parallel rank: the curve of one process reading 8; its step-5 checkpoint (tensors split
    both ways) continues in one process on the same curve. (Tensor parallelism alone, from a
    checkpoint of two FSDP2 processes: test_a_checkpoint_reshards_from_two_processes_to_one.)"""
    train(_cfg(packed, tmp_path / "one", *STEPS, "data.batch_size=8"), progress=False)
    _torchrun(4, packed, tmp_path / "2d", "data.batch_size=4", "run.tensor_parallel=2")
    _assert_close(tmp_path / "2d", tmp_path / "one")
    stopped = tmp_path / "stopped"
    shutil.copytree(tmp_path / "2d", stopped)
    shutil.rmtree(stopped / "checkpoints" / "step-00000010")
    train(_cfg(packed, stopped, *STEPS, "data.batch_size=8"), progress=False)
    _assert_close(stopped, tmp_path / "one")
    assert _rows(stopped)[:5] == _rows(tmp_path / "2d")[:5]  # resumed at step 5, not trained again
