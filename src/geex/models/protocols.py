"""The contracts between the models and what runs them, as types (torchtitan's ``protocols/``).

Every family and file format hands the rest of geex the same three things: a config that builds a
model (``ModelConfig``), a model that runs one step (``StepModel``), and a tokenizer
(``Tokenizer``). The engine, the server and the benchmark backends import these, never a concrete
class, so a new family or tokenizer plugs in by satisfying them; ``tests/models/test_protocols.py``
checks that every concrete class does (they are ``runtime_checkable``: members present).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch

from geex.models.cache import CacheShape, KVCache


@runtime_checkable
class Tokenizer(Protocol):
    """What the engine, FIM and the server need of a tokenizer (``CodeGeeXTokenizer``, ``HFTokenizer``)."""

    eos_id: int  # also the padding id
    stop_ids: frozenset[int]  # ids that end a row (EOS, end-of-turn ...)
    vocab_size: int

    def encode(self, text: str) -> list[int]: ...  # as the model's own tokenizer call (BOS if it adds one)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]: ...

    def encode_plain(self, text: str) -> list[int]: ...  # no BOS/EOS added

    def token_id(self, text: str) -> int | None: ...  # a whole vocabulary entry, or None

    def decode(self, ids: Sequence[int]) -> str: ...


@runtime_checkable
class ModelConfig(CacheShape, Protocol):
    """A family's config (``CodeGeeXConfig``, ``LlamaConfig``): builds the model, sizes its cache."""

    architecture: str
    vocab_size: int

    def build(self) -> torch.nn.Module: ...

    def n_params(self) -> int: ...


@runtime_checkable
class StepModel(Protocol):
    """A model as the engine runs it (``CodeGeeX``, ``Llama``): logits of the new slots, keys and
    values kept in the cache (``geex.models.attention`` says what ``start`` and ``pad`` mean)."""

    config: ModelConfig

    @property
    def dtype(self) -> torch.dtype: ...

    @property
    def device(self) -> torch.device: ...

    def __call__(self, ids: torch.Tensor, cache: KVCache | None = None, start: int | torch.Tensor = 0,
                 pad: torch.Tensor | None = None, last_only: bool = False) -> torch.Tensor: ...


@dataclass(frozen=True)
class ModelFiles:
    """What every file format yields (``geex.models.formats``): the config, the tensors under the
    names the config's model uses, and the tokenizer. ``tensors`` may make each tensor on demand (a
    memory-mapped file, a GGUF tensor dequantized when asked for), so building the model
    (``geex.models.build.build_model``) holds one copy of the weights."""

    config: ModelConfig
    tensors: Mapping[str, torch.Tensor]
    tokenizer: Tokenizer
