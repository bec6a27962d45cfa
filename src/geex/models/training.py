"""What ``geex train`` needs to know of a model family, declared beside the model.

As torchtitan keeps each model's parallelism next to the model, each family (``codegeex.py``,
``llama.py``) declares one ``TrainingSpec``: its presets, how a preset becomes a config for the
packed data's vocabulary, the blocks that are sharded, compiled and checkpointed alone, the
tensor-parallel plan inside a block, each parameter's initial value, and what a trained token
costs in FLOPs. ``geex.train`` reads only this (``geex.train.families`` lists the families),
so a family trains once it declares one and is listed there.
Weight decay needs no declaration: every family decays its matrices and embeddings and not its
vectors (biases, norm weights) — ``geex.train.optim``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class TrainingSpec:
    architecture: str  # the configs' ``architecture``
    presets: Mapping[str, Any]  # name -> config
    # (preset, vocabulary size of the packed data) -> the config to build
    configure: Callable[[str, int], Any]
    # config -> the qualified names of the blocks (FSDP2 units, compiled and checkpointed alone), in
    # forward order
    unit_names: Callable[[Any], list[str]]
    # module inside a block -> "colwise" (output features split: whole heads to each process) or
    # "rowwise" (input features split, one all-reduce of the output)
    tensor_parallel_plan: Mapping[str, str]
    # config -> {what: count} that the tensor-parallel degree must divide (heads, key/value heads)
    tensor_parallel_divides: Callable[[Any], dict[str, int]]
    # (parameter name, tensor to fill, config, generator): one parameter at a time, so a sharded model
    # makes each full tensor from one seeded generator and keeps its own part
    init_parameter: Callable[[str, torch.Tensor, Any, torch.Generator | None], None]
    # (config, sequence length) -> FLOPs a trained token costs, forward and backward (PaLM's 6N + 12LHQT)
    flops_per_token: Callable[[Any, int], float]

