"""``geex doctor``: is every HumanEval-X toolchain installed, and does a test run in the sandbox?

The hello-world programs use what real tasks need (Boost and OpenSSL for C++, js-md5, testify,
the rand/regex/md5 crates), so a green doctor means every reference solution can run.
"""

from __future__ import annotations

import warnings

from rich.console import Console
from rich.table import Table

from geex.humanevalx.assembly import prove_rust_tests
from geex.humanevalx.execution.program import Program
from geex.humanevalx.execution.runners import RunContext, get_runner, make_jobs_root, remove_jobs_root
from geex.humanevalx.execution.sandbox import Sandbox, detect_isolation
from geex.humanevalx.execution.verdict import Verdict
from geex.languages import HUMANEVALX_LANGUAGES, Language

HELLO: dict[str, str] = {
    "python": "import hashlib\nassert hashlib.md5(b'hi').hexdigest().startswith('49f68a')\n",
    "cpp": (
        "#include <cassert>\n#include <string>\n#include <boost/any.hpp>\n#include <openssl/md5.h>\n"
        "int main() {\n    boost::any a = 1;\n    unsigned char d[MD5_DIGEST_LENGTH];\n"
        "    MD5((const unsigned char*)\"hi\", 2, d);\n    assert(boost::any_cast<int>(a) == 1 && d[0] == 0x49);\n}\n"
    ),
    "java": (
        "class Solution { int two() { return 2; } }\npublic class Main {\n"
        "    public static void main(String[] args) {\n"
        "        if (new Solution().two() != 2) throw new AssertionError();\n    }\n}\n"
    ),
    "js": "const md5 = require('js-md5');\nconst assert = require('node:assert');\n"
          "assert.strictEqual(md5('hi').slice(0, 6), '49f68a');\n",
    "go": (
        "package main\n\nimport (\n    \"testing\"\n    \"github.com/stretchr/testify/assert\"\n)\n\n"
        "func TestHello(t *testing.T) {\n    assert.Equal(t, 2, 1+1)\n}\n"
    ),
    "rust": (
        "use rand::Rng;\nuse regex::Regex;\nuse md5;\nfn main(){}\n#[cfg(test)]\nmod tests {\n    use super::*;\n"
        "    #[test]\n    fn hello() {\n        let _n: u8 = rand::thread_rng().gen_range(0..10);\n"
        "        assert!(Regex::new(\"^h\").unwrap().is_match(\"hi\"));\n"
        "        assert_eq!(format!(\"{:x}\", md5::compute(b\"hi\"))[..6], *\"49f68a\");\n    }\n}\n"
    ),
}


def hello_program(lang: Language) -> Program:
    """The hello-world program of a language, with the proof items Rust's tests carry in their text."""
    if lang.name == "rust":
        source, proofs = prove_rust_tests(HELLO["rust"])
        return Program(lang, source, proofs=proofs)
    return Program(lang, HELLO[lang.name])


def doctor(console: Console | None = None, languages: list[Language] | None = None) -> int:
    """Print the table (of ``languages``, default all six); 0 when each works in the strongest sandbox, else 1."""
    console = console or Console()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        isolation = detect_isolation()
    table = Table(title="HumanEval-X toolchains")
    for col in ("language", "toolchain", "hello-world in sandbox", "fix"):
        table.add_column(col, overflow="fold")
    ok = True
    jobs_root = make_jobs_root()
    sandbox = Sandbox(isolation=isolation)
    ctx = RunContext(sandbox, jobs_root, slot=0, timeout_s=30)
    try:
        for lang in languages or HUMANEVALX_LANGUAGES:
            runner = get_runner(lang.name)
            status = runner.cached_status
            if not status.available:
                ok = False
                table.add_row(lang.display, f"[red]missing[/] {status.problem}", "–", status.hint or runner.install_hint)
                continue
            try:
                outcome = runner.execute(hello_program(lang), ctx)
            except Exception as e:  # doctor reports every language, whatever one of them does
                ok = False
                table.add_row(lang.display, status.version, f"[red]internal error[/]: {type(e).__name__}: {e}",
                              status.hint or runner.install_hint)
                continue
            passed = outcome.verdict is Verdict.PASSED
            ok &= passed and not status.problem
            cell = (f"[green]passed[/] ({outcome.compile_s + outcome.run_s:.2f} s)" if passed
                    else f"[red]{outcome.verdict.value}[/]: {outcome.detail[-300:]}")
            # every red row names a fix: the status's own hint, else the runner's install recipe
            fix = (status.hint or runner.install_hint) if (status.problem or not passed) else ""
            version = status.version + (f" [yellow]({status.problem})[/]" if status.problem else "")
            table.add_row(lang.display, version, cell, fix)
    finally:
        ctx.close()
        remove_jobs_root(jobs_root)
    console.print(table)
    strong = isolation.value == "bubblewrap+uid"
    colour = "green" if strong else "red"
    console.print(f"sandbox isolation: [{colour}]{isolation.value}[/]")
    memory = sandbox.memory_mechanism
    console.print(f"memory limit: [{'green' if memory.startswith('cgroup') else 'yellow'}]{memory}[/]"
                  + ("" if memory.startswith("cgroup") else
                     " (no memory cgroup could be created: memfd/shared memory/tmpfs are bounded per process only)"))
    for w in caught:
        console.print(f"[red]WARNING[/]: {w.message}")
    if not strong:
        console.print("for full isolation run as root with bubblewrap installed (apt-get install bubblewrap)")
    console.print("[green]all toolchains ready[/]" if ok else "[red]some toolchains are not ready[/]")
    return 0 if ok and strong else 1
