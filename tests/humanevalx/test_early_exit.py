"""No way to pass without passing: early exits with status 0, and disarmed tests, in every language.

Each program is a completion of task 53 (``add(x, y)``) evaluated through the real ``evaluate()``
(assembly, runner, sandbox; no verdict cache, no cleanup), next to correct completions that must
pass. Two kinds:

- ``EARLY``: the program ends with status 0 before its test has run to the end (``exit(0)`` in the
  function, ``atexit``/signal/panic/shutdown hooks, uncaught-exception handlers, static
  initializers, Go ``init``, ELF constructors …). The old rule (status 0 = passed) passed every one
  of them; now they are ``runtime_error`` with the early-exit detail, because geex's proof of
  completion is missing. Control: with the classifier put back to the old exit-0 rule, the same
  programs pass.
- ``DISARM``: the program lets the test run but defeats its checks (an ``__eq__`` that says yes to
  everything, rebinding built-ins, replacing ``console.assert`` or ``assert!``, renaming C++'s
  ``main``, filtering Go's tests through ``os.Args``). Controls: each one passes once the specific
  protection is taken out again.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from geex.humanevalx.assembly import JS_ASSERT, assemble
from geex.humanevalx.dataset import load_problems
from geex.humanevalx.evaluate import EvalConfig, evaluate
from geex.humanevalx.execution import verdict as verdict_module
from geex.humanevalx.execution.program import Program
from geex.humanevalx.execution.proof import EARLY_EXIT, Proof, harness_text
from geex.humanevalx.execution.runners import RunContext, get_runner, make_jobs_root
from geex.humanevalx.execution.runners import base as runners_module
from geex.humanevalx.execution.runners import go as go_runner
from geex.humanevalx.execution.runners import java as java_runner
from geex.humanevalx.execution.sandbox import Sandbox
from geex.languages import get_language

pytestmark = [pytest.mark.toolchains, pytest.mark.serial]  # wall-clock limits: alone

TASK = {"python": "Python/53", "cpp": "CPP/53", "java": "Java/53", "js": "JavaScript/53",
        "go": "Go/53", "rust": "Rust/53"}
LANGUAGES = tuple(TASK)
TIMEOUT_S = 6.0
RT, WA, CE = "runtime_error", "wrong_answer", "compile_error"

# -- correct completions: they must pass ----------------------------------------------------------
CORRECT = {
    "python": {
        "plain": "    return x + y\n",
        "numpy_int": "    import numpy\n    return numpy.int64(x + y)\n",  # turned into a Python int
        "int_subclass": "    class Num(int):\n        pass\n    return Num(x + y)\n",  # into its base type
        "float": "    return float(x + y)\n",
    },
    "cpp": {"plain": "    return x + y;\n}\n",
            "own_constructor": "    return x + y;\n}\n__attribute__((constructor)) static void geex_hello() {}\n"},
    "java": {"plain": "        return x + y;\n    }\n}\n"},
    "js": {"plain": "  return x + y;\n}\n"},
    "go": {"plain": "    return x + y\n}\n",
           "init": "    return x + y\n}\n\nvar geexTable = map[int]int{}\n\nfunc init() {\n    geexTable[0] = 0\n}\n"},
    "rust": {"plain": "    return x + y;\n}\n"},
}

# -- early exits with status 0: (completion, verdict) -----------------------------------------------
EARLY: dict[str, dict[str, str]] = {
    "python": {
        "exit": "    exit(0)\n",
        "sys_exit": "    import sys\n    sys.exit(0)\n",
        "raise_systemexit": "    raise SystemExit\n",
        "os_exit": "    import os\n    os._exit(0)\n",
        "module_level_exit": "    return x + y + 1\n\nimport sys\nsys.exit(0)\n",
        "atexit": "    import atexit, os\n    atexit.register(os._exit, 0)\n    return x + y + 1\n",
        "signal_handler": (
            "    import os, signal, time\n    signal.signal(signal.SIGALRM, lambda *_: os._exit(0))\n"
            "    signal.setitimer(signal.ITIMER_REAL, 0.05)\n    time.sleep(5)\n"),
        "excepthook": "    import os, sys\n    sys.excepthook = lambda *_: os._exit(0)\n    return x + y + 1\n",
    },
    "cpp": {
        "exit": "    exit(0);\n}\n",
        "_Exit": "    _Exit(0);\n}\n",
        "quick_exit": "    quick_exit(0);\n}\n",
        "atexit": "    atexit([] { _Exit(0); });\n    exit(3);\n}\n",
        "signal_handler": (
            "    int geex_arm();\n    geex_arm();\n    return x + y + 1;\n}\n#include <csignal>\n"
            "int geex_arm() {\n    std::signal(SIGABRT, [](int) { std::_Exit(0); });\n    return 0;\n}\n"),
        "terminate_handler": "    std::set_terminate([] { std::_Exit(0); });\n    throw 1;\n}\n",
        "static_initializer": "    return x + y + 1;\n}\nstatic int geex_early = (exit(0), 0);\n",
        "constructor": "    return x + y + 1;\n}\n__attribute__((constructor)) static void geex_early() { exit(0); }\n",
        "constructor_101": "    return x + y + 1;\n}\n__attribute__((constructor(101))) static void geex_early() { exit(0); }\n",
        "preinit_array": (
            "    return x + y + 1;\n}\nstatic void geex_early(int, char**, char**) { _Exit(0); }\n"
            '__attribute__((used, section(".preinit_array"))) static void (*geex_early_entry)(int, char**, char**)'
            " = geex_early;\n"),
    },
    "java": {
        "system_exit": "        System.exit(0);\n        return 0;\n    }\n}\n",
        "runtime_halt": "        Runtime.getRuntime().halt(0);\n        return 0;\n    }\n}\n",
        "shutdown_hook": (
            "        Runtime.getRuntime().addShutdownHook(new Thread(() -> Runtime.getRuntime().halt(0)));\n"
            "        return x + y + 1;\n    }\n}\n"),
        "uncaught_handler": (
            "        Thread.setDefaultUncaughtExceptionHandler((t, e) -> Runtime.getRuntime().halt(0));\n"
            "        return x + y + 1;\n    }\n}\n"),
        "static_initializer": "        return x + y + 1;\n    }\n    static {\n        System.exit(0);\n    }\n}\n",
    },
    "js": {
        "process_exit": "  process.exit(0);\n}\n",
        "really_exit": "  process.reallyExit(0);\n}\n",
        "exit_handler": "  process.on('exit', () => process.exit(0));\n  return x + y + 1;\n}\n",
        "exit_code_in_exit_handler": "  process.on('exit', () => { process.exitCode = 0; });\n  return x + y + 1;\n}\n",
        "uncaught_exception": "  process.on('uncaughtException', () => { process.exitCode = 0; });\n  return x + y + 1;\n}\n",
        "module_level_exit": "  return x + y + 1;\n}\nprocess.exit(0);\n",
    },
    "go": {
        "os_exit": "    os.Exit(0)\n    return 0\n}\n",
        "init": "    return x + y + 1\n}\n\nfunc init() {\n    os.Exit(0)\n}\n",
        "package_variable": "    return x + y + 1\n}\n\nvar geexEarly = func() int {\n    os.Exit(0)\n    return 0\n}()\n",
        "goroutine_exit": "    go os.Exit(0)\n    time.Sleep(5 * time.Second)\n    return x + y\n}\n",
    },
    "rust": {
        "process_exit": "    std::process::exit(0);\n}\n",
        "panic_hook": "    std::panic::set_hook(Box::new(|_| std::process::exit(0)));\n    return x + y + 1;\n}\n",
        "libc_exit": '    extern "C" {\n        fn _exit(code: i32) -> !;\n    }\n    unsafe { _exit(0) }\n}\n',
        "init_array": (
            '    return x + y + 1;\n}\n#[used]\n#[link_section = ".init_array"]\n'
            'static GEEX_EARLY: extern "C" fn() = {\n    extern "C" fn early() {\n        std::process::exit(0)\n'
            "    }\n    early\n};\n"),
    },
}

# -- tests disarmed while they run: (completion, the verdict it gets now[, task if not 53]) ----------
_PY_YES = ("    class Yes:\n        def __eq__(self, other):\n            return True\n"
           "        def __ne__(self, other):\n            return False\n"
           "        __hash__ = object.__hash__\n    return Yes()\n")
_PY_TABLE = "    return {(0, 1): 1, (1, 0): 1, (2, 3): 5, (5, 7): 12, (7, 5): 12}[(x, y)]\n"  # the literal asserts only
DISARM: dict[str, dict[str, tuple[str, str]]] = {
    "python": {
        "eq_everything": (_PY_YES, RT),
        # Python/38's test compares with no literal (`decode_cyclic(encoded) == str`): only the
        # plain-data results stop the object
        "eq_everything_no_literal": (_PY_YES, RT, "Python/38"),
        # Python/32's test checks the root with the prompt's `poly`, which the completion redefines
        "redefined_helper": ("    return 0.0\n\n\ndef poly(xs: list, x: float):\n    return 0.0\n", WA, "Python/32"),
        "int_subclass_eq": ("    class Yes(int):\n        def __eq__(self, other):\n            return True\n"
                            "        __hash__ = int.__hash__\n    return Yes(0)\n", WA),
        "shadow_builtin": (_PY_TABLE + "\nrange = lambda *args: ()\n", RT),
        "patch_builtins_module": (_PY_TABLE + "\nimport builtins\nbuiltins.range = lambda *args: ()\n", RT),
        # the harness's own checks must not use the built-ins the sample can rebind
        "patch_harness_builtins": ("    import builtins\n    builtins.type = lambda *args: int\n"
                                   "    builtins.isinstance = lambda *args: False\n" + _PY_YES.split("\n", 0)[0], RT),
    },
    "cpp": {
        "define_main": ("    return x + y + 1;\n}\nint main() { return 0; }\n#define main geex_test_main\n", CE),
        # an __assert_fail that returns makes every assert() of the test a no-op
        "assert_fail": ("    return x + y + 1;\n}\n#include <assert.h>\n"
                        'extern "C" void __assert_fail(const char*, const char*, unsigned int, const char*) noexcept {}\n',
                        CE),
    },
    "java": {
        # Java/0's test collects its checks with Arrays.asList and fails if one is false: a class
        # Arrays of the program would replace java.util.Arrays for the test (no checks, no failure)
        "shadow_jdk_class": ("        return false;\n    }\n}\nclass Arrays {\n    @SafeVarargs\n"
                             "    static <T> java.util.List<T> asList(T... values) {\n"
                             "        return new java.util.ArrayList<>();\n    }\n}\n", CE, "Java/0"),
    },
    "js": {
        "console_assert_replaced": ("  return x + y + 1;\n}\nconsole.assert = () => {};\n", WA),
        "console_replaced": ("  return x + y + 1;\n}\nglobalThis.console = { assert() {}, log() {}, error() {} };\n", WA),
        "assert_redefined": ("  return x + y + 1;\n}\nObject.defineProperty(console, 'assert', { value: () => {} });\n", RT),
        # a CommonJS module may return from its top level: the test never runs, require returns
        "top_level_return": ("  return x + y + 1;\n}\nreturn;\n", RT),
    },
    "go": {"test_filter": ('    return x + y + 1\n}\n\nfunc init() {\n    os.Args = append(os.Args, "-test.run=^$")\n}\n', WA)},
    "rust": {"assert_macro": ("    return x + y + 1;\n}\nmacro_rules! assert {\n    ($($t:tt)*) => {};\n}\n", WA)},
}


def _rows() -> tuple[list[dict], dict[str, tuple[str, str, str]]]:
    """Samples-file rows and sample id -> (language, kind, form)."""
    rows, ids = [], {}
    for kind, table in (("correct", CORRECT), ("early", EARLY), ("disarm", DISARM)):
        for language, forms in table.items():
            for form, value in forms.items():
                completion = value[0] if isinstance(value, tuple) else value
                task = value[2] if isinstance(value, tuple) and len(value) > 2 else TASK[language]
                cid = len(rows)
                rows.append({"task_id": task, "completion": completion, "completion_id": cid})
                ids[f"{task}#{cid}"] = (language, kind, form)
    return rows, ids


def _evaluate(tmp: Path, rows: list[dict], name: str) -> dict[str, dict]:
    samples = tmp / f"{name}.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp / name
    evaluate(EvalConfig(samples=str(samples), out_dir=out, progress=False, use_cache=False, clean=False,
                        workers=2, timeout_s=TIMEOUT_S))
    with open(out / "results.jsonl", encoding="utf-8") as f:
        return {r["sample_id"]: r for r in map(json.loads, f)}


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory) -> dict[tuple[str, str, str], dict]:
    rows, ids = _rows()
    results = _evaluate(tmp_path_factory.mktemp("early-exit"), rows, "all")
    assert set(results) == set(ids)
    return {ids[sid]: rec for sid, rec in results.items()}


def _cases(table: dict) -> list[tuple[str, str]]:
    return [(language, form) for language, forms in table.items() for form in forms]


@pytest.mark.parametrize(("language", "form"), _cases(CORRECT))
def test_correct_completions_pass(verdicts, language, form):
    rec = verdicts[(language, "correct", form)]
    assert rec["verdict"] == "passed", rec


@pytest.mark.parametrize(("language", "form"), _cases(EARLY))
def test_early_exit_does_not_pass(verdicts, language, form):
    rec = verdicts[(language, "early", form)]
    assert not rec["passed"], rec
    assert rec["verdict"] == RT, rec
    if rec["exit_code"] == 0:  # Go's goroutine exit panics under -test.paniconexit0 instead
        assert rec["detail"].startswith(EARLY_EXIT), rec


@pytest.mark.parametrize(("language", "form"), _cases(DISARM))
def test_disarmed_test_does_not_pass(verdicts, language, form):
    rec = verdicts[(language, "disarm", form)]
    assert (rec["verdict"], rec["passed"]) == (DISARM[language][form][1], False), rec


def test_every_language_is_covered():
    assert set(CORRECT) == set(EARLY) == set(LANGUAGES)


# -- controls --------------------------------------------------------------------------------------
def test_early_exits_would_pass_on_exit_status_alone(tmp_path, monkeypatch):
    """With the classifier put back to the old rule (status 0 = passed), and Go's test main without
    ``-test.paniconexit0`` (which turns an ``os.Exit(0)`` during a test into a panic), every early
    exit passes: the proof is what fails them, so the tests above can fail."""
    real = verdict_module.classify_run
    monkeypatch.setattr(runners_module, "classify_run",
                        lambda language, result, proof: real(language, result, proof=Proof.SHOWN))
    template = go_runner._TEST_MAIN
    monkeypatch.setattr(go_runner, "_TEST_MAIN", template.replace(', "-test.paniconexit0"', ""))
    assert go_runner._TEST_MAIN != template
    rows = [{"task_id": TASK[language], "completion": completion, "completion_id": i}
            for i, (language, completion) in enumerate(
                (language, completion) for language, forms in EARLY.items() for completion in forms.values())]
    results = _evaluate(tmp_path, rows, "old-rule")
    assert len(results) == len(rows)
    failing = {sid: (r["verdict"], r["detail"][-200:]) for sid, r in results.items() if not r["passed"]}
    assert not failing


@pytest.fixture(scope="module")
def problems(dataset_dir):
    return load_problems([get_language(lang) for lang in LANGUAGES], dataset_dir)


@pytest.fixture()
def ctx():
    sandbox = Sandbox()
    context = RunContext(sandbox, make_jobs_root(), slot=0, timeout_s=TIMEOUT_S)
    yield context
    context.close()
    shutil.rmtree(context.jobs_root, ignore_errors=True)


def _disarm(problems, language: str, form: str) -> Program:
    completion, _, *task = DISARM[language][form]
    return assemble(problems[task[0] if task else TASK[language]], completion, clean=False)


@pytest.mark.parametrize("form", list(DISARM["python"]))
def test_python_disarms_pass_in_one_namespace(problems, ctx, form):
    """Without the layout (the test in the completion's namespace, results not made plain data),
    the harness runs the program as one module: each disarming completion passes, proof and all."""
    program = _disarm(problems, "python", form)
    outcome = get_runner("python").execute(Program(program.language, program.source), ctx)
    assert outcome.verdict.value == "passed", outcome


def test_cpp_renamed_main_passes_without_undef(problems, ctx):
    program = _disarm(problems, "cpp", "define_main")
    assert "\n#undef main\n" in program.source
    outcome = get_runner("cpp").execute(Program(program.language, program.source.replace("\n#undef main\n", "\n")), ctx)
    assert outcome.verdict.value == "passed", outcome


def _js_unrewritten(program: Program) -> Program:
    return Program(program.language, program.source.replace(f"{JS_ASSERT}(", "console.assert("))


def test_js_replaced_console_passes_without_the_assert_const(problems, ctx):
    program = _js_unrewritten(_disarm(problems, "js", "console_replaced"))
    assert get_runner("js").execute(program, ctx).verdict.value == "passed"


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
def test_js_replaced_console_assert_passes_without_the_harness(problems, tmp_path):
    """Neither the const nor the frozen console.assert: the program alone, as node runs it, exits 0."""
    (tmp_path / "test.js").write_text(_js_unrewritten(_disarm(problems, "js", "console_assert_replaced")).source)
    assert subprocess.run(["node", "test.js"], cwd=tmp_path, capture_output=True, timeout=60).returncode == 0


def test_go_test_filter_passes_without_the_test_main_checks(problems, ctx, monkeypatch):
    """The test main without its own arguments and without the returned-functions check."""
    template = go_runner._TEST_MAIN
    lax = template.replace('    os.Args = []string{{os.Args[0], "-test.paniconexit0"}}', "").replace(
        "code == 0 && allReturned()", "code == 0")
    assert "os.Args = " not in lax and "allReturned()" not in lax.split("func main")[1]
    monkeypatch.setattr(go_runner, "_TEST_MAIN", lax)
    outcome = get_runner("go").execute(_disarm(problems, "go", "test_filter"), ctx)
    assert outcome.verdict.value == "passed", outcome


def test_rust_assert_macro_passes_without_std_paths(problems, ctx):
    program = _disarm(problems, "rust", "assert_macro")
    assert "::std::assert!(" in program.source
    undone = Program(program.language, program.source.replace("::std::assert!(", "assert!("), proofs=program.proofs)
    assert get_runner("rust").execute(undone, ctx).verdict.value == "passed"


# -- the Python harness on its own ------------------------------------------------------------------
def _run_harness(tmp_path: Path, source: str, layout: dict | None, secret: str = "s3cr3t") -> tuple[int, bytes, str]:
    (tmp_path / "geex_run.py").write_text(harness_text("geex_run.py"))
    (tmp_path / "main.py").write_text(source)
    (tmp_path / "main.layout.json").unlink(missing_ok=True)
    if layout is not None:
        (tmp_path / "main.layout.json").write_text(json.dumps(layout))
    r, w = os.pipe()
    try:
        proc = subprocess.run([sys.executable, "-I", "-B", "geex_run.py"], cwd=tmp_path, input=f"{secret}\n".encode(),
                              env={"GEEX_PROOF_FD": str(w), "PATH": os.environ.get("PATH", "")}, pass_fds=(w,),
                              capture_output=True, timeout=60)
        os.close(w)
        w = -1
        report = os.read(r, 1024)
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
    return proc.returncode, report, proc.stderr.decode()


def test_python_harness_compares_literals_as_plain_data(tmp_path):
    """Without a function under test (no entry), the test sees the program's names; its comparisons
    with literals still refuse objects that are not built-in data (AST rewrite)."""
    source = ("class Yes:\n    def __eq__(self, other):\n        return True\n    __hash__ = object.__hash__\n"
              "value = Yes()\nnumbers = [Yes()]\n"
              "assert value == 5\n")
    test_at = source.index("assert")
    layout = {"prelude": [0, 0], "helpers": None, "entry": None, "test": test_at}
    code, report, err = _run_harness(tmp_path, source, layout)
    assert code == 1 and report == b"" and "not a __main__.Yes" in err, err
    for test, passes in [("assert numbers == [5]\n", False), ("assert -3 in numbers\n", False),
                         ("assert value is not None\n", True), ("assert len(numbers) == 1\n", True)]:
        code, report, err = _run_harness(tmp_path, source[:test_at] + test, {**layout})
        assert (code == 0 and report == b"s3cr3t") is passes, (test, err)
    # the same program in one module, as before: the test passes
    code, report, _ = _run_harness(tmp_path, source, None)
    assert (code, report) == (0, b"s3cr3t")


def test_python_harness_reports_only_at_the_end(tmp_path):
    code, report, _ = _run_harness(tmp_path, "import sys\nsys.exit(0)\n", None)
    assert (code, report) == (0, b"")
    code, report, _ = _run_harness(tmp_path, "x = 1\n", None, secret="abc")
    assert (code, report) == (0, b"abc")


def test_python_harness_hands_the_test_plain_results(tmp_path):
    """The function under test reaches the test through a proxy: its results become plain data
    (or TypeError) even where the test compares with no literal; built-in subclasses become their
    base type, so an overridden __eq__ is gone."""
    test = "def check(candidate):\n    expected = 3\n    assert candidate(1, 2) == expected\n\ncheck(add)\n"
    bodies = {
        "    class Yes:\n        def __eq__(self, other):\n            return True\n    return Yes()\n": (1, "TypeError"),
        "    class Num(int):\n        def __eq__(self, other):\n            return True\n"
        "        __hash__ = int.__hash__\n    return Num(5)\n": (1, "AssertionError"),
        "    class Num(int):\n        pass\n    return Num(x + y)\n": (0, ""),
        "    return [x + y][0]\n": (0, ""),
    }
    for body, (status, error) in bodies.items():
        source = "def add(x, y):\n" + body + test
        layout = {"prelude": [0, 0], "helpers": [0, 0], "entry": "add", "test": len(source) - len(test)}
        code, report, err = _run_harness(tmp_path, source, layout)
        assert (code, report == b"s3cr3t") == (status, status == 0), (body, err)
        assert error in err, err


@pytest.mark.skipif(shutil.which("node") is None, reason="node not installed")
def test_js_top_level_return_passes_without_the_script_check(problems, tmp_path):
    """geex_run.js without its check that the program compiles as a script: the completion's
    top-level return ends the module before the test, require returns, and the proof is written."""
    wrapper = harness_text("geex_run.js")
    lax = wrapper.replace("if (functionBody) {", "if (false) {")
    assert lax != wrapper
    (tmp_path / "geex_run.js").write_text(lax)
    (tmp_path / "test.js").write_text(_disarm(problems, "js", "top_level_return").source)
    r, w = os.pipe()
    try:
        proc = subprocess.run(["node", "geex_run.js", "test.js"], cwd=tmp_path, input=b"s3cr3t\n",
                              env={"GEEX_PROOF_FD": str(w), "PATH": os.environ.get("PATH", "")}, pass_fds=(w,),
                              capture_output=True, timeout=60)
        os.close(w)
        w = -1
        assert (proc.returncode, os.read(r, 1024)) == (0, b"s3cr3t"), proc.stderr
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ not installed")
def test_cpp_own_assert_fail_disarms_the_test_without_geex_definition(problems, tmp_path):
    """Linked without geex_proof.o (libc's __assert_fail only), the completion's __assert_fail,
    which returns, turns every failed assert() of the test into a no-op: the program exits 0."""
    (tmp_path / "main.cpp").write_text(_disarm(problems, "cpp", "assert_fail").source)
    subprocess.run(["g++", "-std=c++17", "-O0", "-w", "main.cpp", "-o", "main"], cwd=tmp_path, check=True,
                   capture_output=True, timeout=300)
    assert subprocess.run(["./main"], cwd=tmp_path, capture_output=True, timeout=60).returncode == 0


def test_java_shadowing_class_passes_without_the_imports(problems, ctx, monkeypatch):
    """Without the single-type imports of the classes the test names, the completion's Arrays
    replaces java.util.Arrays in the test, which then checks nothing."""
    monkeypatch.setattr(java_runner, "test_class_imports", lambda head, test, classes: "")
    outcome = get_runner("java").execute(_disarm(problems, "java", "shadow_jdk_class"), ctx)
    assert outcome.verdict.value == "passed", outcome


def test_java_test_class_imports_name_only_the_tests_jdk_classes():
    classes = {"Arrays": {"java.util"}, "List": {"java.util", "java.awt"}, "String": {"java.lang"},
               "Objects": {"java.util"}, "Solution": {"java.util"}, "Random": {"java.util"}, "Map": {"java.util"}}
    head = "import java.util.*;\nimport java.awt.*;\nclass Solution {\n"
    test = ('public class Main {\n    // Random in a comment\n    String s = "Objects in a string";\n'
            "    List<String> l = Arrays.asList(java.util.Map.of());\n}\n")
    imports = java_runner.test_class_imports(head, test, classes)
    # List is ambiguous (java.util and java.awt on demand), Solution is the program's own, Map qualified
    assert imports == "import java.util.Arrays; import java.lang.String; "
    assert "\n" not in imports  # the program's line numbers stay
