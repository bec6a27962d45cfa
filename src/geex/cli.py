"""The ``geex`` command. Subcommands map to components; this module only parses, calls and prints.

It is also the one place where a ``UserError`` becomes ``geex: error: ...`` on one line (exit status
2) and where Ctrl-C is handled for every command ("stopping…", then what was kept and the command
that resumes; exit status 130)."""

from __future__ import annotations

import argparse
import math
import os
import shlex
import signal
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from geex import __version__
from geex import interrupts
from geex.errors import UserError


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def _positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number: {text}")
    return value


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


def _ks(text: str) -> tuple[int, ...]:
    try:
        ks = tuple(sorted({int(k) for k in text.split(",") if k.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not ks or ks[0] < 1:
        raise argparse.ArgumentTypeError("k values must be positive")
    return ks


def _add_sampling_options(p: argparse.ArgumentParser, max_new_tokens: int) -> None:
    p.add_argument("--max-new-tokens", type=_positive_int, default=max_new_tokens,
                   help=f"most tokens generated after the prompt (default {max_new_tokens})")
    p.add_argument("--temperature", type=_positive_number, default=0.2,
                   help="sampling temperature: lower is more deterministic (default 0.2, CodeGeeX's setting for "
                        "pass@1; 0.8 for diverse samples)")
    p.add_argument("--top-p", type=_probability, default=0.95,
                   help="nucleus sampling: sample from the most likely tokens that make up this much probability "
                        "(default 0.95; 1: off)")
    p.add_argument("--top-k", type=_count, default=0,
                   help="sample from the k most likely tokens only (default 0: off)")
    p.add_argument("--seed", type=int, help="seed for reproducible sampling")
    p.add_argument("--greedy", action="store_true", help="argmax instead of sampling")


def _add_device_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", help="where the model runs: cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--dtype", choices=("float32", "bfloat16", "float16"),
                   help="weights and activations (default: bfloat16 on cuda, float32 on cpu)")
    p.add_argument("--quantize", choices=("int8", "int4"),
                   help="weight-only quantization at load time (INT8 per channel, INT4 in groups of 128; the "
                        "embedding, also the output head, becomes INT8 in both); fused Triton kernels on cuda")


def _torch_dtype(args: argparse.Namespace):
    """The dtype of ``--dtype`` (default by device); ``args.device`` is checked and normalized first."""
    import torch

    from geex.devices import resolve_device

    args.device = resolve_device(args.device)
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[
        args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32")]


def _add_dataset_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", metavar="DIR", help="directory of humaneval_<lang>.jsonl.gz files "
                   "(default: $GEEX_HUMANEVALX, else the Hugging Face Hub)")
    p.add_argument("--original", action="store_true",
                   help="use the data as published, without geex's data fixes (docs/data-fixes.md)")


def _evaluate_out(args: argparse.Namespace) -> Path:
    from geex.humanevalx.evaluate import CANONICAL

    if args.out is not None:
        return Path(args.out)
    if args.samples == CANONICAL:
        return Path("geex-out") / "humanevalx" / ("canonical-original" if args.original else "canonical")
    return Path(args.samples).with_name(Path(args.samples).name.split(".")[0] + "-eval")


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from geex.humanevalx.evaluate import EvalConfig, evaluate
    from geex.languages import parse_languages

    languages = parse_languages(args.languages) if args.languages else None
    out = _evaluate_out(args)
    cfg = EvalConfig(
        samples=args.samples, out_dir=out, languages=languages, workers=args.workers or 0,
        ks=args.k, timeout_s=args.timeout, dataset=args.dataset, original=args.original,
        use_cache=not args.no_cache, clean=not args.no_cleanup, progress=not args.quiet,
    )
    report = evaluate(cfg)
    from geex.humanevalx.report import to_markdown

    print(to_markdown(report))
    print(f"wrote {out / 'results.jsonl'}, {out / 'report.json'}, {out / 'report.md'}", file=sys.stderr)
    if report["harness_errors"]:
        print(f"WARNING: {report['harness_errors']} harness errors (not counted in pass@k); "
              "run `geex doctor`", file=sys.stderr)
        return 3
    return 0


def _generate_samples(args: argparse.Namespace, out: Path) -> Path:
    from geex.engine.backends import make_backend
    from geex.engine.sampling import SamplingParams
    from geex.humanevalx.generate import GenerateConfig, parse_pairs, run_generate
    from geex.languages import HUMANEVALX_LANGUAGES, parse_languages

    if args.task == "translation" and not args.pairs:
        raise UserError("--task translation needs --pairs (SRC:TGT,... or all)")
    cfg = GenerateConfig(
        task=args.task, languages=parse_languages(args.languages) if args.languages else list(HUMANEVALX_LANGUAGES),
        pairs=parse_pairs(args.pairs) if args.pairs else [], n=args.n,
        params=SamplingParams(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, greedy=args.greedy),
        max_new_tokens=args.max_new_tokens, seed=args.seed or 0, batch_size=args.batch_size, limit=args.limit,
        dataset=args.dataset, original=args.original)
    dtype = _torch_dtype(args)  # also checks --device
    backend = make_backend(args.backend, args.model, device=args.device,
                           dtype=dtype if args.backend != "openai" else None, quantize=args.quantize,
                           base_url=args.base_url, api_key=os.environ.get("OPENAI_API_KEY"),
                           concurrency=args.concurrency)
    return run_generate(cfg, backend, out, progress=not args.quiet)


def _cmd_hx_generate(args: argparse.Namespace) -> int:
    out = _generate_samples(args, Path(args.out))
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _cmd_hx_run(args: argparse.Namespace) -> int:
    out_dir = Path(args.out)
    samples = _generate_samples(args, out_dir / "samples.jsonl")
    args.samples, args.out = str(samples), str(out_dir)
    return _cmd_evaluate(args)


def _cmd_hx_report(args: argparse.Namespace) -> int:
    from geex.humanevalx.summary import summarize_runs

    out = Path(args.out)
    summary = summarize_runs(args.dirs, out, ks=args.k, budgets=args.budgets, iterations=args.bootstrap)
    print((out / "summary.md").read_text())
    print(f"wrote {out / 'summary.md'}, {out / 'summary.json'} and {len(summary['figures'])} figures",
          file=sys.stderr)
    return 0


def _cmd_data_build(args: argparse.Namespace) -> int:
    from geex.data.build import BuildConfig, build
    from geex.data.filters import FilterConfig

    filters = FilterConfig(min_bytes=args.min_bytes, max_bytes=args.max_bytes, max_mean_line=args.max_mean_line,
                           min_alpha=args.min_alpha, drop_generated=not args.keep_generated)
    cfg = BuildConfig(sources=tuple(args.sources), out=Path(args.out), filters=filters,
                      near_dup_threshold=args.near_dup, shard_docs=args.shard_docs, workers=args.workers or 0,
                      exclude=tuple(args.exclude))
    build(cfg, progress=not args.quiet)
    print((cfg.out / "stats.md").read_text())
    print(f"wrote {cfg.out}/shard-*.jsonl, stats.json, stats.md", file=sys.stderr)
    return 0


def _cmd_tokenizer_train(args: argparse.Namespace) -> int:
    from geex.data.tokenizer import train_tokenizer

    out = train_tokenizer(args.shards, Path(args.out), vocab_size=args.vocab_size, min_frequency=args.min_frequency,
                          progress=not args.quiet)
    print(f"wrote {out}/vocab.json, merges.txt, added_tokens.json (load with --tokenizer {out})", file=sys.stderr)
    return 0


def _cmd_data_pack(args: argparse.Namespace) -> int:
    from geex.data.pack import pack

    index = pack(args.shards, args.tokenizer, Path(args.out), seq_len=args.seq_len, valid=args.valid,
                 workers=args.workers or 0, progress=not args.quiet)
    for split in ("train", "valid"):
        s = index[split]
        print(f"{split}: {s['documents']} documents, {s['tokens']:,} tokens, {s['sequences']:,} sequences of "
              f"{index['seq_len']}")
    print(f"wrote {args.out}/train.bin, valid.bin, index.json", file=sys.stderr)
    return 0


def _train_overrides(args: argparse.Namespace) -> list[str]:
    """``--set`` items, with ``--out DIR`` as ``run.out=DIR`` (last, so it wins)."""
    return [*args.set, *([f"run.out={args.out}"] if args.out else [])]


def _cmd_train(args: argparse.Namespace) -> int:
    from geex.train.config import load_config
    from geex.train.loop import train

    cfg = load_config(args.config, _train_overrides(args))
    last = train(cfg, progress=not args.quiet)
    print(f"step {last.get('step')}: loss {last.get('loss', float('nan')):.4f}; logs and checkpoint in {cfg.run.out}",
          file=sys.stderr)
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from geex.models.checkpoint import convert, load_geex

    out = convert(args.src, args.dst, n_head=args.n_head, tokenizer=args.tokenizer)
    cfg, _ = load_geex(out)
    print(f"wrote {out}: CodeGeeX, {cfg.n_layer}+1 layers, hidden {cfg.n_embd}, {cfg.n_head} heads, "
          f"{cfg.n_params():,} parameters")
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    import time

    from geex.engine.generate import TextStream, generate
    from geex.engine.sampling import SamplingParams
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
    dtype = _torch_dtype(args)
    loaded = registry.load(args.model, dtype=dtype, device=args.device, quantize=args.quantize,
                           checkpoint=args.checkpoint, tokenizer=args.tokenizer, seed=args.seed or 0)
    tokenizer = loaded.tokenizer
    if args.chat:
        if loaded.chat_template is None:
            raise UserError(f"--chat: {loaded.name} has no chat template (use plain completion)")
        prompt = tokenizer.encode_chat(tokenizer.apply_chat_template([{"role": "user", "content": prompt}]))
    model = loaded.model.eval().fuse_projections()
    params = SamplingParams(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, greedy=args.greedy)
    shown = TextStream(tokenizer)
    printed = 0  # with --language, whole lines are printed as they come; the line that ends the
    # function (where the stop rule cuts) is held back, so what is printed is the completion

    def stream(_row: int, token: int) -> None:
        nonlocal printed
        if shown.add(token):
            upto = shown.text.rfind("\n") + 1 if args.language else len(shown.text)
            if upto > printed:
                sys.stdout.write(shown.text[printed:upto])
                sys.stdout.flush()
                printed = upto

    start = time.perf_counter()
    (out,) = generate(model, tokenizer, [prompt], args.max_new_tokens, params, language=args.language,
                      seed=args.seed, on_token=stream)
    elapsed = time.perf_counter() - start
    final = cleanup(args.language, out.text, context) if args.language else out.text
    sys.stdout.write(final[printed:] + "\n")
    sys.stdout.flush()
    if not args.quiet:
        print(f"{len(out.token_ids)} tokens in {elapsed:.2f} s ({len(out.token_ids) / elapsed:.1f} tokens/s), "
              f"finish: {out.finish_reason}, model: {loaded.name}", file=sys.stderr)
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    from geex.humanevalx.doctor import doctor
    from geex.languages import parse_languages

    return doctor(languages=parse_languages(args.languages) if args.languages else None)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="geex", description="CodeGeeX re-implemented: models, training, serving, and the HumanEval-X benchmark.",
    )
    parser.add_argument("--version", action="version", version=f"geex {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    doc = sub.add_parser("doctor", help="check every HumanEval-X toolchain and the sandbox",
                         description="Per language: the toolchain, its version, and whether a hello-world "
                                     "test compiles and runs in the sandbox; install hints when not.")
    doc.add_argument("--languages", "-l", help="comma-separated subset: python,cpp,java,js,go,rust (default: all)")
    doc.set_defaults(func=_cmd_doctor)

    md = sub.add_parser("model", help="model checkpoints (convert the official format)",
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
    cv.add_argument("--n-head", type=_positive_int, help="attention heads (not visible in the shapes; "
                    "default: hidden size / 128, i.e. 40 for CodeGeeX-13B)")
    cv.add_argument("--tokenizer", metavar="DIR", help="copy the tokenizer files from DIR into the output")
    cv.set_defaults(func=_cmd_convert)

    data = sub.add_parser("data", help="pretraining data: build a filtered, deduplicated, tagged corpus",
                          description="Pretraining data (CodeGeeX's recipe).")
    data_sub = data.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    db = data_sub.add_parser(
        "build", help="source trees / zip / tar / JSONL -> tagged, filtered, deduplicated JSONL shards",
        description="Detect each file's language (extension, then #! line), apply CodeGeeX's filters, drop exact "
                    "duplicates (content hash) and near duplicates (MinHash LSH over word 5-grams), prepend the "
                    "language tag, and write JSONL shards with a stats report. Resumable: re-run the same command.")
    db.add_argument("sources", nargs="+", help="directories, zip/tar archives or JSONL files (code|content|text)")
    db.add_argument("--out", "-o", required=True, help="output directory")
    db.add_argument("--min-bytes", type=_count, default=1024, help="drop smaller files (default 1024)")
    db.add_argument("--max-bytes", type=_within(int, 1), default=100 * 1024, help="drop larger files (default 102400)")
    db.add_argument("--max-mean-line", type=_within(float, 0, above=True), default=100.0, help="drop files whose mean line is longer (default 100)")
    db.add_argument("--min-alpha", type=_fraction, default=0.40, help="drop files with fewer letters (default 0.40)")
    db.add_argument("--keep-generated", action="store_true", help="keep files marked as auto-generated")
    db.add_argument("--near-dup", type=_within(float, 0, 1, above=True), default=0.85,
                    help="MinHash Jaccard threshold for near duplicates (default 0.85; 1 = exact dedup only)")
    db.add_argument("--shard-docs", type=_positive_int, default=10_000, help="documents a shard (default 10000)")
    db.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                    help="skip files and directories whose name matches (repeatable), e.g. site-packages, 'test*'")
    db.add_argument("--workers", "-j", type=_positive_int, help="parallel worker processes (default: all cores)")
    db.add_argument("--quiet", "-q", action="store_true", help="no progress display")
    db.set_defaults(func=_cmd_data_build, kept=_kept_data_build)
    dp = data_sub.add_parser(
        "pack", help="tokenize shards into packed token streams (train/valid) of fixed-length sequences",
        description="Tokenize the 'code' (else 'content' or 'text') of every JSONL line (in parallel, a shard a process), append EOS, and "
                    "concatenate documents into train.bin / valid.bin, read as sequences of --seq-len + 1 tokens "
                    "(no padding). A document's hash decides its split. Re-running reuses the shards done.")
    dp.add_argument("shards", nargs="+", help="JSONL files or directories of them (e.g. a `data build` output)")
    dp.add_argument("--tokenizer", required=True, help="tokenizer directory (vocab.json, merges.txt, added_tokens.json)")
    dp.add_argument("--out", "-o", required=True, help="output directory")
    dp.add_argument("--seq-len", type=_positive_int, default=2048, help="tokens a sequence (default 2048)")
    dp.add_argument("--valid", type=_within(float, 0, 1, below=True), default=0.005, help="share of documents held out (default 0.005)")
    dp.add_argument("--workers", "-j", type=_positive_int, help="parallel worker processes (default: all cores)")
    dp.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    dp.set_defaults(func=_cmd_data_pack, kept=_kept_data_pack)

    tk = sub.add_parser("tokenizer", help="train a CodeGeeX-style tokenizer on a corpus",
                        description="Tokenizers (CodeGeeX's: byte-level BPE + whitespace tokens).")
    tk_sub = tk.add_subparsers(dest="tokenizer_command", metavar="COMMAND", required=True)
    tt = tk_sub.add_parser(
        "train", help="byte-level BPE with CodeGeeX's whitespace tokens, trained on JSONL shards",
        description="Train a byte-level BPE (Hugging Face tokenizers) on the 'code' (else 'content' or 'text') of JSONL shards (e.g. "
                    "from `geex data build`), with runs of 2-10 spaces as CodeGeeX's whitespace tokens. Writes "
                    "vocab.json, merges.txt and added_tokens.json (the original's layout: --tokenizer DIR loads it).")
    tt.add_argument("shards", nargs="+", help="JSONL files or directories of them")
    tt.add_argument("--out", "-o", required=True, help="output directory")
    tt.add_argument("--vocab-size", type=_positive_int, default=50_000, help="tokens in all (default 50000)")
    tt.add_argument("--min-frequency", type=_positive_int, default=2, help="least count of a merged pair (default 2)")
    tt.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    tt.set_defaults(func=_cmd_tokenizer_train)

    tr = sub.add_parser(
        "train", help="pretrain a CodeGeeX model on packed data (one process, or FSDP2 under torchrun)",
        description="Train with CodeGeeX's recipe (AdamW 0.9/0.95, weight decay 0.1 but not on biases and "
                    "LayerNorms, warm-up + cosine, clipping, accumulation) on a `geex data pack` directory. The "
                    "config is TOML with sections [model] [data] [optim] [run] (every field documented in "
                    "geex/train/config.py; examples in configs/); --set section.field=value overrides. Several "
                    "processes: `torchrun --nproc_per_node N -m geex train ...` shards the model with FSDP2 "
                    "(data.batch_size is per data-parallel process; run.tensor_parallel=K splits each layer "
                    "over K of them). Checkpoints (torch.distributed.checkpoint) go to OUT/checkpoints; "
                    "re-running the same command continues with bitwise the same losses, and a run may also "
                    "continue on another number of processes (resharded) if the global batch stays the same. "
                    "Logs: OUT/log.jsonl, OUT/tensorboard (loss, lr, tokens/s, MFU, memory), OUT/loss.png.")
    tr.add_argument("--config", help="TOML file of settings, sections [model] [data] [optim] [run] (default: "
                    "geex's defaults)")
    tr.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                    help="override one setting, e.g. optim.lr=1e-4 or run.compile=true (repeatable)")
    tr.add_argument("--out", "-o", metavar="DIR", help="checkpoints and logs (the same as --set run.out=DIR)")
    tr.add_argument("--quiet", "-q", action="store_true", help="no log lines on stdout")
    tr.set_defaults(func=_cmd_train, kept=_kept_train)

    gen = sub.add_parser(
        "generate", help="continue a prompt with a model (default: the embedded SmolLM2-135M-Instruct)",
        description="Generate a completion (streamed to stdout; tokens/s on stderr). With no --model, the embedded "
                    "default (SmolLM2-135M-Instruct, a GGUF file installed by scripts/setup.sh) runs offline.")
    gen.add_argument("--model", help="smollm2-135m-instruct (default), a CodeGeeX or Llama preset (random weights "
                     "unless --checkpoint), a Hugging Face model directory, a .gguf file, a geex model directory, "
                     "an official CodeGeeX checkpoint (file or TP-shard directory), or a Hub id (org/name, online)")
    gen.add_argument("--checkpoint", help="official CodeGeeX checkpoint for a CodeGeeX preset")
    gen.add_argument("--tokenizer", metavar="DIR", help="tokenizer files (default: the model directory)")
    src = gen.add_mutually_exclusive_group(required=True)
    src.add_argument("--prompt", help="prompt text")
    src.add_argument("--prompt-file", help="read the prompt from a file")
    gen.add_argument("--chat", action="store_true", help="send the prompt as a user message through the model's "
                     "chat template (instruct models); default: plain completion")
    gen.add_argument("--language", help="stop when the function is complete (python, cpp, java, js, go, rust)")
    _add_sampling_options(gen, max_new_tokens=128)
    _add_device_options(gen)
    gen.add_argument("--quiet", "-q", action="store_true", help="no statistics line (tokens/s) on stderr")
    gen.set_defaults(func=_cmd_generate)

    hx = sub.add_parser("humanevalx", help="the HumanEval-X benchmark (evaluate samples)",
                        description="The multilingual HumanEval-X benchmark.")
    hx_sub = hx.add_subparsers(dest="hx_command", metavar="COMMAND", required=True)
    ev = hx_sub.add_parser(
        "evaluate", help="run samples' tests in the sandbox and compute pass@k",
        description="Evaluate completions (a JSONL file with task_id and generation|completion per line; "
                    "see docs/formats.md) or the reference solutions ('canonical'). Results stream to "
                    "OUT/results.jsonl; re-running the same command resumes. Writes OUT/report.json and "
                    "OUT/report.md.",
    )
    ev.add_argument("samples", help="samples JSONL(.gz) file, or 'canonical' for the reference solutions")
    ev.add_argument("--languages", "-l", help="comma-separated subset: python,cpp,java,js,go,rust (default: all)")
    ev.add_argument("--out", "-o", help="output directory (default: geex-out/humanevalx/canonical, "
                    "or <samples>-eval next to the samples file)")
    ev.add_argument("--workers", "-j", type=_positive_int, help="parallel workers (default: all cores)")
    ev.add_argument("--k", type=_ks, default=(1, 10, 100), help="pass@k values (default: 1,10,100; "
                    "only those ≤ the samples per problem are reported)")
    ev.add_argument("--timeout", type=_positive_number, default=10.0, help="wall-clock seconds per test run (default: 10)")
    ev.add_argument("--no-cache", action="store_true", help="do not read or write the machine-wide verdict cache")
    ev.add_argument("--no-cleanup", action="store_true",
                    help="splice completions as given (default: cut them where the function ends, "
                         "keeping the helpers it uses)")
    ev.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    _add_dataset_options(ev)

    rp = hx_sub.add_parser(
        "report", help="evaluated runs side by side: tables with confidence intervals, figures, budget allocation",
        description="Summarize evaluated runs (directories with results.jsonl, e.g. from `geex humanevalx run`): "
                    "pass@k per language and translation pair with 95% bootstrap intervals over problems, the "
                    "translation matrix, per-problem pass rates across languages, verdicts, and the multilingual "
                    "budget allocation. Writes OUT/summary.md, OUT/summary.json and PNG figures.")
    rp.add_argument("dirs", nargs="+", help="evaluation directories")
    rp.add_argument("--out", "-o", required=True, help="output directory")
    rp.add_argument("--k", type=_ks, default=(1, 10, 100), help="pass@k values (default: 1,10,100)")
    rp.add_argument("--budgets", type=_ks, default=(1, 2, 3, 4, 6, 8, 12),
                    help="total samples per problem for budget allocation (default: 1,2,3,4,6,8,12)")
    rp.add_argument("--bootstrap", type=_positive_int, default=1000, help="bootstrap resamples (default 1000)")
    rp.set_defaults(func=_cmd_hx_report)

    for name in ("generate", "run"):
        what = ("generate a model's samples (resumable JSONL)" if name == "generate" else
                "generate samples, then evaluate them (one output directory)")
        gp = hx_sub.add_parser(
            name, help=what,
            description=f"{what[0].upper()}{what[1:]}. Prompts as CodeGeeX's (generation: the language tag line + "
                        "prompt; translation: CodeGeeX's translation format); the language's stop rule ends a "
                        "sample while it is decoded. Re-running the same command resumes: the finished file "
                        "equals an uninterrupted run's. Format: docs/formats.md.")
        gp.add_argument("--model", help="native: smollm2-135m-instruct (default), a preset, a directory, a .gguf "
                        "file or a Hub id; hf: a transformers directory or Hub id; openai: the served model's name")
        gp.add_argument("--backend", choices=("native", "hf", "openai"), default="native",
                        help="native (geex's engine, default), hf (transformers), openai (a /v1/completions endpoint)")
        gp.add_argument("--base-url", help="openai: the endpoint's base URL, e.g. http://localhost:8000/v1 "
                        "($OPENAI_API_KEY is sent if set)")
        gp.add_argument("--concurrency", type=_positive_int, default=8, help="openai: requests at a time (default 8)")
        gp.add_argument("--task", choices=("generation", "translation"), default="generation",
                        help="generation (complete each problem's prompt, default) or translation (rewrite a "
                             "solution in another language: --pairs)")
        gp.add_argument("--languages", "-l", help="generation: comma-separated subset (default: all six)")
        gp.add_argument("--pairs", help="translation: SRC:TGT,... or 'all' (the 30 ordered pairs)")
        gp.add_argument("--n", type=_positive_int, default=1, help="samples per problem (default 1)")
        gp.add_argument("--limit", type=_positive_int, help="only the first N problems of each language")
        gp.add_argument("--batch-size", type=_positive_int, default=8,
                        help="prompts decoded together (default 8); part of the file's identity")
        _add_sampling_options(gp, max_new_tokens=512)
        _add_device_options(gp)
        gp.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
        _add_dataset_options(gp)
        if name == "generate":
            gp.add_argument("--out", "-o", required=True, help="samples file (JSONL) to write or resume")
            gp.set_defaults(func=_cmd_hx_generate, kept=_kept_hx_generate)
        else:
            gp.add_argument("--out", "-o", required=True, help="output directory: samples.jsonl, results.jsonl, "
                            "report.json, report.md")
            gp.add_argument("--workers", "-j", type=_positive_int, help="parallel test workers (default: all cores)")
            gp.add_argument("--k", type=_ks, default=(1, 10, 100), help="pass@k values (default: 1,10,100)")
            gp.add_argument("--timeout", type=_positive_number, default=10.0, help="seconds per test run (default 10)")
            gp.add_argument("--no-cache", action="store_true",
                            help="do not read or write the machine-wide verdict cache")
            gp.set_defaults(func=_cmd_hx_run, kept=_kept_hx_run, no_cleanup=False)
    ev.set_defaults(func=_cmd_evaluate, kept=_kept_evaluate)
    return parser


def _complete_lines(path: Path) -> int:
    """Lines of a resumable JSONL output that a re-run keeps (a torn last line is dropped then)."""
    try:
        with open(path, "rb") as f:
            return sum(1 for line in f if line.endswith(b"\n") and line.strip())
    except OSError:
        return 0


def _plural(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _kept_evaluate(args: argparse.Namespace) -> str:
    results = _evaluate_out(args) / "results.jsonl"
    return f"{_plural(_complete_lines(results), 'result')} kept in {results}"


def _kept_hx_generate(args: argparse.Namespace) -> str:
    out = Path(args.out)  # the first line is the header
    return f"{_plural(max(0, _complete_lines(out) - 1), 'sample')} kept in {out}"


def _kept_hx_run(args: argparse.Namespace) -> str:
    out = Path(args.out)
    samples = max(0, _complete_lines(out / "samples.jsonl") - 1)
    return (f"{_plural(samples, 'sample')} and {_plural(_complete_lines(out / 'results.jsonl'), 'result')} "
            f"kept in {out}")


def _kept_train(args: argparse.Namespace) -> str:
    from geex.train import checkpoint
    from geex.train.config import load_config

    try:
        out = Path(load_config(args.config, _train_overrides(args)).run.out)
    except UserError:
        return "nothing kept"
    found = checkpoint.latest(out)
    if found is None:
        return f"no checkpoint in {out} yet"
    return f"the newest checkpoint is {found.name} in {found.parent}"


def _kept_data_build(args: argparse.Namespace) -> str:
    return f"the sources finished are kept in {args.out}"


def _kept_data_pack(args: argparse.Namespace) -> str:
    return f"the shards tokenized are kept in {Path(args.out) / 'parts'}"


class _Interrupts:
    """Ctrl-C, the same way for every command: the first one says "stopping…" at once and raises
    KeyboardInterrupt in the main thread, so the command ends through its own clean-up (running
    sandboxed tests finish, files are closed); a second one quits at once. Quitting at once is safe
    because every resumable output is written to survive a kill at any moment (results and samples
    append whole lines, checkpoints are renamed into place when complete)."""

    def __init__(self) -> None:
        self.count = 0
        self.previous = None

    def __enter__(self) -> "_Interrupts":
        try:
            self.previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread (geex.cli.main called from a library's thread)
            self.previous = None
        return self

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)

    def _handle(self, signum: int, frame) -> None:
        self.count += 1
        if self.count > 1:
            sys.stderr.write("\ngeex: interrupted again: quitting now; what was written is kept\n")
            sys.stderr.flush()
            os._exit(130)
        sys.stderr.write("\nstopping… (Ctrl-C again to quit at once)\n")
        sys.stderr.flush()
        if interrupts.defer_now():  # a critical write (a checkpoint) finishes first, then it stops
            return
        raise KeyboardInterrupt


def _interrupted(args: argparse.Namespace, argv: list[str]) -> int:
    """The one-line report of a stopped command: what was kept, and the command that resumes."""
    kept: Callable[[argparse.Namespace], str] | None = getattr(args, "kept", None)
    command = shlex.join(["geex", *argv])
    if kept is None:
        print("geex: interrupted", file=sys.stderr)
    else:
        try:
            what = kept(args)
        except Exception as e:  # noqa: BLE001 - the report of an interrupt must not end in a traceback
            what = f"(what was kept could not be read: {e})"
        print(f"geex: interrupted: {what}; resume with: {command}", file=sys.stderr)
    return 130


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.simplefilter("default", RuntimeWarning)
    warnings.formatwarning = lambda msg, cat, *a, **k: f"WARNING: {msg}\n"
    with _Interrupts():
        try:
            return args.func(args)
        except UserError as e:
            print(f"geex: error: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            return _interrupted(args, argv)
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1


if __name__ == "__main__":
    sys.exit(main())
