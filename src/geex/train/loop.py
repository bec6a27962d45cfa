"""``geex train``: CodeGeeX's recipe on packed data, from one CPU process to FSDP2 across GPUs, for
any model family that declares a ``TrainingSpec`` (``model.preset``: a CodeGeeX or a Llama preset).

AdamW (β 0.9/0.95, weight decay 0.1, none on biases and norms), linear warm-up then cosine to
``min_lr``, gradient clipping (all in ``geex.train.optim``), gradient accumulation, bf16 (autocast in one process, FSDP2 mixed
precision across several), optional ``torch.compile`` of each layer and the loss, optional
activation checkpointing. Loss: cross-entropy of the next token over every position (EOS included,
as the original trained).

Several processes (``torchrun --nproc_per_node N -m geex train …``) shard the model with FSDP2 and
each read their part of one shared data order, so a step sees the same sequences whatever N is.
Checkpoints (``geex.train.checkpoint``, torch.distributed.checkpoint) hold model, optimizer,
schedule, data position and RNG; the same command after a stop continues with bitwise the same
losses (same N), and a run may resume on another N with the same global batch (resharded).
Logs: ``OUT/log.jsonl`` and TensorBoard: loss, lr, grad norm, tokens/s, MFU, peak memory, eval loss;
``OUT/loss.png`` when the run ends.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from geex.data.pack import PackedDataset
from geex.errors import GeexWarning, UserError
from geex.models.quantize import replace_module
from geex.train import checkpoint
from geex.train.config import TrainConfig, resume_conflicts
from geex.train.distributed import (
    Topology,
    all_reduce_max,
    all_reduce_sum,
    make_mesh,
    setup,
    shard,
    teardown,
    tensor_parallel,
    units,
)
from geex.train.families import spec_for, spec_for_preset
from geex.train.flops import flops_per_token, mfu, peak_flops
from geex.train.optim import adamw, lr_at, optimizer_step


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, vocab: int) -> torch.Tensor:
    """Mean next-token loss over the real vocabulary (the embedding's padding rows are never targets
    and take no probability)."""
    return F.cross_entropy(logits[..., :vocab].float().reshape(-1, vocab), targets.reshape(-1))


@torch.no_grad()
def initialize(model: torch.nn.Module, device: torch.device, seed: int) -> None:
    """The family's initialisation, one full parameter at a time on ``device`` from one seeded
    generator, each process keeping its shard: the weights do not depend on the number of processes."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    init_parameter = spec_for(model.config).init_parameter
    generator = torch.Generator(device).manual_seed(seed)
    for name, p in model.named_parameters():
        full = torch.empty(p.shape, dtype=p.dtype, device=device)
        init_parameter(name, full, model.config, generator)
        if isinstance(p, DTensor):
            full = distribute_tensor(full, p.device_mesh, p.placements, src_data_rank=None).to_local()
            p = p.to_local()
        p.copy_(full)


def checkpoint_activations(model: torch.nn.Module, every: int = 1) -> None:
    """Recompute every ``every``-th unit (``distributed.units``: the layers, then CodeGeeX's top
    query layer) in the backward instead of keeping its activations."""
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper

    names = spec_for(model.config).unit_names(model.config)
    for name in names[::every]:
        replace_module(model, name, checkpoint_wrapper(model.get_submodule(name)))


class Trainee:
    """The model as training runs it: built, compiled, checkpointed and sharded as ``cfg`` says, with
    its optimizer and loss. ``loss(batch)`` is one micro-batch's forward."""

    def __init__(self, cfg: TrainConfig, vocab: int, seq_len: int, topo: Topology) -> None:
        self.model_config = spec_for_preset(cfg.model.preset).configure(cfg.model.preset, vocab)
        if seq_len > self.model_config.n_positions:
            raise UserError(f"sequences of {seq_len} tokens exceed {cfg.model.preset}'s context of "
                            f"{self.model_config.n_positions}")
        self.cfg, self.vocab, self.device = cfg, vocab, topo.device
        bf16 = cfg.run.dtype == "bfloat16"
        self.autocast = bf16 and topo.dp_world == 1  # with FSDP2 (data parallel), FSDP2 casts instead
        with torch.device("meta"):  # no full copy anywhere: weights are made after sharding
            model = self.model_config.build()
        mesh = make_mesh(topo) if topo.distributed else None
        if topo.tp > 1:
            tensor_parallel(model, mesh)
        if cfg.run.compile:
            for block in units(model):
                block.compile()
        if cfg.run.activation_checkpointing:
            checkpoint_activations(model, cfg.run.activation_checkpointing_every)
        if cfg.run.cpu_offload and topo.dp_world == 1:
            raise UserError("run.cpu_offload shards with FSDP2: run under torchrun with at least 2 "
                            "data-parallel processes (world / run.tensor_parallel)")
        if cfg.run.cpu_offload and topo.tp > 1:
            raise UserError("run.cpu_offload with run.tensor_parallel > 1 is not supported (untested on GPUs): "
                            "offload alone fits a model that tensor parallelism would split")
        if topo.dp_world > 1:
            shard(model, mesh, bf16, cfg.run.reshard_after_forward, cfg.run.cpu_offload)
        model.to_empty(device="cpu" if cfg.run.cpu_offload else topo.device)  # FSDP2 offload: host shards
        initialize(model, topo.device, cfg.run.seed)
        self.model = model
        self.optimizer = adamw(model, cfg.optim, topo.tp, topo.dp_world)
        if cfg.run.cpu_offload and topo.main and torch.get_num_threads() == 1:
            warnings.warn("run.cpu_offload runs AdamW on the CPU with 1 thread a process; set OMP_NUM_THREADS "
                          "(torchrun sets it to 1) to about cores / processes", GeexWarning, stacklevel=2)
        self._cross_entropy = torch.compile(cross_entropy) if cfg.run.compile else cross_entropy

    def loss(self, batch: torch.Tensor) -> torch.Tensor:
        x, y = batch[:, :-1], batch[:, 1:]
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            logits = self.model(x)
        return self._cross_entropy(logits, y, self.vocab)

    def backward(self, loss: torch.Tensor, last_micro_batch: bool = True) -> None:
        """Accumulate ``loss``'s gradients. With ``run.reduce_last_micro_batch`` FSDP2 keeps them local
        until the step's last micro-batch, then reduces them all at once."""
        if hasattr(self.model, "set_requires_gradient_sync"):
            self.model.set_requires_gradient_sync(last_micro_batch or not self.cfg.run.reduce_last_micro_batch)
        loss.backward()

    def optimizer_step(self, step: int) -> torch.Tensor:
        """Optimizer step ``step`` (0-based) on the accumulated gradients (``optim.optimizer_step``);
        returns the gradient norm before clipping."""
        return optimizer_step(self.optimizer, self.model.parameters(), step, self.cfg, self.device)


@torch.no_grad()
def evaluate(trainee: Trainee, valid: PackedDataset, n: int, batch: int, topo: Topology) -> float:
    """Mean loss of the first ``n`` held-out sequences. Across processes each data-parallel rank
    takes every dp_world-th row; all run the same number of forwards (FSDP2 gathers weights
    collectively), a rank with nothing left repeating a row at weight 0."""
    trainee.model.eval()
    n = min(n, len(valid))
    mine = list(range(topo.dp_rank, n, topo.dp_world))  # a tensor-parallel group reads the same rows
    rounds = -(-n // (batch * topo.dp_world))
    total = torch.zeros(2, dtype=torch.float64, device=topo.device)
    for r in range(rounds):
        rows = mine[r * batch:(r + 1) * batch]
        b = torch.from_numpy(np.stack([valid.sequence(i) for i in (rows or [0])])).to(topo.device)
        loss = trainee.loss(b).double()
        total += torch.stack([loss * len(rows), torch.tensor(float(len(rows)), device=topo.device,
                                                             dtype=torch.float64)])
    trainee.model.train()
    total = all_reduce_sum(total, topo)  # tensor-parallel ranks count their rows tp times: cancels
    return float(total[0] / total[1])


class RunLog:
    """``log.jsonl`` (the record of the run) and TensorBoard scalars, written by the main process."""

    def __init__(self, out: Path, step: int, tensorboard: bool, enabled: bool) -> None:
        self.enabled, self.writer, self.path = enabled, None, out / "log.jsonl"
        if not enabled:
            return
        self.path.touch()
        self._truncate(step)  # lines past the checkpoint belong to a run that died
        self.file = open(self.path, "a", encoding="utf-8")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                warnings.warn("tensorboard is not installed; logging to log.jsonl only", GeexWarning, stacklevel=2)
            else:
                self.writer = SummaryWriter(str(out / "tensorboard"), purge_step=step + 1)

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.writer is not None:
            for key, value in record.items():
                if key != "step" and isinstance(value, (int, float)):
                    self.writer.add_scalar(f"train/{key}" if key != "eval_loss" else "eval/loss", value,
                                           record["step"])
            self.writer.flush()

    def close(self) -> None:
        if self.enabled:
            self.file.close()
            if self.writer is not None:
                self.writer.close()

    def _truncate(self, step: int) -> None:
        lines = [line for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]
        keep = [line for line in lines if _step_of(line) <= step]
        if len(keep) != len(lines):
            self.path.write_text("".join(line + "\n" for line in keep), encoding="utf-8")


def _step_of(line: str) -> float:
    """A log line's step; a line cut short by a crash counts as past every checkpoint."""
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return math.inf


def train(cfg: TrainConfig, max_steps: int | None = None, progress: bool = True) -> dict:
    """Train (or continue) into ``cfg.run.out``; stop after ``max_steps`` steps of this call if given
    (as if interrupted). Returns the last log record."""
    if not cfg.data.path:
        raise UserError("data.path: a `geex data pack` output directory is required")
    cfg.check()
    if (Path(cfg.run.out) / "checkpoint.pt").is_file():
        raise UserError(f"{cfg.run.out} holds a run of an older geex (checkpoint.pt): choose another run.out")
    topo = setup(cfg.run.device, cfg.run.tensor_parallel, cfg.run.cpu_offload)
    try:
        last = _train(cfg, topo, max_steps, progress)
    except BaseException:
        teardown(topo)
        raise
    teardown(topo, synchronize=True)
    return last


def _train(cfg: TrainConfig, topo: Topology, max_steps: int | None, progress: bool) -> dict:
    train_data = PackedDataset(cfg.data.path, "train", seed=cfg.data.seed)
    valid_data = PackedDataset(cfg.data.path, "valid", seed=0) if cfg.run.eval_every else None
    seq_len, vocab = train_data.seq_len, train_data.index["vocab_size"]
    if cfg.model.seq_len and cfg.model.seq_len != seq_len:
        raise UserError(f"model.seq_len {cfg.model.seq_len} differs from the packed data's {seq_len}")
    out = Path(cfg.run.out)
    found = _resumable(cfg, topo, out)
    trainee = Trainee(cfg, vocab, seq_len, topo)
    step = _start(cfg, topo, out, found, trainee, train_data)
    log = RunLog(out, step, cfg.run.tensorboard, enabled=topo.main)
    stop = cfg.optim.max_steps if max_steps is None else min(cfg.optim.max_steps, step + max_steps)
    meter = _Meter(cfg, topo, trainee.model_config, seq_len, step)
    bar = _progress_bar(progress and topo.main, step, cfg.optim.max_steps)
    last: dict = {}
    trainee.model.train()
    try:
        while step < stop:
            loss_sum, norm = _step(cfg, topo, trainee, train_data, step)
            step += 1
            record = {"step": step, "tokens": step * meter.tokens_per_step, "lr": lr_at(step - 1, cfg)}
            if cfg.run.eval_every and step % cfg.run.eval_every == 0:
                with meter.paused():
                    record["eval_loss"] = evaluate(trainee, valid_data, cfg.run.eval_sequences, cfg.data.batch_size,
                                                   topo)
            if step % cfg.run.log_every == 0 or "eval_loss" in record or step == stop:
                mean_loss = all_reduce_sum(loss_sum / cfg.optim.grad_accum, topo) / topo.world
                record.update(loss=float(mean_loss), grad_norm=float(norm))  # syncs with the device
                record.update(meter.measure(step))
                log.write(record)
                if bar is not None:
                    bar.console.print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                               for k, v in record.items()))
            if bar is not None:
                bar.update(bar.task_ids[0], completed=step)
            last = record
            if step % cfg.run.checkpoint_every == 0 or (step == stop and cfg.run.checkpoint_at_end):
                with meter.paused():
                    checkpoint.save(out, step, trainee.model, trainee.optimizer,
                                    {"step": step, "config": cfg.as_dict(), "world": topo.dp_world,
                                     "data": train_data.state_dict(), "rng": checkpoint.rng_state()},
                                    topo, keep=cfg.run.keep_checkpoints)
    finally:
        log.close()
        if bar is not None:
            bar.stop()
    if topo.main and step == cfg.optim.max_steps:
        _plot(out)
    return last


def _resumable(cfg: TrainConfig, topo: Topology, out: Path) -> Path | None:
    """The newest checkpoint in ``out``, if any; one this configuration cannot continue is refused."""
    found = checkpoint.latest(out)
    saved = torch.load(found / checkpoint.TRAINER, weights_only=False) if found else None
    if saved is not None:
        conflicts = resume_conflicts(saved["config"], cfg, saved["world"], topo.dp_world)
        if conflicts:
            raise UserError(f"{out} holds a run that cannot continue with this configuration "
                            f"({'; '.join(conflicts)}): choose another run.out")
    return found


def _start(cfg: TrainConfig, topo: Topology, out: Path, found: Path | None, trainee: Trainee,
           train_data: PackedDataset) -> int:
    """The step training starts from: the checkpoint's (model, optimizer, data order and random
    state restored), or 0 in a new run directory that records the configuration."""
    if found:
        state = checkpoint.load(found, trainee.model, trainee.optimizer)
        train_data.load_state_dict(state["data"])
        checkpoint.set_rng_state(state["rng"])
        return state["step"]
    if topo.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(json.dumps(cfg.as_dict(), indent=2) + "\n")
    return 0


def _step(cfg: TrainConfig, topo: Topology, trainee: Trainee, train_data: PackedDataset,
          step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step over ``grad_accum`` micro-batches: (the summed micro-batch losses, the
    gradient norm), both still on the device."""
    loss_sum = torch.zeros((), device=topo.device)
    for micro in range(cfg.optim.grad_accum):
        batch = train_data.next_batch(cfg.data.batch_size, topo.dp_rank, topo.dp_world)
        loss = trainee.loss(torch.from_numpy(batch).to(topo.device, non_blocking=True))
        trainee.backward(loss / cfg.optim.grad_accum, micro == cfg.optim.grad_accum - 1)
        loss_sum += loss.detach()
    return loss_sum, trainee.optimizer_step(step)


class _Meter:
    """Throughput between log lines: tokens/s (a whole run's and a device's) with evaluation and
    checkpoint time left out, model FLOPs utilisation, peak device memory."""

    def __init__(self, cfg: TrainConfig, topo: Topology, model_config, seq_len: int, step: int) -> None:
        self.topo = topo
        self.tokens_per_step = cfg.sequences_per_step(topo.dp_world) * seq_len
        self.flops_token = flops_per_token(model_config, seq_len)
        self.peak = peak_flops(topo.device, cfg.run.peak_tflops)
        self.clock, self.logged, self.paused_s = time.perf_counter(), step, 0.0

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.paused_s += time.perf_counter() - t0

    def measure(self, step: int) -> dict:
        """The numbers since the last call (or the start), in the log's order."""
        now = time.perf_counter()
        rate = self.tokens_per_step * (step - self.logged) / max(now - self.clock - self.paused_s, 1e-9)
        self.clock, self.logged, self.paused_s = now, step, 0.0
        numbers = {"tokens_per_s": round(rate, 1), "tokens_per_s_device": round(rate / self.topo.world, 1)}
        utilisation = mfu(rate, self.flops_token, self.peak, self.topo.world)
        if utilisation is not None:
            numbers["mfu"] = round(utilisation, 4)
        if self.topo.device.type == "cuda":
            numbers["memory_gb"] = round(all_reduce_max(torch.cuda.max_memory_allocated(self.topo.device) / 2**30,
                                                        self.topo), 2)
        return numbers


def _plot(out: Path) -> None:
    """OUT/loss.png at the end of a run (skipped where matplotlib is not installed)."""
    try:
        from geex.train.plot import plot_log

        plot_log(out / "log.jsonl", out / "loss.png")
    except ImportError:
        pass


def _progress_bar(enabled: bool, step: int, total: int):
    if not enabled:
        return None
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   TimeRemainingColumn())
    bar.add_task("steps", total=total, completed=step)
    bar.start()
    return bar
