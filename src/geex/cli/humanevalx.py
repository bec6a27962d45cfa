"""``geex humanevalx evaluate|report|generate|run``: the benchmark (``geex.humanevalx``). One module
because ``run`` is ``generate`` then ``evaluate`` into one output directory, and the three
interrupt reports count the same resumable files' complete lines (``_complete_lines``)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from geex.cli.options import (
    _add_dataset_options,
    _add_device_options,
    _add_sampling_options,
    _add_speculate_option,
    _device_and_dtype,
)
from geex.engine.sampling_params import SamplingParams
from geex.errors import UserError
from geex.files import read_log
from geex.humanevalx.config import EvalConfig, GenerateConfig, PromptStyle
from geex.options import add_options, from_args, k_values, positive_int


def _evaluate_out(args: argparse.Namespace) -> Path:
    from geex.humanevalx.config import CANONICAL

    if args.out is not None:
        return Path(args.out)
    if args.samples == CANONICAL:
        return Path("geex-out") / "humanevalx" / ("canonical-original" if args.original else "canonical")
    return Path(args.samples).with_name(Path(args.samples).name.split(".")[0] + "-eval")


def _cmd_evaluate(args: argparse.Namespace) -> int:
    return _evaluate(args, args.samples, _evaluate_out(args))


def _evaluate(args: argparse.Namespace, samples: str, out: Path) -> int:
    """Evaluate ``samples`` into ``out`` with the evaluation options of ``args`` (``evaluate``, ``run``)."""
    from geex.humanevalx.evaluate import evaluate
    from geex.languages import parse_languages

    languages = parse_languages(args.languages) if args.languages else None
    cfg = from_args(EvalConfig, args, samples=samples, out_dir=out, languages=languages, dataset=args.dataset,
                    original=args.original, progress=not args.quiet)
    report = evaluate(cfg)
    from geex.humanevalx.reporting.run_report import to_markdown

    print(to_markdown(report))
    print(f"wrote {out / 'results.jsonl'}, {out / 'report.json'}, {out / 'report.md'}", file=sys.stderr)
    if report["harness_errors"]:
        print(f"WARNING: {report['harness_errors']} harness errors (not counted in pass@k); "
              "run `geex doctor`", file=sys.stderr)
        return 3
    return 0


def _generate_samples(args: argparse.Namespace, out: Path) -> Path | None:
    """The samples file (None in a torchrun rank other than 0, whose share is made and merged by rank 0)."""
    from geex.humanevalx.backends import make_backend
    from geex.humanevalx.generate import parse_pairs, run_generate
    from geex.humanevalx.parallel import generate_share, merge_when_complete, torchrun_share
    from geex.languages import HUMANEVALX_LANGUAGES, parse_languages

    if args.task == "translation" and not args.pairs:
        raise UserError("--task translation needs --pairs (SRC:TGT,... or all)")
    style = from_args(PromptStyle, args)
    if style.name != "chat" and style.system is not None:
        raise UserError("--system-prompt is for --prompt-style chat")
    if style.name != "few-shot" and "shots" in vars(args):
        raise UserError("--shots is for --prompt-style few-shot")
    cfg = from_args(
        GenerateConfig, args, style=style, params=from_args(SamplingParams, args),
        languages=parse_languages(args.languages) if args.languages else list(HUMANEVALX_LANGUAGES),
        pairs=parse_pairs(args.pairs) if args.pairs else [], dataset=args.dataset, original=args.original)
    device, dtype = _device_and_dtype(args)
    backend_args = {"name": args.backend, "model": args.model, "dtype": dtype if args.backend != "openai" else None,
                    "quantize": args.quantize, "base_url": args.base_url, "concurrency": args.concurrency,
                    "speculate": args.speculate}
    if args.devices:
        return _generate_on_devices(args, cfg, backend_args, out)
    if getattr(args, "ray", None):
        if args.backend != "openai":
            from geex.humanevalx.ray_generate import run_on_ray

            return run_on_ray(cfg, backend_args, device, args.ray, out, progress=not args.quiet)
        if args.hx_command == "generate":  # (run --ray with a server: the server generates, Ray evaluates)
            raise UserError("--ray generates with the native and hf backends (an OpenAI-compatible server has its own)")
    share = torchrun_share()
    if share is not None:  # one rank of several: its share, then rank 0 puts the file together
        if device.startswith("cuda"):  # the rank's local GPU, also as the current device (CUDA graphs)
            import torch

            device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
            torch.cuda.set_device(device)
        generate_share(cfg, make_backend(device=device, **backend_args), out, share)
        return merge_when_complete(cfg, out) if share.rank == 0 else None
    backend = make_backend(device=device, api_key=os.environ.get("OPENAI_API_KEY"), **backend_args)
    return run_generate(cfg, backend, out, progress=not args.quiet)


def _generate_on_devices(args: argparse.Namespace, cfg, backend_args: dict, out: Path) -> Path:
    from geex.devices import resolve_device
    from geex.humanevalx.parallel import run_on_devices

    if args.backend == "openai":
        raise UserError("--devices is for the native and hf backends (an OpenAI-compatible server has its own)")
    if args.device != "cpu":
        raise UserError("give --device (one) or --devices (several), not both")
    devices = [resolve_device(d, "--devices") for d in args.devices.split(",") if d.strip()]
    if not devices:
        raise UserError("--devices needs a comma-separated list, e.g. cuda:0,cuda:1")
    return run_on_devices(cfg, backend_args, devices, out, progress=not args.quiet)


def _cmd_hx_generate(args: argparse.Namespace) -> int:
    out = _generate_samples(args, Path(args.out))
    if out is not None:
        print(f"wrote {out}", file=sys.stderr)
    return 0


def _cmd_hx_run(args: argparse.Namespace) -> int:
    out_dir = Path(args.out)
    samples = _generate_samples(args, out_dir / "samples.jsonl")
    if samples is None:  # a torchrun rank other than 0: rank 0 evaluates
        return 0
    return _evaluate(args, str(samples), out_dir)


PAPER_TEMPERATURES = (0.2, 0.8)  # pass@1 from the first, pass@10/100 from the second


def _cmd_hx_paper(args: argparse.Namespace) -> int:
    """The paper's protocol: generation and translation at T = 0.2 and 0.8 (each a ``run`` in its own
    folder, resumable), then the paper's table and the side-by-side report."""
    from geex.humanevalx.parallel import torchrun_share
    from geex.humanevalx.reporting.paper import paper_table, write_paper_table
    from geex.humanevalx.reporting.report import summarize_runs

    out, status, dirs = Path(args.out), 0, {}
    for task in ("generation", "translation"):
        for t in PAPER_TEMPERATURES:
            run = out / f"{task}-t{t}"
            dirs.setdefault(t, []).append(run)
            print(f"== {task}, temperature {t}: {run}", file=sys.stderr)
            step = argparse.Namespace(**{**vars(args), "task": task, "temperature": t, "greedy": False,
                                         "pairs": args.pairs if task == "translation" else None,
                                         "languages": args.languages if task == "generation" else None,
                                         "hx_command": "run"})
            samples = _generate_samples(step, run / "samples.jsonl")
            if samples is not None:  # (a torchrun rank other than 0 leaves the evaluation to rank 0)
                status = max(status, _evaluate(step, str(samples), run))
    share = torchrun_share()
    if share is not None and share.rank != 0:  # rank 0 writes the table
        return 0
    table = paper_table(dirs, args.bootstrap)
    write_paper_table(table, out, f"HumanEval-X, {args.n} samples a problem: the paper's protocol")
    summarize_runs([d for runs in dirs.values() for d in runs], out / "report", ks=args.ks,
                   iterations=args.bootstrap)
    print((out / "paper.md").read_text())
    print(f"wrote {out / 'paper.md'}, {out / 'paper.json'} and {out / 'report'}", file=sys.stderr)
    return status


def _cmd_hx_report(args: argparse.Namespace) -> int:
    from geex.humanevalx.reporting.report import summarize_runs

    out = Path(args.out)
    summary = summarize_runs(args.dirs, out, ks=args.k, budgets=args.budgets, iterations=args.bootstrap)
    print((out / "summary.md").read_text())
    print(f"wrote {out / 'summary.md'}, {out / 'summary.json'} and {len(summary['figures'])} figures",
          file=sys.stderr)
    return 0


def _complete_lines(path: Path) -> int:
    """Lines of a resumable JSONL output that a re-run keeps (a torn last line is dropped then)."""
    try:
        return len(read_log(path, repair=False).values)
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


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``geex humanevalx`` and its subcommands."""
    hx = subparsers.add_parser("humanevalx", help="the HumanEval-X benchmark (evaluate samples)",
                              description="The multilingual HumanEval-X benchmark.")
    hx_sub = hx.add_subparsers(dest="hx_command", metavar="COMMAND", required=True)
    _add_evaluate(hx_sub)
    _add_report(hx_sub)
    for name in ("generate", "run"):
        _add_generate(hx_sub, name)
    _add_paper(hx_sub)


def _add_model_options(p: argparse.ArgumentParser) -> None:
    """Which model generates, and through what (``generate``, ``run``, ``paper``)."""
    p.add_argument("--model", help="native: smollm2-135m-instruct (default), a preset, a directory, a .gguf "
                   "file or a Hub id; hf: a transformers directory or Hub id; openai: the served model's name")
    p.add_argument("--backend", choices=("native", "hf", "openai"), default="native",
                   help="native (geex's engine, default), hf (transformers), openai (an OpenAI-compatible "
                        "/v1/completions endpoint; /v1/chat/completions with --prompt-style chat)")
    p.add_argument("--base-url", help="openai: the endpoint's base URL, e.g. http://localhost:8000/v1 "
                   "($OPENAI_API_KEY is sent if set)")
    p.add_argument("--concurrency", type=positive_int, default=8, help="openai: requests at a time (default 8)")


def _add_where_options(p: argparse.ArgumentParser) -> None:
    """Where the model runs: one device, or several (``--devices``; one a rank under torchrun)."""
    _add_device_options(p)
    p.add_argument("--devices", metavar="LIST", help="several devices at once, one process each (e.g. "
                   "cuda:0,cuda:1): the same samples file as one device makes; under torchrun each rank "
                   "takes its share (--device cuda: the rank's local GPU)")


def _add_evaluation_options(p: argparse.ArgumentParser, *more: str) -> None:
    """How samples are evaluated: the options ``evaluate`` and ``run`` share, and ``more`` of
    ``EvalConfig``'s fields (all declared there)."""
    add_options(p, EvalConfig, ("workers", "ks", "timeout_s", "use_cache", "ray", *more))


def _add_evaluate(hx_sub: argparse._SubParsersAction) -> None:
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
    _add_evaluation_options(ev, "clean")
    ev.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    _add_dataset_options(ev)
    ev.set_defaults(func=_cmd_evaluate, kept=_kept_evaluate)


def _add_paper(hx_sub: argparse._SubParsersAction) -> None:
    pp = hx_sub.add_parser(
        "paper", help="the paper's protocol in one command: n samples at T=0.2 and 0.8, generation and "
                      "translation, the pass@1/10/100 table",
        description="CodeGeeX's protocol: every problem of the six languages and every translation pair sampled "
                    "n times (default 200) at temperature 0.2 (for pass@1) and 0.8 (for pass@10 and pass@100), "
                    "top-p 0.95, each evaluated in the sandbox; then OUT/paper.md (the paper's table with 95% "
                    "bootstrap intervals) and OUT/report/ (runs side by side, budget allocation). Each of the "
                    "four runs is a `run` in OUT/<task>-t<T>; re-running the same command resumes all of it. "
                    "--devices, torchrun or --ray spread it over GPUs and machines.")
    _add_model_options(pp)
    pp.add_argument("--languages", "-l", help="generation: comma-separated subset (default: all six)")
    pp.add_argument("--pairs", default="all", help="translation: SRC:TGT,... or 'all' (default: the 30 pairs)")
    pp.add_argument("--n", "-n", type=positive_int, default=200, help="samples a problem at each temperature "
                    "(default 200, the paper's)")
    add_options(pp, GenerateConfig, ("limit", "batch_size", "max_new_tokens", "seed"))
    add_options(pp, SamplingParams, ("top_p",))
    _add_speculate_option(pp)
    _add_where_options(pp)
    pp.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    _add_dataset_options(pp)
    pp.add_argument("--out", "-o", required=True, help="output directory: a folder a run, paper.md, report/")
    _add_evaluation_options(pp)
    pp.add_argument("--bootstrap", type=positive_int, default=1000, help="bootstrap resamples (default 1000)")
    pp.set_defaults(func=_cmd_hx_paper, kept=lambda args: f"the runs so far are kept in {args.out}")


def _add_report(hx_sub: argparse._SubParsersAction) -> None:
    rp = hx_sub.add_parser(
        "report", help="evaluated runs side by side: tables with confidence intervals, figures, budget allocation",
        description="Summarize evaluated runs (directories with results.jsonl, e.g. from `geex humanevalx run`): "
                    "pass@k per language and translation pair with 95% bootstrap intervals over problems, the "
                    "translation matrix, per-problem pass rates across languages, verdicts, and the multilingual "
                    "budget allocation. Writes OUT/summary.md, OUT/summary.json and PNG figures.")
    rp.add_argument("dirs", nargs="+", help="evaluation directories")
    rp.add_argument("--out", "-o", required=True, help="output directory")
    rp.add_argument("--k", type=k_values, default=(1, 10, 100), help="pass@k values (default: 1,10,100)")
    rp.add_argument("--budgets", type=k_values, default=(1, 2, 3, 4, 6, 8, 12),
                    help="total samples per problem for budget allocation (default: 1,2,3,4,6,8,12)")
    rp.add_argument("--bootstrap", type=positive_int, default=1000, help="bootstrap resamples (default 1000)")
    rp.set_defaults(func=_cmd_hx_report)


def _add_generate(hx_sub: argparse._SubParsersAction, name: str) -> None:
    """``generate`` (samples only) or ``run`` (samples, then their evaluation)."""
    what = ("generate a model's samples (resumable JSONL)" if name == "generate" else
            "generate samples, then evaluate them (one output directory)")
    gp = hx_sub.add_parser(
        name, help=what,
        description=f"{what[0].upper()}{what[1:]}. Prompts as CodeGeeX's (generation: the language tag line + "
                    "prompt; translation: CodeGeeX's translation format); the language's stop rule ends a "
                    "sample while it is decoded. --prompt-style chat asks instruct models through their chat "
                    "template instead, and few-shot primes with solved examples. Re-running the same command resumes: the finished file "
                    "equals an uninterrupted run's. Format: docs/formats.md.")
    _add_model_options(gp)
    add_options(gp, GenerateConfig, ("task",))
    gp.add_argument("--languages", "-l", help="generation: comma-separated subset (default: all six)")
    gp.add_argument("--pairs", help="translation: SRC:TGT,... or 'all' (the 30 ordered pairs)")
    add_options(gp, PromptStyle, ("name", "shots", "system"))
    add_options(gp, GenerateConfig, ("n", "limit", "batch_size", "max_new_tokens"))
    _add_sampling_options(gp)
    add_options(gp, GenerateConfig, ("seed",))
    _add_speculate_option(gp)
    _add_where_options(gp)
    gp.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    _add_dataset_options(gp)
    if name == "generate":
        add_options(gp, EvalConfig, ("ray",))
        gp.add_argument("--out", "-o", required=True, help="samples file (JSONL) to write or resume")
        gp.set_defaults(func=_cmd_hx_generate, kept=_kept_hx_generate)
    else:
        gp.add_argument("--out", "-o", required=True, help="output directory: samples.jsonl, results.jsonl, "
                        "report.json, report.md")
        _add_evaluation_options(gp)
        gp.set_defaults(func=_cmd_hx_run, kept=_kept_hx_run)
