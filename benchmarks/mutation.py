"""Mutation testing of the modules that decide results: break the code on purpose, one small change
at a time (cosmic-ray's operators: comparisons, arithmetic, constants, booleans, ...), run the tests
that should cover it, and count the mutants no test kills.

Runs like a benchmark, not in CI time: in a copy of the tree (cosmic-ray edits files on disk), each
module with its own test command, after checking that command passes on the unmutated copy (a
failing baseline would count every mutant as killed). Mutants inside type annotations are skipped
before any test runs: every module here has ``from __future__ import annotations``, so an
annotation is a string nothing evaluates, and a changed one is the same program.

Each survivor is matched against ``benchmarks/mutation_survivors.toml`` (module, a piece of the
mutated line's text, operator patterns, and why): an *equivalent* mutant is the same program for
every input the module's contract allows; an *unseen* one is a real difference that no test can
observe (the reason says why). A survivor matching neither is listed as unexplained: a missing test.

Writes ``benchmarks/results/mutation.{json,md}``; a run of some modules replaces only their rows.
A module's run takes from minutes to hours (every mutant is a fresh test run): one stopped any way
resumes when started again (``--workdir``).

Needs the ``mutation`` extra: ``.venv/bin/pip install -e '.[mutation]'``.

Usage: python benchmarks/mutation.py [--modules engine/sampling.py,humanevalx/reporting/metrics.py|all]
       [--jobs 2] [--timeout SECONDS] [--memory-gb 6]
"""

from __future__ import annotations

import argparse
import ast
import concurrent.futures
import datetime as dt
import fnmatch
import json
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SURVIVORS = ROOT / "benchmarks" / "mutation_survivors.toml"

# module (under src/geex) -> the tests that should kill its mutants
MODULES = {
    "humanevalx/reporting/metrics.py": ["tests/humanevalx/reporting/test_metrics.py"],
    "engine/sampling.py": ["tests/engine/test_sampling.py"],
    "engine/sampling_params.py": ["tests/engine/test_sampling.py", "tests/test_options.py"],
    # the unit tests of the classifier first: most mutants die there in seconds (-x), before the
    # programs compiled and run for real
    "humanevalx/execution/verdict.py": [f"tests/humanevalx/execution/test_verdicts.py::{t}" for t in (
        "test_classify_run", "test_classify_compile", "test_exit_zero_without_the_proof_is_an_early_exit",
        "test_only_harness_errors_are_left_out_of_pass_at_k", "test_excerpt_keeps_the_end_of_long_output")] + ["tests/humanevalx/execution/test_verdicts.py"],
    "languages/cleanup.py": ["tests/languages"],
    "models/attention.py": ["tests/models/test_attention.py"],
    "models/formats/gguf.py": ["tests/models/formats/test_gguf.py", "tests/models/formats/test_gguf_blocks.py",
                               "tests/models/formats/test_gguf_diagnose.py"],
    "data/pack.py": ["tests/data/test_pack.py", "tests/train/test_recipe.py"],
    "train/optim.py": ["tests/train/test_optim.py", "tests/train/test_recipe.py"],
    # the unit tests first, then the hostile programs in one language (the sandbox is the same for
    # all six; the other five add minutes per surviving mutant and nothing the sandbox decides)
    "humanevalx/execution/sandbox.py": ["tests/humanevalx/execution/test_sandbox_parts.py",
                                        "tests/humanevalx/execution/test_seccomp.py",
                                        "tests/humanevalx/execution/test_sandbox.py",
                                        "tests/humanevalx/execution/test_hostile.py", "-k",
                                        "not (cpp or java or js or go or rust)"],
}
# modules whose mutants may kill every process they can see (the mutated sandbox runs as root: one
# mutant of the uid sweep kills all but the sandbox's uid): their tests run in a PID namespace of
# their own with its own /proc, so a kill(-1) or a /proc scan reaches only the test's processes
CONTAINED = {"humanevalx/execution/sandbox.py"}
# modules whose mutants are spread over this many copies of the tree run side by side: their tests
# mostly wait (programs sleeping into their limits), so more copies than cores still go faster
SHARDS = {"humanevalx/execution/sandbox.py": 3, "models/formats/gguf.py": 2}


def annotation_spans(source: str) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(start, end) positions (1-based rows, 0-based columns, as cosmic-ray records them) of every
    annotation in ``source``, or none if annotations are evaluated (no ``from __future__ import
    annotations``: then a mutated annotation may change behaviour, e.g. in pydantic models)."""
    tree = ast.parse(source)
    postponed = any(isinstance(n, ast.ImportFrom) and n.module == "__future__"
                    and any(a.name == "annotations" for a in n.names) for n in tree.body)
    if not postponed:
        return []
    found: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            a = node.args
            args = [*a.posonlyargs, *a.args, *a.kwonlyargs, *(x for x in (a.vararg, a.kwarg) if x)]
            found += [arg.annotation for arg in args if arg.annotation is not None]
            if node.returns is not None:
                found.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            found.append(node.annotation)
    return [((n.lineno, n.col_offset), (n.end_lineno, n.end_col_offset)) for n in found]


def _skip(session: Path, which) -> int:
    """Mark SKIPPED every mutant of cosmic-ray's session for which ``which(item)`` holds (it is then
    never tested, nor counted); returns how many."""
    from cosmic_ray.work_db import use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    skipped = 0
    with use_db(str(session)) as db:
        for item in db.work_items:
            if which(item):
                db.set_result(item.job_id, WorkResult(worker_outcome=WorkerOutcome.SKIPPED))
                skipped += 1
    return skipped


def _skip_annotations(session: Path, source: str) -> int:
    """Mark the mutants inside annotations SKIPPED in cosmic-ray's session; returns how many."""
    spans = annotation_spans(source)
    return _skip(session, lambda item: any(start <= tuple(item.mutations[0].start_pos)
                                           and tuple(item.mutations[0].end_pos) <= end for start, end in spans))


def run_module(module: str, tests: list[str], timeout: float | None, memory_gb: float, workdir: Path,
               refresh_tests: bool = False, only: set[tuple[int, str]] | None = None) -> dict:
    """Mutate one module in its own copy of the tree and run its tests against every mutant.

    The copy and cosmic-ray's session live in ``workdir/<module>/`` until the module is done: a run
    stopped any way (Ctrl-C, a crash, the machine going away) resumes where it stopped, on the tree
    it copied (the mutant that was on disk is put back first). A mutant may turn a loop endless
    (and growing): each test run is capped at ``memory_gb`` of data (``prlimit --data``: a runaway
    dies of MemoryError, not the machine) and ``timeout`` seconds, by default four times the
    unmutated run plus 20 s (a slow but finishing mutant is not a timeout: cosmic-ray counts a
    timeout as killed).

    ``refresh_tests`` (a resumed run): the tests copied anew from the tree as it is now, and the
    mutants that survived so far tested again with them (tests were added: what was killed stays
    killed); the commit then names both.

    ``only`` (line, operator) pairs: test just the mutants that match (the survivors of an earlier
    run, see ``retest_survivors``); the others are marked skipped before any runs."""
    top = workdir / module.replace("/", "__")
    tree = top / ROOT.name
    session, config, pristine, state = tree / "session.sqlite", tree / "cr.toml", top / "module.py", top / "state.json"
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    cr = [sys.executable, "-m", "cosmic_ray.cli"]
    if state.is_file():  # written last by a set-up that finished: resume
        commit = json.loads(state.read_text())["commit"]
        shutil.copy2(pristine, tree / "src/geex" / module)
        print(f"mutation: {module}: resuming the run on commit {commit} in {top}", file=sys.stderr)
        if refresh_tests:
            if (ROOT / "src/geex" / module).read_text() != pristine.read_text():
                raise RuntimeError(f"{module} changed since its run started: start it afresh (remove {top})")
            commit = f"{commit.split(' ')[0]} (tests {_commit()})"
            _refresh(module, tests, memory_gb, top, env)
            state.write_text(json.dumps({"commit": commit}))
    else:
        commit = _commit()  # of the tree as copied now (commits made while it runs are not in it)
        shutil.rmtree(top, ignore_errors=True)
        _copy(COPIED, tree)
        if (ROOT.parent / "shared").is_dir():  # the tests read ../shared (HumanEval-X, the tokenizer)
            (top / "shared").symlink_to(ROOT.parent / "shared")
        shutil.copy2(tree / "src/geex" / module, pristine)
        test_command = _test_command(module, tests, memory_gb)
        started = time.monotonic()
        try:
            _baseline(module, test_command, tree, env)
        except RuntimeError:
            shutil.rmtree(top, ignore_errors=True)
            raise
        if timeout is None:
            timeout = 4 * (time.monotonic() - started) + 20
        config.write_text(
            "[cosmic-ray]\n"
            f'module-path = "src/geex/{module}"\n'
            f"timeout = {timeout}\n"
            "excluded-modules = []\n"
            f"{_command_line(test_command)}\n"
            "[cosmic-ray.distributor]\n"
            'name = "local"\n')
        subprocess.run([*cr, "init", str(config), str(session)], cwd=tree, env=env, check=True)
        _skip_annotations(session, pristine.read_text())
        if only is not None:
            _skip_all_but(session, only)
        state.write_text(json.dumps({"commit": commit}))
    if SHARDS.get(module, 1) > 1:
        _exec_sharded(module, top, session, SHARDS[module])
    else:
        subprocess.run([*cr, "exec", str(config), str(session)], cwd=tree, env=env, check=True)
    result = _summary(session, module, pristine.read_text(), commit)
    shutil.rmtree(top, ignore_errors=True)
    return result


# what a copy of the tree holds: the code, its tests and the files the tests read (README, docs)
COPIED = ("src", "tests", "pyproject.toml", "README.md", "docs")


def _copy(parts: tuple[str, ...], tree: Path) -> None:
    for part in parts:
        target = tree / part
        if target.is_dir():
            shutil.rmtree(target)
        (shutil.copytree if (ROOT / part).is_dir() else shutil.copy2)(ROOT / part, target)


def _baseline(module: str, command: list[str], tree: Path, env: dict) -> None:
    """The tests must pass on the unmutated copy: a failing baseline would count every mutant killed."""
    baseline = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    if baseline.returncode != 0:
        raise RuntimeError(f"{module}: its tests fail on the unmutated tree, so every mutant would "
                           f"count as killed:\n{baseline.stdout[-3000:]}")


def _refresh(module: str, tests: list[str], memory_gb: float, top: Path, env: dict) -> None:
    """A resumed run's copies (a sharded run's too) take the tree of now (tests, and the code they may
    need beside the mutated module, which must not have changed) and their test command; the unmutated
    module passes them; the survivors so far become pending again."""
    command = _test_command(module, tests, memory_gb)
    copies = [top / ROOT.name, *sorted(top.glob(f"shard-*/{ROOT.name}"))]
    for copy in copies:  # the tree of now (the module is unchanged: checked by the caller)
        _copy(COPIED, copy)
        config_text = (copy / "cr.toml").read_text()
        (copy / "cr.toml").write_text("\n".join(
            _command_line(command) if line.startswith("test-command = ")
            else line for line in config_text.splitlines()) + "\n")
    _baseline(module, command, copies[0], {**env, "PYTHONPATH": str(copies[0] / "src")})
    again = 0
    for copy in copies:
        with sqlite3.connect(copy / "session.sqlite") as db:
            again += db.execute("DELETE FROM work_results WHERE test_outcome = 'SURVIVED'").rowcount
    print(f"mutation: {module}: {again} survivors tested again with the tests of now", file=sys.stderr)


def _test_command(module: str, tests: list[str], memory_gb: float) -> list[str]:
    """How one mutant is tested: the module's tests, stopping at the first failure, with its data
    capped (and in a PID namespace of its own for a module that kills processes)."""
    command = ["prlimit", f"--data={int(memory_gb * 2**30)}", sys.executable, "-m", "pytest", "-x", "-q",
               "-p", "no:cacheprovider", *tests]
    return ["unshare", "--pid", "--fork", "--mount-proc", *command] if module in CONTAINED else command


def _command_line(command: list[str]) -> str:
    """The ``test-command`` line of cosmic-ray's config (it splits the string as a shell would)."""
    return f"test-command = {json.dumps(shlex.join(command))}"


def _exec_sharded(module: str, top: Path, session: Path, shards: int) -> None:
    """Run the pending mutants of ``session`` in ``shards`` copies of its tree side by side, each
    owning every ``shards``-th mutant (by job id), then record every copy's results in ``session``.

    Each copy (``top/shard-I/``) is made once, with its share marked and a ``ready`` file written
    last: a stopped run resumes each copy where it stopped (the mutant left on disk put back)."""
    from cosmic_ray.work_db import use_db
    from cosmic_ray.work_item import WorkerOutcome

    tree, pristine = top / ROOT.name, top / "module.py"
    with use_db(str(session)) as db:
        pending = sorted(item.job_id for item in db.pending_work_items)
    copies = []
    for i in range(shards):
        copy = top / f"shard-{i}" / ROOT.name
        if (copy.parent / "ready").is_file():
            shutil.copy2(pristine, copy / "src/geex" / module)
        else:
            shutil.rmtree(copy.parent, ignore_errors=True)
            shutil.copytree(tree, copy, symlinks=True)
            if (top / "shared").is_symlink():
                (copy.parent / "shared").symlink_to(os.readlink(top / "shared"))
            others = set(pending) - set(pending[i::shards])
            _skip(copy / "session.sqlite", lambda item: item.job_id in others)
            (copy.parent / "ready").touch()
        copies.append(copy)
    cr = [sys.executable, "-m", "cosmic_ray.cli"]
    runs = [subprocess.Popen([*cr, "exec", str(c / "cr.toml"), str(c / "session.sqlite")], cwd=c,
                             env={**os.environ, "PYTHONPATH": str(c / "src")}) for c in copies]
    if any([run.wait() for run in runs]):
        raise RuntimeError(f"{module}: a shard's cosmic-ray run failed (rerun to resume)")
    mine = set(pending)
    with use_db(str(session)) as db:
        for c in copies:
            with use_db(str(c / "session.sqlite")) as shard:
                for item, result in shard.completed_work_items:
                    if item.job_id in mine and result.worker_outcome != WorkerOutcome.SKIPPED:
                        db.set_result(item.job_id, result)


def _skip_all_but(session: Path, only: set[tuple[int, str]]) -> None:
    """Mark SKIPPED every mutant whose (line, operator) is not in ``only``."""
    _skip(session, lambda item: (item.mutations[0].start_pos[0], item.mutations[0].operator_name) not in only)


def retest_survivors(previous: dict, timeout: float | None, memory_gb: float, workdir: Path) -> dict:
    """A module's recorded result with its survivors tested again against the tests of now (tests were
    added for them), without running every mutant again: the mutants of the survivors' lines and
    operators run (the same mutation of another occurrence on the line too, killed before and
    expected killed again); the module must be unchanged since the recorded run."""
    module = previous["module"]
    commit = previous["commit"].split(" ")[0]
    then = subprocess.run(["git", "show", f"{commit}:src/geex/{module}"], cwd=ROOT, capture_output=True, text=True)
    if then.returncode != 0 or then.stdout != (ROOT / "src/geex" / module).read_text():
        raise RuntimeError(f"{module} changed since its run at {commit} (or moved): run it afresh")
    wanted = {(s["line"], s["operator"]) for s in previous["survivors"]}
    again = run_module(module, MODULES[module], timeout, memory_gb, workdir, only=wanted)
    survivors = again["survivors"]
    result = {**previous, "killed": previous["tested"] - len(survivors), "survivors": survivors,
              "commit": f"{commit} (survivors retested with the tests of {_commit()})", "date": again["date"]}
    return _counted(result)


def _summary(session: Path, module: str, source: str, commit: str) -> dict:
    """Counts and the survivors (each with its explanation, if any), from cosmic-ray's session."""
    from cosmic_ray.work_db import use_db
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    lines = source.splitlines()
    entries = explanations()
    killed, skipped, survivors = 0, 0, []
    with use_db(str(session)) as db:
        for item, result in db.completed_work_items:
            if result.worker_outcome == WorkerOutcome.SKIPPED:
                skipped += 1
                continue
            if result.test_outcome != TestOutcome.SURVIVED:
                killed += 1
                continue
            m = item.mutations[0]
            text = lines[m.start_pos[0] - 1].strip()
            survivors.append({"line": m.start_pos[0], "text": text, "operator": m.operator_name,
                              **explain(entries, module, text, m.operator_name)})
    survivors.sort(key=lambda s: (s["line"], s["operator"]))
    tested = killed + len(survivors)
    return _counted({"module": module, "mutants": tested + skipped, "skipped_annotations": skipped,
                     "tested": tested, "killed": killed,
                     "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "commit": commit,
                     "survivors": survivors})


def _counted(r: dict) -> dict:
    """``r`` with what its survivors' explanations decide: the equivalent and unexplained counts,
    the kill rate and the score."""
    tested, killed = r["tested"], r["killed"]
    equivalent = sum(s["kind"] == "equivalent" for s in r["survivors"])
    r.update(equivalent=equivalent, unexplained=sum(s["kind"] == "unexplained" for s in r["survivors"]),
             kill_rate=killed / tested if tested else None,
             score=killed / (tested - equivalent) if tested > equivalent else None)
    return r


def explanations(path: Path = SURVIVORS) -> list[dict]:
    return tomllib.loads(path.read_text()).get("survivor", []) if path.exists() else []


def explain(entries: list[dict], module: str, text: str, operator: str) -> dict:
    """The first of ``entries`` (the survivors file's) whose module, line text and operator pattern
    match; else "unexplained"."""
    for e in entries:
        if e["module"] == module and e["line"] in text and any(
                fnmatch.fnmatchcase(operator, p) for p in e["operators"]):
            return {"kind": e["kind"], "why": e["why"]}
    return {"kind": "unexplained", "why": ""}


def explain_again(out: Path) -> None:
    """Rewrite the results with the survivors file as it is now (explanations added after a run)."""
    results = json.loads(out.with_suffix(".json").read_text())["modules"]
    entries = explanations()
    for r in results:
        for s in r["survivors"]:
            s.update(explain(entries, r["module"], s["text"], s["operator"]))
        _counted(r)
    _write(out, results)


def _write(out: Path, results: list[dict]) -> None:
    out.with_suffix(".json").write_text(json.dumps({"modules": results}, indent=2) + "\n")
    report = render(results)
    out.with_suffix(".md").write_text(report)
    print(report)


def _commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return git("rev-parse", "--short", "HEAD") + ("+changes" if git("status", "--porcelain", "src", "tests") else "")


def _pct(x: float | None) -> str:
    return f"{100 * x:.1f} %" if x is not None else "—"


def render(results: list[dict]) -> str:
    lines = ["# Mutation testing", "",
             "cosmic-ray 8.7.0's operators over each module, its tests as listed in `benchmarks/mutation.py`; "
             "mutants inside annotations skipped (never evaluated). *Kill rate*: killed ÷ tested; "
             "*score*: killed ÷ (tested − equivalent mutants). Survivors are explained in "
             "`benchmarks/mutation_survivors.toml`.", "",
             "| module | commit | mutants | skipped (annotations) | tested | killed | equivalent | unseen | "
             "unexplained | kill rate | score |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        unseen = sum(s["kind"] == "unseen" for s in r["survivors"])
        lines.append(f"| `{r['module']}` | {r['commit']} | {r['mutants']} | {r['skipped_annotations']} | "
                     f"{r['tested']} | {r['killed']} | {r['equivalent']} | {unseen} | {r['unexplained']} | "
                     f"{_pct(r['kill_rate'])} | {_pct(r['score'])} |")
    for r in results:
        if not r["survivors"]:
            continue
        lines += ["", f"## Survivors in `{r['module']}` ({r['date']})", ""]
        for s in r["survivors"]:
            why = f" — {' '.join(s['why'].split())}" if s["why"] else ""
            lines.append(f"- line {s['line']} `{s['text']}` — {s['operator'].removeprefix('core/')}: "
                         f"**{s['kind']}**{why}")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--modules", default="all", help=f"comma-separated, of: {', '.join(MODULES)} (or 'all')")
    ap.add_argument("--jobs", type=int, default=1, help="modules mutated at once, each in its own copy")
    ap.add_argument("--timeout", type=float, help="seconds a test run may take (longer: killed); "
                    "default: four times the unmutated run, plus 20")
    ap.add_argument("--memory-gb", type=float, default=6.0, help="data a test run may allocate (more: it fails)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/mutation"))
    ap.add_argument("--workdir", default=str(ROOT / ".mutation"),
                    help="where each module's copy and session live until it is done (a stopped run resumes)")
    ap.add_argument("--refresh-tests", action="store_true",
                    help="resumed runs: copy the tests anew and test the survivors so far again (after adding tests)")
    ap.add_argument("--retest-survivors", action="store_true",
                    help="test only the recorded survivors of the modules again (after tests were added for them)")
    ap.add_argument("--explain-only", action="store_true",
                    help="run nothing: match the recorded survivors to the survivors file again and rewrite")
    args = ap.parse_args()
    if args.explain_only:
        return explain_again(Path(args.out))
    modules = list(MODULES) if args.modules == "all" else args.modules.split(",")
    unknown = [m for m in modules if m not in MODULES]
    if unknown:
        ap.error(f"unknown module(s) {', '.join(unknown)}; known: {', '.join(MODULES)}")
    out = Path(args.out)
    failed = []
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        if args.retest_survivors:
            recorded = {r["module"]: r for r in json.loads(out.with_suffix(".json").read_text())["modules"]}
            missing = [m for m in modules if m not in recorded]
            if missing:
                ap.error(f"no recorded run of {', '.join(missing)} to retest")
            runs = {pool.submit(retest_survivors, recorded[m], args.timeout, args.memory_gb, Path(args.workdir)): m
                    for m in modules}
        else:
            runs = {pool.submit(run_module, m, MODULES[m], args.timeout, args.memory_gb, Path(args.workdir),
                                args.refresh_tests): m for m in modules}
        for done in concurrent.futures.as_completed(runs):
            try:  # one module's failure (its tests fail unmutated) leaves the others' results
                _record(out, done.result())  # at once: a module done is never lost to a later stop
            except Exception as e:
                failed.append(runs[done])
                print(f"mutation: {runs[done]} not measured: {e}", file=sys.stderr)
    if failed:
        raise SystemExit(f"not measured: {', '.join(failed)}")


def _record(out: Path, result: dict) -> None:
    """Write ``result`` among the results already there (read now: another run may have written
    its modules meanwhile)."""
    previous = json.loads(out.with_suffix(".json").read_text())["modules"] if out.with_suffix(".json").exists() else []
    kept = {r["module"]: r for r in previous if r["module"] in MODULES and "tested" in r}
    kept[result["module"]] = result
    _write(out, [kept[m] for m in MODULES if m in kept])


if __name__ == "__main__":
    main()
