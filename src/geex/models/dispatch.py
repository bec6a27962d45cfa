"""The one switch between geex's fused GPU kernels and plain PyTorch, read by ``ops`` (every
decoder operation) and ``quantize`` (a quantized layer called directly)."""

from __future__ import annotations

import torch

KERNELS = "auto"  # "auto": fused kernels on CUDA; "never": PyTorch only; "always": also on CPU (tests,
# through Triton's interpreter)


def fusable(x: torch.Tensor, *params: torch.Tensor | None) -> bool:
    """On a GPU (see ``KERNELS``) and outside autograd (the kernels have no backward)."""
    if KERNELS == "never" or (KERNELS == "auto" and not x.is_cuda):
        return False
    return not (torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, *params)))
