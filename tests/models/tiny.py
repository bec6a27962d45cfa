"""Tiny random models (CodeGeeX, Llama family) for model and engine tests."""

from __future__ import annotations

import torch
from torch import nn

from geex.models.codegeex import CodeGeeX, get_config


def _off_init(model: nn.Module, seed: int, norms: str) -> nn.Module:
    """The model's own init, then biases and norm weights (names containing ``norms``) moved away from
    it (0 and 1), so that they are tested too."""
    g = torch.Generator().manual_seed(seed)
    model.init_weights(g)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or norms in name:
                p.add_(0.1 * torch.randn(p.shape, generator=g))
    return model.eval()


def random_tiny_codegeex(seed: int = 0) -> CodeGeeX:
    return _off_init(CodeGeeX(get_config("codegeex-tiny")), seed, "layernorm")


def random_tiny_llama(seed: int = 0):
    """Grouped-query attention (4 query heads, 2 key/value heads of 16 dimensions) and qkv biases."""
    from geex.models.llama import Llama
    from geex.models.llama import get_config as llama_config

    return _off_init(Llama(llama_config("llama-tiny", qkv_bias=True)), seed, "norm")
