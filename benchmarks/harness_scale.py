"""Programs a second on one Ray node and on two, against the same evaluation without Ray, and what
Ray costs per program.

This machine is one host: two Ray nodes on it share its cores, so two nodes here show the overhead
of spreading, not a speed-up; the rate per slot is what adds up when each node is a machine of its
own. Each run evaluates the same reference solutions afresh (``--no-cache``, a new OUT), with the
same number of slots S:
- ``local``: ``evaluate`` without Ray, S threads;
- ``ray-1``: one Ray node of S CPUs (``ray start --head``);
- ``ray-2``: two Ray nodes of S/2 CPUs each (a head and ``ray start --address``).
Ray's overhead per program = (wall of the Ray run - wall of ``local``) x S / programs, against the
median program's own wall time (compile + run, from results.jsonl); the wall includes joining the
cluster and each node's toolchain check.

Usage: PYTHONPATH=src python benchmarks/harness_scale.py [--languages python,js,...] [--slots 2]
Writes benchmarks/results/harness_scale.{json,md} (date, commit, machine).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class LocalRay:
    """Ray nodes on this machine, each ``ray start --block`` in a session of its own."""

    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.temp = Path(tempfile.mkdtemp(prefix="geex-ray-"))
        self.env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
                    "RAY_USAGE_STATS_ENABLED": "0"}
        self.procs: list[subprocess.Popen] = []

    def node(self, cpus: int) -> None:
        where = ([f"--address=127.0.0.1:{self.port}"] if self.procs else
                 ["--head", f"--port={self.port}", "--include-dashboard=false", f"--temp-dir={self.temp}"])
        self.procs.append(subprocess.Popen(
            [str(Path(sys.executable).with_name("ray")), "start", *where, f"--num-cpus={cpus}",
             "--object-store-memory=100000000", "--disable-usage-stats", "--block"],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True))
        time.sleep(8)  # joined (the evaluation then finds every node in ray.nodes())

    def stop(self) -> None:
        for p in reversed(self.procs):
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        shutil.rmtree(self.temp, ignore_errors=True)


def evaluate(out: Path, languages: str, slots: int, env: dict, ray: str | None) -> dict:
    cmd = [sys.executable, "-m", "geex", "humanevalx", "evaluate", "canonical", "--out", str(out), "--languages",
           languages, "--no-cache", "--quiet", "--workers", str(slots), *(["--ray", ray] if ray else [])]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    passed = sum(r["verdict"] == "passed" for r in rows)
    per_program = statistics.median(r["compile_s"] + r["run_s"] for r in rows)
    nodes = sorted({r.get("node") or "this machine" for r in rows})
    return {"programs": len(rows), "passed": passed, "wall_s": round(wall, 2),
            "programs_per_s": round(len(rows) / wall, 2), "median_program_s": round(per_program, 4),
            "nodes": len(nodes)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--languages", default="python,cpp,java,js,go,rust")
    ap.add_argument("--slots", type=int, default=2, help="sandbox slots in every run (default 2)")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="geex-scale-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    runs = {"local": evaluate(work / "local", args.languages, args.slots, env, None)}
    for name, nodes in (("ray-1", [args.slots]), ("ray-2", [args.slots // 2, args.slots - args.slots // 2])):
        cluster = LocalRay()
        try:
            for cpus in nodes:
                cluster.node(cpus)
            runs[name] = evaluate(work / name, args.languages, args.slots, {**cluster.env, **env},
                                  f"127.0.0.1:{cluster.port}")
        finally:
            cluster.stop()
    shutil.rmtree(work, ignore_errors=True)
    base = runs["local"]
    for name in ("ray-1", "ray-2"):
        r = runs[name]
        r["overhead_per_program_s"] = round((r["wall_s"] - base["wall_s"]) * args.slots / r["programs"], 4)
        r["overhead_of_median_program"] = round(r["overhead_per_program_s"] / base["median_program_s"], 4)
        r["programs_per_s_per_node"] = round(r["programs_per_s"] / r["nodes"], 2)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    result = {"benchmark": "harness_scale", "date": dt.date.today().isoformat(), "commit": commit,
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
              "languages": args.languages, "slots": args.slots, "runs": runs}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "harness_scale.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# Harness on Ray — {result['date']}, commit {commit}, {result['machine']}", "",
             f"Reference solutions of {args.languages}, {args.slots} slots in every run, no verdict cache. "
             "Two nodes share this machine's cores: what they show is the overhead.", "",
             "| run | nodes | programs | wall s | programs/s | per node | Ray overhead / program | of the median program |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in runs.items():
        over = (f"{1e3 * r['overhead_per_program_s']:.1f} ms", f"{100 * r['overhead_of_median_program']:.1f} %") \
            if "overhead_per_program_s" in r else ("—", "—")
        lines.append(f"| {name} | {r['nodes']} | {r['programs']} ({r['passed']} passed) | {r['wall_s']} | "
                     f"{r['programs_per_s']} | {r.get('programs_per_s_per_node', '—')} | {over[0]} | {over[1]} |")
    lines += ["", f"Median program (compile + run): {1e3 * base['median_program_s']:.0f} ms."]
    (args.out / "harness_scale.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
