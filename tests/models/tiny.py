"""A tiny random CodeGeeX for model tests."""

from __future__ import annotations

import torch

from geex.models.codegeex import CodeGeeX, get_config


def random_tiny_codegeex(seed: int = 0) -> CodeGeeX:
    """The paper's init, then biases and LayerNorms moved away from it so that they are tested too."""
    model = CodeGeeX(get_config("codegeex-tiny"))
    g = torch.Generator().manual_seed(seed)
    model.init_weights(g)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "layernorm" in name:
                p.add_(0.1 * torch.randn(p.shape, generator=g))
    return model.eval()


def random_tiny_llama(seed: int = 0):
    """A tiny random Llama-family model with grouped-query attention (4 query heads, 2 key/value
    heads of 16 dimensions), qkv biases and RMSNorm weights away from 1, so that they are tested too."""
    from geex.models.llama import Llama, get_config as llama_config

    model = Llama(llama_config("llama-tiny", qkv_bias=True))
    g = torch.Generator().manual_seed(seed)
    model.init_weights(g)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(0.1 * torch.randn(p.shape, generator=g))
    return model.eval()
