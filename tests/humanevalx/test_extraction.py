"""Code out of chat answers: real-shaped answers (prose, fences with and without tags, several
blocks, restated signatures and docstrings, helpers before and after the function, bodies alone,
answers cut short) in all six languages.

Two oracles: hand-written expected completions for small answers, and HumanEval-X itself — an
answer built around a problem's reference solution must extract to a completion that passes the
problem's test in the sandbox, like the reference does (``test_answers_around_references_pass``),
while the same answer around a wrong body fails (the control)."""

from __future__ import annotations

import json

import pytest

from geex.humanevalx.assembly import generation_prompt
from geex.humanevalx.dataset import load_problems
from geex.humanevalx.extraction import entry_point, extract, fenced_blocks
from geex.languages import HUMANEVALX_LANGUAGES, get_language
from geex.languages.cleanup import cleanup

PY_HEAD = 'from typing import List\n\n\ndef add(xs: List[int], k: int) -> List[int]:\n    """Add k to each."""\n'
CPP_HEAD = "#include<vector>\nusing namespace std;\nvector<int> add(vector<int> xs,int k){\n"
JAVA_HEAD = "import java.util.*;\nimport java.lang.*;\n\nclass Solution {\n    public List<Integer> add(List<Integer> xs, int k) {\n"
JS_HEAD = "/* Add k to each. */\nconst add = (xs, k) => {\n"
GO_HEAD = "import (\n    \"strings\"\n)\n\n// Add k to each.\nfunc Add(xs []int, k int) []int {\n"
RUST_HEAD = "use std::collections::HashMap;\n\n/* Add k to each. */\nfn add(xs: Vec<i32>, k: i32) -> Vec<i32>{\n"


def test_fenced_blocks():
    answer = ("Intro\n```python\na = 1\n```\nmiddle\n~~~\nb = 2\n~~~\n"
              "````rust extra words\nfn x() {}\n```\nstill rust\n````\n```go\nunclosed")
    blocks = fenced_blocks(answer)
    assert [(b.code, b.tag, b.index) for b in blocks] == [
        ("a = 1\n", "python", 0), ("b = 2\n", "", 1), ("fn x() {}\n```\nstill rust\n", "rust", 2),
        ("unclosed", "go", 3)]
    assert fenced_blocks("no code here") == []
    # a fence opened after prose on its line, when its info names a language or is empty
    late = fenced_blocks("Sure! Here is `f`: ```python\ndef f():\n    return 1\n```\nAnd: ```\nx = 2\n```")
    assert [(b.code, b.tag) for b in late] == [("def f():\n    return 1\n", "python"), ("x = 2\n", "")]
    # ... not inline code, nor prose whose word after the backticks is no language
    assert [b.code for b in fenced_blocks("Use ``` fences like ```this``` inline, or ``` quotes.\n```js\nx\n```")] == ["x\n"]
    assert extract("python", "Here: ```python\ndef add(xs, k):\n    return [x + k for x in xs]\n```",
                   PY_HEAD).completion == "    return [x + k for x in xs]\n"
    # prose naming "a ```python code block" before the real one; a closing fence glued to the last
    # line of an answer without an opening one: neither opens a block
    named = "In a ```python code block:\n\n```python\nimport math\n\nx = math.pi\n```\n"
    assert [b.code for b in fenced_blocks(named)] == ["import math\n\nx = math.pi\n"]
    assert [b.code for b in fenced_blocks("As a ```python\n```python\ny = 1\n```")] == ["y = 1\n"]
    assert fenced_blocks("int f() {\n    return 0;\n}```\n") == []


def test_fences_after_prose_are_found_in_linear_time():
    """Long lines (a model looping to its token limit) cost no backtracking."""
    import time

    for answer in ("x" * 20000, "```python\nreturn [" + "0, " * 8000 + "\n```", "I think " * 5000 + "\n```python\nx\n```",
                   "a `b` " * 4000 + "\n```python\nx\n```", "`" + "a" * 20000):
        start = time.process_time()
        fenced_blocks(answer)
        assert time.process_time() - start < 0.2


@pytest.mark.parametrize("language, head, name", [
    ("python", PY_HEAD, "add"), ("cpp", CPP_HEAD, "add"), ("java", JAVA_HEAD, "add"), ("js", JS_HEAD, "add"),
    ("go", GO_HEAD, "Add"), ("rust", RUST_HEAD, "add"),
    ("go", "func Longest(strings []string) interface{}{\n", "Longest"),
    ("js", "function sumTo(n) {\n", "sumTo"),
    ("cpp", "#include<map>\nmap<string,int> histogram(string test){\n", "histogram"),
    ("java", "class Solution {\n    public Optional<String> longest(\n            List<String> strings) {\n", "longest"),
])
def test_entry_point_is_the_heads_open_function(language, head, name):
    assert entry_point(language, head) == name


# -- Python ---------------------------------------------------------------------------------------

def test_python_restated_signature_and_docstring_with_prose():
    answer = ("Here is the completed function:\n\n```python\nfrom typing import List\n\n\n"
              "def add(xs: List[int], k: int) -> List[int]:\n    \"\"\"Add k to each.\n    >>> add([1], 1)\n"
              "    [2]\n    \"\"\"\n    return [x + k for x in xs]\n```\n\nIt adds `k` to every element.")
    got = extract("python", answer, PY_HEAD)
    assert got.completion == "    return [x + k for x in xs]\n"
    assert got.record() == {"method": "function", "block": 0, "fence": "python"}


def test_python_helpers_before_and_after_are_nested_only_if_used():
    answer = ("```py\nimport math\nimport os\n\nSCALE = 1\n\ndef shift(x, k):\n    return x + k * SCALE\n\n"
              "def add(xs, k):\n    return [shift(x, k) for x in xs]\n\ndef unused():\n    pass\n\n"
              "print(add([1, 2], 3))\n```")
    got = extract("python", answer, PY_HEAD.replace("xs: List[int], k: int", "xs, k"))
    assert got.completion == ("    SCALE = 1\n    def shift(x, k):\n        return x + k * SCALE\n"
                              "    return [shift(x, k) for x in xs]\n")


def test_python_two_space_indentation_is_made_the_heads():
    answer = "```python\ndef add(xs, k):\n  out = []\n  for x in xs:\n    out.append(x + k)\n  return out\n```"
    got = extract("python", answer, PY_HEAD.replace("xs: List[int], k: int", "xs, k"))
    assert got.completion == "    out = []\n    for x in xs:\n      out.append(x + k)\n    return out\n"


def test_python_renamed_parameters_call_the_answers_function():
    answer = "```python\ndef add(values, amount):\n    return [v + amount for v in values]\n```"
    got = extract("python", answer, PY_HEAD)
    assert got.method == "renamed"
    namespace: dict = {}
    exec(PY_HEAD + got.completion, namespace)  # noqa: S102 - our own test code
    assert namespace["add"]([1, 2], 10) == [11, 12]


def test_python_body_only_is_indented():
    got = extract("python", "```python\nreturn [x + k for x in xs]\n```", PY_HEAD)
    assert (got.completion, got.method) == ("    return [x + k for x in xs]\n", "body")


def test_python_answer_that_does_not_parse_is_cut_by_lines():
    answer = ("```python\ndef add(xs: List[int],\n        k: int) -> List[int]:\n    '''doc'''\n    return [x + k for x in xs]\n"
              "\nThis is prose inside the block, not code\n")
    got = extract("python", answer, PY_HEAD)
    assert got.completion == "    return [x + k for x in xs]\n"


def test_python_no_fence_takes_the_answer_and_an_empty_block_is_empty():
    got = extract("python", "def add(xs, k):\n    return xs\n", PY_HEAD.replace("xs: List[int], k: int", "xs, k"))
    assert (got.completion, got.block, got.fence) == ("    return xs\n", None, None)
    assert extract("python", "```python\n```", PY_HEAD).method == "empty"


def test_the_block_in_the_target_language_that_defines_the_function_wins():
    answer = ("First install:\n```bash\npip install nothing\n```\nUsage:\n```python\nprint(add([1], 2))\n```\n"
              "A C++ version:\n```cpp\nvector<int> add(vector<int> xs, int k) { return xs; }\n```\n"
              "The Python one:\n```python\ndef add(xs, k):\n    return [x + k for x in xs]\n```\n")
    got = extract("python", answer, PY_HEAD.replace("xs: List[int], k: int", "xs, k"))
    assert (got.block, got.fence, got.completion) == (3, "python", "    return [x + k for x in xs]\n")
    # no block defines it: the first block in the language (untagged counts), not the bash one
    got = extract("python", "```bash\nls\n```\n```\nreturn xs\n```", PY_HEAD)
    assert (got.block, got.completion) == (1, "    return xs\n")


# -- brace languages -------------------------------------------------------------------------------

def test_cpp_static_helper_before_the_function_is_declared_in_the_body_and_kept_after():
    answer = ("Sure.\n```cpp\n#include <vector>\nusing namespace std;\n\nstatic int shift(int x, int k) {\n"
              "    return x + k;\n}\n\nvector<int> add(vector<int> xs, int k) {\n    for (auto &x : xs) x = shift(x, k);\n"
              "    return xs;\n}\n\nint main() {\n    add({1}, 2);\n}\n```\nDone.")
    got = extract("cpp", answer, CPP_HEAD)
    # `static` dropped from the moved helper: the body's declaration gives it external linkage; the
    # include the head already has is not repeated, `main` is neither declared nor kept
    assert got.completion == ("    int shift(int x, int k);\n\n    for (auto &x : xs) x = shift(x, k);\n    return xs;\n}"
                              "\nint shift(int x, int k) {\n    return x + k;\n}")


def test_java_members_before_the_method_stay_in_the_class():
    answer = ("```java\nimport java.util.*;\n\nclass Solution {\n    private int shift(int x, int k) { return x + k; }\n\n"
              "    public List<Integer> add(List<Integer> xs, int k) {\n        List<Integer> out = new ArrayList<>();\n"
              "        for (int x : xs) out.add(shift(x, k));\n        return out;\n    }\n}\n\n"
              "public class Main {\n    public static void main(String[] a) {}\n}\n```")
    got = extract("java", answer, JAVA_HEAD)
    assert got.completion == ("\n        List<Integer> out = new ArrayList<>();\n        for (int x : xs) out.add(shift(x, k));\n"
                              "        return out;\n    }\n    private int shift(int x, int k) { return x + k; }\n}")


def test_js_function_declaration_for_an_arrow_head_and_a_helper_after():
    answer = ("```javascript\nfunction add(xs, k) {\n  return xs.map((x) => plus(x, k));\n}\n\n"
              "const plus = (a, b) => a + b;\n\nconsole.log(add([1], 2));\n```")
    got = extract("js", answer, JS_HEAD)
    assert got.completion == "\n  return xs.map((x) => plus(x, k));\n}\n\nconst plus = (a, b) => a + b;"


def test_go_interface_result_and_restated_imports():
    head = "// Longest.\nfunc Longest(strings []string) interface{}{\n"
    answer = ("```go\npackage main\n\nimport \"fmt\"\n\nfunc Longest(strings []string) interface{} {\n"
              "    if len(strings) == 0 {\n        return nil\n    }\n    return strings[0]\n}\n\n"
              "func main() {\n    fmt.Println(Longest(nil))\n}\n```")
    got = extract("go", answer, head)
    assert got.completion == "\n    if len(strings) == 0 {\n        return nil\n    }\n    return strings[0]\n}"


def test_rust_body_only_is_closed_and_an_unclosed_function_runs_to_the_end():
    got = extract("rust", "```rust\n    xs.iter().map(|x| x + k).collect()\n```", RUST_HEAD)
    assert (got.completion, got.method) == ("    xs.iter().map(|x| x + k).collect()\n}", "body")
    cut = extract("rust", "```rust\nfn add(xs: Vec<i32>, k: i32) -> Vec<i32> {\n    xs.into_iter()", RUST_HEAD)
    assert (cut.completion, cut.method) == ("\n    xs.into_iter()", "function")


def test_a_call_is_not_a_definition():
    answer = "```cpp\nint main() {\n    if (add(xs, 1).size()) {\n        return 0;\n    }\n}\n```"
    assert extract("cpp", answer, CPP_HEAD).method == "body"


def test_python_example_usage_variables_are_not_pulled_into_the_body():
    """Top-level example variables named like the parameters or locals, and calls of the function,
    stay out: only names the function reads without binding them come from the block."""
    answer = ("```python\nfrom typing import List\n\nLIMIT = 3\n\ndef add(xs, k):\n    result = [x + k for x in xs]\n"
              "    return result[:LIMIT]\n\n# Example usage:\nxs = [1, 2]\nk = 10\nresult = add(xs, k)\n"
              "print(result)\n```")
    got = extract("python", answer, PY_HEAD.replace("xs: List[int], k: int", "xs, k"))
    assert got.completion == "    LIMIT = 3\n    result = [x + k for x in xs]\n    return result[:LIMIT]\n"


def test_the_last_definition_wins_a_corrected_version_after_a_draft():
    draft = "```python\ndef add(xs, k):\n    return xs\n```\nWait, that is wrong. Corrected:\n"
    final = "```python\ndef add(xs, k):\n    return [x + k for x in xs]\n```"
    head = PY_HEAD.replace("xs: List[int], k: int", "xs, k")
    got = extract("python", draft + final, head)
    assert (got.completion, got.block) == ("    return [x + k for x in xs]\n", 1)
    twice = "```python\ndef add(xs, k):\n    return xs\n\ndef add(xs, k):\n    return [k]\n```"
    assert extract("python", twice, head).completion == "    return [k]\n"  # as Python runs it
    echo = f"You asked for:\n```python\n{head}```\nHere it is:\n```python\ndef add(xs, k):\n    return []\n```\nAbove."
    assert extract("python", echo, head).completion == "    return []\n"  # an echo of the prompt is no answer


def test_python_helper_in_an_earlier_block_and_one_line_defs_and_comment_first_bodies():
    answer = ("First a helper:\n```python\ndef plus(a, b):\n    return a + b\n```\nThen:\n"
              "```python\ndef add(xs, k): out = [plus(x, k) for x in xs]; return out\n```")
    got = extract("python", answer, PY_HEAD.replace("xs: List[int], k: int", "xs, k"))
    assert got.completion == ("    def plus(a, b):\n        return a + b\n    out = [plus(x, k) for x in xs]\n"
                              "    return out\n")
    got = extract("python", "```python\n# walk the list\nreturn xs\n```", PY_HEAD)
    assert got.completion == "    # walk the list\n    return xs\n"


def test_crlf_answers():
    answer = "```python\r\ndef add(xs, k):\r\n    return xs\r\n```\r\nDone.\r\n```python\r\nprint(1)\r\n```"
    got = extract("python", answer, PY_HEAD.replace("xs: List[int], k: int", "xs, k"))
    assert (got.completion, got.block) == ("    return xs\n", 0)


def test_includes_and_imports_lead_the_completion_for_the_assembly_to_hoist():
    cpp = ("```cpp\n#include <numeric>\n#include<vector>\nusing namespace std;\nvector<int> add(vector<int> xs, int k) {\n"
           "    int s = accumulate(xs.begin(), xs.end(), 0);\n    return {s + k};\n}\n```")
    assert extract("cpp", cpp, CPP_HEAD).completion.startswith("#include <numeric>\n\n    int s = accumulate(")
    java = ("```java\nimport java.util.*;\nimport java.util.stream.Collectors;\n\npublic class Solution {\n"
            "    public List<Integer> add(List<Integer> xs, int k) {\n"
            "        return xs.stream().map(x -> x + k).collect(Collectors.toList());\n    }\n}\n```")
    got = extract("java", java, JAVA_HEAD).completion
    assert got.startswith("import java.util.stream.Collectors;\n\n        return xs.stream()") and got.endswith("}\n}")
    rust = ("```rust\nuse std::fmt::Write;\nfn add(xs: Vec<i32>, k: i32) -> Vec<i32> {\n    let mut s = String::new();\n"
            "    write!(s, \"{}\", k).unwrap();\n    xs\n}\n```")
    assert extract("rust", rust, RUST_HEAD).completion.startswith("use std::fmt::Write;\n\n    let mut s")


def test_java_nested_class_before_the_method_stays_a_class():
    answer = ("```java\nclass Solution {\n    static class Pair {\n        int a;\n        Pair(int a) { this.a = a; }\n    }\n\n"
              "    public List<Integer> add(List<Integer> xs, int k) {\n        Pair p = new Pair(k);\n        return xs;\n    }\n}\n```")
    got = extract("java", answer, JAVA_HEAD).completion
    assert "    static class Pair {\n        int a;\n        Pair(int a) { this.a = a; }\n    }\n}" in got
    assert got.startswith("\n        Pair p = new Pair(k);")


def test_java_top_level_types_before_the_class_follow_it():
    """A helper class before ``class Solution`` (a Java file may hold several top-level classes): it
    follows the completion, which closes the method and the class first."""
    answer = ("```java\nimport java.util.*;\n\nclass Step {\n    static int of(int k) { return k; }\n}\n\n"
              "class Solution {\n    public List<Integer> add(List<Integer> xs, int k) {\n"
              "        List<Integer> out = new ArrayList<>();\n        for (int x : xs) out.add(x + Step.of(k));\n"
              "        return out;\n    }\n}\n```")
    assert extract("java", answer, JAVA_HEAD).completion == (
        "\n        List<Integer> out = new ArrayList<>();\n        for (int x : xs) out.add(x + Step.of(k));\n"
        "        return out;\n    }\n}\n\n\nclass Step {\n    static int of(int k) { return k; }\n}")


def test_js_arrow_with_an_expression_body_is_returned():
    got = extract("js", "```js\nconst add = (xs, k) => xs.map((x) => x + k);\n\nconsole.log(add([1], 2));\n```", JS_HEAD)
    assert (got.completion, got.method) == ("\n  return xs.map((x) => x + k);\n}", "function")
    got = extract("js", "```js\nconst add = (xs, k) =>\n  xs.map((x) => x + k)\nconsole.log(add([1], 2))\n```", JS_HEAD)
    assert got.completion == "\n  return xs.map((x) => x + k);\n}"  # on the next line, no semicolon


def test_go_call_with_a_composite_literal_before_the_definition():
    answer = ("```go\nfunc main() {\n    fmt.Println(Add([]int{1, 2}, 3))\n}\n\nfunc Add(xs []int, k int) []int {\n"
              "    return xs\n}\n```")
    assert extract("go", answer, GO_HEAD).completion == "\n    return xs\n}"


def test_cpp_types_before_the_function_make_the_head_forward_to_the_answer():
    answer = ("```cpp\ntypedef long long ll;\nstruct Acc { ll total = 0; void add(int v) { total += v; } };\n"
              "vector<int> add(vector<int> xs, int k) {\n    Acc a;\n    for (int x : xs) a.add(x + k);\n"
              "    return {(int)a.total};\n}\nint main() { add({1}, 2); }\n```")
    got = extract("cpp", answer, CPP_HEAD)
    assert got.method == "forwarded"
    assert got.completion == ("    vector<int> add__answer(vector<int> xs,int k);\n    return add__answer(xs, k);\n}\n"
                              "typedef long long ll;\nstruct Acc { ll total = 0; void add(int v) { total += v; } };\n"
                              "vector<int> add__answer(vector<int> xs, int k) {\n    Acc a;\n    for (int x : xs) a.add(x + k);\n"
                              "    return {(int)a.total};\n}")


def test_cpp_leetcode_class_member_is_called_through_the_heads_signature():
    """``class Solution { public: ... };`` (how many instruct models answer C++): the head forwards to
    a function of its own signature that calls the member; a private helper stays in the class."""
    answer = ("Here is the solution:\n```cpp\n#include <vector>\n#include <numeric>\nusing namespace std;\n\n"
              "class Solution {\npublic:\n    vector<int> add(vector<int> xs, int k) {\n"
              "        for (auto &x : xs) x += step(k);\n        return xs;\n    }\nprivate:\n"
              "    int step(int k) { return k; }\n};\n```\nThis adds k.")
    got = extract("cpp", answer, CPP_HEAD)
    assert got.method == "member"
    assert got.completion == ("#include <numeric>\n    vector<int> add__answer(vector<int> xs,int k);\n"
                              "    return add__answer(xs, k);\n}\n\nstruct Solution {\npublic:\n"
                              "    vector<int> add(vector<int> xs, int k) {\n        for (auto &x : xs) x += step(k);\n"
                              "        return xs;\n    }\nprivate:\n    int step(int k) { return k; }\n};\n"
                              "vector<int> add__answer(vector<int> xs,int k) {\n    return Solution().add(xs, k);\n}")
    static = answer.replace("    vector<int> add(", "    static vector<int> add(").replace("    int step(", "    static int step(")
    assert "return Solution::add(xs, k);" in extract("cpp", static, CPP_HEAD).completion
    # another member's `static` on the same line is not this one's; a base class defining the same
    # member first is not the one called; a class without `public:` is made a struct
    one_line = ("```cpp\nclass Base { public: virtual vector<int> add(vector<int> xs, int k) { return {}; } };\n"
                "class Solution : public Base { static int step(int k) { return k; } "
                "vector<int> add(vector<int> xs, int k) override { return xs; } };\n```")
    got = extract("cpp", one_line, CPP_HEAD).completion
    assert "return Solution().add(xs, k);" in got and "struct Solution : public Base {" in got
    # parameter types with commas inside <...>
    head = "#include<map>\n#include<string>\nusing namespace std;\nbool check(map<string,string> dict, int n){\n"
    got = extract("cpp", "```cpp\nclass Solution {\npublic:\n    bool check(map<string, string> dict, int n) "
                         "{ return n > 0; }\n};\n```", head).completion
    assert "return check__answer(dict, n);" in got and "return Solution().check(dict, n);" in got


def test_cpp_return_type_on_its_own_line():
    answer = "```cpp\nvector<int>\nadd(vector<int> xs, int k)\n{\n    return xs;\n}\n```"
    assert extract("cpp", answer, CPP_HEAD).completion == "\n    return xs;\n}"


# -- every problem: answers around the reference solutions -----------------------------------------

def _answer(problem, shape: str) -> str:
    lang = problem.language
    tag = {"cpp": "cpp", "js": "javascript"}.get(lang.name, lang.name)
    head = generation_prompt(problem)
    code = {"full": (head if lang.name == "python" else problem.declaration) + problem.canonical_solution,
            "body": problem.canonical_solution}[shape]
    return f"Sure! Here is the {lang.display} solution:\n\n```{tag}\n{code}\n```\n\nIt works as follows: ..."


@pytest.mark.parametrize("shape", ["full", "body"])
def test_every_reference_restated_or_alone_extracts_to_the_references_completion(shape, dataset_dir):
    """For all 984 problems: the reference as a whole restated function (prompt or declaration
    + solution) and as a body alone, in an answer with prose, extracts to what cleaning the
    reference gives."""
    from geex.humanevalx.assembly import _hoisted

    problems = load_problems(list(HUMANEVALX_LANGUAGES), dataset_dir)
    wrong = []
    for p in problems.values():
        head = generation_prompt(p)
        got = extract(p.language, _answer(p, shape), head).completion
        if p.language.name in ("cpp", "java"):  # the declaration's includes the prompt lacks go to the top
            got, top = _hoisted(p.language.name, got)
            assert all(line in p.declaration for line in top.splitlines()), (p.task_id, top)
        if got.strip() != cleanup(p.language, p.canonical_solution, head).strip():
            wrong.append(p.task_id)
    assert not wrong, wrong


SHAPED = ["Python/10", "CPP/55", "Java/10", "JavaScript/10", "Go/12", "Rust/55"]


def _helper_first(problem) -> str:
    """The reference with a helper the body calls defined before the function (renamed body)."""
    lang, head = problem.language, generation_prompt(problem)
    name = entry_point(lang, head)
    decl = head if lang.name == "python" else problem.declaration
    body = problem.canonical_solution
    helper = {"python": f"def {name}_impl():\n    return 0\n\n\n",
              "cpp": f"int {name}_impl() {{\n    return 0;\n}}\n\n",
              "java": None, "js": f"function {name}_impl() {{\n  return 0;\n}}\n\n",
              "go": f"func {name}_impl() int {{\n    return 0\n}}\n\n", "rust": f"fn {name}_impl() -> i32 {{\n    0\n}}\n\n"}
    call = {"python": f"    {name}_impl()\n", "cpp": f"    {name}_impl();\n", "js": f"  {name}_impl();\n",
            "go": f"    _ = {name}_impl()\n", "rust": f"    let _ = {name}_impl();\n"}
    if lang.name == "java":
        cut = decl.rfind("    public ")
        decl = decl[:cut] + f"    private int {name}Impl() {{\n        return 0;\n    }}\n\n" + decl[cut:]
        return f"```java\n{decl}        {name}Impl();\n{body}\n```"
    cut = decl.rfind("def " if lang.name == "python" else "\n", 0, len(decl.rstrip()))
    head_part, sig = (decl[:cut], decl[cut:]) if lang.name == "python" else (decl[:cut + 1], decl[cut + 1:])
    if lang.name == "python":  # the signature and docstring, then the call, then the body
        return f"```python\n{head_part}{helper['python']}{sig}{call['python']}{body}\n```"
    return f"```\n{head_part}{helper[lang.name]}{sig}{call[lang.name]}{body}\n```"


def _wrong(problem) -> str:
    """The answer around a body that returns at once (a wrong solution)."""
    early = {"python": "    return None\n", "cpp": "    return {};\n}\n", "java": "        return null;\n    }\n}\n",
             "js": "  return undefined;\n}\n", "go": "    return nil\n}\n", "rust": "    unimplemented!()\n}\n"}
    return f"```\n{early[problem.language.name]}```"


HOISTED_ANSWERS = [  # (task, answer): each needs what only the answer declares
    ("CPP/53", "```cpp\n#include <numeric>\n#include <vector>\nusing namespace std;\nint add(int x, int y) {\n"
               "    vector<int> v{x, y};\n    return accumulate(v.begin(), v.end(), 0);\n}\n```"),
    ("Java/53", "```java\nimport java.util.stream.IntStream;\n\nclass Solution {\n    public int add(int x, int y) {\n"
                "        return IntStream.of(x, y).sum();\n    }\n}\n```"),
    # a typedef and a struct (with a method of the function's name) before it: forwarded
    ("CPP/53", "```cpp\ntypedef long long ll;\nstruct Acc { ll total = 0; void add(int v) { total += v; } };\n"
               "int add(int x, int y) {\n    Acc a;\n    a.add(x);\n    a.add(y);\n    return (int)a.total;\n}\n"
               "int main() { return add(1, 2) == 3 ? 0 : 1; }\n```"),
    # LeetCode's shape: the function a member of a class, with a private helper
    ("CPP/53", "```cpp\n#include <vector>\nusing namespace std;\n\nclass Solution {\npublic:\n    int add(int x, int y) {\n"
               "        return plus(x, y);\n    }\nprivate:\n    int plus(int a, int b) { return a + b; }\n};\n```"),
    ("CPP/53", "```cpp\nstruct Solution {\n    static int add(int x, int y) { return x + y; }\n};\n```"),
    # a top-level class before Java's class Solution
    ("Java/53", "```java\npublic class Adder {\n    static int sum(int a, int b) { return a + b; }\n}\n\nclass Solution {\n"
                "    public int add(int x, int y) {\n        return Adder.sum(x, y);\n    }\n}\n```"),
    # no `public:` (a class's members are private by default) and a base class defining it first
    ("CPP/53", "```cpp\nclass Base { public: virtual int add(int x, int y) { return 0; } };\n"
               "class Solution : public Base {\n    int add(int x, int y) override { return x + y; }\n};\n```"),
    # the class in one block, a function calling it in the next (with a draft of the function first)
    ("CPP/53", "First:\n```cpp\nint add(int x, int y) { return 0; }\nstruct Adder {\n    int sum(int x, int y) { return x + y; }\n};\n```\n"
               "Then:\n```cpp\nint add(int x, int y) {\n    return Adder().sum(x, y);\n}\n```"),
]


def test_answers_around_references_pass(tmp_path, dataset_dir):
    """The executed oracle: answers built around reference solutions (restated, alone, with a
    helper defined before the function) extract to programs that pass the problems' own tests in
    the sandbox; the same answers around a wrong body do not."""
    from geex.humanevalx.evaluate import EvalConfig, evaluate

    problems = load_problems([get_language(t.split("/")[0]) for t in SHAPED], dataset_dir)
    rows = []
    for t in SHAPED:
        p = problems[t]
        head = generation_prompt(p)
        answers = [_answer(p, "full"), _answer(p, "body"), _helper_first(p), _wrong(p)]
        for i, answer in enumerate(answers):
            rows.append({"task_id": t, "completion_id": i, "completion": extract(p.language, answer, head).completion})
    # headers and packages the heads do not name: usable only if the assembly hoists the answer's lines
    for i, (t, answer) in enumerate(HOISTED_ANSWERS):
        p = load_problems([get_language(t.split("/")[0])], dataset_dir)[t]
        rows.append({"task_id": t, "completion_id": 10 + i,
                     "completion": extract(p.language, answer, generation_prompt(p)).completion})
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "eval"
    evaluate(EvalConfig(samples=str(samples), out_dir=out, dataset=dataset_dir, workers=2, progress=False))
    results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    passed = {(r["task_id"], r["completion_id"]): r["passed"] for r in results}
    assert all(passed[(t, 10 + i)] for i, (t, _) in enumerate(HOISTED_ANSWERS))
    assert {k for k, ok in passed.items() if not ok and k[1] < 10} == {(t, 3) for t in SHAPED}, \
        [(r["task_id"], r["completion_id"], r["verdict"]) for r in results if r["passed"] != (r["completion_id"] != 3)]


def test_the_answers_helper_is_really_before_the_function(dataset_dir):
    """Control on the shaped answers: the helper sits before the target, so the mover is exercised."""
    problems = load_problems([get_language("cpp")], dataset_dir)
    answer = _helper_first(problems["CPP/55"])
    assert answer.index("fib_impl()") < answer.index("int fib(")
    assert "int fib_impl();" in extract("cpp", answer, generation_prompt(problems["CPP/55"])).completion
