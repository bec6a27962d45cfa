"""Hugging Face model directories (``config.json`` + safetensors shards + ``tokenizer.json``) of the
Llama family: Llama, Mistral, Qwen2 and the models that reuse their architectures (Code Llama,
DeepSeek-Coder, SmolLM2, Qwen2.5-Coder ...).

Weights stay memory-mapped in their files (``safetensors.safe_open``) until the model builder takes
them one at a time, so host memory holds one copy of the model.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import torch
from safetensors import safe_open

from geex.errors import UserError
from geex.models.config_fields import Fields, read_json
from geex.models.llama import LlamaConfig
from geex.models.protocols import ModelFiles
from geex.models.tokenizers.hf import HFTokenizer

MODEL_TYPES = ("llama", "mistral", "qwen2")
_REQUIRED = ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size", "vocab_size")


def read(directory: Path, tokenizer: Path | None = None) -> ModelFiles:
    """A model directory as config, memory-mapped tensors and its ``tokenizer.json`` (or the one in
    the directory ``tokenizer``)."""
    cfg = read_config(directory)
    return ModelFiles(cfg, read_weights(directory, cfg), HFTokenizer.from_dir(tokenizer or directory))


def is_hf_dir(path: Path) -> bool:
    return "model_type" in read_json(path / "config.json", required=False)


def read_config(directory: str | Path) -> LlamaConfig:
    """The model's ``config.json``, every field checked for its type and the sizes for fitting
    together (errors name the field as the file does)."""
    path = Path(directory) / "config.json"
    raw = read_json(path)
    f = Fields(raw, str(path))
    kind = raw.get("model_type")
    if kind not in MODEL_TYPES:
        raise UserError(f"{directory}: model type {kind!r} is not supported (supported: {', '.join(MODEL_TYPES)})")
    if f.text("hidden_act", "silu") != "silu":
        raise UserError(f"{directory}: activation {raw['hidden_act']!r} (the Llama family uses silu)")
    missing = [k for k in _REQUIRED if raw.get(k) is None]
    if missing:
        raise UserError(f"{path} lacks {', '.join(missing)}")
    hidden, n_head = f.size("hidden_size"), f.size("num_attention_heads")
    n_kv_head = f.size("num_key_value_heads", n_head)
    head_dim = f.size("head_dim", 0)
    if not head_dim:  # the usual case: heads split the width
        f.divides(("hidden_size", hidden), ("num_attention_heads", n_head), " (or give head_dim)")
    f.divides(("num_attention_heads", n_head), ("num_key_value_heads", n_kv_head))
    if (head_dim or hidden // n_head) % 2:
        raise UserError(f"{path}: the head size {head_dim or hidden // n_head} is odd; rotary positions need "
                        "an even one")
    rope = f.mapping("rope_parameters") or f.mapping("rope_scaling") or {}
    theta = f.number("rope_theta", None) or Fields(rope, f"{path}: rope").number("rope_theta", 10000.0)
    scaling = {k: v for k, v in rope.items() if k != "rope_theta"} or None
    if scaling is not None and scaling.get("rope_type", scaling.get("type", "default")) == "default":
        scaling = None
    positions = f.size("max_position_embeddings", 4096)
    window = f.size("sliding_window", 0)
    if window and (kind == "mistral" or f.flag("use_sliding_window")) and window < positions:
        positions = window  # attention is exact up to the window; sliding windows are not implemented
    bias = f.flag("attention_bias")
    return LlamaConfig(
        n_layer=f.size("num_hidden_layers"), n_embd=hidden, n_head=n_head, n_kv_head=n_kv_head,
        intermediate_size=f.size("intermediate_size"), vocab_size=f.size("vocab_size"), n_positions=positions,
        head_size=head_dim, rms_eps=f.number("rms_norm_eps", 1e-6), rope_theta=theta,
        rope_scaling=scaling, tie_embeddings=f.flag("tie_word_embeddings"),
        qkv_bias=kind == "qwen2" or bias, o_bias=bias and kind != "qwen2", mlp_bias=f.flag("mlp_bias"),
    )


class SafetensorsWeights(Mapping):
    """Tensors of a directory's ``*.safetensors`` files by name, read on access (memory-mapped)."""

    IGNORED = ("rotary_emb.inv_freq",)  # buffers some old checkpoints saved

    def __init__(self, directory: str | Path, drop: tuple[str, ...] = ()) -> None:
        directory = Path(directory)
        files = sorted(directory.glob("*.safetensors"))
        if not files:
            raise UserError(f"{directory} holds no .safetensors weights (PyTorch .bin files are not read)")
        self._where: dict[str, Path] = {}
        for f in files:
            with safe_open(str(f), framework="pt") as handle:
                for name in handle.keys():
                    if not name.endswith(self.IGNORED) and name not in drop:
                        self._where[name] = f

    def __getitem__(self, name: str) -> torch.Tensor:
        with safe_open(str(self._where[name]), framework="pt") as handle:
            return handle.get_tensor(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._where)

    def __len__(self) -> int:
        return len(self._where)


def read_weights(directory: str | Path, cfg: LlamaConfig) -> SafetensorsWeights:
    """The state dict; a saved copy of a tied head (``lm_head.weight``) is dropped."""
    return SafetensorsWeights(directory, drop=("lm_head.weight",) if cfg.tie_embeddings else ())
