"""Build a model from its config and a state dict without a second copy of the weights."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

import torch
from torch import nn

from geex.errors import UserError
from geex.models.fusion import FusedView, checkpoint_state_dict
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

    ``sd`` holds the checkpoint's names (q/k/v apart; ``geex.models.fusion`` fuses them on the way).
    The model is built on the meta device, so no second copy exists; with ``quantize`` each linear
    weight is quantized as it arrives, so device memory peaks at the quantized model plus one matrix.
    ``sd`` may be any mapping, e.g. one that makes tensors on demand.
    """
    with torch.device("meta"):
        model = cfg.build()
    if quantize is not None:
        check_quantizable(model, quantize, group_size)  # before a weight is read
    # the checkpoint's names and shapes (a fused projection's parts apart: geex.models.fusion)
    shapes = {k: v.shape for k, v in checkpoint_state_dict(model).items()}
    missing = sorted(set(shapes) - set(sd.keys()))
    unexpected = sorted(set(sd.keys()) - set(shapes))
    if missing or unexpected:
        raise UserError(f"checkpoint does not match the config: missing {missing[:5]}, unexpected {unexpected[:5]}")

    def fetch_part(name: str) -> torch.Tensor:
        t = sd[name]
        if t.shape != shapes[name]:
            raise UserError(f"checkpoint does not match the config: {name} has shape {tuple(t.shape)}, "
                            f"the config implies {tuple(shapes[name])}")
        return t.to(device=device if device is not None else t.device,
                    dtype=dtype if dtype is not None and t.is_floating_point() else t.dtype)

    tensors = FusedView(_Fetched(shapes, fetch_part), model.fusions())  # the model's names, fused on demand
    fetch = tensors.__getitem__
    expected = list(model.state_dict())
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


class _Fetched(Mapping[str, torch.Tensor]):
    """``fetch(name)`` for each of ``names``, when asked (one tensor in memory at a time)."""

    def __init__(self, names: Mapping[str, object], fetch: Callable[[str], torch.Tensor]) -> None:
        self._names, self._fetch = names, fetch

    def __getitem__(self, name: str) -> torch.Tensor:
        return self._fetch(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)
