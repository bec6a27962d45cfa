"""Mutation testing of the modules that decide results: break the code on purpose, one small change
at a time (cosmic-ray's operators: comparisons, arithmetic, constants, booleans, ...), run the tests
that should cover it, and count the mutants no test kills.

Runs like a benchmark, not in CI time: in a copy of the tree (cosmic-ray edits files on disk), each
module with its own test command. Writes ``benchmarks/results/mutation.{json,md}``: the kill rate of
each module and every surviving mutant (file, line, operator), to be explained or killed.

Needs the ``mutation`` extra: ``.venv/bin/pip install -e '.[mutation]'``.

Usage: python benchmarks/mutation.py [--modules engine/sampling.py,humanevalx/metrics.py] [--timeout 120]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# module (under src/geex) -> the tests that should kill its mutants
MODULES = {
    "humanevalx/metrics.py": ["tests/humanevalx/test_metrics.py"],
    "engine/sampling.py": ["tests/engine/test_sampling.py"],
    "humanevalx/verdict.py": ["tests/humanevalx/test_verdicts.py"],
    "languages/cleanup.py": ["tests/languages"],
    "models/attention.py": ["tests/models/test_llama.py", "tests/models/test_codegeex.py",
                            "tests/engine/test_scheduler.py"],
    "models/gguf_loader.py": ["tests/models/test_gguf_loader.py", "tests/models/test_gguf_blocks.py"],
    "data/pack.py": ["tests/data/test_pack.py", "tests/train/test_recipe.py"],
    "train/loop.py": ["tests/train/test_train.py", "tests/train/test_recipe.py"],
    "humanevalx/sandbox.py": ["tests/humanevalx/test_sandbox.py", "tests/humanevalx/test_hostile.py"],
}


def run_module(module: str, tests: list[str], tree: Path, timeout: float) -> dict:
    config = tree / "cr.toml"
    config.write_text(
        "[cosmic-ray]\n"
        f'module-path = "src/geex/{module}"\n'
        f"timeout = {timeout}\n"
        "excluded-modules = []\n"
        f'test-command = "{sys.executable} -m pytest -x -q -p no:cacheprovider {" ".join(tests)}"\n'
        "[cosmic-ray.distributor]\n"
        'name = "local"\n')
    session = tree / f"{module.replace('/', '_')}.sqlite"
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    cr = [sys.executable, "-m", "cosmic_ray.cli"]
    subprocess.run([*cr, "init", str(config), str(session)], cwd=tree, env=env, check=True)
    subprocess.run([*cr, "exec", str(config), str(session)], cwd=tree, env=env, check=True)
    return _summary(session, module)


def _summary(session: Path, module: str) -> dict:
    """Kill counts and the survivors, read from cosmic-ray's session database."""
    db = sqlite3.connect(session)
    rows = db.execute(
        "SELECT m.operator_name, m.start_pos_row, r.test_outcome FROM mutation_specs m "
        "JOIN work_results r ON m.job_id = r.job_id").fetchall()
    killed = [r for r in rows if str(r[2]).lower() != "survived"]
    survivors = sorted({(op, line) for op, line, outcome in rows if str(outcome).lower() == "survived"},
                       key=lambda x: x[1])
    return {"module": module, "mutants": len(rows), "killed": len(killed),
            "kill_rate": len(killed) / len(rows) if rows else None,
            "survivors": [{"line": line, "operator": op} for op, line in survivors]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modules", default="engine/sampling.py,humanevalx/metrics.py",
                    help=f"comma-separated, of: {', '.join(MODULES)} (or 'all')")
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds a test run (longer: killed)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/mutation"))
    args = ap.parse_args()
    modules = list(MODULES) if args.modules == "all" else args.modules.split(",")
    tree = Path(tempfile.mkdtemp(prefix="geex-mutation-"))
    try:
        for part in ("src", "tests", "pyproject.toml"):
            (shutil.copytree if (ROOT / part).is_dir() else shutil.copy2)(ROOT / part, tree / part)
        results = [run_module(m, MODULES[m], tree, args.timeout) for m in modules]
    finally:
        shutil.rmtree(tree, ignore_errors=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    out = Path(args.out)
    record = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "commit": commit,
              "modules": results}
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [f"# Mutation testing — {record['date']}, commit {commit}", "",
             "cosmic-ray's operators over each module, its tests as listed in `benchmarks/mutation.py`.", "",
             "| module | mutants | killed | kill rate |", "|---|---|---|---|"]
    for r in results:
        rate = f"{100 * r['kill_rate']:.1f} %" if r["kill_rate"] is not None else "—"
        lines.append(f"| `{r['module']}` | {r['mutants']} | {r['killed']} | {rate} |")
    for r in results:
        if r["survivors"]:
            lines += ["", f"## Survivors in `{r['module']}`", ""]
            lines += [f"- line {s['line']}: {s['operator']}" for s in r["survivors"]]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
