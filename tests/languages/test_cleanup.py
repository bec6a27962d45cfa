"""Stop rules (``is_finished``/``stop_index``) and ``cleanup`` per language, on realistic model output.

The expected values are written out by hand: what a model produced after the prompt, and the
completion that must be spliced into the program.
"""

from __future__ import annotations

import functools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geex.errors import UserError
from geex.humanevalx.assembly import generation_prompt
from geex.humanevalx.dataset import load_language
from geex.humanevalx.problem import Problem
from geex.languages import LANGUAGE_NAMES, get_language
from geex.languages.cleanup import cleanup, code_view, function_end, is_finished, stop_index

BRACE_LANGUAGES = ("cpp", "java", "js", "go", "rust")


@functools.cache
def problems(name: str) -> tuple[Problem, ...]:
    return tuple(load_language(get_language(name)))


# --------------------------------------------------------------------------------------- Python
PY_BODY = "    result = []\n    for x in numbers:\n        if x > 0:\n\n            result.append(x)\n    return result\n"


@pytest.mark.parametrize(
    "tail",
    [
        "\ndef check(candidate):\n    assert candidate([1]) == [1]\n",
        "\n\nif __name__ == '__main__':\n    print(positive([1, -1]))\n",
        "# a comment at column 0, then a statement\nprint(positive([1, -2]))\n",
        "print(positive([1, -2]))\n",
        "class Helper:\n    pass\n",
        "assert positive([1]) == [1]",
        "\n\n\nimport doctest\ndoctest.testmod()\n",
    ],
)
def test_python_cuts_at_first_unindented_line(tail: str) -> None:
    text = PY_BODY + tail
    assert is_finished("python", text)
    cut = len(PY_BODY) + len(tail) - len(tail.lstrip("\n"))
    if tail.startswith("#"):
        cut = text.index("print(")
    assert stop_index("python", text) == cut
    assert cleanup("python", text) == text[:cut]
    assert cleanup("python", text).rstrip("\n").startswith(PY_BODY.rstrip("\n"))


def test_python_comment_in_column_0_does_not_end_the_body() -> None:
    # the original cut at "\n#" and failed correct answers with such a comment inside the body
    text = "    x = 1\n# note\n    return x\n"
    assert not is_finished("python", text)
    assert cleanup("python", text) == text
    assert cleanup("python", text + "# tests\nprint(f())\n") == text + "# tests\n"


def test_python_keeps_nested_defs_blank_lines_and_tabs() -> None:
    text = "    def helper(y):\n        return y * 2\n\n\t# tab-indented comment\n    return [helper(x) for x in xs]\n"
    assert not is_finished("python", text)
    assert stop_index("python", text) is None
    assert cleanup("python", text) == text


def test_python_first_line_unindented_gives_empty_completion() -> None:
    assert cleanup("python", "def other():\n    pass\n") == ""
    assert stop_index("python", "def other():\n    pass\n") == 0


def test_python_crlf_and_unicode_line_separators() -> None:
    crlf = "    return 1\r\n\r\nprint(f())\r\n"
    assert cleanup("python", crlf) == "    return 1\r\n\r\n"
    # U+2028 / form feed inside a string literal are not line breaks for Python.
    for sep in ("\u2028", "\x0c", "\x1c", "\x85"):
        text = f"    s = 'a{sep}b'\n    return s\n"
        assert not is_finished("python", text), repr(sep)
        assert cleanup("python", text) == text
        assert cleanup("python", text + "print(s)\n") == text


def test_python_unfinished_is_unchanged() -> None:
    for text in ("", "    ", "    return sorted(", "    x = 1\n    if x:\n        return"):
        assert not is_finished("python", text)
        assert cleanup("python", text) == text


# ------------------------------------------------------------------------------------------ C++
def test_cpp_braces_in_literals_and_comments_are_ignored() -> None:
    body = (
        '    string s = "}";\n'
        '    string t = "\\"}\\"";\n'
        "    char c = '}';\n"
        "    char q = '\\'';\n"
        "    // closing } in a comment\n"
        "    /* and { another } one */\n"
        '    if (c == \'{\') s += "{";\n'
        "    return s + t + q;\n"
        "}"
    )
    text = body + "\n\nint main() {\n    printf(\"%s\\n\", f().c_str());\n}\n"
    assert stop_index("cpp", text) == len(body)
    assert cleanup("cpp", text) == body


def test_cpp_keeps_used_helpers_and_types_cuts_own_main_and_test() -> None:
    fn = "    Pair p{a, b};\n    return gcd(p.a, p.b) * 2;\n}"
    helpers = "\n\nstruct Pair { int a; int b; };\n\nint gcd(int a, int b) {\n    return b == 0 ? a : gcd(b, a % b);\n}"
    unused = "\n\nstruct Other { int c; };\nint twice(int x) { return 2 * x; }"
    tail = "\n#undef NDEBUG\n#include<assert.h>\nint main(){\n    assert(f(2, 4) == 4);\n}\n"
    assert cleanup("cpp", fn + helpers + tail) == fn + helpers
    assert cleanup("cpp", fn + unused + helpers + unused + tail) == fn + helpers
    assert cleanup("cpp", fn + helpers + "\nint main() {}\nint after_main() { return 1; }\n") == fn + helpers
    assert cleanup("cpp", fn + "\n\nsigned main() { return 0; }") == fn
    assert stop_index("cpp", fn + helpers + tail) == len(fn)


def test_cpp_drops_trailing_junk_and_incomplete_blocks() -> None:
    fn = "    return 1;\n}"
    assert cleanup("cpp", fn + "\n\nThis function returns one.") == fn
    assert cleanup("cpp", fn + "\nint helper(int x) {\n    return x") == fn  # helper not finished
    assert cleanup("cpp", fn + "\n}\n}\n") == fn  # stray closing braces


def test_cpp_unfinished_is_unchanged() -> None:
    for text in ("    int x = 0;\n    for (int i = 0; i < n; i++) {\n        x += i;\n    }\n", '    return "}', "    /* } "):
        assert not is_finished("cpp", text)
        assert stop_index("cpp", text) is None
        assert cleanup("cpp", text) == text


# ----------------------------------------------------------------------------------------- Java
JAVA_METHOD = (
    "        StringBuilder sb = new StringBuilder();\n"
    '        String open = "{", close = "}";\n'
    "        char c = '}';\n"
    '        String block = """\n            }\n            """;\n'
    "        // } in a comment\n"
    "        for (int i = 0; i < n; i++) {\n"
    "            sb.append(open).append(close);\n"
    "        }\n"
    "        return sb.toString();\n"
    "    }"
)


def test_java_appends_class_close_after_method() -> None:
    assert stop_index("java", JAVA_METHOD + "\n") == len(JAVA_METHOD)
    assert cleanup("java", JAVA_METHOD + "\n") == JAVA_METHOD + "\n}"


def test_java_model_closing_the_class_itself_is_closed_once() -> None:
    text = JAVA_METHOD + "\n}\n\npublic class Main {\n    public static void main(String[] args) {\n    }\n}\n"
    assert cleanup("java", text) == JAVA_METHOD + "\n}"


def test_java_keeps_used_helper_methods_cuts_unused_ones_and_main() -> None:
    method = "        return twice(n) + 1;\n    }"
    helper = "\n\n    private static int twice(int x) {\n        return 2 * x;\n    }"
    unused = "\n\n    private static int thrice(int x) {\n        return 3 * x;\n    }"
    main = "\n\n    public static void main(String[] args) {\n        System.out.println(new Solution().f(3));\n    }\n}\n"
    assert cleanup("java", method + helper + main) == method + helper + "\n}"
    assert cleanup("java", method + unused + helper + "\n}\n") == method + helper + "\n}"
    assert cleanup("java", JAVA_METHOD + helper + main) == JAVA_METHOD + "\n}"  # twice is not called


def test_java_unfinished_is_unchanged() -> None:
    text = "        int x = 0;\n        if (x > 0) {\n            return '}';\n        }\n"
    assert not is_finished("java", text)
    assert cleanup("java", text) == text  # in particular no "\n}" appended


# ----------------------------------------------------------------------------------- JavaScript
def test_js_template_literals_strings_and_comments() -> None:
    body = (
        "  const a = `}`;\n"
        "  const b = `${x} { ${y}`;\n"
        "  const c = `[${items.map((i) => `{${i}`).join(',')}]`;\n"  # nested template with a lone {
        "  const d = `${cond ? `}` : ''}`;\n"  # nested template with a lone }
        "  const e = '}' + \"{\" + '\\'}';\n"
        "  /* } */ // {\n"
        "  return a + b + c + d + e;\n"
        "}"
    )
    text = body + "\n\nconsole.log(f([1, 2]));\n"
    assert stop_index("js", text) == len(body)
    assert cleanup("js", text) == body


@pytest.mark.parametrize(
    "line",
    [
        "  const c = `[${items.map((i) => `{${i}`).join(',')}]`;\n",  # nested template, lone {
        "  const d = `${cond ? `}` : ''}`;\n",  # nested template, lone }
        "  const e = `${`${`}`}`}`;\n",  # deeper nesting
        "  const f = `\\`}\\` ${'}'} ${\"}\"} ${/* } */ 1}`;\n",  # escapes, strings, comments in ${}
    ],
)
def test_js_nested_template_literals(line: str) -> None:
    body = line + "  return c;\n}"
    text = body + "\nconsole.log(f());\n"
    assert stop_index("js", text) == len(body)
    assert cleanup("js", text) == body
    for j in range(len(body)):  # streaming: not finished before the closing brace
        assert not is_finished("js", body[:j]), body[:j]


def test_js_keeps_helpers_cuts_tests_and_exports() -> None:
    fn = "  return helper(x) + 1;\n}"
    helper = "\n\nconst helper = (x) => {\n  return x * 2;\n};"
    for tail in (
        "\n\nconst testF = () => {\n  console.assert(f(1) === 3);\n}\ntestF();\n",
        "\nconsole.log(f(2));\n",
        "\nmodule.exports = f;\n",
        "\nfunction testAll() {}\n",
    ):
        assert cleanup("js", fn + helper + tail) == fn + helper, tail


def test_js_unfinished_is_unchanged() -> None:
    for text in ("  const s = `${a.map((x) => {", "  if (x) {\n    return 1;\n  }\n", "  return '}"):
        assert not is_finished("js", text)
        assert cleanup("js", text) == text


# ------------------------------------------------------------------------------------------- Go
def test_go_raw_strings_runes_and_comments() -> None:
    body = (
        "    s := `}\n{ raw } string`\n"
        "    r := '}'\n"
        "    q := '\\''\n"
        '    t := "}\\"}"\n'
        "    // }\n"
        "    return len(s) + int(r) + int(q) + len(t)\n"
        "}"
    )
    assert stop_index("go", body + "\n") == len(body)
    assert cleanup("go", body + "\n\n// Example usage\nfunc main() {\n    fmt.Println(F())\n}\n") == body


def test_go_keeps_helper_funcs_and_types_cuts_main_and_tests() -> None:
    fn = "    p := pair{1, 2}\n    return isPalindrome(q) && p.a < p.b\n}"
    helpers = "\n\ntype pair struct {\n    a, b int\n}\n\nfunc isPalindrome(arr []int) bool {\n    return true\n}"
    assert cleanup("go", fn + "\n\nfunc unused() int {\n    return 1\n}" + helpers) == fn + helpers
    for tail in (
        "\n\nfunc main() {\n    fmt.Println(WillItFly([]int{1}, 1))\n}\n",
        "\n\nfunc TestWillItFly(t *testing.T) {\n    assert.Equal(t, true, WillItFly([]int{1}, 1))\n}\n",
        "\n\n// trailing comment only\n",
        "\npackage main\n",
    ):
        assert cleanup("go", fn + helpers + tail) == fn + helpers, tail


def test_go_unfinished_is_unchanged() -> None:
    for text in ("    s := `}", "    for i := 0; i < n; i++ {\n        x++\n    }\n"):
        assert not is_finished("go", text)
        assert cleanup("go", text) == text


# ----------------------------------------------------------------------------------------- Rust
def test_rust_lifetimes_raw_strings_and_char_literals() -> None:
    body = (
        "    fn pick<'a>(x: &'a str, _y: &'a str) -> &'a str { x }\n"
        "    let s: &'static str = \"}\";\n"
        "    let r = r#\"} \"quoted\" {\"#;\n"
        "    let b = br\"}\";\n"
        "    let c = '}';\n"
        "    let d = '\\'';\n"
        "    let e = '\\u{7d}';\n"
        "    let f = b'}';\n"
        "    let g = |x: i32| { x + 1 };\n"
        "    /* } */ // {\n"
        "    pick(s, r).len() + b.len() + c.len_utf8() + d.len_utf8() + e.len_utf8() + f as usize + g(1) as usize\n"
        "}"
    )
    assert stop_index("rust", body + "\n") == len(body)
    assert cleanup("rust", body + "\n\nfn main() {\n    println!(\"{}\", f());\n}\n") == body


def test_rust_keeps_helpers_cuts_main_and_tests() -> None:
    fn = "    let _k = Kind::A;\n    sum_of_digits(n) + 1\n}"
    helpers = (
        "\n\n#[derive(Debug, PartialEq)]\npub enum Kind {\n    A,\n    B,\n}\n\n"
        "pub fn sum_of_digits(n: i32) -> i32 {\n    n % 10\n}"
    )
    for tail in (
        "\n\nfn main() {\n    println!(\"{}\", f(12));\n}\n",
        "\n\n#[cfg(test)]\nmod tests {\n    use super::*;\n    #[test]\n    fn t() { assert_eq!(f(1), 2); }\n}\n",
        "\n\n#[test]\nfn it_works() {}\n",
    ):
        assert cleanup("rust", fn + helpers + tail) == fn + helpers, tail


def test_rust_unfinished_is_unchanged() -> None:
    for text in ('    let s = r#"}"', "    if x {\n        return 1;\n    }\n", "    let s = \"}"):
        assert not is_finished("rust", text)
        assert cleanup("rust", text) == text


# ------------------------------------------------------------- definitions after the function
# Each case: (language, context, raw output, what cleanup keeps), written out by hand.
DEFINITION_CASES = [
    (  # C++: templates, static inline, a global lambda, a constant, an array; prose and an unused global cut
        "cpp", "int f(int x){\n",
        "    return sq(x) + power(2, 3) + helper(1) + MOD + memo[0];\n}\n\ntemplate<typename T>\nT sq(T x) { return x * x; }\n\n"
        "static inline long long power(long long b, int e) {\n    return e == 0 ? 1 : b * power(b, e - 1);\n}\n"
        "auto helper = [](int x) { return x; };\nconst int MOD = 1e9 + 7;\nint memo[100];\nint unused_global = 5;\n"
        "1. The function squares x.\n2. Then it adds.\n",
        "    return sq(x) + power(2, 3) + helper(1) + MOD + memo[0];\n}\n\ntemplate<typename T>\nT sq(T x) { return x * x; }\n\n"
        "static inline long long power(long long b, int e) {\n    return e == 0 ? 1 : b * power(b, e - 1);\n}\n"
        "auto helper = [](int x) { return x; };\nconst int MOD = 1e9 + 7;\nint memo[100];",
    ),
    (  # C++: a class used by a helper, its method defined outside; a prototype does not block the definition
        "cpp", "int f(int x){\n",
        "    int twice(int);\n    return twice(x);\n}\nint twice(int);\nstruct Acc {\n    int v = 0;\n    void add(int x);\n};\n"
        "void Acc::add(int x) { v += x; }\nvoid Other::add(int x) {}\nint twice(int x) {\n    Acc a;\n    a.add(x);\n    a.add(x);\n    return a.v;\n}\n",
        "    int twice(int);\n    return twice(x);\n}\nint twice(int);\nstruct Acc {\n    int v = 0;\n    void add(int x);\n};\n"
        "void Acc::add(int x) { v += x; }\nint twice(int x) {\n    Acc a;\n    a.add(x);\n    a.add(x);\n    return a.v;\n}",
    ),
    (  # Java: a generic helper, a constant, an array field, a nested class; an unused override cut
        "java", "class Solution {\n    public int f(List<Integer> xs) {\n",
        "        return rev(xs).size() + K + Helper.twice(1) + memo[0];\n    }\n\n    private static <T> List<T> rev(List<T> xs) {\n"
        "        List<T> out = new ArrayList<>(xs);\n        Collections.reverse(out);\n        return out;\n    }\n\n"
        "    @Override\n    public String toString() { return \"x\"; }\n    private static final int K = 3;\n"
        "    int[] memo = new int[]{1, 2};\n\n    static class Helper {\n        static int twice(int x) { return 2 * x; }\n    }\n}\n",
        "        return rev(xs).size() + K + Helper.twice(1) + memo[0];\n    }\n\n    private static <T> List<T> rev(List<T> xs) {\n"
        "        List<T> out = new ArrayList<>(xs);\n        Collections.reverse(out);\n        return out;\n    }\n"
        "    private static final int K = 3;\n    int[] memo = new int[]{1, 2};\n\n"
        "    static class Helper {\n        static int twice(int x) { return 2 * x; }\n    }\n}",
    ),
    (  # JS: function declarations (a generator too), a statement spanning lines, let; async and var unused
        "js", "const f = (x) => {\n",
        "  return helper(x) + cache.size + [...gen()].length + Big;\n}\n\nasync function helperAsync() {}\nfunction helper(x) {\n"
        "  return x\n    .toString()\n    .length;\n}\nfunction* gen() { yield 1; }\nlet cache = new Map();\nconst Big = 10 **\n  3;\n"
        "var unused = 1\n",
        "  return helper(x) + cache.size + [...gen()].length + Big;\n}\nfunction helper(x) {\n"
        "  return x\n    .toString()\n    .length;\n}\nfunction* gen() { yield 1; }\nlet cache = new Map();\nconst Big = 10 **\n  3;",
    ),
    (  # Go: a map var, a const, a one-line struct, a generic func; an unused var group
        "go", "func F(x int) int {\n",
        "    return memo[x] + MOD + pair{1, 2}.a + sq(x)\n}\n\nvar memo = map[int]int{\n    1: 2,\n}\nconst MOD = 1000000007\n"
        "type pair struct{ a, b int }\nfunc sq[T int | float64](x T) T { return x * x }\nvar (\n    unusedA = 1\n    unusedB = 2\n)\n",
        "    return memo[x] + MOD + pair{1, 2}.a + sq(x)\n}\n\nvar memo = map[int]int{\n    1: 2,\n}\nconst MOD = 1000000007\n"
        "type pair struct{ a, b int }\nfunc sq[T int | float64](x T) T { return x * x }",
    ),
    (  # Rust: const, static, macro_rules!, a trait with impls (a generic one through the trait); unused fn cut
        "rust", "fn f(x: i32) -> i32 {\n",
        "    sq!(x) + MOD + PRIMES[0] + Sq(2).area()\n}\n\nconst MOD: i32 = 1_000_000_007;\nstatic PRIMES: [i32; 3] = [2, 3, 5];\n"
        "macro_rules! sq {\n    ($x:expr) => { $x * $x };\n}\ntrait Area { fn area(&self) -> i32; }\nstruct Sq(i32);\n"
        "impl Area for Sq {\n    fn area(&self) -> i32 { self.0 * self.0 }\n}\nimpl<T: Area> Area for Vec<T> { fn area(&self) -> i32 { 0 } }\n"
        "fn unused() {}\n",
        "    sq!(x) + MOD + PRIMES[0] + Sq(2).area()\n}\n\nconst MOD: i32 = 1_000_000_007;\nstatic PRIMES: [i32; 3] = [2, 3, 5];\n"
        "macro_rules! sq {\n    ($x:expr) => { $x * $x };\n}\ntrait Area { fn area(&self) -> i32; }\nstruct Sq(i32);\n"
        "impl Area for Sq {\n    fn area(&self) -> i32 { self.0 * self.0 }\n}\nimpl<T: Area> Area for Vec<T> { fn area(&self) -> i32 { 0 } }",
    ),
    (  # Rust: a use the declaration already has is a second import (E0252): cut; a new one is kept if used
        "rust", "use std::collections::{HashSet, HashMap};\nfn f(x: i32) -> i32 {\n",
        "    let m: BTreeMap<i32, i32> = BTreeMap::new();\n    let h: HashMap<i32, i32> = HashMap::new();\n    x\n}\n"
        "use std::collections::HashMap;\nuse std::collections::BTreeMap;\nuse std::fmt as f;\n",
        "    let m: BTreeMap<i32, i32> = BTreeMap::new();\n    let h: HashMap<i32, i32> = HashMap::new();\n    x\n}\n"
        "use std::collections::BTreeMap;",
    ),
]


@pytest.mark.parametrize("name,context,raw,kept", DEFINITION_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(DEFINITION_CASES)])
def test_cleanup_keeps_exactly_the_definitions_the_function_uses(name: str, context: str, raw: str, kept: str) -> None:
    assert cleanup(name, raw, context) == kept
    assert cleanup(name, kept, context) == kept


# A recursive target, then a second version of it: only the context (the prompt) says which name is
# the target's, so without it the second version looks like a helper the body calls.
RECURSIVE = {
    "cpp": ("int fib(int n){\n", "    return n < 2 ? n : fib(n - 1) + fib(n - 2);\n}",
            "\n\nint fib(int n) {\n    if (n < 2) return n;\n    return fib(n - 1) + fib(n - 2);\n}\n"),
    "java": ("class Solution {\n    public int fib(int n) {\n", "        return n < 2 ? n : fib(n - 1) + fib(n - 2);\n    }",
             "\n\n    public int fib(int n) {\n        return n;\n    }\n}\n"),
    "js": ("const fib = (n) => {\n", "  return n < 2 ? n : fib(n - 1) + fib(n - 2);\n}",
           "\n\nconst fib = (n) => {\n  return n;\n};\n"),
    "go": ("func Fib(n int) int {\n", "    if n < 2 {\n        return n\n    }\n    return Fib(n-1) + Fib(n-2)\n}",
           "\n\nfunc Fib(n int) int {\n    return n\n}\n"),
    "rust": ("fn fib(n:i32) -> i32{\n", "    if n < 2 { n } else { fib(n - 1) + fib(n - 2) }\n}",
             "\n\nfn fib(n: i32) -> i32 {\n    n\n}\n"),
}


@pytest.mark.parametrize("name", BRACE_LANGUAGES)
def test_context_keeps_a_recursive_target_from_being_defined_twice(name: str) -> None:
    context, body, second = RECURSIVE[name]
    close = "\n}" if name == "java" else ""
    assert cleanup(name, body + second, context) == body + close
    assert cleanup(name, body + second) == body + second.rstrip() + ("" if name != "java" else "")  # no context: kept


def test_a_prompt_helper_is_never_defined_again() -> None:
    context = "bool is_even(int n){\n    return n % 2 == 0;\n}\nint count_even(vector<int> v){\n"
    body = "    int c = 0;\n    for (int x : v) if (is_even(x)) c++;\n    return c;\n}"
    second = "\n\nbool is_even(int n) {\n    return !(n & 1);\n}\n"
    assert cleanup("cpp", body + second, context) == body


def test_the_first_of_two_versions_of_a_helper_is_kept() -> None:
    body = "  return helper(x);\n}"
    first = "\n\nfunction helper(x) {\n  return x + 1;\n}"
    second = "\n\nfunction helper(x) {\n  return x + 2;\n}\n"
    assert cleanup("js", body + first + second, "const f = (x) => {\n") == body + first


def test_braces_before_a_body_do_not_end_the_definition() -> None:
    body = "    return len(wrap(x).([]int))\n}"
    helper = "\n\nfunc wrap(x []int) interface{} {\n    return x\n}"
    assert cleanup("go", body + helper + "\n\nfunc main() {}\n") == body + helper
    body = "    return Acc(x).a;\n}"
    helpers = "\nstruct Acc { int a; Acc(int x); };\nAcc::Acc(int x) : a{x} {\n    a += 1;\n}"
    assert cleanup("cpp", body + helpers + "\nint main(){}\n") == body + helpers


def test_cpp_and_java_overloads_are_kept_same_parameter_count_is_a_redefinition() -> None:
    body = "    return count(v, 0);\n}"
    two = "\nint count(const vector<int>& v, int i) {\n    return i == (int)v.size() ? 0 : 1 + count(v, i + 1);\n}"
    one = "\nint count(const vector<int>& v) {\n    return count(v, 0);\n}"
    again = "\nint count(const vector<int>& w, int j) {\n    return 0;\n}\n"
    assert cleanup("cpp", body + two + one + again, "int f(vector<int> v){\n") == body + two + one
    method = "        return helper(1, 2);\n    }"
    helpers = "\n    int helper(int a) { return a; }\n    int helper(int a, int b) { return helper(a) + b; }"
    assert cleanup("java", method + helpers + "\n    int helper(int x, int y) { return 0; }\n}\n") == method + helpers + "\n}"


def test_names_in_comments_strings_and_prose_are_no_use() -> None:
    body = '  // helper is not called\n  return "helper" + x;\n}'
    tail = "\n\nThe helper below is not needed.\n\nfunction helper(x) {\n  return x;\n}\n"
    assert cleanup("js", body + tail) == body
    # a JS template's ${...} is code: a call there is a use
    body = "  return `${helper(x)} and helper`;\n}"
    assert cleanup("js", body + tail) == body + "\n\nfunction helper(x) {\n  return x;\n}"


def test_a_local_variable_does_not_keep_a_global_of_the_same_name() -> None:
    body = "  let result = x + 1;\n  return result;\n}"
    tail = "\n\nconst result = f(input);\nconsole.log(result);\n"
    assert cleanup("js", body + tail) == body
    assert cleanup("js", "  return result;\n}" + tail) == "  return result;\n}\n\nconst result = f(input);"
    go_body = "    result := x + 1\n    return result\n}"
    assert cleanup("go", go_body + "\n\nvar result = F(3)\n") == go_body
    assert cleanup("rust", "    let total = x;\n    total\n}\nconst total: i32 = 3;\n") == "    let total = x;\n    total\n}"


def test_helpers_behind_prose_and_fences_are_found() -> None:
    body = "    return isPrime(len(s))\n}"
    helper = "func isPrime(n int) bool {\n    return n > 1\n}"
    raw = body + "\n```\n\nIt's using this helper:\n\n```go\n" + helper + "\n```\n\nThat's all.\n"
    assert cleanup("go", raw) == body + "\n" + helper  # the gap before an item is its own white space
    # a block the prose opens hides what is inside it
    assert cleanup("go", body + "\nfor {\n" + helper + "\n}\n") == body


def test_an_unfinished_helper_ends_the_kept_text() -> None:
    body = "    return helper(x) + other(x);\n}"
    other = "\n\nint other(int x) {\n    return x;\n}"
    assert cleanup("cpp", body + other + "\n\nint helper(int x) {\n    return x") == body + other


def test_fence_lines_are_not_code_for_the_stop_rule_either() -> None:
    # a fence line after the function is blanked; the function's own end is unchanged
    text = "  return 1;\n}\n```\n\n```js\nconst g = () => {\n"
    assert stop_index("js", text) == text.index("}") + 1
    assert code_view("js", "x\n```js\ny\n```\n") == "x\n     \ny\n   \n"
    # three backticks inside a line are no fence (a JS template literal, a Go raw string)
    assert code_view("go", "s := ```\n") == "s := ```\n".replace("```", "   ")


def test_python_helper_after_the_function_is_cut() -> None:
    """Python keeps its rule: the body ends at the first unindented line, a helper's ``def`` too."""
    text = "    return helper(x)\n\ndef helper(x):\n    return x\n"
    assert cleanup("python", text) == "    return helper(x)\n\n"


@pytest.mark.parametrize("name", BRACE_LANGUAGES)
def test_reference_solution_followed_by_a_second_copy_cleans_to_the_solution(name: str) -> None:
    """Every task: the reference, then the prompt's signature line and the reference again."""
    for p in problems(name):
        head = generation_prompt(p)
        view = code_view(name, head, final=True)
        lines, code_lines = head.splitlines(), view.splitlines()
        signature = next(lines[i] for i in range(len(code_lines) - 1, -1, -1) if code_lines[i].strip())
        canonical = p.canonical_solution
        if name == "java":  # the copy goes inside the class, before its closing brace
            twice = canonical.rstrip()[:-1].rstrip() + "\n\n" + signature + "\n" + canonical
        else:
            twice = canonical + "\n\n" + signature + "\n" + canonical
        assert cleanup(name, twice, head).rstrip() == cleanup(name, canonical, head).rstrip(), p.task_id


# ------------------------------------------------------------------------------ streaming stop
STREAMED = {
    "cpp": "    if (c == '}') return 1;\n    string s = \"}\";\n    return 0;\n}\nint main(){}\n",
    "java": "        if (c == '}') return 1;\n        return 0;\n    }\n}\n",
    "js": "  if (c === '}') return `${'}'}`;\n  return 0;\n}\n",
    "go": "    if c == '}' {\n        return 1\n    }\n    return 0\n}\n",
    "rust": "    if c == '}' { return 1; }\n    let x = '\\u{7d}';\n    0\n}\n",
}


@pytest.mark.parametrize("name", BRACE_LANGUAGES)
def test_stop_rule_fires_exactly_at_the_closing_brace_while_streaming(name: str) -> None:
    """Decoding checks every prefix: no prefix before the function's ``}`` may count as finished."""
    text = STREAMED[name]
    end = text.index("\n}") + 2 if name != "java" else text.index("\n    }") + 6
    for j in range(len(text) + 1):
        assert stop_index(name, text[:j]) == (None if j < end else end), (j, text[:j])


def test_unknown_language_raises() -> None:
    with pytest.raises(UserError, match="unknown language 'cobol'"):
        cleanup("cobol", "x")
    with pytest.raises(UserError):
        stop_index("cobol", "x")


# ------------------------------------------------------------------------------ properties
FRAGMENTS = [
    "{", "}", "\n", "    ", "\t", " ", "x", ";", "return x;", "'", '"', "`", "\\", "/*", "*/", "//", "'a",
    '"}"', "'}'", "'{'", "// }", "/* } */", "`}`", "`${", 'r#"', '"#', "int main() {", "fn main() {",
    "func main() {", "public static void main(String[] a) {", "public class Main {", "def f():",
    "print(1)", "#", "#[cfg(test)]", "package main", "console.log(1)", "\r\n", "\x0c", "\u2028",
]
texts = st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(LANGUAGE_NAMES), texts)
def test_cleanup_is_idempotent(name: str, text: str) -> None:
    once = cleanup(name, text)
    assert cleanup(name, once) == once


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(BRACE_LANGUAGES), texts)
def test_brace_cleanup_keeps_the_whole_function(name: str, text: str) -> None:
    end = stop_index(name, text)
    out = cleanup(name, text)
    if end is None:
        assert out == text
    else:
        assert out.startswith(text[:end])
        # cleaned text is complete, not streaming: "'}" may still become the literal '}' while
        # decoding, but as final text its brace closes the function
        assert stop_index(name, out, final=True) == end


def test_streaming_char_literal_versus_final_text() -> None:
    assert stop_index("cpp", "'}") is None  # the model may be writing '}'
    assert stop_index("cpp", "'}", final=True) == 2
    assert stop_index("cpp", "'}{") == 2  # no longer a possible literal
    assert cleanup("cpp", "'}{") == "'}"


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(texts)
def test_python_cleanup_is_a_prefix_without_top_level_lines(text: str) -> None:
    out = cleanup("python", text)
    assert text.startswith(out)
    assert not is_finished("python", out)


# ------------------------------------------------------------------------ reference solutions
@pytest.mark.parametrize("name", LANGUAGE_NAMES)
def test_cleanup_of_reference_solutions(name: str) -> None:
    """Cleaning a correct solution keeps all of it; only a tail the test repeats may go."""
    probs = problems(name)
    assert len(probs) == 164
    for p in probs:
        canonical = p.canonical_solution
        out = cleanup(name, canonical)
        assert cleanup(name, out) == out, p.task_id
        if name != "python":
            end = function_end(name, canonical)
            assert is_finished(name, canonical), p.task_id
            assert end is not None and canonical[:end].rstrip().endswith("}"), p.task_id
            assert out.startswith(canonical[:end]), p.task_id
        assert canonical.startswith(out), p.task_id
        dropped = canonical[len(out):].strip()
        # What cleanup drops is blank, or lines the benchmark's test has anyway (CPP/94 ends
        # with the test's "#undef NDEBUG / #include<assert.h>").
        for line in dropped.splitlines():
            assert line.strip() in p.test, (p.task_id, line)


OWN_TESTS = {
    "python": "\n\nif __name__ == '__main__':\n    print('demo')\n",
    "cpp": "\nint main() {\n    printf(\"%d\\n\", 1);\n    return 0;\n}\n",
    "java": "\npublic class Main {\n    public static void main(String[] args) {\n        System.out.println(1);\n    }\n}\n",
    "js": "\nconst testMain = () => {\n  console.log('}');\n};\ntestMain();\n",
    "go": "\nfunc main() {\n    fmt.Println(\"}\")\n}\n",
    "rust": "\nfn main() {\n    println!(\"{}\", '}');\n}\n",
}


@pytest.mark.parametrize("name", LANGUAGE_NAMES)
def test_reference_solution_followed_by_own_main_cleans_to_the_solution(name: str) -> None:
    for p in problems(name):
        got = cleanup(name, p.canonical_solution + OWN_TESTS[name])
        want = cleanup(name, p.canonical_solution)
        if name == "python":  # blank lines before the cut are kept
            got, want = got.rstrip("\n"), want.rstrip("\n")
        assert got == want, p.task_id


@pytest.mark.parametrize("name", BRACE_LANGUAGES)
def test_reference_solutions_are_not_finished_before_their_end(name: str) -> None:
    """Streaming: every prefix of a reference solution short of its closing brace is unfinished."""
    for p in problems(name)[::11]:
        canonical = p.canonical_solution
        end = function_end(name, canonical)
        for j in range(0, end, 3):
            assert not is_finished(name, canonical[:j]), (p.task_id, j)
        assert stop_index(name, canonical[:end]) == end


def test_a_java_type_right_after_the_class_closes_is_kept():
    """A helper type on the same line as the closing brace of ``class Solution`` (valid Java): the scan
    for top-level types starts right after that brace."""
    from geex.languages.cleanup import cleanup

    body = ("        return new Pair(x).a;\n    }\n}class Pair { int a; Pair(int a) { this.a = a; } }\n"
            "class Unused {}\n")
    context = "import java.util.*;\nclass Solution {\n    public int f(int x) {\n"
    assert cleanup("java", body, context) == ("        return new Pair(x).a;\n    }\n}"
                                               "class Pair { int a; Pair(int a) { this.a = a; } }")
