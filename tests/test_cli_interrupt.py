"""Ctrl-C (SIGINT) on the long-running commands, sent to a real ``geex`` process: "stopping…" at
once, then one line saying what was kept and the exact command that resumes, exit status 130, and
no traceback; the command it names does resume."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest


class Geex:
    """A ``geex`` subprocess whose stderr lines are collected with the time they arrived."""

    def __init__(self, args: list[str], cwd: Path, env: dict) -> None:
        self.args = args
        self.proc = subprocess.Popen([sys.executable, "-m", "geex", *args], cwd=cwd, env=env, text=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.lines: list[tuple[float, str]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def wait_for(self, condition: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.proc.poll() is not None:
                pytest.fail(f"geex ended ({self.proc.returncode}) before the test could interrupt it: {self.stderr}")
            if time.monotonic() > deadline:
                self.proc.kill()
                pytest.fail(f"timed out waiting to interrupt geex: {self.stderr}")
            time.sleep(0.05)

    def interrupt(self, within: float) -> tuple[int, float]:
        """SIGINT; the exit status, and how long "stopping…" took to appear."""
        sent = time.monotonic()
        self.proc.send_signal(signal.SIGINT)
        try:
            code = self.proc.wait(timeout=within)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"geex did not end within {within} s of Ctrl-C: {self.stderr}")
        self._reader.join(timeout=10)
        stopping = [t for t, line in self.lines if line.startswith("stopping…")]
        assert stopping, self.stderr
        return code, stopping[0] - sent

    @property
    def stderr(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def report(self) -> tuple[str, list[str]]:
        """The final line's "what was kept", and the resume command it names (as argv)."""
        last = self.lines[-1][1]
        prefix = "geex: interrupted: "
        assert last.startswith(prefix) and "; resume with: " in last, self.stderr
        kept, command = last[len(prefix):].split("; resume with: ")
        return kept, shlex.split(command)


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def _check_report(g: Geex, code: int, took: float) -> tuple[str, list[str]]:
    assert code == 130, g.stderr
    assert took < 2.0, f"'stopping…' came {took:.1f} s after Ctrl-C"
    assert "Traceback" not in g.stderr
    kept, command = g.report()
    assert command == ["geex", *g.args]  # the exact command, quoted for the shell
    return kept, command


def _resume(command: list[str], cwd: Path, env: dict) -> subprocess.CompletedProcess:
    assert command[0] == "geex"
    return subprocess.run([sys.executable, "-m", "geex", *command[1:]], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture
def env(tmp_path, dataset_dir) -> dict:
    return {**os.environ, "GEEX_HUMANEVALX": str(dataset_dir), "GEEX_CACHE": str(tmp_path / "cache")}


def test_evaluate_says_stopping_at_once_then_keeps_the_results_done(tmp_path, env):
    # with one worker the samples run in file order: two quick ones, then one that loops until the
    # timeout (Ctrl-C comes while it runs), then a quick one
    bodies = {0: "    return False\n", 1: "    return []\n", 2: "    while True:\n        pass\n", 3: "    return 1\n"}
    samples = tmp_path / "my samples.jsonl"  # a space: the resume command must quote it
    samples.write_text("".join(json.dumps({"task_id": f"Python/{i}", "completion": b}) + "\n"
                               for i, b in bodies.items()))
    out = tmp_path / "eval"
    # --timeout 3: Ctrl-C comes ~0.5 s into the looping sample; the resume runs it to its timeout
    args = ["humanevalx", "evaluate", str(samples), "--out", str(out), "--timeout", "3", "-j", "1", "--no-cache", "-q"]
    g = Geex(args, tmp_path, env)
    g.wait_for(lambda: len(_lines(out / "results.jsonl")) == 2, timeout=120)
    time.sleep(0.5)  # into the looping sample
    code, took = g.interrupt(within=20)
    kept, command = _check_report(g, code, took)
    records = [json.loads(x) for x in _lines(out / "results.jsonl")]
    assert kept == f"2 results kept in {out / 'results.jsonl'}"
    assert [r["task_id"] for r in records] == ["Python/0", "Python/1"]

    again = _resume(command, tmp_path, env)
    assert again.returncode == 0, again.stderr
    assert "resuming: 2 of 4 samples already in" in again.stderr
    records = [json.loads(x) for x in _lines(out / "results.jsonl")]
    assert sorted(r["task_id"] for r in records) == ["Python/0", "Python/1", "Python/2", "Python/3"]


def test_humanevalx_generate_keeps_the_finished_batches(tmp_path, env):
    out = tmp_path / "samples.jsonl"
    args = ["humanevalx", "generate", "--languages", "python", "--limit", "6", "--batch-size", "1",
            "--max-new-tokens", "24", "--greedy", "-q", "--out", str(out)]
    g = Geex(args, tmp_path, env)
    g.wait_for(lambda: len(_lines(out)) >= 2, timeout=240)  # the header and a first sample
    code, took = g.interrupt(within=30)
    kept, command = _check_report(g, code, took)
    n = len(_lines(out)) - 1
    assert 1 <= n < 6 and kept == f"{n} sample{'s' if n > 1 else ''} kept in {out}"

    again = _resume(command, tmp_path, env)
    assert again.returncode == 0, again.stderr
    rows = [json.loads(x) for x in _lines(out)][1:]
    assert [r["task_id"] for r in rows] == [f"Python/{i}" for i in range(6)]


def test_humanevalx_run_reports_samples_and_results(tmp_path, env):
    out = tmp_path / "run"
    args = ["humanevalx", "run", "--languages", "python", "--limit", "6", "--batch-size", "1",
            "--max-new-tokens", "24", "--greedy", "-q", "--out", str(out)]
    g = Geex(args, tmp_path, env)
    g.wait_for(lambda: len(_lines(out / "samples.jsonl")) >= 2, timeout=240)
    code, took = g.interrupt(within=30)
    kept, _ = _check_report(g, code, took)
    n = len(_lines(out / "samples.jsonl")) - 1
    assert kept == f"{n} sample{'s' if n > 1 else ''} and 0 results kept in {out}"


@pytest.fixture(scope="module")
def packed(tmp_path_factory) -> Path:
    from geex.data.pack import pack
    from geex.data.tokenizer import train_tokenizer

    d = tmp_path_factory.mktemp("packed")
    src = Path(__file__).resolve().parents[1] / "src" / "geex" / "train"
    with open(d / "code.jsonl", "w") as f:
        for p in sorted(src.glob("*.py")):
            f.write(json.dumps({"code": p.read_text()}) + "\n")
    tok = train_tokenizer([str(d / "code.jsonl")], d / "tok", vocab_size=400)
    pack([str(d / "code.jsonl")], str(tok), d / "packed", seq_len=32, valid=0.2, workers=1, progress=False)
    return d / "packed"


def test_train_names_the_newest_checkpoint(tmp_path, env, packed):
    out = tmp_path / "run"
    args = ["train", "--set", f"data.path={packed}", "--set", f"run.out={out}", "--set", "optim.max_steps=100000",
            "--set", "run.checkpoint_every=3", "--set", "run.eval_every=0", "--set", "data.batch_size=2", "-q"]
    g = Geex(args, tmp_path, env)
    ckpts = out / "checkpoints"
    g.wait_for(lambda: ckpts.is_dir() and any(not p.name.endswith(".tmp") for p in ckpts.iterdir()), timeout=240)
    code, took = g.interrupt(within=30)
    kept, _ = _check_report(g, code, took)
    newest = max(p.name for p in ckpts.iterdir() if not p.name.endswith(".tmp") and (p / "trainer.pt").is_file())
    assert kept == f"the newest checkpoint is {newest} in {ckpts}"
