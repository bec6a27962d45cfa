"""GGUF files (llama.cpp's format): configuration, weights and tokenizer.

The container (header, metadata, tensor table, aligned data) is read here in one pass (``read_gguf``);
the ``gguf`` package supplies the tensor types and their dequantization.

Weights are dequantized one tensor at a time as the model is built (``gguf.quants.dequantize``
handles F32/F16/BF16, Q8_0, Q4_0, Q4_1, the K-quants ...), so memory holds the model in its target
dtype plus one float32 tensor, never the whole model in float32. llama.cpp stores the query and key
projections of ``llama`` models in an interleaved rotary layout; it is undone here, so the model
sees Hugging Face's layout ("rotate half").
"""

from __future__ import annotations

import math
import mmap
import re
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from geex.errors import UserError
from geex.models.config_fields import Fields
from geex.models.llama import LlamaConfig
from geex.models.protocols import ModelFiles
from geex.models.tokenizers.hf import HFTokenizer

MAGIC = b"GGUF"
ARCHITECTURES = ("llama", "qwen2")  # GGUF architectures read into geex's Llama
_LAYER = re.compile(r"^blk\.(\d+)\.(.+)$")
_LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "attn_output.weight": "self_attn.o_proj.weight",
    "attn_output.bias": "self_attn.o_proj.bias",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
    **{f"attn_{p}.{kind}": f"self_attn.{p}_proj.{kind}" for p in "qkv" for kind in ("weight", "bias")},
}
_TOP_NAMES = {"token_embd.weight": "model.embed_tokens.weight", "output_norm.weight": "model.norm.weight",
              "output.weight": "lm_head.weight"}


def read(path: Path, tokenizer: Path | None = None) -> ModelFiles:
    """A GGUF file as config, tensors (dequantized one at a time) and its embedded tokenizer (or the
    ``tokenizer.json`` in the directory ``tokenizer``)."""
    g = GGUFModel(path)
    return ModelFiles(g.config, g.weights, HFTokenizer.from_dir(tokenizer) if tokenizer else g.tokenizer)


def is_gguf(path: Path) -> bool:
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        return f.read(4) == MAGIC


def hf_name(name: str) -> str | None:
    """The Hugging Face name of a GGUF tensor (None: not a model weight, e.g. ``rope_freqs``)."""
    if name in _TOP_NAMES:
        return _TOP_NAMES[name]
    m = _LAYER.match(name)
    if m and m.group(2) in _LAYER_NAMES:
        return f"model.layers.{m.group(1)}.{_LAYER_NAMES[m.group(2)]}"
    return None


def unpermute_rotary(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's interleaved rotary rows -> Hugging Face's halves, for q/k weights [out, in] or
    biases [out] (the inverse of ``convert_hf_to_gguf.py``'s ``permute``)."""
    head_dim = w.shape[0] // n_head
    return w.reshape(n_head, head_dim // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


class GGUFModel:
    """An opened GGUF file: ``config``, ``weights`` (a lazy mapping of Hugging Face names to float32
    tensors), ``tokenizer``, ``fields`` (the metadata)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.fields, tensors, self._file = read_gguf(self.path)
        except Exception as e:  # noqa: BLE001 - a corrupt file raises anything from struct to numpy
            raise UserError(diagnose(self.path) or f"corrupt GGUF file {self.path}: {e!r}") from None
        self.architecture = self.fields.get("general.architecture")
        if self.architecture not in ARCHITECTURES:
            raise UserError(f"{self.path}: GGUF architecture {self.architecture!r} is not supported "
                            f"(supported: {', '.join(ARCHITECTURES)})")
        self._tensors = {t.name: t for t in tensors}
        self.config = self._config()
        self.tokenizer = HFTokenizer.from_gguf(self.fields)
        self.weights = _Weights(self)

    def _config(self) -> LlamaConfig:
        f, a = self.fields, self.architecture
        meta = Fields(f, f"{self.path}: metadata")
        n_head, n_embd = meta.size(f"{a}.attention.head_count"), meta.size(f"{a}.embedding_length")
        n_kv_head = meta.size(f"{a}.attention.head_count_kv", n_head)
        meta.divides((f"{a}.attention.head_count", n_head), (f"{a}.attention.head_count_kv", n_kv_head))
        key_length = meta.size(f"{a}.attention.key_length", 0)
        if not key_length:
            meta.divides((f"{a}.embedding_length", n_embd), (f"{a}.attention.head_count", n_head))
        vocab = meta.size(f"{a}.vocab_size", 0) or len(f.get("tokenizer.ggml.tokens") or []) or \
            self._tensors["token_embd.weight"].shape[-1]
        scaling = _rope_scaling(f, a)
        if "rope_freqs.weight" in self._tensors:  # Llama 3.1-style per-frequency factors, stored as a tensor
            factors = _dequantize(self._tensors["rope_freqs.weight"]).reshape(-1).tolist()
            scaling = {**(scaling or {"rope_type": "default"}), "freq_factors": factors}
        return LlamaConfig(
            n_layer=meta.size(f"{a}.block_count"), n_embd=n_embd, n_head=n_head, n_kv_head=n_kv_head,
            intermediate_size=meta.size(f"{a}.feed_forward_length"),
            vocab_size=int(vocab), n_positions=meta.size(f"{a}.context_length"),
            head_size=key_length if key_length and key_length != n_embd // n_head else 0,
            rms_eps=meta.number(f"{a}.attention.layer_norm_rms_epsilon"),
            rope_theta=meta.number(f"{a}.rope.freq_base", 10000.0), rope_scaling=scaling,
            tie_embeddings="output.weight" not in self._tensors,
            qkv_bias="blk.0.attn_q.bias" in self._tensors, o_bias="blk.0.attn_output.bias" in self._tensors,
        )

    def tensor(self, hf: str) -> torch.Tensor:
        name = self._names()[hf]
        w = _dequantize(self._tensors[name])
        if self.architecture == "llama" and hf.endswith(("q_proj.weight", "q_proj.bias", "k_proj.weight", "k_proj.bias")):
            heads = self.config.n_head if ".q_proj." in hf else self.config.n_kv_head
            w = unpermute_rotary(w, heads)
        return torch.from_numpy(np.array(w, dtype=np.float32))  # a copy: F32 tensors are read-only views of the file

    def _names(self) -> dict[str, str]:
        if not hasattr(self, "_hf_names"):
            self._hf_names = {h: n for n in self._tensors if (h := hf_name(n)) is not None}
        return self._hf_names


class _Weights(Mapping):
    def __init__(self, model: GGUFModel) -> None:
        self._model = model

    def __getitem__(self, name: str) -> torch.Tensor:
        return self._model.tensor(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._model._names())

    def __len__(self) -> int:
        return len(self._model._names())


# GGUF value types: the scalars' numpy types (struct's sizes), then strings and arrays
_SCALARS = {0: "u1", 1: "i1", 2: "u2", 3: "i2", 4: "u4", 5: "i4", 6: "f4", 7: "?", 10: "u8", 11: "i8", 12: "f8"}
_STRING, _ARRAY = 8, 9


class _Short(Exception):
    """The file ended where the format says more bytes follow."""


@dataclass(frozen=True)
class GGUFTensor:
    """One tensor of a GGUF file: ``shape`` in the file's order (the fastest-varying dimension first,
    as ggml's ``ne``), ``data`` a view of its bytes in the mapped file (typed for F32/F16/F64 and the
    integer types, raw bytes a row for block-quantized types: what ``gguf.quants.dequantize`` takes)."""

    name: str
    shape: tuple[int, ...]
    tensor_type: object  # gguf.GGMLQuantizationType
    data: np.ndarray


class _Layout:
    """A walk through a GGUF file as the format lays it out (github.com/ggml-org/ggml docs/gguf.md):
    ``magic, version, tensor count, key/value count, key/values, tensor infos``, then the tensor data
    at the next multiple of ``general.alignment`` (32 by default). ``where`` names the part being
    read, for the message when the file ends inside it."""

    def __init__(self, data, size: int) -> None:
        self.data, self.size, self.pos, self.order, self.where = data, size, 4, "<", "its header"

    def take(self, n: int):
        if self.pos + n > self.size:
            raise _Short
        self.pos += n
        return self.data[self.pos - n:self.pos]

    def number(self, fmt: str) -> int:
        return struct.unpack(self.order + fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        return bytes(self.take(self.number("Q"))).decode("utf-8", errors="replace")

    def value(self, kind: int) -> object:
        if kind in _SCALARS:
            dtype = np.dtype(_SCALARS[kind]).newbyteorder(self.order)
            return np.frombuffer(self.take(dtype.itemsize), dtype).item()
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            item, count = self.number("I"), self.number("Q")
            if item in _SCALARS:
                dtype = np.dtype(_SCALARS[item]).newbyteorder(self.order)
                return np.frombuffer(self.take(dtype.itemsize * count), dtype).tolist()
            return [self.value(item) for _ in range(count)]  # a count past the file's end ends in _Short
        raise ValueError(f"unknown value type {kind}")

    def header(self) -> tuple[dict[str, object], list[tuple[str, tuple[int, ...], int, int]], int]:
        """The metadata, the tensor table (name, shape, type, offset) and where the data starts."""
        if self.number("I") & 0xFFFF == 0:  # the version, written on a machine of the other byte order
            self.order = ">"
        n_tensors, n_kv = self.number("Q"), self.number("Q")
        if n_tensors > self.size or n_kv > self.size:
            raise ValueError("counts no file of this size could hold")
        self.where = "its metadata"
        fields: dict[str, object] = {}
        for _ in range(n_kv):
            key = self.string()
            fields[key] = self.value(self.number("I"))
        self.where = "its tensor table"
        table = []
        for _ in range(n_tensors):
            name = self.string()
            shape = tuple(self.number("Q") for _ in range(self.number("I")))
            table.append((name, shape, self.number("I"), self.number("Q")))
        alignment = fields.get("general.alignment")
        alignment = alignment if isinstance(alignment, int) and alignment > 0 else 32
        return fields, table, -(-self.pos // alignment) * alignment


def read_gguf(path: Path) -> tuple[dict[str, object], list[GGUFTensor], mmap.mmap]:
    """A GGUF file's metadata (key -> value: numbers, strings, lists) and tensors, read in one pass
    over the header (a tokenizer's ~100k strings in well under a second, where ``gguf.GGUFReader``
    builds a numpy view per part of every field); tensor data stays in the mapped file, returned
    with them. A file that does not hold what its header says raises ``ValueError`` or ``_Short``."""
    import gguf

    with open(path, "rb") as f:
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    size = len(data)
    if data[:4] != MAGIC:
        raise ValueError("not a GGUF file (no 'GGUF' signature)")
    layout = _Layout(memoryview(data), size)
    fields, table, start = layout.header()
    tensors = []
    for name, shape, kind, offset in table:
        qtype = gguf.GGMLQuantizationType(kind)
        block, type_bytes = gguf.GGML_QUANT_SIZES[qtype]
        dims = [int(d) for d in reversed(shape)]  # numpy order: the slowest dimension first
        if qtype.name in _TYPED:
            dtype = np.dtype(_TYPED[qtype.name]).newbyteorder(layout.order)
        else:  # block-quantized (and BF16): rows of raw bytes
            dtype, dims = np.dtype(np.uint8), [*dims[:-1], dims[-1] // block * type_bytes] if dims else dims
        array = np.frombuffer(data, dtype, math.prod(dims), start + offset).reshape(dims)  # past the end: ValueError
        tensors.append(GGUFTensor(name, shape, qtype, array))
    return fields, tensors, data


_TYPED = {"F32": "f4", "F16": "f2", "F64": "f8", "I8": "i1", "I16": "i2", "I32": "i4", "I64": "i8"}


def diagnose(path: Path) -> str | None:
    """Why a GGUF file cannot be read, when it is because it is cut short: the header and tensor table
    are walked as the format lays them out (``_Layout``), then the data they promise is measured, so
    the message can say where the file ends and what is missing. None when the file is complete
    (its fault is something else)."""
    import gguf

    size = path.stat().st_size
    if size < 4:
        return f"truncated GGUF file {path}: {size} bytes, not even the 'GGUF' signature"
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        layout = _Layout(memoryview(data), size)
        try:
            _, table, start = layout.header()
            need = 0
            for _, shape, kind, offset in table:
                block, type_bytes = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(kind)]
                need = max(need, offset + math.prod(shape) // block * type_bytes)
        except _Short:
            return f"truncated GGUF file {path}: it ends inside {layout.where}, at byte {size:,}"
        except (ValueError, KeyError, struct.error):
            return None
        finally:
            layout.data.release()
        if need and start + need > size:  # no tensor data (a vocabulary-only file): no padding is due either
            return (f"truncated GGUF file {path}: {size:,} bytes, but its tensors end at byte {start + need:,} "
                    f"({start + need - size:,} bytes missing: a download cut short?)")
    return None


def _dequantize(t) -> np.ndarray:
    import gguf

    try:
        w = gguf.quants.dequantize(t.data, t.tensor_type)
    except NotImplementedError:
        raise UserError(f"GGUF tensor {t.name}: type {t.tensor_type.name} cannot be dequantized") from None
    return w.astype(np.float32, copy=False).reshape([int(d) for d in reversed(t.shape)])


def _rope_scaling(f: dict, a: str) -> dict | None:
    kind = f.get(f"{a}.rope.scaling.type")
    if kind in (None, "none"):
        return None
    factor = f.get(f"{a}.rope.scaling.factor")
    if kind == "linear":
        return {"rope_type": "linear", "factor": float(factor)}
    if kind == "yarn":
        return {"rope_type": "yarn", "factor": float(factor),
                "original_max_position_embeddings": int(f[f"{a}.rope.scaling.original_context_length"])}
    raise UserError(f"GGUF RoPE scaling {kind!r} is not supported")
