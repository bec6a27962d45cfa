"""Fused projections: the model holds one q/k/v (and one gate/up) matrix; checkpoints hold the parts.

A decode step reads every weight once, and one large matrix-vector product keeps the GPU's memory
system busier than three small ones, so the models keep q/k/v and gate/up fused *as parameters*
and have one forward path, trained and served alike (gpt-fast's way). Checkpoint files (official
CodeGeeX, Hugging Face, GGUF) name the parts; the layout changes at the boundary: a reader's
tensors are fused on the way in (``FusedView`` for the loader, a load-state-dict pre-hook for
``model.load_state_dict``), and ``checkpoint_state_dict`` splits them again for a writer.

The layout is *group-interleaved*, not ``[q; k; v]``: per key/value group its query heads, then its
key head, then its value head (Megatron's ``num_query_groups`` layout); gate/up interleave row by
row (``g0, u0, g1, u1, …``). Tensor parallelism splits a projection into contiguous row blocks, and
with this layout every block holds whole groups (whole SwiGLU units), so ``ColwiseParallel`` and a
distributed checkpoint keep working at any degree that divides the groups, and a checkpoint saved at
one degree resumes at another.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

PARAMS = ("weight", "bias")


@dataclass(frozen=True)
class Fusion:
    """Module ``parent.name`` holds the rows of modules ``parent.parts[i]``, interleaved in ``groups``
    groups: group g is part 0's g-th block of rows, then part 1's, …; ``shares`` are the parts'
    relative block sizes (a group's r query heads to its one key head: ``(r, 1, 1)``)."""

    parent: str  # the module holding both, e.g. "model.layers.3.self_attn"
    name: str  # the fused module, e.g. "qkv"
    parts: tuple[str, ...]  # the checkpoint's modules, e.g. ("q_proj", "k_proj", "v_proj")
    groups: int
    shares: tuple[int, ...]

    def key(self, module: str, param: str) -> str:
        return f"{self.parent}.{module}.{param}" if self.parent else f"{module}.{param}"

    def fuse(self, tensors: Sequence[torch.Tensor]) -> torch.Tensor:
        """The parts' tensors (rows first) as one group-interleaved tensor."""
        grouped = [t.reshape(self.groups, -1, *t.shape[1:]) for t in tensors]
        return torch.cat(grouped, dim=1).reshape(-1, *tensors[0].shape[1:])

    def split(self, fused: torch.Tensor) -> list[torch.Tensor]:
        """The inverse of ``fuse``."""
        unit = fused.shape[0] // (self.groups * sum(self.shares))
        grouped = fused.reshape(self.groups, -1, *fused.shape[1:])
        return [t.reshape(-1, *fused.shape[1:]) for t in grouped.split([s * unit for s in self.shares], dim=1)]


class FusedView(Mapping[str, torch.Tensor]):
    """A checkpoint's tensors under the model's names: the parts of each fusion appear as the fused
    tensor, made when it is read (so a loader that reads one tensor at a time still holds one)."""

    def __init__(self, sd: Mapping[str, torch.Tensor], fusions: Sequence[Fusion]) -> None:
        self._sd = sd
        self._made: dict[str, tuple[Fusion, str]] = {}
        names = set(sd.keys())  # not ``in sd``: a Mapping's ``in`` may read the tensor
        hidden: set[str] = set()
        for f in fusions:
            for param in PARAMS:
                parts = [f.key(p, param) for p in f.parts]
                if all(k in names for k in parts):
                    self._made[f.key(f.name, param)] = (f, param)
                    hidden.update(parts)
        self._keys = [k for k in sd.keys() if k not in hidden] + list(self._made)
        self._names = set(self._keys)

    def __getitem__(self, key: str) -> torch.Tensor:
        if key in self._made:
            f, param = self._made[key]
            return f.fuse([self._sd[f.key(p, param)] for p in f.parts])
        if key not in self._names:
            raise KeyError(key)
        return self._sd[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._names


def fuse_in_place(sd: dict[str, torch.Tensor], fusions: Sequence[Fusion], prefix: str = "") -> None:
    """Replace each fusion's parts in ``sd`` (keys under ``prefix``) by the fused tensor: what
    ``model.load_state_dict`` of a checkpoint's names needs (its pre-hook)."""
    for f in fusions:
        for param in PARAMS:
            parts = [prefix + f.key(p, param) for p in f.parts]
            if all(k in sd for k in parts):
                sd[prefix + f.key(f.name, param)] = f.fuse([sd.pop(k) for k in parts])


def checkpoint_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's tensors under the checkpoint's names (each fusion split into its parts): what a
    writer of the official or Hugging Face layout saves."""
    sd = dict(model.state_dict())
    for f in model.fusions():
        for param in PARAMS:
            key = f.key(f.name, param)
            if key in sd:
                for part, t in zip(f.parts, f.split(sd.pop(key))):
                    sd[f.key(part, param)] = t
    return sd


def load_hook(module: nn.Module, sd: dict, prefix: str, *args) -> None:
    """A ``load_state_dict`` pre-hook of a model with ``fusions()``: a checkpoint's names load too."""
    fuse_in_place(sd, module.fusions(), prefix)
