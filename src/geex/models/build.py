"""Build a model from its config and a state dict without a second copy of the weights."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from geex.errors import UserError
from geex.models.protocols import ModelConfig
from geex.models.quantize import (
    DEFAULT_GROUP,
    QuantizedEmbedding,
    QuantizedLinear,
    check_quantizable,
    linear_names,
    replace_module,
)


def build_model(cfg: ModelConfig, sd: Mapping[str, torch.Tensor], dtype: torch.dtype | None = None,
                device: torch.device | str | None = None, quantize: str | None = None,
                group_size: int = DEFAULT_GROUP) -> nn.Module:
    """A model (``cfg.build()``: CodeGeeX or Llama) holding the given tensors, moved to
    ``device``/``dtype`` (floating tensors) one at a time.

    The model is built on the meta device, so no second copy exists; with ``quantize`` each linear
    weight is quantized as it arrives, so device memory peaks at the quantized model plus one matrix.
    ``sd`` may be any mapping, e.g. one that makes tensors on demand.
    """
    with torch.device("meta"):
        model = cfg.build()
    if quantize is not None:
        check_quantizable(model, quantize, group_size)  # before a weight is read
    expected = list(model.state_dict())
    missing = sorted(set(expected) - set(sd.keys()))
    unexpected = sorted(set(sd.keys()) - set(expected))
    if missing or unexpected:
        raise UserError(f"checkpoint does not match the config: missing {missing[:5]}, unexpected {unexpected[:5]}")

    shapes = {k: v.shape for k, v in model.state_dict().items()}

    def fetch(name: str) -> torch.Tensor:
        t = sd[name]
        if t.shape != shapes[name]:
            raise UserError(f"checkpoint does not match the config: {name} has shape {tuple(t.shape)}, "
                            f"the config implies {tuple(shapes[name])}")
        return t.to(device=device if device is not None else t.device,
                    dtype=dtype if dtype is not None and t.is_floating_point() else t.dtype)

    done: set[str] = set()
    tied = getattr(model, "tied_embedding", None)
    if quantize is not None and tied:  # the tied head: INT8 rows in both modes; first, while memory is empty
        replace_module(model, tied, QuantizedEmbedding.from_weight(fetch(f"{tied}.weight")))
        done.add(f"{tied}.weight")
    if quantize is not None:
        for name in linear_names(model):
            has_bias = model.get_submodule(name).bias is not None
            weight, bias = fetch(f"{name}.weight"), fetch(f"{name}.bias") if has_bias else None
            replace_module(model, name, QuantizedLinear.from_weight(weight, bias, quantize, group_size))
            done |= {f"{name}.weight", f"{name}.bias"}
            del weight, bias
    model.load_state_dict({k: fetch(k) for k in expected if k not in done}, strict=False, assign=True)
    return model.eval()
