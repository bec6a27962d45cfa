"""The optimizer and its schedule, as CodeGeeX trained: AdamW (β 0.9/0.95) with weight decay on the
weight matrices and embeddings only (none on biases and norms), linear warm-up then cosine to
``min_lr``, the gradients clipped by their global norm however they are distributed.

Kept apart from the training loop so that what decides a run's numbers can be read, tested against
closed forms and mutation-tested (``benchmarks/mutation.py``) on its own.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from geex.train.config import OptimSection, TrainConfig


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate of optimizer step ``step`` (0-based): linear warm-up, then cosine to min_lr."""
    o = cfg.optim
    if step < o.warmup_steps:
        return o.lr * (step + 1) / o.warmup_steps
    progress = min(1.0, (step - o.warmup_steps) / max(1, o.max_steps - o.warmup_steps))
    return o.min_lr + 0.5 * (o.lr - o.min_lr) * (1 + math.cos(math.pi * progress))


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Two AdamW groups: decayed (weight matrices, embeddings) and not (biases, norm weights and
    biases). Told by shape, not by name, so every family gets it right: in CodeGeeX and Llama alike
    the vectors are exactly the biases and the norms' parameters (a Llama's final norm is
    ``model.norm``, no "layernorm" in its name)."""
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if p.dim() >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def adamw(model: torch.nn.Module, o: OptimSection, tensor_parallel: int, data_parallel: int) -> torch.optim.AdamW:
    """The recipe's AdamW over ``model``. Fused (one kernel on CUDA and CPU alike) where it can be:
    it cannot mix tensor-parallel DTensors with other meshes, so FSDP2 x TP takes foreach and pure TP
    (plain replicated embeddings beside DTensors) the per-tensor loop, as foreach cannot mix them
    either."""
    kernel = {"fused": True} if tensor_parallel == 1 else {"foreach": data_parallel > 1}
    return torch.optim.AdamW(param_groups(model, o.weight_decay), lr=o.lr, betas=tuple(o.betas), eps=o.eps,
                             **kernel)


def optimizer_step(optimizer: torch.optim.Optimizer, params: Iterable[torch.nn.Parameter], step: int,
                   cfg: TrainConfig, device: torch.device) -> torch.Tensor:
    """Optimizer step ``step`` (0-based) on the accumulated gradients: clip, the schedule's lr, the
    update, clear. Returns the gradient norm before clipping."""
    norm = clip_gradients(params, cfg.optim.grad_clip, device)
    for group in optimizer.param_groups:
        group["lr"] = lr_at(step, cfg)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return norm


def clip_gradients(params: Iterable[torch.nn.Parameter], max_norm: float, device: torch.device) -> torch.Tensor:
    """Clip to ``max_norm`` (0: only measure); returns the global norm before clipping. Gradients
    are grouped by how they are distributed (plain, FSDP-sharded, also tensor-parallel): one norm a
    group (``_total_norm``), combined across processes."""
    groups: dict = {}
    for p in params:
        if p.grad is not None:
            key = (p.grad.device_mesh, tuple(p.grad.placements)) if hasattr(p.grad, "device_mesh") else None
            groups.setdefault(key, []).append(p)
    squares = []
    for key, group in groups.items():
        norm = _total_norm([p.grad for p in group])
        squares.append((norm.full_tensor() if key is not None else norm).double() ** 2)
    total = torch.stack(squares).sum().sqrt() if squares else torch.zeros((), device=device)
    if max_norm:
        for group in groups.values():
            torch.nn.utils.clip_grads_with_norm_(group, max_norm, total)
    return total


def _total_norm(grads: list[torch.Tensor]) -> torch.Tensor:
    """``torch.nn.utils.get_total_norm``, but host-resident gradients (CPU runs, run.cpu_offload) are
    summed in float64: PyTorch's CPU float32 norm drifts (0.3 % over 4M elements, 0.4 % over 50M)
    and overflows where the squares pass float32's range."""
    if grads[0].device.type != "cpu":
        return torch.nn.utils.get_total_norm(grads)
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g, dtype=torch.float64) for g in grads]))
