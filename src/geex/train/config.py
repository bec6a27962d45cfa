"""``geex train``'s configuration: one dataclass a section, read from TOML, overridable with
``--set section.field=value``. Every field is documented where it is declared."""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from geex.errors import UserError


@dataclass(frozen=True)
class ModelSection:
    preset: str = "codegeex-tiny"  # a CodeGeeX or a Llama preset (geex.models.training.trainable_presets)
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
        """Values no run can use, as one clear error naming each field and what it must be."""
        o, r = self.optim, self.run
        rules = [  # (field, value, acceptable, what it must be)
            *[(k, v, v >= 1, "at least 1") for k, v in {
                "data.batch_size": self.data.batch_size, "optim.grad_accum": o.grad_accum,
                "optim.max_steps": o.max_steps, "run.log_every": r.log_every,
                "run.checkpoint_every": r.checkpoint_every, "run.keep_checkpoints": r.keep_checkpoints,
                "run.activation_checkpointing_every": r.activation_checkpointing_every,
                "run.eval_sequences": r.eval_sequences, "run.tensor_parallel": r.tensor_parallel}.items()],
            *[(k, v, v >= 0, "0 or more") for k, v in {
                "optim.warmup_steps": o.warmup_steps, "run.eval_every": r.eval_every, "model.seq_len": self.model.seq_len,
                "data.seed": self.data.seed, "run.seed": r.seed}.items()],
            ("optim.lr", o.lr, lr_ok := math.isfinite(o.lr) and o.lr > 0, "a positive number"),
            ("optim.min_lr", o.min_lr, math.isfinite(o.min_lr) and 0 <= o.min_lr and (o.min_lr <= o.lr or not lr_ok),
             "between 0 and optim.lr"),
            ("optim.eps", o.eps, math.isfinite(o.eps) and o.eps > 0, "a positive number"),
            ("optim.betas", o.betas, len(o.betas) == 2 and all(0 <= b < 1 for b in o.betas),
             "two numbers in [0, 1), e.g. 0.9,0.95"),
            ("optim.weight_decay", o.weight_decay, math.isfinite(o.weight_decay) and o.weight_decay >= 0, "0 or more"),
            ("optim.grad_clip", o.grad_clip, math.isfinite(o.grad_clip) and o.grad_clip >= 0, "0 (off) or more"),
            ("run.peak_tflops", r.peak_tflops, math.isfinite(r.peak_tflops) and r.peak_tflops >= 0, "0 (known GPUs) or more"),
            ("run.dtype", r.dtype, r.dtype in ("float32", "bfloat16"), "float32 or bfloat16"),
        ]
        bad = list(dict.fromkeys(f"{k} = {_plain(v)!r} (must be {must})" for k, v, ok, must in rules if not ok))
        if r.activation_checkpointing_every > 1 and not r.activation_checkpointing:
            bad.append("run.activation_checkpointing_every > 1 needs run.activation_checkpointing = true")
        from geex.train.families import trainable_presets

        if self.model.preset not in trainable_presets():
            bad.append(f"model.preset = {self.model.preset!r} (known: {', '.join(trainable_presets())})")
        if bad:
            raise UserError("config: " + "; ".join(bad))

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


BOOLEANS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False, "off": False}


def _coerce(text: str, current, key: str):
    """An override's value (text) as the type of the field's default; a UserError naming the field when
    it is not one. Ranges are checked later, with the TOML values, by ``TrainConfig.check``."""
    value = text.strip()
    if isinstance(current, bool):
        if value.lower() not in BOOLEANS:
            raise UserError(f"`overrides` {key}={text}: expected true or false (also 1/0, yes/no, on/off)")
        return BOOLEANS[value.lower()]
    if isinstance(current, int):
        try:
            return int(value)
        except ValueError:
            raise UserError(f"`overrides` {key}={text}: expected a whole number") from None
    if isinstance(current, float):
        return _number(value, key, text)
    if isinstance(current, tuple):
        parts = [p for p in value.strip("()[]").split(",") if p.strip()]
        if len(parts) != len(current):
            raise UserError(f"`overrides` {key}={text}: expected {len(current)} comma-separated numbers, e.g. "
                            f"{','.join(str(v) for v in current)}")
        return tuple(_number(p.strip(), key, text) for p in parts)
    return value


def _number(value: str, key: str, text: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise UserError(f"`overrides` {key}={text}: expected a number") from None
    if not math.isfinite(number):
        raise UserError(f"`overrides` {key}={text}: expected a finite number")
    return number


def load_config(path: str | Path | None, overrides: list[str] = ()) -> TrainConfig:
    """A TOML file (sections [model], [data], [optim], [run]) and ``section.field=value`` overrides."""
    raw: dict = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise UserError(f"cannot read config {path}: {e}") from None
        except UnicodeDecodeError as e:
            raise UserError(f"cannot read config {path}: not UTF-8 text ({e.reason} at byte {e.start + 1})") from None
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
            raise UserError(f"`overrides` {item!r}: expected section.field=value")
        if section not in sections:
            raise UserError(f"`overrides` {item!r}: unknown section {section!r}")
        if name not in {f.name for f in fields(sections[section])}:
            _set(sections, section, name, value)  # the unknown-field error, with the known fields
        _set(sections, section, name, _coerce(value, getattr(sections[section], name), key.strip()))
    return TrainConfig(**sections)


def _kind(default) -> str:
    """What a field takes, as a user reads it."""
    if isinstance(default, bool):
        return "true or false"
    if isinstance(default, int):
        return "a whole number"
    if isinstance(default, float):
        return "a number"
    if isinstance(default, tuple):
        return f"a list of {len(default)} numbers"
    return "a string"


def _typed(value, default):
    """``value`` (from TOML, or coerced from ``--set``) as the default's type, or None if it is not one.
    A bool is not a number here (TOML ``max_steps = true`` is a mistake), an int is a float."""
    if isinstance(default, bool):
        return value if isinstance(value, bool) else None
    if isinstance(value, bool):
        return None
    if isinstance(default, int):
        return value if isinstance(value, int) else None
    if isinstance(default, float):
        return float(value) if isinstance(value, (int, float)) else None
    if isinstance(default, tuple):
        if not isinstance(value, (list, tuple)) or len(value) != len(default):
            return None
        items = [_typed(v, 0.0) for v in value]
        return None if any(v is None for v in items) else tuple(items)
    return value if isinstance(value, str) else None


def _set(sections: dict, section: str, key: str, value) -> None:
    current = sections[section]
    known = {f.name for f in fields(current)}
    if key not in known:
        raise UserError(f"config: unknown field {section}.{key} (known: {', '.join(sorted(known))})")
    old = getattr(current, key)
    typed = _typed(value, old)
    if typed is None:
        raise UserError(f"config: {section}.{key} should be {_kind(old)}, got {value!r}")
    sections[section] = replace(current, **{key: typed})
