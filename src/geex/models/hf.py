"""Hugging Face model directories (``config.json`` + safetensors shards + ``tokenizer.json``) of the
Llama family: Llama, Mistral, Qwen2 and the models that reuse their architectures (Code Llama,
DeepSeek-Coder, SmolLM2, Qwen2.5-Coder ...).

Weights stay memory-mapped in their files (``safetensors.safe_open``) until the model builder takes
them one at a time, so host memory holds one copy of the model.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path

import torch
from safetensors import safe_open

from geex.errors import UserError
from geex.models.llama import LlamaConfig

MODEL_TYPES = ("llama", "mistral", "qwen2")
_REQUIRED = ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size", "vocab_size")


def is_hf_dir(path: Path) -> bool:
    return "model_type" in read_json(path / "config.json", required=False)


def read_config(directory: str | Path) -> LlamaConfig:
    raw = read_json(Path(directory) / "config.json")
    kind = raw.get("model_type")
    if kind not in MODEL_TYPES:
        raise UserError(f"{directory}: model type {kind!r} is not supported (supported: {', '.join(MODEL_TYPES)})")
    if raw.get("hidden_act", "silu") != "silu":
        raise UserError(f"{directory}: activation {raw['hidden_act']!r} (the Llama family uses silu)")
    missing = [k for k in _REQUIRED if k not in raw]
    if missing:
        raise UserError(f"{directory}/config.json lacks {', '.join(missing)}")
    rope = raw.get("rope_parameters") or raw.get("rope_scaling") or {}
    theta = raw.get("rope_theta") or rope.get("rope_theta") or 10000.0
    scaling = {k: v for k, v in rope.items() if k != "rope_theta"} or None
    if scaling is not None and scaling.get("rope_type", scaling.get("type", "default")) == "default":
        scaling = None
    n_head = raw["num_attention_heads"]
    positions = raw.get("max_position_embeddings", 4096)
    window = raw.get("sliding_window")
    if window and (kind == "mistral" or raw.get("use_sliding_window")) and window < positions:
        positions = window  # attention is exact up to the window; sliding windows are not implemented
    bias = raw.get("attention_bias", False)
    return LlamaConfig(
        n_layer=raw["num_hidden_layers"], n_embd=raw["hidden_size"], n_head=n_head,
        n_kv_head=raw.get("num_key_value_heads") or n_head, intermediate_size=raw["intermediate_size"],
        vocab_size=raw["vocab_size"], n_positions=positions,
        head_size=raw.get("head_dim") or 0, rms_eps=raw.get("rms_norm_eps", 1e-6), rope_theta=float(theta),
        rope_scaling=scaling, tie_embeddings=raw.get("tie_word_embeddings", False),
        qkv_bias=kind == "qwen2" or bias, o_bias=bias and kind != "qwen2", mlp_bias=raw.get("mlp_bias", False),
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


def read_json(path: Path, required: bool = True) -> dict:
    """A JSON object file of a model directory; ``{}`` for a missing optional one or a non-object."""
    if not required and not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read {path}: {e}") from None
    return data if isinstance(data, dict) else {}
