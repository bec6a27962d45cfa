"""Option types and option groups that several commands share, so that an option is spelt, checked,
defaulted and explained the same way wherever it appears (tests/test_cli.py checks the spelling).
The value types (``positive_int``, ``within`` ...) and options declared on a config's fields are
``geex.options``'.

The types raise ``argparse.ArgumentTypeError`` with the accepted range, so a bad value is one
``geex <command>: error: argument --x: ...`` line with exit status 2, never a traceback."""

from __future__ import annotations

import argparse

from geex.options import add_options
from geex.options import count as _count


def _add_sampling_options(p: argparse.ArgumentParser) -> None:
    """How tokens are chosen: ``SamplingParams``' fields, declared there (with the command line's
    defaults)."""
    from geex.engine.sampling_params import SamplingParams

    add_options(p, SamplingParams, ("temperature", "top_p", "top_k", "greedy"))


def _add_speculate_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--speculate", type=_count, default=0, metavar="K",
                   help="prompt-lookup speculative decoding: each step also checks up to K tokens copied from where "
                        "the last tokens occurred before in the prompt or output; the same output (greedy: the same "
                        "tokens), faster when the text repeats (code edits, translation); default 0: off")


def _add_device_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", help="where the model runs: cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"),
                   help="weights and activations (default: bfloat16 on cuda, float32 on cpu)")
    p.add_argument("--quantize", choices=("int8", "int4"),
                   help="weight-only quantization at load time (INT8 per channel, INT4 in groups of 128; the "
                        "embedding, also the output head, becomes INT8 in both); fused Triton kernels on cuda")


def _device_and_dtype(args: argparse.Namespace):
    """(``--device`` checked and normalized, the torch dtype of ``--dtype``: by default bfloat16 on
    cuda, float32 on cpu); the parsed arguments are left as they are."""
    import torch

    from geex.devices import resolve_device

    device = resolve_device(args.device)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[
        args.dtype or ("bfloat16" if device.startswith("cuda") else "float32")]
    return device, dtype


def _add_dataset_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", metavar="DIR", help="directory of humaneval_<lang>.jsonl.gz files "
                   "(default: $GEEX_HUMANEVALX, else the Hugging Face Hub)")
    p.add_argument("--original", action="store_true",
                   help="use the data as published, without geex's data fixes (docs/data-fixes.md)")
