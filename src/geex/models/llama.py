"""The Llama family in one file: Llama 2/3, Code Llama, Mistral, Qwen2 (qkv bias), SmolLM2, DeepSeek-Coder.

Pre-norm blocks of RMSNorm -> grouped-query attention with rotary positions -> RMSNorm -> SwiGLU
MLP; a tied or separate output head. Module names are Hugging Face's (``model.layers.{i}.self_attn
.o_proj`` ...) except the fused projections ``self_attn.qkv`` and ``mlp.gate_up``, which a
``transformers`` state dict's q/k/v and gate/up become as it loads (``geex.models.fusion``). The
model shares CodeGeeX's step contract (``forward(ids, cache, start, pad)``, the static KV cache,
``geex.models.ops``), so the generation engine, CUDA graphs and quantization serve both.

Numerics follow ``transformers``: RMSNorm in fp32 and rounded before the weight; rotary cos/sin in
fp32, applied in the activations' dtype with the "rotate half" layout (llama.cpp's interleaved
layout is undone when a GGUF file is read).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import torch
from torch import nn

from geex.errors import UserError
from geex.models import fusion, ops
from geex.models.attention import attend, step_inputs
from geex.models.cache import KVCache, LayerCache
from geex.models.fusion import Fusion
from geex.models.training import TrainingSpec

ROPE_TYPES = ("default", "linear", "llama3", "yarn")


def rope_kind(scaling: dict | None) -> str:
    if not scaling:
        return "default"
    return scaling.get("rope_type", scaling.get("type", "default"))


@dataclass(frozen=True)
class LlamaConfig:
    n_layer: int
    n_embd: int
    n_head: int
    n_kv_head: int
    intermediate_size: int
    vocab_size: int
    n_positions: int = 4096
    head_size: int = 0  # 0: n_embd // n_head
    rms_eps: float = 1e-5
    rope_theta: float = 10000.0
    rope_scaling: dict | None = field(default=None, hash=False)  # transformers' rope_scaling / rope_parameters
    tie_embeddings: bool = True
    qkv_bias: bool = False  # Qwen2
    o_bias: bool = False  # Llama's attention_bias puts a bias on o_proj too
    mlp_bias: bool = False

    architecture = "llama"

    def __post_init__(self) -> None:
        if self.n_head % self.n_kv_head:
            raise UserError(f"{self.n_head} attention heads cannot share {self.n_kv_head} key/value heads")
        rope_type = rope_kind(self.rope_scaling)
        if rope_type not in ROPE_TYPES:
            raise UserError(f"RoPE scaling {rope_type!r} is not supported (supported: {', '.join(ROPE_TYPES)})")

    @property
    def head_dim(self) -> int:
        return self.head_size or self.n_embd // self.n_head

    @property
    def cache_layers(self) -> int:
        return self.n_layer

    def n_params(self) -> int:
        """Parameter count from the shapes (a tied head counted once)."""
        h, d, i = self.n_embd, self.head_dim, self.intermediate_size
        q, kv = self.n_head * d, self.n_kv_head * d
        attention = h * (q + 2 * kv) + q * h + (q + 2 * kv) * self.qkv_bias + h * self.o_bias
        mlp = 3 * h * i + (2 * i + h) * self.mlp_bias
        head = 0 if self.tie_embeddings else self.vocab_size * h
        return self.n_layer * (attention + mlp + 2 * h) + self.vocab_size * h + h + head

    def as_dict(self) -> dict:
        return asdict(self)

    def build(self) -> Llama:
        return Llama(self)


PRESETS: dict[str, LlamaConfig] = {
    # SmolLM2-135M's shapes (the embedded default model's; its weights come from its GGUF file)
    "smollm2-135m": LlamaConfig(n_layer=30, n_embd=576, n_head=9, n_kv_head=3, intermediate_size=1536,
                                vocab_size=49152, n_positions=8192, rope_theta=100000.0),
    "llama-tiny": LlamaConfig(n_layer=2, n_embd=64, n_head=4, n_kv_head=2, intermediate_size=128, vocab_size=256,
                              n_positions=128),
}


def get_config(name: str, **overrides) -> LlamaConfig:
    if name not in PRESETS:
        raise UserError(f"unknown model preset {name!r} (known: {', '.join(PRESETS)})")
    return replace(PRESETS[name], **overrides)


def rope_frequencies(cfg: LlamaConfig) -> tuple[torch.Tensor, float]:
    """``(inv_freq[head_dim / 2], attention_factor)`` as ``transformers``' RoPE initialisers compute them."""
    dim, base, s = cfg.head_dim, cfg.rope_theta, cfg.rope_scaling or {}
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64, device="cpu").float() / dim))
    if "freq_factors" in s:  # llama.cpp's per-frequency divisors (GGUF rope_freqs)
        inv_freq = inv_freq / torch.tensor(s["freq_factors"], dtype=torch.float32, device="cpu")
    kind = rope_kind(cfg.rope_scaling)
    if kind == "linear":
        return inv_freq / s["factor"], 1.0
    if kind == "llama3":
        factor, low, high = s["factor"], s["low_freq_factor"], s["high_freq_factor"]
        old = s["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv_freq
        scaled = torch.where(wavelen > old / low, inv_freq / factor, inv_freq)
        smooth = (old / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        medium = ~(wavelen < old / high) * ~(wavelen > old / low)
        return torch.where(medium, smoothed, scaled), 1.0
    if kind == "yarn":
        return _yarn(cfg, s)
    return inv_freq, 1.0


def _yarn(cfg: LlamaConfig, s: dict) -> tuple[torch.Tensor, float]:
    dim, base = cfg.head_dim, cfg.rope_theta
    original = s["original_max_position_embeddings"]
    factor = s.get("factor") or cfg.n_positions / original

    def mscale(scale: float, m: float = 1.0) -> float:
        return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

    attention_factor = s.get("attention_factor")
    if attention_factor is None:
        m, m_all = s.get("mscale"), s.get("mscale_all_dim")
        attention_factor = float(mscale(factor, m) / mscale(factor, m_all)) if m and m_all else mscale(factor)
    beta_fast, beta_slow = s.get("beta_fast") or 32, s.get("beta_slow") or 1

    def correction_dim(rotations: float) -> float:
        return (dim * math.log(original / (rotations * 2 * math.pi))) / (2 * math.log(base))

    low, high = correction_dim(beta_fast), correction_dim(beta_slow)
    if s.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001
    ramp = ((torch.arange(dim // 2, dtype=torch.float32, device="cpu") - low) / (high - low)).clamp(0, 1)
    pos_freqs = base ** (torch.arange(0, dim, 2, device="cpu").float() / dim)
    extrapolation = 1 - ramp
    inv_freq = (1.0 / (factor * pos_freqs)) * (1 - extrapolation) + (1.0 / pos_freqs) * extrapolation
    return inv_freq, attention_factor


class Rotary:
    """cos/sin of positions, computed per step in fp32 (cheap at decode; no table of the whole
    context, which is 128 MB at 128K positions)."""

    def __init__(self, cfg: LlamaConfig) -> None:
        self.inv_freq, self.attention_factor = rope_frequencies(cfg)
        self._on: dict[torch.device, torch.Tensor] = {}

    def __call__(self, pos: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        inv_freq = self._on.get(pos.device)
        if inv_freq is None:
            inv_freq = self._on[pos.device] = self.inv_freq.to(pos.device)
        freqs = pos.float()[..., None] * inv_freq
        emb = torch.cat((freqs, freqs), dim=-1)
        return (emb.cos() * self.attention_factor).to(dtype), (emb.sin() * self.attention_factor).to(dtype)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """In fp32, rounded to x's dtype before the weight (as ``transformers``)."""
        return ops.rms_norm(x, self.weight, self.eps)


class Attention(nn.Module):
    """Grouped-query attention with one q/k/v projection (group-interleaved: ``geex.models.fusion``)."""

    def __init__(self, cfg: LlamaConfig) -> None:
        super().__init__()
        h, d = cfg.n_embd, cfg.head_dim
        self.group, self.head_dim = cfg.n_head // cfg.n_kv_head, d  # query heads a key/value head serves
        self.qkv = nn.Linear(h, (cfg.n_head + 2 * cfg.n_kv_head) * d, bias=cfg.qkv_bias)
        self.o_proj = nn.Linear(cfg.n_head * d, h, bias=cfg.o_bias)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: LayerCache | None,
                start: int | torch.Tensor, mask: torch.Tensor | None, residual: torch.Tensor) -> torch.Tensor:
        # heads counted from the width: tensor parallelism gives each process some of the groups
        q, k, v = ops.qkv_heads(ops.linear(self.qkv, x), self.group, self.head_dim, cos, sin)
        return ops.linear(self.o_proj, attend(q, k, v, cache, start, mask), residual=residual)


class MLP(nn.Module):
    """SwiGLU: ``down(silu(gate(x)) * up(x))``, gate and up one projection (rows interleaved)."""

    def __init__(self, cfg: LlamaConfig) -> None:
        super().__init__()
        h, i = cfg.n_embd, cfg.intermediate_size
        self.gate_up = nn.Linear(h, 2 * i, bias=cfg.mlp_bias)
        self.down_proj = nn.Linear(i, h, bias=cfg.mlp_bias)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return ops.linear(self.down_proj, ops.swiglu(ops.linear(self.gate_up, x)), residual=residual)


class Block(nn.Module):
    def __init__(self, cfg: LlamaConfig) -> None:
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.n_embd, cfg.rms_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.n_embd, cfg.rms_eps)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, cache: LayerCache | None,
                start: int | torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = self.self_attn(self.input_layernorm(x), cos, sin, cache, start, mask, residual=x)
        return self.mlp(self.post_attention_layernorm(x), residual=x)


class Body(nn.Module):
    def __init__(self, cfg: LlamaConfig) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.n_embd, cfg.rms_eps)


class Llama(nn.Module):
    """``forward(ids[B, T]) -> logits[B, T, vocab]``, the step contract of ``CodeGeeX.forward``."""

    def __init__(self, cfg: LlamaConfig) -> None:
        super().__init__()
        self.config = cfg
        self.model = Body(cfg)
        if not cfg.tie_embeddings:
            self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.tied_embedding = "model.embed_tokens" if cfg.tie_embeddings else None
        self.rotary = Rotary(cfg)
        self.register_load_state_dict_pre_hook(fusion.load_hook)  # a checkpoint's q/k/v ... load too

    @property
    def dtype(self) -> torch.dtype:
        return self.model.norm.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.model.norm.weight.device

    def fusions(self) -> list[Fusion]:
        """How the fused projections map to a checkpoint's ``q_proj``/``k_proj``/``v_proj`` and
        ``gate_proj``/``up_proj`` (``geex.models.fusion``)."""
        cfg = self.config
        out = []
        for i in range(cfg.n_layer):
            out.append(Fusion(f"model.layers.{i}.self_attn", "qkv", ("q_proj", "k_proj", "v_proj"), cfg.n_kv_head,
                              (cfg.n_head // cfg.n_kv_head, 1, 1)))
            out.append(Fusion(f"model.layers.{i}.mlp", "gate_up", ("gate_proj", "up_proj"), cfg.intermediate_size,
                              (1, 1)))
        return out

    def init_weights(self, generator: torch.Generator | None = None) -> None:
        """``transformers``' initialisation (``init_parameter``), every parameter in turn."""
        for name, p in self.named_parameters():
            init_parameter(name, p, generator)

    def forward(self, ids: torch.Tensor, cache: KVCache | None = None, start: int | torch.Tensor = 0,
                pad: torch.Tensor | None = None, last_only: bool = False) -> torch.Tensor:
        """Logits of slots ``start..start+T-1`` (see ``geex.models.attention`` for ``pad`` and a
        tensor ``start``); ``last_only``: of the last slot alone ([B, 1, V], what a prefill needs)."""
        pos, mask, at = step_inputs(ids, cache, start, pad, self.config.n_positions, self.dtype)
        x = self.model.embed_tokens(ids)
        cos, sin = self.rotary(pos, x.dtype)
        for i, layer in enumerate(self.model.layers):
            x = layer(x, cos, sin, cache.layer(i) if cache is not None else None, at, mask)
        if last_only:
            x = x[:, -1:]
        x = self.model.norm(x)
        if self.config.tie_embeddings:
            return ops.tied_head(x, self.model.embed_tokens)
        return ops.linear(self.lm_head, x)


@torch.no_grad()
def init_parameter(name: str, p: torch.Tensor, generator: torch.Generator | None = None) -> None:
    """``transformers``' initialisation of parameter ``name``, filled into ``p``: N(0, 0.02) matrices
    and embeddings, zero biases, norm weights 1."""
    if name.endswith("norm.weight"):
        p.fill_(1.0)
    elif name.endswith("bias"):
        p.zero_()
    else:
        p.normal_(0.0, 0.02, generator=generator)


def flops_per_token(cfg: LlamaConfig, seq_len: int) -> float:
    """PaLM's 6N + 12LHQT (``geex.train.flops``): N without the embedding table when the head has
    weights of its own (a lookup), with it once when it is the tied head."""
    matmul_params = cfg.n_params() - (0 if cfg.tie_embeddings else cfg.vocab_size * cfg.n_embd)
    return 6.0 * matmul_params + 12.0 * cfg.n_layer * cfg.n_head * cfg.head_dim * seq_len


TRAINING = TrainingSpec(
    architecture=LlamaConfig.architecture,
    presets=PRESETS,
    configure=lambda preset, vocab: get_config(preset, vocab_size=vocab),
    unit_names=lambda cfg: [f"model.layers.{i}" for i in range(cfg.n_layer)],
    # Megatron's split: q/k/v and gate/up by output rows (whole key/value groups, whole SwiGLU units to
    # each process: the fused layouts interleave them so), the attention output and down by input rows
    tensor_parallel_plan={"self_attn.qkv": "colwise", "self_attn.o_proj": "rowwise", "mlp.gate_up": "colwise",
                          "mlp.down_proj": "rowwise"},
    tensor_parallel_divides=lambda cfg: {"attention heads": cfg.n_head, "key/value heads": cfg.n_kv_head,
                                         "MLP units": cfg.intermediate_size},
    init_parameter=lambda name, p, cfg, generator: init_parameter(name, p, generator),
    flops_per_token=flops_per_token,
)
