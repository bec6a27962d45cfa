"""``geex model convert``: a released CodeGeeX checkpoint (one file, or Megatron tensor-parallel
shards) into a geex model directory (``config.json`` + ``model.safetensors``) for ``--model``."""

from __future__ import annotations

import argparse

from geex.options import positive_int


def _cmd_convert(args: argparse.Namespace) -> int:
    from geex.models.formats.codegeex import convert, load_geex

    out = convert(args.src, args.dst, n_head=args.n_head, tokenizer=args.tokenizer)
    cfg, _ = load_geex(out)
    print(f"wrote {out}: CodeGeeX, {cfg.n_layer}+1 layers, hidden {cfg.n_embd}, {cfg.n_head} heads, "
          f"{cfg.n_params():,} parameters")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``geex model convert``."""
    md = subparsers.add_parser("model", help="model checkpoints (convert the official format)",
                              description="CodeGeeX checkpoints.")
    md_sub = md.add_subparsers(dest="model_command", metavar="COMMAND", required=True)
    cv = md_sub.add_parser(
        "convert", help="official checkpoint (file or TP shards) -> geex directory",
        description="Convert a released CodeGeeX checkpoint (codegeex_13b.pt, the fused-qkv variant, or a "
                    "directory of Megatron mp_rank_XX_model_states.pt shards) into a geex model directory "
                    "(config.json + model.safetensors) that --model can point at.",
    )
    cv.add_argument("src", help="checkpoint file, or directory of mp_rank_XX_model_states.pt shards")
    cv.add_argument("dst", help="output directory")
    cv.add_argument("--n-head", type=positive_int, help="attention heads (not visible in the shapes; "
                    "default: hidden size / 128, i.e. 40 for CodeGeeX-13B)")
    cv.add_argument("--tokenizer", metavar="DIR", help="copy the tokenizer files from DIR into the output")
    cv.set_defaults(func=_cmd_convert)
