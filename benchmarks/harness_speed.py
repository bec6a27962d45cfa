"""How fast does the harness evaluate HumanEval-X, against a naive one-subprocess-per-sample baseline?

For each language, the reference solutions of an evenly spaced subset of tasks are timed one at a
time (median wall seconds per sample, compile + run):
- geex: the real runner, sandboxed (bubblewrap + uid + rlimits), with its caches (C++ precompiled
  header + gold, prebuilt Rust crates with plain rustc, Go compile+link against prebuilt packages,
  long-lived javac);
- naive: the original harness's recipe, one plain subprocess chain per sample, *unsandboxed*
  (python3 file; g++ -std=c++11 + ./a.out; javac + java; node; go test; cargo test in one shared
  crate with prebuilt dependencies) — so the comparison favours the baseline.
Then all 984 reference solutions are evaluated end to end (``evaluate``, all cores, no cache).

Writes benchmarks/results/harness_speed.{json,md} with date, commit and machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from geex.humanevalx.assembly import assemble
from geex.humanevalx.execution.program import Program
from geex.humanevalx.dataset import load_language
from geex.humanevalx.evaluate import EvalConfig, evaluate
from geex.humanevalx.execution.runners import RunContext, get_runner
from geex.humanevalx.execution.runners.go import GOPATH
from geex.humanevalx.execution.runners.js import node_modules
from geex.humanevalx.execution.runners.rust import CRATES, REGISTRY
from geex.humanevalx.execution.sandbox import Sandbox, detect_isolation
from geex.humanevalx.execution.verdict import Verdict
from geex.languages import HUMANEVALX_LANGUAGES

ROOT = Path(__file__).resolve().parents[1]


def _run(argv: list[str], cwd: Path, env: dict | None = None, timeout: float = 120) -> bool:
    r = subprocess.run(argv, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, timeout=timeout)
    return r.returncode == 0


class NaiveRust:
    """The original's recipe: one cargo crate shared by all samples, ``cargo check`` + ``cargo test``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "src" / "bin").mkdir(parents=True)
        (root / ".cargo").mkdir()
        deps = "\n".join(f'{k} = "{v}"' for k, v in CRATES.items())
        (root / "Cargo.toml").write_text(f'[package]\nname = "rust"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\n{deps}\n')
        (root / ".cargo" / "config.toml").write_text(
            f'[source.crates-io]\nreplace-with = "debian-packages"\n[source.debian-packages]\ndirectory = "{REGISTRY}"\n[net]\noffline = true\n'
        )
        (root / "src" / "bin" / "warm.rs").write_text("use rand::Rng; use regex::Regex; use md5;\nfn main(){}\n")
        _run(["cargo", "build", "--bin", "warm"], root, timeout=900)  # dependencies, outside timing
        self.n = 0

    def __call__(self, program: Program, workdir: Path) -> bool:
        self.n += 1
        name = f"rust_{self.n}"
        (self.root / "src" / "bin" / f"{name}.rs").write_text(program.source)
        # the original: `cargo check --bin rust_N --message-format json`, then `cargo test --bin rust_N`
        return (_run(["cargo", "check", "--bin", name, "--message-format", "json"], self.root)
                and _run(["cargo", "test", "--bin", name], self.root))


def naive_runner(lang: str, scratch: Path):
    """A callable(program, workdir) -> passed, doing what the original harness did."""
    if lang == "python":
        def py(p: Program, w: Path) -> bool:
            src = p.source if "import numpy" in p.source else "import numpy\nimport numpy as np\n" + p.source
            (w / "main.py").write_text(src)
            return _run([sys.executable, "main.py"], w)
        return py
    if lang == "cpp":
        def cpp(p: Program, w: Path) -> bool:
            (w / "test.cpp").write_text(p.source)
            libs = ["-lcrypto", "-lssl"] if "openssl" in p.source else []
            return _run(["g++", "-std=c++11", "test.cpp", *libs], w) and _run(["./a.out"], w)
        return cpp
    if lang == "java":
        def java(p: Program, w: Path) -> bool:
            (w / "Main.java").write_text(p.source)
            return _run(["javac", "Main.java"], w) and _run(["java", "-cp", ".", "Main"], w)
        return java
    if lang == "js":
        def js(p: Program, w: Path) -> bool:
            (w / "test.js").write_text(p.source)
            return _run(["node", "test.js"], w, {"NODE_PATH": str(node_modules())})
        return js
    if lang == "go":
        gocache = scratch / "gocache"  # warm after the first sample, as a long-lived box would be
        def go(p: Program, w: Path) -> bool:
            (w / "main_test.go").write_text(p.source)
            env = {"GO111MODULE": "off", "GOPATH": str(GOPATH), "GOCACHE": str(gocache)}
            return _run(["go", "test", "main_test.go"], w, env)
        go_warm = Path(tempfile.mkdtemp(dir=scratch))
        (go_warm / "main_test.go").write_text(
            'package main\nimport (\n"testing"\n"github.com/stretchr/testify/assert"\n)\n'
            "func TestW(t *testing.T) { assert.Equal(t, 1, 1) }\n"
        )
        go(Program(None, (go_warm / "main_test.go").read_text()), go_warm)  # type: ignore[arg-type]
        return go
    if lang == "rust":
        return NaiveRust(scratch / "rust-crate")
    raise ValueError(lang)


def time_language(lang: str, tasks_per_language: int, dataset: str | None, scratch: Path) -> dict:
    problems = load_language(next(l for l in HUMANEVALX_LANGUAGES if l.name == lang), dataset)
    step = max(1, len(problems) // tasks_per_language)
    chosen = problems[::step][:tasks_per_language]
    programs = [assemble(p, p.canonical_solution) for p in chosen]

    runner = get_runner(lang)
    sandbox = Sandbox(isolation=detect_isolation())
    runner.prepare(sandbox)
    jobs = Path(tempfile.mkdtemp(prefix="bench-", dir=scratch))
    jobs.chmod(0o755)
    ctx = RunContext(sandbox, jobs, slot=0, timeout_s=30)
    geex_times, geex_ok = [], 0
    try:
        runner.execute(programs[0], ctx)  # warm-up (starts the javac server once, as a run would)
        for program in programs:
            t0 = time.monotonic()
            outcome = runner.execute(program, ctx)
            geex_times.append(time.monotonic() - t0)
            geex_ok += outcome.verdict is Verdict.PASSED
    finally:
        ctx.close()

    naive = naive_runner(lang, scratch)
    naive_times, naive_ok = [], 0
    for program in programs:
        w = Path(tempfile.mkdtemp(dir=scratch))
        t0 = time.monotonic()
        naive_ok += naive(program, w)
        naive_times.append(time.monotonic() - t0)
        shutil.rmtree(w, ignore_errors=True)
    g, n = statistics.median(geex_times), statistics.median(naive_times)
    return {
        "tasks": len(programs), "geex_median_s": round(g, 4), "naive_median_s": round(n, 4),
        "speedup": round(n / g, 2), "geex_passed": geex_ok, "naive_passed": naive_ok,
        "geex_mean_s": round(statistics.mean(geex_times), 4), "naive_mean_s": round(statistics.mean(naive_times), 4),
    }


def _machine() -> dict:
    cpu = ""
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform()}


def _commit() -> str:
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True)
    return r.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", help="directory of humaneval_<lang>.jsonl.gz (default: $GEEX_HUMANEVALX)")
    ap.add_argument("--tasks", type=int, default=40, help="tasks per language for the per-sample timings")
    ap.add_argument("--languages", default=",".join(l.name for l in HUMANEVALX_LANGUAGES))
    ap.add_argument("--skip-full", action="store_true", help="skip the end-to-end run of all 984 references")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "harness_speed"))
    ap.add_argument("--baseline", help="a results .json of this script at another commit, measured on the same "
                                       "machine just before: its geex medians become the 'before' column")
    args = ap.parse_args()
    baseline = json.loads(Path(args.baseline).read_text()) if args.baseline else None

    scratch = Path(tempfile.mkdtemp(prefix="geex-bench-"))
    scratch.chmod(0o755)
    results: dict = {
        "benchmark": "harness_speed", "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": _commit(), "machine": _machine(), "isolation": detect_isolation().value,
        "per_sample": {}, "full_run": None,
    }
    try:
        for lang in args.languages.split(","):
            print(f"timing {lang} …", file=sys.stderr, flush=True)
            results["per_sample"][lang] = time_language(lang, args.tasks, args.dataset, scratch)
        if not args.skip_full:
            print("evaluating all reference solutions end to end …", file=sys.stderr, flush=True)
            t0 = time.monotonic()
            report = evaluate(EvalConfig(samples="canonical", out_dir=scratch / "full", dataset=args.dataset,
                                         use_cache=False, progress=False))
            results["full_run"] = {
                "samples": report["overall"]["n_samples"], "passed": report["overall"]["verdicts"]["passed"],
                "workers": report["workers"], "wall_s": round(time.monotonic() - t0, 1),
            }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    if baseline is not None:
        results["baseline"] = {k: baseline[k] for k in ("commit", "date", "per_sample", "full_run")}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        f"# Harness speed — {results['date']}, commit {results['commit']}",
        "",
        f"Machine: {results['machine']['cpu']}, {results['machine']['cores']} cores; isolation {results['isolation']}.",
        "Per-sample wall time (compile + run) of reference solutions, one at a time; naive = the original's",
        "recipe, one unsandboxed subprocess chain per sample, measured in the same run.",
        "",
        "| language | tasks | geex median s | naive median s | speed-up | geex passed | naive passed |",
        "|---|---|---|---|---|---|---|",
    ]
    for lang, r in results["per_sample"].items():
        lines.append(f"| {lang} | {r['tasks']} | {r['geex_median_s']:.3f} | {r['naive_median_s']:.3f} | "
                     f"{r['speedup']:.1f}× | {r['geex_passed']} | {r['naive_passed']} |")
    if results["full_run"]:
        f = results["full_run"]
        lines += ["", f"End to end: {f['samples']} reference solutions, {f['passed']} passed, "
                      f"{f['workers']} workers, **{f['wall_s']} s** wall (no cache)."]
    if baseline is not None:
        b = results["baseline"]
        lines += ["", f"Against commit {b['commit']} (measured on this machine just before, {b['date']}):", "",
                  "| language | before median s | now median s | cost per sample |", "|---|---|---|---|"]
        for lang, r in results["per_sample"].items():
            if lang in b["per_sample"]:
                old = b["per_sample"][lang]["geex_median_s"]
                lines.append(f"| {lang} | {old:.3f} | {r['geex_median_s']:.3f} | "
                             f"{100 * (r['geex_median_s'] / old - 1):+.1f} % |")
        if results["full_run"] and b.get("full_run"):
            lines += ["", f"End to end before: {b['full_run']['wall_s']} s; now {results['full_run']['wall_s']} s."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
