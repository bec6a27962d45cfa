"""``geex train``'s configuration: one dataclass a section, read from TOML, overridable with
``--set section.field=value``. Every field is documented where it is declared."""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from geex.errors import UserError


@dataclass(frozen=True)
class ModelSection:
    preset: str = "codegeex-tiny"  # a CodeGeeX preset (geex.models.codegeex.PRESETS)
    seq_len: int = 0  # 0: the packed data's sequence length (must not exceed the preset's context)


@dataclass(frozen=True)
class DataSection:
    path: str = ""  # a `geex data pack` output directory
    batch_size: int = 8  # sequences a micro-batch
    seed: int = 0  # the order of sequences (a permutation per epoch)


@dataclass(frozen=True)
class OptimSection:
    lr: float = 3e-4  # peak learning rate
    min_lr: float = 3e-5  # the cosine schedule's floor
    warmup_steps: int = 100  # linear warm-up from 0
    max_steps: int = 1000  # optimizer steps in all (the cosine's length)
    betas: tuple[float, float] = (0.9, 0.95)  # AdamW, as CodeGeeX
    eps: float = 1e-8
    weight_decay: float = 0.1  # not on biases and LayerNorms
    grad_clip: float = 1.0  # global norm; 0: off
    grad_accum: int = 1  # micro-batches a step


@dataclass(frozen=True)
class RunSection:
    out: str = "geex-out/train"  # checkpoints, logs
    seed: int = 0  # model initialisation
    log_every: int = 10  # steps between log lines
    eval_every: int = 100  # steps between held-out evaluations; 0: never
    eval_sequences: int = 64  # held-out sequences an evaluation reads (the first ones, fixed)
    checkpoint_every: int = 200  # steps between checkpoints
    checkpoint_at_end: bool = True  # also save when the run stops between checkpoint_every steps
    keep_checkpoints: int = 2  # the newest ones kept (torch.distributed.checkpoint directories)
    device: str = "cpu"  # cpu or cuda (under torchrun: each process its LOCAL_RANK's GPU)
    dtype: str = "float32"  # float32, or bfloat16 (weights and optimizer stay fp32: autocast in one
    # process, FSDP2 mixed precision with fp32 gradient reduction across several)
    compile: bool = False  # torch.compile each layer and the loss (GPU: faster after ~1 min compiling)
    activation_checkpointing: bool = False  # recompute each layer in the backward: memory for compute
    activation_checkpointing_every: int = 1  # with activation_checkpointing, recompute every k-th unit
    # only (units: the layers, then the top query layer; 1: all; 2: every other, half the recompute
    # for the activations of the other half)
    reshard_after_forward: bool = True  # FSDP2 (several processes): free gathered weights after the
    # forward (ZeRO-3); False keeps them to the backward (ZeRO-2-like, more memory, less traffic)
    tensor_parallel: int = 1  # processes that split each layer (Megatron-style, on DTensor); the
    # rest of the processes are data parallel (FSDP2): world = data-parallel x tensor_parallel
    cpu_offload: bool = False  # FSDP2 (several GPU processes): keep weights, gradients and optimizer
    # state in host memory, moved to the GPU a layer at a time (a 13B model on 2 GPUs; much slower;
    # AdamW runs on the CPU with OMP_NUM_THREADS threads a process, which torchrun sets to 1: set it to
    # about cores / processes; on CPU devices a no-op)
    reduce_last_micro_batch: bool = False  # FSDP2 with grad_accum > 1: reduce gradients once a step,
    # not every micro-batch (less traffic; full-size fp32 gradients held in between: small models)
    peak_tflops: float = 0.0  # a device's dense bf16 peak for MFU; 0: known GPUs' datasheet peak
    tensorboard: bool = True  # also write OUT/tensorboard (if the tensorboard package is installed)


# fields that may differ when a run resumes: they change neither its numbers nor its data order
# (batch_size and grad_accum may change too if the global batch stays the same: see resume_conflicts)
RESUMABLE_FIELDS = {"run.out", "run.log_every", "run.eval_every", "run.eval_sequences", "run.checkpoint_every",
                    "run.checkpoint_at_end", "run.keep_checkpoints", "run.compile", "run.activation_checkpointing",
                    "run.activation_checkpointing_every", "run.cpu_offload",
                    "run.reshard_after_forward", "run.reduce_last_micro_batch", "run.tensor_parallel",
                    "run.peak_tflops", "run.tensorboard",
                    "data.batch_size", "optim.grad_accum"}


@dataclass(frozen=True)
class TrainConfig:
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    run: RunSection = field(default_factory=RunSection)

    def as_dict(self) -> dict:
        return asdict(self)

    def check(self) -> None:
        """Values no run can use, as one clear error."""
        positive = {"data.batch_size": self.data.batch_size, "optim.grad_accum": self.optim.grad_accum,
                    "optim.max_steps": self.optim.max_steps, "run.log_every": self.run.log_every,
                    "run.checkpoint_every": self.run.checkpoint_every,
                    "run.keep_checkpoints": self.run.keep_checkpoints,
                    "run.activation_checkpointing_every": self.run.activation_checkpointing_every}
        bad = [f"{k} = {v}" for k, v in positive.items() if v < 1]
        bad += [f"{k} = {v}" for k, v in {"optim.warmup_steps": self.optim.warmup_steps,
                                          "run.eval_every": self.run.eval_every}.items() if v < 0]
        if self.run.activation_checkpointing_every > 1 and not self.run.activation_checkpointing:
            bad.append("run.activation_checkpointing_every > 1 needs run.activation_checkpointing = true")
        if self.run.dtype not in ("float32", "bfloat16"):
            bad.append(f"run.dtype = {self.run.dtype!r} (float32 or bfloat16)")
        if bad:
            raise UserError("config: " + "; ".join(bad) + " (counts must be at least 1; eval_every and "
                            "warmup_steps may be 0)")

    def sequences_per_step(self, world: int) -> int:
        """The global batch: micro-batch x accumulation x ``world`` data-parallel ranks."""
        return self.data.batch_size * self.optim.grad_accum * world


def resume_conflicts(saved: dict, cfg: TrainConfig, saved_world: int, world: int) -> list[str]:
    """Why a run saved with ``saved`` (a config dict) on ``saved_world`` processes cannot continue as
    ``cfg`` on ``world``: differing fields that change the numbers, or another global batch."""
    now = cfg.as_dict()
    out = [f"{section}.{key}: {saved.get(section, {}).get(key, '(absent)')!r} -> {value!r}"
           for section, values in now.items() for key, value in values.items()
           if f"{section}.{key}" not in RESUMABLE_FIELDS
           and _plain(saved.get(section, {}).get(key)) != _plain(value)]
    before = saved["data"]["batch_size"] * saved["optim"]["grad_accum"] * saved_world
    if before != cfg.sequences_per_step(world):
        out.append(f"global batch: {before} sequences a step -> {cfg.sequences_per_step(world)} "
                   f"(data.batch_size x optim.grad_accum x data-parallel processes)")
    return out


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def _coerce(value: str, current):
    if isinstance(current, bool):
        return value.lower() in ("1", "true", "yes", "on")
    if isinstance(current, tuple):
        return tuple(float(v) for v in value.strip("()[]").split(","))
    return type(current)(value)


def load_config(path: str | Path | None, overrides: list[str] = ()) -> TrainConfig:
    """A TOML file (sections [model], [data], [optim], [run]) and ``section.field=value`` overrides."""
    raw: dict = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise UserError(f"cannot read config {path}: {e}") from None
    cfg = TrainConfig()
    sections = {f.name: getattr(cfg, f.name) for f in fields(cfg)}
    for name, values in raw.items():
        if name not in sections or not isinstance(values, dict):
            raise UserError(f"config: unknown section [{name}] (known: {', '.join(sections)})")
        for key, value in values.items():
            _set(sections, name, key, value)
    for item in overrides:
        key, sep, value = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot:
            raise UserError(f"--set {item!r}: expected section.field=value")
        if section not in sections:
            raise UserError(f"--set {item!r}: unknown section {section!r}")
        _set(sections, section, name, _coerce(value, getattr(sections[section], name, "")), strict_type=False)
    return TrainConfig(**sections)


def _set(sections: dict, section: str, key: str, value, strict_type: bool = True) -> None:
    current = sections[section]
    known = {f.name for f in fields(current)}
    if key not in known:
        raise UserError(f"config: unknown field {section}.{key} (known: {', '.join(sorted(known))})")
    old = getattr(current, key)
    if isinstance(old, tuple) and isinstance(value, list):
        value = tuple(value)
    if strict_type and not isinstance(value, type(old)) and not (isinstance(old, float) and isinstance(value, int)):
        raise UserError(f"config: {section}.{key} should be a {type(old).__name__}, got {value!r}")
    sections[section] = replace(current, **{key: type(old)(value) if not isinstance(old, tuple) else value})
