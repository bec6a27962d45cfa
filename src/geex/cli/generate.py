"""``geex generate``: one prompt continued by a model, streamed to stdout as it is decoded, with the
speed on stderr: the quickest way to see a model (the embedded default by default) run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from geex.cli.options import _add_device_options, _add_sampling_options, _add_speculate_option, _device_and_dtype
from geex.errors import UserError
from geex.options import from_args, positive_int


def _cmd_generate(args: argparse.Namespace) -> int:
    import time

    from geex.engine.generate import generate
    from geex.engine.sampling_params import SamplingParams
    from geex.engine.streaming import HeldText
    from geex.languages import get_language
    from geex.languages.cleanup import cleanup
    from geex.models import registry

    if args.prompt_file:
        try:
            prompt = Path(args.prompt_file).read_text(encoding="utf-8")
        except OSError as e:
            raise UserError(f"cannot read --prompt-file {args.prompt_file}: {e.strerror}") from None
        except UnicodeDecodeError as e:
            raise UserError(f"--prompt-file {args.prompt_file} is not UTF-8 text ({e.reason} at byte {e.start + 1}): "
                            "convert it, e.g. with iconv -t UTF-8") from None
    else:
        prompt = args.prompt
    # a plain prompt is the code the completion continues: cleanup never repeats its definitions
    context = "" if args.chat else prompt
    device, dtype = _device_and_dtype(args)
    loaded = registry.load(args.model, dtype=dtype, device=device, quantize=args.quantize,
                           checkpoint=args.checkpoint, tokenizer=args.tokenizer, seed=args.seed or 0)
    tokenizer = loaded.tokenizer
    if args.chat:
        if loaded.chat_template is None:
            raise UserError(f"--chat: {loaded.name} has no chat template (use plain completion)")
        prompt = tokenizer.encode_chat(tokenizer.apply_chat_template([{"role": "user", "content": prompt}]))
    model = loaded.model
    params = from_args(SamplingParams, args)
    # with --language, whole lines are printed as they come (the engine's hold-back): the line where
    # the stop rule cuts is not shown, so what is printed is the completion
    shown = HeldText(tokenizer, language=get_language(args.language) if args.language else None)

    def stream(_row: int, token: int) -> None:
        piece = shown.add(token)
        if piece:
            sys.stdout.write(piece)
            sys.stdout.flush()

    start = time.perf_counter()
    (out,) = generate(model, tokenizer, [prompt], args.max_new_tokens, params, language=args.language,
                      seed=args.seed, on_token=stream, speculate=args.speculate)
    elapsed = time.perf_counter() - start
    final = cleanup(args.language, out.text, context) if args.language else out.text
    sys.stdout.write(final[len(shown.text):] + "\n")
    sys.stdout.flush()
    if not args.quiet:
        print(f"{len(out.token_ids)} tokens in {elapsed:.2f} s ({len(out.token_ids) / elapsed:.1f} tokens/s), "
              f"finish: {out.finish_reason}, model: {loaded.name}", file=sys.stderr)
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``geex generate``."""
    gen = subparsers.add_parser(
        "generate", help="continue a prompt with a model (default: the embedded SmolLM2-135M-Instruct)",
        description="Generate a completion (streamed to stdout; tokens/s on stderr). With no --model, the embedded "
                    "default (SmolLM2-135M-Instruct, a GGUF file installed by scripts/setup.sh) runs offline.")
    gen.add_argument("--model", help="smollm2-135m-instruct (default), a CodeGeeX or Llama preset (random weights "
                     "unless --checkpoint), a Hugging Face model directory, a .gguf file, a geex model directory, "
                     "an official CodeGeeX checkpoint (file or TP-shard directory), or a Hub id (org/name, online)")
    gen.add_argument("--checkpoint", help="official CodeGeeX checkpoint for a CodeGeeX preset")
    gen.add_argument("--tokenizer", metavar="DIR", help="a directory whose tokenizer replaces the model's own "
                     "(default: the model's: its directory's files, or the one inside a GGUF file)")
    src = gen.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", help="prompt text")
    src.add_argument("--prompt-file", help="read the prompt from a file")
    gen.add_argument("--chat", action="store_true", help="send the prompt as a user message through the model's "
                     "chat template (instruct models); default: plain completion")
    gen.add_argument("--language", help="stop when the function is complete (python, cpp, java, js, go, rust)")
    gen.add_argument("--max-new-tokens", type=positive_int, default=128,
                     help="most tokens generated after the prompt (default 128)")
    _add_sampling_options(gen)
    gen.add_argument("--seed", type=int, help="seed for reproducible sampling (default: a random draw)")
    _add_speculate_option(gen)
    _add_device_options(gen)
    gen.add_argument("--quiet", "-q", action="store_true", help="no statistics line (tokens/s) on stderr")
    gen.set_defaults(func=_cmd_generate)
