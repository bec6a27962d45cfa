"""CodeGeeX checkpoints: the official release format in, geex's safetensors directory in and out.

Official (``torch.load(path)["module"]["language_model"]``): nested dicts down to ``transformer``,
a flat dict; optionally fused ``query_key_value`` / top-layer ``key_value`` (block-wise [q; k; v]);
or Megatron tensor-parallel shards ``mp_rank_XX_model_states.pt``, merged here by the split table
of ``convert_ckpt_parallel.py``. Files are opened with ``mmap=True`` and the model is built on the
meta device and given the loaded tensors (``assign=True``), so host RAM holds one copy of the
weights, not two (the original needed > 32 GB of host RAM for 13B).

geex format: a directory with ``config.json`` and ``model.safetensors`` (names as
``fusion.checkpoint_state_dict(CodeGeeX)``: the official ones without the ``language_model.`` prefix).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from geex.errors import UserError
from geex.models.build import build_model
from geex.models.codegeex import CodeGeeX, CodeGeeXConfig
from geex.models.config_fields import Fields, read_json
from geex.models.protocols import ModelFiles
from geex.models.tokenizers.codegeex import CodeGeeXTokenizer

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT = "geex/codegeex/1"
_SHARD = re.compile(r"mp_rank_(\d+)_model_states\.pt$")

# Megatron tensor-parallel split: tensor-name suffix -> dimension split across ranks (None: replicated)
_TP_SPLIT: tuple[tuple[str, int | None], ...] = (
    ("embedding.word_embeddings.weight", 0),
    ("embedding.position_embeddings.weight", None),
    ("topQueryEmbedding.top_query_embeddings.weight", 0),
    ("layernorm.weight", None),
    ("layernorm.bias", None),
    ("attention.query.weight", 0), ("attention.query.bias", 0),
    ("attention.key.weight", 0), ("attention.key.bias", 0),
    ("attention.value.weight", 0), ("attention.value.bias", 0),
    ("attention.dense.weight", 1), ("attention.dense.bias", None),
    ("mlp.dense_h_to_4h.weight", 0), ("mlp.dense_h_to_4h.bias", 0),
    ("mlp.dense_4h_to_h.weight", 1), ("mlp.dense_4h_to_h.bias", None),
)


def _split_dim(name: str) -> int | None:
    for suffix, dim in _TP_SPLIT:
        if name.endswith(suffix):
            return dim
    raise UserError(f"unexpected tensor {name!r} in a CodeGeeX checkpoint")


def _flatten(tree: dict, prefix: str = "") -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, name + "."))
        elif isinstance(value, torch.Tensor):
            out[name] = value
    return out


def _unwrap(obj: object, where: str) -> dict[str, torch.Tensor]:
    """Flat, prefix-free tensor names of one official file's contents; fused tensors split."""
    if not isinstance(obj, dict):
        raise UserError(f"{where}: not a CodeGeeX checkpoint (expected a dict)")
    tree = obj.get("module", obj)
    tree = tree.get("language_model", tree) if isinstance(tree, dict) else tree
    flat = _flatten(tree)
    if not any(k.startswith("transformer.") for k in flat):
        raise UserError(f"{where}: no 'transformer' weights found (is this a CodeGeeX checkpoint?)")
    out: dict[str, torch.Tensor] = {}
    for name, t in flat.items():
        if name.endswith(("attention.query_key_value.weight", "attention.query_key_value.bias")):
            for part, chunk in zip(("query", "key", "value"), t.chunk(3, dim=0)):
                out[name.replace("query_key_value", part)] = chunk
        elif name.endswith(("attention.key_value.weight", "attention.key_value.bias")):
            for part, chunk in zip(("key", "value"), t.chunk(2, dim=0)):
                out[name.replace("key_value", part)] = chunk
        else:
            out[name] = t
    return out


def merge_tensor_parallel(shards: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """One state dict from Megatron TP shards (rank order)."""
    names = shards[0].keys()
    if any(s.keys() != names for s in shards):
        raise UserError("tensor-parallel shards hold different tensors")
    merged = {}
    for name in names:
        dim = _split_dim(name)
        merged[name] = shards[0][name] if dim is None else torch.cat([s[name] for s in shards], dim=dim)
    return merged


def split_tensor_parallel(sd: dict[str, torch.Tensor], tp: int) -> list[dict[str, torch.Tensor]]:
    """The inverse of ``merge_tensor_parallel`` (even ``torch.chunk``, as the original converter)."""
    shards: list[dict[str, torch.Tensor]] = [{} for _ in range(tp)]
    for name, t in sd.items():
        dim = _split_dim(name)
        parts = [t] * tp if dim is None else list(t.chunk(tp, dim=dim))
        for shard, part in zip(shards, parts):
            shard[name] = part.clone()
    return shards


def to_official(sd: dict[str, torch.Tensor]) -> dict:
    """``{"module": {"language_model": {...}}}`` nested as the released ``codegeex_13b.pt``."""
    lm: dict = {"embedding": {}, "topQueryEmbedding": {}, "transformer": {}}
    for name, t in sd.items():
        top, rest = name.split(".", 1)
        if top == "transformer":
            lm["transformer"][rest] = t
        else:
            module, param = rest.split(".", 1)
            lm[top].setdefault(module, {})[param] = t
    return {"module": {"language_model": lm}}


def read_official(path: str | Path) -> dict[str, torch.Tensor]:
    """A released checkpoint file, or a directory of ``mp_rank_XX_model_states.pt`` shards."""
    path = Path(path)
    if path.is_dir():
        files = sorted((int(m.group(1)), p) for p in path.iterdir() if (m := _SHARD.search(p.name)))
        if not files:
            raise UserError(f"{path} holds no mp_rank_XX_model_states.pt shards")
        if [r for r, _ in files] != list(range(len(files))):
            raise UserError(f"{path}: shard ranks {[r for r, _ in files]} are not 0..{len(files) - 1}")
        return merge_tensor_parallel([_unwrap(_torch_load(p), str(p)) for _, p in files])
    return _unwrap(_torch_load(path), str(path))


def is_torch_file(path: Path) -> bool:
    """``torch.save``'s formats: a zip archive (since PyTorch 1.6) or a pickle (protocol 2 and later)."""
    with open(path, "rb") as f:
        head = f.read(4)
    return head == b"PK\x03\x04" or head[:1] == b"\x80"


def _torch_load(path: Path) -> object:
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    if not is_torch_file(path):
        raise UserError(f"{path} is not a PyTorch checkpoint (neither zip nor pickle: what torch.save writes)")
    try:  # mmap: tensors stay in the page cache, not copied into process memory
        return torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for a bad file
        raise UserError(f"cannot read checkpoint {path}: {e}") from None


def infer_config(sd: dict[str, torch.Tensor], n_head: int | None = None) -> CodeGeeXConfig:
    """The config of a state dict; heads cannot be seen in the shapes (default: head dim 128)."""
    vocab_rows, hidden = sd["embedding.word_embeddings.weight"].shape
    n_layer = len({k.split(".")[2] for k in sd if k.startswith("transformer.layers.")})
    n_head = n_head or max(1, hidden // 128)
    if hidden % n_head:
        raise UserError(f"hidden size {hidden} is not divisible by {n_head} heads")
    return CodeGeeXConfig(
        n_layer=n_layer, n_embd=hidden, n_head=n_head,
        n_positions=sd["embedding.position_embeddings.weight"].shape[0],
        vocab_size=min(50400, vocab_rows), padded_vocab_size=vocab_rows,
    )


def save_geex(sd: dict[str, torch.Tensor], cfg: CodeGeeXConfig, directory: str | Path) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(directory / WEIGHTS_FILE), metadata={"format": FORMAT})
    (directory / CONFIG_FILE).write_text(json.dumps({"format": FORMAT, "architecture": "codegeex", **cfg.as_dict()},
                                                    indent=2) + "\n")
    return directory


def load_geex(directory: str | Path) -> tuple[CodeGeeXConfig, dict[str, torch.Tensor]]:
    directory = Path(directory)
    cfg_path, weights = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    if not cfg_path.is_file():
        raise UserError(f"{directory} is not a geex model directory (needs {CONFIG_FILE} and {WEIGHTS_FILE})")
    cfg = read_geex_config(cfg_path)  # first: a mistake in it is what the user must fix
    if not weights.is_file():
        raise UserError(f"{directory} is not a geex model directory (needs {CONFIG_FILE} and {WEIGHTS_FILE})")
    try:
        return cfg, load_file(str(weights))
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types for a damaged file
        raise UserError(f"cannot read {weights}: {e}") from None


def read_geex_config(path: Path) -> CodeGeeXConfig:
    """A geex ``config.json``: every field typed and the sizes checked for fitting together."""
    f = Fields(read_json(path), str(path))
    default = CodeGeeXConfig()
    sizes = {k: f.size(k, getattr(default, k)) for k in
             ("n_layer", "n_embd", "n_head", "n_positions", "vocab_size", "padded_vocab_size")}
    f.divides(("n_embd", sizes["n_embd"]), ("n_head", sizes["n_head"]))
    if sizes["padded_vocab_size"] < sizes["vocab_size"]:
        raise UserError(f"{path}: padded_vocab_size {sizes['padded_vocab_size']} is smaller than vocab_size "
                        f"{sizes['vocab_size']}")
    return CodeGeeXConfig(**sizes, layernorm_eps=f.number("layernorm_eps", default.layernorm_eps))


def read(path: Path, tokenizer: Path | None = None, n_head: int | None = None) -> ModelFiles:
    """A geex directory, an official file or a directory of TP shards as config, tensors and the
    CodeGeeX tokenizer of ``tokenizer`` (a directory), else of the checkpoint's own directory. A
    mistake in the config is reported first (what the user must fix), then a missing tokenizer,
    before the model is built."""
    cfg, tensors = _config_and_tensors(path, n_head)
    return ModelFiles(cfg, tensors, CodeGeeXTokenizer.from_dir(tokenizer or (path if path.is_dir() else path.parent)))


def _config_and_tensors(path: Path, n_head: int | None) -> tuple[CodeGeeXConfig, dict[str, torch.Tensor]]:
    if path.is_dir() and (path / CONFIG_FILE).is_file():
        return load_geex(path)
    sd = read_official(path)
    return infer_config(sd, n_head), sd


def load_model(path: str | Path, n_head: int | None = None, dtype: torch.dtype | None = None,
               device: torch.device | str | None = None, quantize: str | None = None) -> CodeGeeX:
    """From a geex directory, an official file, or a directory of TP shards (no tokenizer needed)."""
    return build_model(*_config_and_tensors(Path(path), n_head), dtype, device, quantize)


def convert(src: str | Path, dst: str | Path, n_head: int | None = None, tokenizer: str | Path | None = None) -> Path:
    """Official checkpoint (file or TP shards) -> geex directory (+ tokenizer files if given)."""
    sd = read_official(src)
    cfg = infer_config(sd, n_head)
    build_model(cfg, sd)  # validates names and shapes before anything is written
    out = save_geex(sd, cfg, dst)
    if tokenizer is not None:
        for name in ("vocab.json", "merges.txt", "added_tokens.json", "special_tokens_map.json", "tokenizer_config.json"):
            src_file = Path(tokenizer) / name
            if src_file.is_file():
                (out / name).write_bytes(src_file.read_bytes())
    return out
