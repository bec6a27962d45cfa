"""``geex data build``, ``geex tokenizer train`` and ``geex data pack``: the pretraining-data pipeline
(``geex.data``), one module because each step reads what the one before wrote: corpus shards, then
a tokenizer trained on them, then the shards packed into token streams with it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from geex.options import count, fraction, positive_int, within


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


def _kept_data_build(args: argparse.Namespace) -> str:
    return f"the sources finished are kept in {args.out}"


def _kept_data_pack(args: argparse.Namespace) -> str:
    return f"the shards tokenized are kept in {Path(args.out) / 'parts'}"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``geex data build|pack`` and ``geex tokenizer train`` (two top-level commands, in that order)."""
    data = subparsers.add_parser("data", help="pretraining data: build a filtered, deduplicated, tagged corpus",
                                description="Pretraining data (CodeGeeX's recipe).")
    data_sub = data.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    db = data_sub.add_parser(
        "build", help="source trees / zip / tar / JSONL -> tagged, filtered, deduplicated JSONL shards",
        description="Detect each file's language (extension, then #! line), apply CodeGeeX's filters, drop exact "
                    "duplicates (content hash) and near duplicates (MinHash LSH over word 5-grams), prepend the "
                    "language tag, and write JSONL shards with a stats report. Resumable: re-run the same command.")
    db.add_argument("sources", nargs="+", help="directories, zip/tar archives or JSONL files (code|content|text)")
    db.add_argument("--out", "-o", required=True, help="output directory")
    db.add_argument("--min-bytes", type=count, default=1024, help="drop smaller files (default 1024)")
    db.add_argument("--max-bytes", type=within(int, 1), default=100 * 1024, help="drop larger files (default 102400)")
    db.add_argument("--max-mean-line", type=within(float, 0, above=True), default=100.0, help="drop files whose mean line is longer (default 100)")
    db.add_argument("--min-alpha", type=fraction, default=0.40, help="drop files with fewer letters (default 0.40)")
    db.add_argument("--keep-generated", action="store_true", help="keep files marked as auto-generated")
    db.add_argument("--near-dup", type=within(float, 0, 1, above=True), default=0.85,
                    help="MinHash Jaccard threshold for near duplicates (default 0.85; 1 = exact dedup only)")
    db.add_argument("--shard-docs", type=positive_int, default=10_000, help="documents a shard (default 10000)")
    db.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                    help="skip files and directories whose name matches (repeatable), e.g. site-packages, 'test*'")
    db.add_argument("--workers", "-j", type=positive_int, help="parallel worker processes (default: all cores)")
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
    dp.add_argument("--seq-len", type=positive_int, default=2048, help="tokens a sequence (default 2048)")
    dp.add_argument("--valid", type=within(float, 0, 1, below=True), default=0.005, help="share of documents held out (default 0.005)")
    dp.add_argument("--workers", "-j", type=positive_int, help="parallel worker processes (default: all cores)")
    dp.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    dp.set_defaults(func=_cmd_data_pack, kept=_kept_data_pack)

    tk = subparsers.add_parser("tokenizer", help="train a CodeGeeX-style tokenizer on a corpus",
                              description="Tokenizers (CodeGeeX's: byte-level BPE + whitespace tokens).")
    tk_sub = tk.add_subparsers(dest="tokenizer_command", metavar="COMMAND", required=True)
    tt = tk_sub.add_parser(
        "train", help="byte-level BPE with CodeGeeX's whitespace tokens, trained on JSONL shards",
        description="Train a byte-level BPE (Hugging Face tokenizers) on the 'code' (else 'content' or 'text') of JSONL shards (e.g. "
                    "from `geex data build`), with runs of 2-10 spaces as CodeGeeX's whitespace tokens. Writes "
                    "vocab.json, merges.txt and added_tokens.json (the original's layout: --tokenizer DIR loads it).")
    tt.add_argument("shards", nargs="+", help="JSONL files or directories of them")
    tt.add_argument("--out", "-o", required=True, help="output directory")
    tt.add_argument("--vocab-size", type=positive_int, default=50_000, help="tokens in all (default 50000)")
    tt.add_argument("--min-frequency", type=positive_int, default=2, help="least count of a merged pair (default 2)")
    tt.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    tt.set_defaults(func=_cmd_tokenizer_train)
