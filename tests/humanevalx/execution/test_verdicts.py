"""The verdict taxonomy, end to end and in isolation.

End to end: my own wrong solutions of task 53 (``add(x, y)``) in every language, assembled with the
real prompt and test and run by the real runner in the sandbox, each with the one verdict (and
phase) it must get. Decision for interpreted languages: Python and JavaScript have no compile
step, so a syntax error surfaces when the program runs and is a ``runtime_error`` (phase ``run``);
``compile_error`` is for C++, Java, Go and Rust, where the compiler rejects the program.

In isolation: ``classify_run`` / ``classify_compile`` on synthetic ``ExecResult``s (exit codes,
signals, output markers, flags), bwrap's 128+N status decoding, and harness faults that a program
must not be able to fake.
"""

from __future__ import annotations

import signal
import tempfile
from pathlib import Path

import pytest

from geex.humanevalx.assembly import assemble
from geex.humanevalx.dataset import load_problems
from geex.humanevalx.execution.program import Program
from geex.humanevalx.execution.proof import Proof
from geex.humanevalx.execution.runners import RunContext, get_runner
from geex.humanevalx.execution.runners import java as java_runner
from geex.humanevalx.execution.runners.js import node_modules
from geex.humanevalx.execution.sandbox import ExecResult, Sandbox, _decode_status
from geex.humanevalx.execution.verdict import Verdict, classify_compile, classify_run, excerpt
from geex.languages import get_language

TASK = {"python": "Python/53", "cpp": "CPP/53", "java": "Java/53", "js": "JavaScript/53",
        "go": "Go/53", "rust": "Rust/53"}
TIMEOUT_S = 2.0

W, C, R, T, L, P = "wrong_answer", "compile_error", "runtime_error", "timeout", "resource_limit", "passed"

# (language, case, completion of ``add``'s body, verdict, phase)
CASES = [
    ("python", "correct", "    return x + y\n", P, "run"),
    ("python", "wrong value", "    return x + y + 1\n", W, "run"),
    ("python", "syntax error", "    return x +* y\n", R, "run"),
    ("python", "division by zero", "    return (x + y) // (x - x)\n", R, "run"),
    ("python", "undefined name", "    return x + y + undefined_name\n", R, "run"),
    ("python", "infinite loop", "    while True:\n        pass\n", T, "run"),
    ("python", "8 GiB allocation", "    return x + y + len(bytes(8 << 30)) * 0\n", L, "run"),

    ("cpp", "correct", "    return x + y;\n}\n", P, "run"),
    ("cpp", "wrong value", "    return x + y + 1;\n}\n", W, "run"),
    ("cpp", "syntax error", "    return x + ;\n}\n", C, "compile"),
    ("cpp", "type error", "    std::string s = x;\n    return s;\n}\n", C, "compile"),
    ("cpp", "segfault", "    int* volatile p = nullptr;\n    return *p + x + y;\n}\n", R, "run"),
    ("cpp", "division by zero", "    volatile int z = 0;\n    return (x + y) / z;\n}\n", R, "run"),
    ("cpp", "uncaught exception", '    throw std::out_of_range("boom");\n}\n', R, "run"),
    ("cpp", "infinite loop", "    volatile int spin = 1;\n    while (spin) {}\n    return x + y;\n}\n", T, "run"),
    ("cpp", "8 GiB allocation", "    std::vector<char> v(size_t(8) << 30);\n    return x + y + v[0];\n}\n", L, "run"),

    ("java", "correct", "        return x + y;\n    }\n}\n", P, "run"),
    ("java", "wrong value", "        return x + y + 1;\n    }\n}\n", W, "run"),
    ("java", "syntax error", "        return x + ;\n    }\n}\n", C, "compile"),
    ("java", "type error", "        String s = x;\n        return s;\n    }\n}\n", C, "compile"),
    ("java", "division by zero", "        return (x + y) / (x - x);\n    }\n}\n", R, "run"),
    ("java", "null pointer", "        String s = null;\n        return s.length() + x + y;\n    }\n}\n", R, "run"),
    ("java", "infinite loop", "        while (true) {}\n    }\n}\n", T, "run"),
    ("java", "8 GiB allocation", "        long[] a = new long[1 << 30];\n        return x + y + (int) a[0];\n    }\n}\n", L, "run"),

    ("js", "correct", "  return x + y;\n}\n", P, "run"),
    ("js", "wrong value", "  return x + y + 1;\n}\n", W, "run"),
    ("js", "syntax error", "  return x + ;\n}\n", R, "run"),
    ("js", "type error", "  return null.length + x + y;\n}\n", R, "run"),
    ("js", "undefined name", "  return x + y + undefinedName;\n}\n", R, "run"),
    ("js", "infinite loop", "  while (true) {}\n}\n", T, "run"),
    ("js", "3 GiB allocation", "  const b = Buffer.alloc(3 * 1024 * 1024 * 1024);\n  return x + y + b[0];\n}\n", L, "run"),

    ("go", "correct", "    return x + y\n}\n", P, "run"),
    ("go", "wrong value", "    return x + y + 1\n}\n", W, "run"),
    ("go", "syntax error", "    return x +\n}\n", C, "compile"),
    ("go", "type error", '    var s string = x\n    return s\n}\n', C, "compile"),
    ("go", "division by zero", "    z := x - x\n    return (x + y) / z\n}\n", R, "run"),
    ("go", "index out of range", "    var a []int\n    return a[x+y]\n}\n", R, "run"),
    ("go", "infinite loop", "    for {\n    }\n}\n", T, "run"),
    ("go", "8 GiB allocation", "    b := make([]byte, 8<<30)\n    return x + y + int(b[0])\n}\n", L, "run"),

    ("rust", "correct", "    return x + y;\n}\n", P, "run"),
    ("rust", "wrong value", "    return x + y + 1;\n}\n", W, "run"),
    ("rust", "syntax error", "    return x + ;\n}\n", C, "compile"),
    ("rust", "type error", "    let s: String = x;\n    return s;\n}\n", C, "compile"),
    ("rust", "division by zero", "    let z = x - x;\n    return (x + y) / z;\n}\n", R, "run"),
    ("rust", "explicit panic", '    panic!("boom {}", x + y);\n}\n', R, "run"),
    ("rust", "infinite loop", "    loop {}\n}\n", T, "run"),
    ("rust", "8 GiB allocation", "    let v = vec![0u8; 8 << 30];\n    return x + y + v[0] as i32;\n}\n", L, "run"),
]

pytestmark = [pytest.mark.toolchains, pytest.mark.serial]  # 2-second limits: alone


@pytest.fixture(scope="module")
def problems(dataset_dir):
    return load_problems([get_language(lang) for lang in TASK], str(dataset_dir), False)


@pytest.fixture(scope="module")
def ctx():
    jobs = Path(tempfile.mkdtemp(prefix="geex-verdicts-"))
    jobs.chmod(0o755)
    context = RunContext(Sandbox(), jobs, slot=0, timeout_s=TIMEOUT_S)
    yield context
    context.close()
    leftover = list(jobs.iterdir())
    jobs.rmdir()
    assert leftover == [], "work directories left behind"


@pytest.mark.parametrize(("language", "case", "completion", "verdict", "phase"), CASES,
                         ids=[f"{c[0]}-{c[1].replace(' ', '_')}" for c in CASES])
def test_verdict_of_wrong_solution(problems, ctx, language, case, completion, verdict, phase):
    program = assemble(problems[TASK[language]], completion, clean=False)
    outcome = get_runner(language).execute(program, ctx)
    assert (outcome.verdict.value, outcome.phase) == (verdict, phase), outcome.detail[-800:]
    if verdict == P:
        assert outcome.detail == ""
    else:
        assert outcome.detail or outcome.signal or verdict == T


def test_every_language_has_every_verdict_class():
    expected = {P, W, R, T, L}
    for lang in TASK:
        have = {c[3] for c in CASES if c[0] == lang}
        assert have == expected | ({C} if lang in ("cpp", "java", "go", "rust") else set()), lang


# -- harness faults that a program must not fake ---------------------------------------------------
def test_javac_server_death_is_a_harness_error(problems, ctx, monkeypatch):
    """A javac server that dies (here: its classes are missing) is replaced once; when the new one
    dies too, the sample is a harness error, not a compile error or a timeout."""
    runner = get_runner("java")
    runner.prepare(ctx.sandbox)
    old = ctx.helpers.pop("javac", None)
    if old is not None:
        old.close()
    monkeypatch.setattr(java_runner.JavaRunner, "server_dir", property(lambda self: Path("/nonexistent-geex")))
    monkeypatch.setattr(java_runner.JavaRunner, "_prepare", lambda self, sandbox: None)
    program = assemble(problems["Java/53"], "        return x + y;\n    }\n}\n", clean=False)
    outcome = runner.execute(program, ctx)
    assert (outcome.verdict, outcome.phase) == (Verdict.HARNESS_ERROR, "compile"), outcome
    assert "javac server died" in outcome.detail
    assert "javac" not in ctx.helpers  # the dead server is not kept


def test_printed_harness_messages_do_not_make_harness_errors(problems, ctx):
    """Failing programs that print the harness's own fault messages are still the model's failures."""
    java = assemble(problems["Java/53"], '        System.err.println("javac server died");\n'
                    "        System.exit(1);\n        return 0;\n    }\n}\n", clean=False)
    assert get_runner("java").execute(java, ctx).verdict is Verdict.RUNTIME_ERROR
    if not (node_modules() / "js-md5").is_dir():
        pytest.skip("js-md5 not installed: the message would be true")
    js = assemble(problems["JavaScript/53"], "  console.error(\"Error: Cannot find module 'js-md5'\");\n"
                  "  process.exit(1);\n}\n", clean=False)
    assert get_runner("js").execute(js, ctx).verdict is Verdict.RUNTIME_ERROR


def test_missing_toolchain_is_a_harness_error(ctx, monkeypatch):
    runner = get_runner("go")
    from geex.humanevalx.execution.runners import ToolStatus

    monkeypatch.setattr(runner, "cached_status", ToolStatus(False, "", "go not found", "apt-get install golang-go"))
    outcome = runner.execute(Program(get_language("go"), "package main\n"), ctx)
    assert (outcome.verdict, outcome.phase) == (Verdict.HARNESS_ERROR, "harness")
    assert "go not found" in outcome.detail


# -- classify_run / classify_compile on synthetic results -----------------------------------------
def res(code=0, sig=None, timed_out=False, stdout="", stderr="", limited=False, harness=None):
    return ExecResult(code, sig, timed_out, 0.1, stdout, stderr, len(stdout) + len(stderr), limited, harness)


@pytest.mark.parametrize(("language", "result", "verdict"), [
    ("python", res(0), Verdict.PASSED),
    ("python", res(None, signal.SIGKILL, timed_out=True), Verdict.TIMEOUT),
    ("python", res(0, timed_out=True), Verdict.TIMEOUT),  # killed at the deadline just as it exited
    ("cpp", res(None, signal.SIGXCPU), Verdict.TIMEOUT),  # RLIMIT_CPU
    ("cpp", res(None, signal.SIGXFSZ), Verdict.RESOURCE_LIMIT),  # RLIMIT_FSIZE
    ("java", res(None, signal.SIGKILL, limited=True, stdout="x" * 100), Verdict.RESOURCE_LIMIT),  # output cap
    ("python", res(0, limited=True), Verdict.RESOURCE_LIMIT),  # flooded, then exited 0
    ("python", res(None, signal.SIGKILL, timed_out=True, limited=True), Verdict.RESOURCE_LIMIT),
    ("cpp", res(None, signal.SIGKILL), Verdict.RUNTIME_ERROR),  # killed, not by us at the deadline
    ("cpp", res(None, signal.SIGSEGV), Verdict.RUNTIME_ERROR),
    ("cpp", res(None, signal.SIGFPE), Verdict.RUNTIME_ERROR),
    ("cpp", res(None, signal.SIGABRT, stderr="main: main.cpp:30: int main(): Assertion `add(0, 1) == 1' failed."), Verdict.WRONG_ANSWER),
    ("cpp", res(None, signal.SIGABRT, stderr="terminate called after throwing an instance of 'std::bad_alloc'\n  what():  std::bad_alloc"), Verdict.RESOURCE_LIMIT),
    ("python", res(1, stderr="Traceback (most recent call last):\n  File \"main.py\", line 3\nAssertionError"), Verdict.WRONG_ANSWER),
    ("python", res(1, stderr="Traceback (most recent call last):\nZeroDivisionError: integer division or modulo by zero"), Verdict.RUNTIME_ERROR),
    ("python", res(1, stderr="Traceback (most recent call last):\nMemoryError"), Verdict.RESOURCE_LIMIT),
    ("python", res(1, stderr="OSError: [Errno 27] File too large"), Verdict.RESOURCE_LIMIT),
    ("python", res(1, stderr="BlockingIOError: [Errno 11] Resource temporarily unavailable"), Verdict.RESOURCE_LIMIT),
    ("python", res(1, stderr="  File \"main.py\", line 20\n    return x +* y\n            ^\nSyntaxError: invalid syntax"), Verdict.RUNTIME_ERROR),
    ("python", res(1, stderr="AssertionError raised by user code is still a wrong answer\n"), Verdict.WRONG_ANSWER),
    ("python", res(1, stderr="ValueError: the word AssertionError inside a line is not an assertion"), Verdict.RUNTIME_ERROR),
    ("java", res(1, stderr='Exception in thread "main" java.lang.AssertionError\n\tat Main.main(Main.java:5)'), Verdict.WRONG_ANSWER),
    ("java", res(1, stderr='Exception in thread "main" java.lang.ArithmeticException: / by zero'), Verdict.RUNTIME_ERROR),
    ("java", res(1, stderr='Exception in thread "main" java.lang.OutOfMemoryError: Java heap space'), Verdict.RESOURCE_LIMIT),
    ("java", res(1, stderr="[warning][os,thread] Failed to start thread - pthread_create failed (EAGAIN)"), Verdict.RESOURCE_LIMIT),
    ("js", res(1, stderr="AssertionError [ERR_ASSERTION]: console.assert failed"), Verdict.WRONG_ANSWER),
    ("js", res(1, stderr="TypeError: Cannot read properties of null (reading 'length')"), Verdict.RUNTIME_ERROR),
    ("js", res(1, stderr="RangeError: Array buffer allocation failed"), Verdict.RESOURCE_LIMIT),
    ("js", res(None, signal.SIGABRT, stderr="FATAL ERROR: Reached heap limit Allocation failed - JavaScript heap out of memory"), Verdict.RESOURCE_LIMIT),
    ("js", res(1, stderr="Error: EFBIG: file too large, write"), Verdict.RESOURCE_LIMIT),
    ("go", res(1, stdout="--- FAIL: TestAdd (0.00s)\n    main_test.go:20: \n        \tError Trace:\tmain_test.go:20\n        \tError:      \tNot equal: \nFAIL\n"), Verdict.WRONG_ANSWER),
    ("go", res(2, stdout="--- FAIL: TestAdd (0.00s)\npanic: runtime error: integer divide by zero [recovered]\n"), Verdict.RUNTIME_ERROR),
    ("go", res(2, stderr="fatal error: runtime: out of memory\n"), Verdict.RESOURCE_LIMIT),
    ("go", res(1, stderr="fork/exec /bin/sh: resource temporarily unavailable"), Verdict.RESOURCE_LIMIT),  # lower case
    ("rust", res(101, stdout="thread 'tests::test_add' panicked at main.rs:30:9:\nassertion failed: add(0, 1) == 1\n"), Verdict.WRONG_ANSWER),
    ("rust", res(101, stdout="thread 'tests::test_add' panicked at main.rs:30:9:\nassertion `left == right` failed\n  left: 2\n right: 1\n"), Verdict.WRONG_ANSWER),
    ("rust", res(101, stdout="thread 'tests::test_add' panicked at main.rs:14:12:\nattempt to divide by zero\n"), Verdict.RUNTIME_ERROR),
    ("rust", res(None, signal.SIGABRT, stderr="memory allocation of 8589934592 bytes failed\n"), Verdict.RESOURCE_LIMIT),
])
def test_classify_run(language, result, verdict):
    assert classify_run(language, result, proof=Proof.SHOWN) is verdict


@pytest.mark.parametrize("proof", [Proof.MISSING, Proof.WRONG])
@pytest.mark.parametrize("language", list(TASK))
def test_exit_zero_without_the_proof_is_an_early_exit(language, proof):
    """Status 0 passes only with the proof of completion; without it, or with a wrong one, the
    test did not run to the end: a runtime error, whatever the output says."""
    assert classify_run(language, res(0), proof=Proof.SHOWN) is Verdict.PASSED
    assert classify_run(language, res(0), proof=proof) is Verdict.RUNTIME_ERROR
    assert classify_run(language, res(0, stderr="AssertionError"), proof=proof) is Verdict.RUNTIME_ERROR
    # the proof changes nothing for a program that failed otherwise
    assert classify_run(language, res(None, signal.SIGKILL, timed_out=True), proof=proof) is Verdict.TIMEOUT
    assert classify_run(language, res(0, limited=True), proof=Proof.SHOWN) is Verdict.RESOURCE_LIMIT
    assert classify_run(language, res(1), proof=Proof.SHOWN) is Verdict.RUNTIME_ERROR


@pytest.mark.parametrize(("result", "verdict"), [
    (res(0), None),
    (res(1, stderr="main.cpp:20:16: error: expected primary-expression before ';' token"), Verdict.COMPILE_ERROR),
    (res(2, stderr="./main_test.go:12:5: undefined: foo"), Verdict.COMPILE_ERROR),
    (res(None, signal.SIGKILL, timed_out=True, stderr="javac timed out"), Verdict.TIMEOUT),
    (res(None, signal.SIGXCPU), Verdict.TIMEOUT),
    (res(None, signal.SIGXFSZ), Verdict.RESOURCE_LIMIT),
    (res(1, limited=True), Verdict.RESOURCE_LIMIT),
    (res(1, stderr="virtual memory exhausted: Cannot allocate memory"), Verdict.RESOURCE_LIMIT),
    (res(1, stderr="cc1plus: out of memory allocating 65536 bytes"), Verdict.RESOURCE_LIMIT),
    (res(0, timed_out=True), Verdict.TIMEOUT),  # not "ok": the deadline passed
    (res(None, None, stderr="javac server died", harness="javac server died twice"), Verdict.COMPILE_ERROR),  # + harness_fault
])
def test_classify_compile(result, verdict):
    assert classify_compile(result) is verdict


def test_harness_error_travels_in_the_result_not_in_the_text():
    from geex.humanevalx.execution.runners import Runner

    assert Runner().harness_fault(res(None, stderr="x", harness="javac server died twice")) == "javac server died twice"
    assert Runner().harness_fault(res(1, stderr="javac server died")) is None


@pytest.mark.parametrize(("returncode", "via_bwrap", "decoded"), [
    (0, True, (0, None)),
    (1, True, (1, None)),
    (-9, False, (None, 9)),  # Popen: killed by SIGKILL
    (-signal.SIGXCPU, False, (None, signal.SIGXCPU)),
    (137, True, (None, 9)),  # bwrap: its child was killed by SIGKILL
    (128 + signal.SIGXCPU, True, (None, signal.SIGXCPU)),
    (128 + signal.SIGXFSZ, True, (None, signal.SIGXFSZ)),
    (137, False, (137, None)),  # without bwrap an exit status is an exit status
    (128, True, (128, None)),  # no signal 0
    (128 + 64, True, (None, 64)),  # the highest real-time signal
    (128 + 65, True, (193, None)),
    (255, True, (255, None)),
])
def test_decode_status(returncode, via_bwrap, decoded):
    assert _decode_status(returncode, via_bwrap) == decoded


def test_only_harness_errors_are_left_out_of_pass_at_k():
    assert [v for v in Verdict if not v.counts_for_pass_at_k] == [Verdict.HARNESS_ERROR]


def test_excerpt_keeps_the_end_of_long_output():
    """Reports show where errors are, the end: text up to the limit whole (stripped), longer text
    as an ellipsis and its last ``limit`` characters."""
    assert excerpt("  x  \n") == "x"
    assert excerpt("a" * 600) == "a" * 600
    assert excerpt("b" + "a" * 600) == "…" + "a" * 600
    assert excerpt("abcdef", limit=3) == "…def" and excerpt("abc", limit=3) == "abc"
