"""Model files in, one shape out: every format is read into a ``ModelFiles``
(``geex.models.protocols``) — the architecture's config, its tensors under the names its
``state_dict`` uses, and its tokenizer — which
``geex.models.build.build_model`` turns into a model. The registry knows formats only through
``read``; a format's quirks (llama.cpp's rotary layout, Megatron shards, a tied head saved twice)
stay in its module.

| file | module | architecture |
|---|---|---|
| ``*.gguf`` (a file starting with ``GGUF``) | ``gguf`` | Llama family (llama, qwen2) |
| a directory with ``config.json`` naming a ``model_type`` | ``hf`` | Llama family |
| geex's directory (``config.json`` + ``model.safetensors``), an official CodeGeeX ``.pt`` file, or a directory of ``mp_rank_XX`` shards | ``codegeex`` | CodeGeeX |
"""

from __future__ import annotations

from pathlib import Path

from geex.errors import UserError
from geex.models.protocols import ModelFiles


def read(path: Path, tokenizer: Path | None = None) -> ModelFiles:
    """The model at ``path`` in whichever format it is; ``tokenizer``: a directory whose tokenizer
    replaces the model's own (the model's family decides how it is read)."""
    from geex.models.formats import codegeex, gguf, hf  # here: the CLI loads none of them to start

    if gguf.is_gguf(path):
        return gguf.read(path, tokenizer)
    if path.suffix.lower() == ".gguf":
        raise UserError(f"{path} is not a GGUF file (it does not start with 'GGUF')")
    if path.is_file() and not codegeex.is_torch_file(path):
        raise UserError(f"{path} is not a model geex reads: not a GGUF file (no 'GGUF' signature), not a PyTorch "
                        "checkpoint (neither zip nor pickle), and not a model directory")
    if path.is_dir() and hf.is_hf_dir(path):
        return hf.read(path, tokenizer)
    return codegeex.read(path, tokenizer)
