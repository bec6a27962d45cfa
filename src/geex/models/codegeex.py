"""The CodeGeeX architecture in one file: 39 pre-LN layers + the top query layer.

Module names mirror the official checkpoint (``embedding.word_embeddings``,
``transformer.layers.{i}.attention.dense`` …, ``transformer.topQueryLayer``), so an official state
dict (under ``module.language_model``) loads by name; its ``query``/``key``/``value`` become one
``attention.qkv`` (``attention.kv`` in the top query layer) as they load (``geex.models.fusion``).
Differences from GPT-2 that matter:
- FastGELU ``x * sigmoid(1.702 x)`` (not the tanh or erf GELU);
- the final LayerNorm comes *before* the top query layer, whose query is a learned per-position
  embedding and whose keys/values come from the (twice layer-normed) final hidden states;
- the residual of the top layer is the final-LN output itself; no LN before the tied head;
- the embedding has padding rows (52224 for a 50400-token vocabulary) that are never sampled.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

from geex.errors import UserError
from geex.models import fusion, ops
from geex.models.attention import attend, step_inputs
from geex.models.cache import KVCache, LayerCache
from geex.models.fusion import Fusion
from geex.models.ops import fast_gelu  # noqa: F401 - part of this module's interface
from geex.models.training import TrainingSpec


@dataclass(frozen=True)
class CodeGeeXConfig:
    n_layer: int = 39  # ordinary layers; the top query layer comes on top
    n_embd: int = 5120
    n_head: int = 40
    n_positions: int = 2048
    vocab_size: int = 50400  # real token ids; the rest of the embedding is padding
    padded_vocab_size: int = 52224
    layernorm_eps: float = 1e-5

    architecture = "codegeex"

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def n_kv_head(self) -> int:
        return self.n_head

    @property
    def cache_layers(self) -> int:
        """Layers with a KV cache: every layer and the top query layer."""
        return self.n_layer + 1

    def build(self) -> CodeGeeX:
        return CodeGeeX(self)

    def n_params(self) -> int:
        """Parameter count (tied head counted once), from the shapes alone."""
        h = self.n_embd
        # q, k, v, dense; h->4h; 4h->h; two LayerNorms
        per_layer = 4 * (h * h + h) + (4 * h * h + 4 * h) + (4 * h * h + h) + 2 * 2 * h
        embeddings = self.padded_vocab_size * h + 2 * self.n_positions * h
        return (self.n_layer + 1) * per_layer + embeddings + 2 * h

    def as_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, CodeGeeXConfig] = {
    "codegeex-13b": CodeGeeXConfig(),
    "codegeex-1.3b": CodeGeeXConfig(n_layer=23, n_embd=2048, n_head=16),
    "codegeex-350m": CodeGeeXConfig(n_layer=23, n_embd=1024, n_head=16),
    "codegeex-125m": CodeGeeXConfig(n_layer=11, n_embd=768, n_head=12),
    "codegeex-tiny": CodeGeeXConfig(n_layer=2, n_embd=64, n_head=4, n_positions=128),
}


def get_config(name: str, **overrides) -> CodeGeeXConfig:
    if name not in PRESETS:
        raise UserError(f"unknown model preset {name!r} (known: {', '.join(PRESETS)})")
    return replace(PRESETS[name], **overrides)


@torch.no_grad()
def init_parameter(name: str, p: torch.Tensor, n_layer: int, generator: torch.Generator | None = None) -> None:
    """Parameter ``name``'s initial value (``CodeGeeX.init_weights``), filled into ``p``; one
    parameter at a time, so a sharded model can make each full tensor and keep its own part."""
    if "layernorm" in name:
        p.fill_(1.0 if name.endswith("weight") else 0.0)
    elif name.endswith("bias"):
        p.zero_()
    else:
        out = "attention.dense" in name or "dense_4h_to_h" in name
        p.normal_(0.0, 0.02 / math.sqrt(2 * n_layer) if out else 0.02, generator=generator)


class SelfAttention(nn.Module):
    """The ordinary layers' attention: one q/k/v projection with biases (per head its query, key and
    value rows: ``geex.models.fusion``), SDPA, causal."""

    def __init__(self, cfg: CodeGeeXConfig) -> None:
        super().__init__()
        h = cfg.n_embd
        self.head_dim = cfg.head_dim  # heads are counted from the width (tensor parallelism splits them)
        self.qkv = nn.Linear(h, 3 * h)
        self.dense = nn.Linear(h, h)

    def forward(self, x: torch.Tensor, cache: LayerCache | None = None, start: int | torch.Tensor = 0,
                mask: torch.Tensor | None = None, residual: torch.Tensor | None = None) -> torch.Tensor:
        """``mask``: [B, 1, T, keys] (True or 0 = attend, False or -inf = not), for left-padded batches
        and static steps; else causal. ``residual`` is added to the output (fused on GPU decode)."""
        q, k, v = ops.qkv_heads(ops.linear(self.qkv, x), 1, self.head_dim)
        return ops.linear(self.dense, attend(q, k, v, cache, start, mask), residual=residual)


class TopQueryAttention(nn.Module):
    """The top query layer's attention: the query from the learned per-position embedding, keys and
    values (one projection, per head its key and value rows) from the final hidden states."""

    def __init__(self, cfg: CodeGeeXConfig) -> None:
        super().__init__()
        h = cfg.n_embd
        self.head_dim = cfg.head_dim
        self.query, self.kv, self.dense = nn.Linear(h, h), nn.Linear(h, 2 * h), nn.Linear(h, h)

    def forward(self, x: torch.Tensor, query: torch.Tensor, cache: LayerCache | None = None,
                start: int | torch.Tensor = 0, mask: torch.Tensor | None = None,
                residual: torch.Tensor | None = None) -> torch.Tensor:
        b, t, _ = x.shape
        q = ops.linear(self.query, query).view(b, t, -1, self.head_dim).transpose(1, 2)
        k, v = (y.transpose(1, 2) for y in ops.linear(self.kv, x).view(b, t, -1, 2, self.head_dim).unbind(3))
        return ops.linear(self.dense, attend(q, k, v, cache, start, mask), residual=residual)


class MLP(nn.Module):
    def __init__(self, cfg: CodeGeeXConfig) -> None:
        super().__init__()
        self.dense_h_to_4h = nn.Linear(cfg.n_embd, 4 * cfg.n_embd)
        self.dense_4h_to_h = nn.Linear(4 * cfg.n_embd, cfg.n_embd)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        return ops.linear(self.dense_4h_to_h, ops.linear(self.dense_h_to_4h, x, act="gelu"), residual=residual)


class Layer(nn.Module):
    """Pre-LN block. As the top query layer (``top``), ``query`` replaces the normed input as the query."""

    def __init__(self, cfg: CodeGeeXConfig, top: bool = False) -> None:
        super().__init__()
        self.input_layernorm = nn.LayerNorm(cfg.n_embd, eps=cfg.layernorm_eps)
        self.attention = TopQueryAttention(cfg) if top else SelfAttention(cfg)
        self.post_attention_layernorm = nn.LayerNorm(cfg.n_embd, eps=cfg.layernorm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, query: torch.Tensor | None = None, cache: LayerCache | None = None,
                start: int | torch.Tensor = 0, mask: torch.Tensor | None = None) -> torch.Tensor:
        normed = ops.layer_norm(self.input_layernorm, x)
        queries = () if query is None else (query,)
        x = self.attention(normed, *queries, cache=cache, start=start, mask=mask, residual=x)
        return self.mlp(ops.layer_norm(self.post_attention_layernorm, x), residual=x)


class Embedding(nn.Module):
    def __init__(self, cfg: CodeGeeXConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.padded_vocab_size, cfg.n_embd)
        self.position_embeddings = nn.Embedding(cfg.n_positions, cfg.n_embd)


class TopQueryEmbedding(nn.Module):
    def __init__(self, cfg: CodeGeeXConfig) -> None:
        super().__init__()
        self.top_query_embeddings = nn.Embedding(cfg.n_positions, cfg.n_embd)


class Transformer(nn.Module):
    def __init__(self, cfg: CodeGeeXConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(Layer(cfg) for _ in range(cfg.n_layer))
        self.topQueryLayer = Layer(cfg, top=True)  # noqa: N815 - the official name
        self.final_layernorm = nn.LayerNorm(cfg.n_embd, eps=cfg.layernorm_eps)


class CodeGeeX(nn.Module):
    """``forward(ids[B, T]) -> logits[B, T, padded_vocab]`` (positions 0..T-1)."""

    tied_embedding = "embedding.word_embeddings"  # also the output head

    def __init__(self, cfg: CodeGeeXConfig) -> None:
        super().__init__()
        self.config = cfg
        self.embedding = Embedding(cfg)
        self.topQueryEmbedding = TopQueryEmbedding(cfg)  # noqa: N815 - the official name
        self.transformer = Transformer(cfg)
        self.register_load_state_dict_pre_hook(fusion.load_hook)  # the official names load too

    @property
    def dtype(self) -> torch.dtype:
        """The floating dtype of activations (also of a quantized model's dequantized weights)."""
        return self.embedding.position_embeddings.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.embedding.position_embeddings.weight.device

    def fusions(self) -> list[Fusion]:
        """How the fused projections map to the official ``query``/``key``/``value`` (``key``/``value``
        in the top query layer): ``geex.models.fusion``."""
        n = self.config.n_head
        return [*(Fusion(f"transformer.layers.{i}.attention", "qkv", ("query", "key", "value"), n, (1, 1, 1))
                  for i in range(self.config.n_layer)),
                Fusion("transformer.topQueryLayer.attention", "kv", ("key", "value"), n, (1, 1))]

    def init_weights(self, generator: torch.Generator | None = None) -> None:
        """The paper's training code: N(0, 0.02); output projections N(0, 0.02 / sqrt(2 n_layer));
        biases 0, LayerNorm weight 1."""
        for name, p in self.named_parameters():
            init_parameter(name, p, self.config.n_layer, generator)

    def forward(self, ids: torch.Tensor, cache: KVCache | None = None, start: int | torch.Tensor = 0,
                pad: torch.Tensor | None = None, last_only: bool = False) -> torch.Tensor:
        """Logits of slots ``start..start+T-1``; with a cache, earlier slots come from it (``start`` =
        how many are already cached) and the new keys/values are stored. ``last_only``: logits of the
        last slot alone ([B, 1, V]: a prompt's prefill needs no more, and the head is a large matmul).

        ``pad``: per-row count of left-padding slots ([B]); a row's tokens then get positions from 0
        at its first real slot and never attend to its padding (batched prompts of any length).
        ``start`` as a 0-dim tensor makes a *static* step: attention spans every cache slot under a
        mask, so shapes and control flow do not depend on the position (one CUDA graph serves all steps).
        """
        cfg = self.config
        pos, mask, at = step_inputs(ids, cache, start, pad, cfg.n_positions, self.dtype)
        x = self.embedding.word_embeddings(ids) + self.embedding.position_embeddings(pos)
        for i, layer in enumerate(self.transformer.layers):
            x = layer(x, cache=cache.layer(i) if cache is not None else None, start=at, mask=mask)
        f = ops.layer_norm(self.transformer.final_layernorm, x)
        query = self.topQueryEmbedding.top_query_embeddings(pos).expand_as(f)
        top_cache = cache.layer(cfg.n_layer) if cache is not None else None
        out = self.transformer.topQueryLayer(f, query=query, cache=top_cache, start=at, mask=mask)
        if last_only:
            out = out[:, -1:]
        return ops.tied_head(out, self.embedding.word_embeddings)  # no LN before the head


def flops_per_token(cfg: CodeGeeXConfig, seq_len: int) -> float:
    """PaLM's 6N + 12LHQT (``geex.train.flops``): N leaves out the position and top-query tables
    (lookups) but keeps the word embedding once, as the tied output head; L counts the top query layer."""
    matmul_params = cfg.n_params() - 2 * cfg.n_positions * cfg.n_embd
    return 6.0 * matmul_params + 12.0 * (cfg.n_layer + 1) * cfg.n_embd * seq_len


def _configure(preset: str, vocab: int) -> CodeGeeXConfig:
    """The preset for ``vocab`` tokens, the embedding rounded up to a multiple of 64 as CodeGeeX pads it."""
    return get_config(preset, vocab_size=vocab, padded_vocab_size=-(-vocab // 64) * 64)


TRAINING = TrainingSpec(
    architecture=CodeGeeXConfig.architecture,
    presets=PRESETS,
    configure=_configure,
    unit_names=lambda cfg: [*(f"transformer.layers.{i}" for i in range(cfg.n_layer)), "transformer.topQueryLayer"],
    # Megatron's split: q/k/v and h->4h by output columns, the attention output and 4h->h by input rows
    # (the fused q/k/v and k/v interleave their rows by head, so a block of rows holds whole heads)
    tensor_parallel_plan={"attention.qkv": "colwise", "attention.query": "colwise", "attention.kv": "colwise",
                          "attention.dense": "rowwise", "mlp.dense_h_to_4h": "colwise", "mlp.dense_4h_to_h": "rowwise"},
    tensor_parallel_divides=lambda cfg: {"attention heads": cfg.n_head},
    init_parameter=lambda name, p, cfg, generator: init_parameter(name, p, cfg.n_layer, generator),
    flops_per_token=flops_per_token,
)
