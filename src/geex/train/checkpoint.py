"""Training checkpoints with ``torch.distributed.checkpoint`` (DCP).

A checkpoint is a directory ``OUT/checkpoints/step-NNNNNNNN``: DCP's files hold the model and the
optimizer (each process writes its own shards; a later run with another number of processes
reshards on load), ``trainer.pt`` the rest (step, data position, RNG states, config, world size).
It is written as ``….tmp`` and renamed when complete, so a crash mid-write leaves the previous
checkpoint as the newest; only the newest ``keep`` are kept.
"""

from __future__ import annotations

import random
import shutil
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

from geex.errors import UserError
from geex.interrupts import deferred as deferred_interrupts
from geex.train.distributed import Topology, barrier

TRAINER = "trainer.pt"


@contextmanager
def _quiet():
    """DCP warns that it runs without a process group, which is what one process means."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        yield


def latest(out: Path) -> Path | None:
    """The newest complete checkpoint directory under ``out``, if any."""
    done = sorted(p for p in (out / "checkpoints").glob("step-*") if p.is_dir() and not p.name.endswith(".tmp")
                  and (p / TRAINER).is_file())
    return done[-1] if done else None


def rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])


def save(out: Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer, trainer: dict,
         topo: Topology, keep: int = 2) -> Path:
    root = out / "checkpoints"
    final = root / f"step-{step:08d}"
    tmp = root / f"step-{step:08d}.tmp"
    if topo.main:
        for stale in root.glob("step-*.tmp"):  # this one, or a write a crash left behind
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir(parents=True)
    barrier(topo)
    model_sd, optim_sd = get_state_dict(model, optimizer)
    # Ctrl-C waits until the checkpoint is in place (DCP would turn it into a CheckpointException)
    with deferred_interrupts():
        with _quiet():
            dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=tmp)
        if topo.main:
            torch.save(trainer, tmp / TRAINER)
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)
            for old in sorted(p for p in root.glob("step-*") if p.is_dir() and not p.name.endswith(".tmp"))[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
        barrier(topo)
    return final


def _check_holds(path: Path, model_sd: dict) -> None:
    """A checkpoint without this model's tensors is named as such (DCP would raise a traceback per
    process): one of another model, or of a geex before q/k/v and gate/up became one tensor each."""
    saved = {k.removeprefix("model.") for k in dcp.FileSystemReader(str(path)).read_metadata().state_dict_metadata}
    missing = sorted(set(model_sd) - saved)
    if missing:
        raise UserError(f"checkpoint {path} does not hold this model's tensors ({len(missing)} missing, e.g. "
                        f"{missing[0]}): it was written for another model, or by a geex that kept q/k/v and "
                        "gate/up apart; train anew in another `out`")


def load(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    """Restore model and optimizer from ``path`` into this run's sharding; returns the trainer state.
    How the optimizer runs (fused, foreach) stays this run's choice: a tensor-parallel run cannot take
    the fused kernel a data-parallel run saved."""
    model_sd, optim_sd = get_state_dict(model, optimizer)
    _check_holds(path, model_sd)
    state = {"model": model_sd, "optim": optim_sd}
    with _quiet():
        dcp.load(state, checkpoint_id=path)
    kernels = [{k: group[k] for k in ("fused", "foreach", "capturable") if k in group}
               for group in optimizer.param_groups]
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"])
    for group, own in zip(optimizer.param_groups, kernels):
        group.update(own)
        if not (group.get("fused") or group.get("capturable")):  # the loops keep "step" on the host
            for p in group["params"]:
                moments = optimizer.state.get(p, {})
                if type(moments.get("step")) is torch.Tensor and moments["step"].device.type != "cpu":
                    moments["step"] = moments["step"].cpu()
    return torch.load(path / TRAINER, weights_only=False)
