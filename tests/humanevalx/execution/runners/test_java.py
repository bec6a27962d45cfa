"""The javac server's death is blamed on whoever caused it: a control compile on a fresh server.

Real deaths: a giant string constant makes javac run out of its 512 MB heap, and the server exits on
its first OutOfMemoryError (``resource_limit``). Simulated ones: the test kills the server's JVM
while it compiles a correct sample (``compile_error``: the sample is blamed, by the rule), and
broken toolchains (every server dies, the control too: ``harness_error``). After a death the worker
goes on with the fresh server that compiled the control.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

import pytest

from geex.humanevalx.assembly import assemble
from geex.humanevalx.dataset import load_problems
from geex.humanevalx.execution.runners import RunContext, get_runner
from geex.humanevalx.execution.runners import java as java_runner
from geex.humanevalx.execution.sandbox import Sandbox
from geex.humanevalx.execution.verdict import Verdict
from geex.languages import get_language

pytestmark = pytest.mark.toolchains

CORRECT = "        return x + y;\n    }\n}\n"
# 150 million characters in one literal: javac's heap (-Xmx512m) runs out while reading it
GIANT_CONSTANT = '        String s = "' + "a" * 150_000_000 + '";\n        return x + y + s.length();\n    }\n}\n'
# a correct sample that keeps javac busy for a while (so that a kill lands mid-compile)
SLOW = CORRECT[:-2] + "".join(f"    public static int f{i}(int a) {{ return a + {i}; }}\n" for i in range(12000)) + "}\n"


@pytest.fixture(scope="module")
def add_task(dataset_dir):
    return load_problems([get_language("java")], str(dataset_dir), False)["Java/53"]


@pytest.fixture
def ctx():
    jobs = Path(tempfile.mkdtemp(prefix="geex-java-test-"))
    jobs.chmod(0o755)
    context = RunContext(Sandbox(), jobs, slot=0, timeout_s=10)
    yield context
    context.close()
    leftover = list(jobs.iterdir())
    shutil.rmtree(jobs)
    assert leftover == [], "work directories left behind"


def _server_jvm(server: java_runner.JavacServer) -> int:
    """The pid of the server's JVM (a descendant of the sandbox's first process), once it is one
    (a server just started may still be in the sandbox's exec chain)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        pid = _find_jvm(server)
        if pid is not None:
            return pid
        time.sleep(0.01)
    raise AssertionError("no GeexJavac JVM under the server")


def _find_jvm(server: java_runner.JavacServer) -> int | None:
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    for pid in parents:
        ancestor = pid
        while ancestor in parents and ancestor != server.proc.pid:
            ancestor = parents[ancestor]
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if ancestor == server.proc.pid and b"GeexJavac" in cmdline and cmdline.startswith(b"java"):
            return pid
    return None


@pytest.fixture
def killer(monkeypatch):
    """Kills the server's JVM 0.3 s into each compile it is asked to kill; with ``kill_control`` the
    control program's server is killed before it is asked (a tiny program on a fast machine may
    compile within 0.3 s). Records whether each kill landed before the answer came."""
    state = {"kill_control": False, "landed": [], "servers": []}
    original = java_runner.JavacServer.compile

    def compile_(self, workdir: Path, timeout: float):
        state["servers"].append(self)
        is_control = (workdir / "Main.java").read_text() == java_runner.CONTROL_SOURCE
        if is_control and not state["kill_control"]:
            return original(self, workdir, timeout)
        answered = threading.Event()
        jvm = _server_jvm(self)
        if is_control:
            os.kill(jvm, signal.SIGKILL)
            state["landed"].append(True)
            return original(self, workdir, timeout)

        def kill() -> None:
            time.sleep(0.3)
            state["landed"].append(not answered.is_set())
            os.kill(jvm, signal.SIGKILL)

        thread = threading.Thread(target=kill)
        thread.start()
        try:
            return original(self, workdir, timeout)
        finally:
            answered.set()
            thread.join()

    monkeypatch.setattr(java_runner.JavacServer, "compile", compile_)
    return state


def test_giant_constant_kills_the_server_and_is_the_samples_resource_limit(add_task, ctx):
    runner = get_runner("java")
    assert runner.execute(assemble(add_task, CORRECT, clean=False), ctx).verdict is Verdict.PASSED
    first = ctx.helpers["javac"]
    outcome = runner.execute(assemble(add_task, GIANT_CONSTANT, clean=False), ctx)
    assert (outcome.verdict, outcome.phase) == (Verdict.RESOURCE_LIMIT, "compile"), outcome
    assert "OutOfMemoryError" in outcome.detail and "control program" in outcome.detail
    assert first.proc.poll() is not None  # it really died
    fresh = ctx.helpers["javac"]
    assert fresh is not first and fresh.proc.poll() is None  # the control's server, kept
    after = runner.execute(assemble(add_task, CORRECT, clean=False), ctx)
    assert after.verdict is Verdict.PASSED and ctx.helpers["javac"] is fresh


def test_server_killed_mid_compile_blames_the_sample(add_task, ctx, killer):
    runner = get_runner("java")
    outcome = runner.execute(assemble(add_task, SLOW, clean=False), ctx)
    assert killer["landed"] == [True], "the kill came after javac answered: make SLOW slower"
    assert (outcome.verdict, outcome.phase) == (Verdict.COMPILE_ERROR, "compile"), outcome
    assert "javac server died" in outcome.detail and "signal 9" in outcome.detail
    killed, control = killer["servers"]
    assert killed is not control and killed.proc.poll() is not None
    assert ctx.helpers["javac"] is control and control.proc.poll() is None


def test_server_and_control_killed_is_a_harness_error(add_task, ctx, killer):
    killer["kill_control"] = True
    outcome = get_runner("java").execute(assemble(add_task, SLOW, clean=False), ctx)
    assert killer["landed"][0] is True
    assert (outcome.verdict, outcome.phase) == (Verdict.HARNESS_ERROR, "compile"), outcome
    assert "control program" in outcome.detail and "died too" in outcome.detail
    assert "javac" not in ctx.helpers  # no dead server kept


def test_jvm_that_cannot_start_is_a_harness_error(add_task, ctx, monkeypatch):
    """A broken toolchain (here: the server's JVM refuses its options) fails the control too."""
    runner = get_runner("java")
    runner.prepare(ctx.sandbox)
    monkeypatch.setattr(java_runner, "SERVER_FLAGS", [*java_runner.SERVER_FLAGS, "-XX:+NoSuchGeexOption"])
    outcome = runner.execute(assemble(add_task, CORRECT, clean=False), ctx)
    assert (outcome.verdict, outcome.phase) == (Verdict.HARNESS_ERROR, "compile"), outcome
    assert "died too" in outcome.detail and "NoSuchGeexOption" in outcome.detail
    monkeypatch.undo()
    assert runner.execute(assemble(add_task, CORRECT, clean=False), ctx).verdict is Verdict.PASSED
