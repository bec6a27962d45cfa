"""Option types and option groups that several commands share, so that an option is spelt, checked,
defaulted and explained the same way wherever it appears (tests/test_cli.py checks the spelling).
The basic value types (``positive_int``, ``positive_number``, ``k_values``) and options declared on a
config's fields are ``geex.options``'; the ranged types are here.

The types raise ``argparse.ArgumentTypeError`` with the accepted range, so a bad value is one
``geex <command>: error: argument --x: ...`` line with exit status 2, never a traceback."""

from __future__ import annotations

import argparse
import math

from geex.options import positive_int, positive_number


def _within(kind: type, low: float, high: float = math.inf, *, above: bool = False, below: bool = False):
    """An argparse type: a ``kind`` (int or float) from ``low`` to ``high`` (``above``/``below``: the
    bound itself excluded), finite; the error says the range."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {'an integer' if kind is int else 'a number'}: {text!r}") from None
        ok = math.isfinite(value) and (value > low if above else value >= low) and \
            (value < high if below else value <= high)
        if not ok:
            lo = f"above {low:g}" if above else f"at least {low:g}"
            hi = "" if high == math.inf else f" and {'below' if below else 'at most'} {high:g}"
            raise argparse.ArgumentTypeError(f"must be {lo}{hi}: {text}")
        return value
    return parse


_probability = _within(float, 0, 1, above=True)
_count = _within(int, 0)
_fraction = _within(float, 0, 1)


def _add_sampling_options(p: argparse.ArgumentParser, max_new_tokens: int) -> None:
    p.add_argument("--max-new-tokens", type=positive_int, default=max_new_tokens,
                   help=f"most tokens generated after the prompt (default {max_new_tokens})")
    p.add_argument("--temperature", type=positive_number, default=0.2,
                   help="sampling temperature: lower is more deterministic (default 0.2, CodeGeeX's setting for "
                        "pass@1; 0.8 for diverse samples)")
    p.add_argument("--top-p", type=_probability, default=0.95,
                   help="nucleus sampling: sample from the most likely tokens that make up this much probability "
                        "(default 0.95; 1: off)")
    p.add_argument("--top-k", type=_count, default=0,
                   help="sample from the k most likely tokens only (default 0: off)")
    p.add_argument("--seed", type=int, help="seed for reproducible sampling")
    p.add_argument("--greedy", action="store_true", help="argmax instead of sampling")


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
