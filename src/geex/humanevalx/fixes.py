"""HumanEval-X fixed: a versioned, documented list of corrections to the published data.

Each fix names its task, says what was wrong and how we know (evidence), and edits the problem by
exact text replacement: if the published text is not found, loading fails loudly instead of
silently skipping the fix (so a changed upstream file cannot yield a half-fixed benchmark).
The human-readable list is ``docs/data-fixes.md``; reports record ``FIXES_VERSION``.
"""

from __future__ import annotations

from dataclasses import dataclass

from geex.errors import UserError
from geex.humanevalx.problem import Problem

FIXES_VERSION = "humaneval-x-fixed/2"


@dataclass(frozen=True)
class Edit:
    """Replace ``old`` by ``new`` in one field (``count`` occurrences, all of them if None)."""

    field: str
    old: str
    new: str
    count: int | None = 1


@dataclass(frozen=True)
class Fix:
    task_id: str
    kind: str  # "wrong-reference", "vacuous-test", "wrong-prompt", "typo", ...
    summary: str  # what was wrong
    evidence: str  # how we know
    edits: tuple[Edit, ...]

    def apply(self, problem: Problem) -> Problem:
        changes: dict[str, str] = {}
        for edit in self.edits:
            text = changes.get(edit.field, problem.get(edit.field))
            found = text.count(edit.old)
            if found == 0 or (edit.count is not None and found != edit.count):
                raise UserError(
                    f"data fix for {self.task_id} does not apply: {edit.field!r} holds "
                    f"{found} occurrence(s) of the text to replace (expected {edit.count or 'some'}); "
                    "is this the published HumanEval-X data? Pass `original` to skip fixes."
                )
            changes[edit.field] = text.replace(edit.old, edit.new)
        return problem.with_fields(**changes)


def _rename(old: str, new: str, **fields: int) -> tuple[Edit, ...]:
    """Rename an identifier in each named field; the value is how often it occurs there."""
    return tuple(Edit(f, old, new, count=n) for f, n in fields.items())


# Helper code moved from a Rust canonical_solution into its declaration (HumanEvalPack layout):
# verbatim, except that the bodies of Rust/10 and Rust/32 lose the reference's extra indentation.
_RUST10_IS_PALINDROME_BODY = "    let s: String = str.chars().rev().collect();\n    return s==str;\n"
_RUST32_POLY_BODY = (
    "    let mut sum = 0.0;\n"
    "    for i in 0..xs.len() {\n"
    "        sum += xs[i] * x.powi(i as i32);\n"
    "    }\n"
    "    sum\n"
)
_RUST38_ENCODE_CYCLIC = (
    'pub fn encode_cyclic(s: &str) -> String {\n'
    '    // returns encoded string by cycling groups of three characters.\n'
    '    // split string to groups. Each of length 3.\n'
    '    let l = s.len();\n'
    '    let num = (l + 2) / 3;\n'
    '    let mut output = String::new();\n'
    '    for i in 0..num {\n'
    '        let group = &s[i * 3..std::cmp::min(l, (i + 1) * 3)];\n'
    '        // cycle elements in each group. Unless group has fewer elements than 3.\n'
    '        if group.len() == 3 {\n'
    '            let x = format!("{}{}{}", &group[1..2], &group[2..3], &group[0..1]);\n'
    '            output.push_str(&x);\n'
    '        } else {\n'
    '            output.push_str(group);\n'
    '        }\n'
    '    }\n'
    '    output\n'
    '}\n'
)
_RUST50_ENCODE_SHIFT_BODY = (
    '\n'
    '    let alphabet:Vec<&str> = vec!["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n"\n'
    '    , "o", "p", "q", "r", "s", "t", "u", "v", "w", "x", "y", "z"];\n'
    '    let mut output = String::new();\n'
    '\n'
    '    for c in s.chars() {\n'
    '        let mut lower = false;\n'
    '        if c.is_ascii_lowercase(){\n'
    '            lower = true;\n'
    '        }\n'
    '        let mut c_shift:String = "".to_string();\n'
    '        if lower {\n'
    '            let index:usize = alphabet.iter().position(|&x| x == c.to_string()).unwrap();\n'
    '            c_shift = alphabet[(index + 5) % 26].to_string();\n'
    '        }else{\n'
    '            let c_lower:String = c.to_ascii_lowercase().to_string();\n'
    '            let index:usize = alphabet.iter().position(|&x| x == c_lower).unwrap();\n'
    '            c_shift = alphabet[(index + 5) % 26].to_string();\n'
    '            c_shift = c_shift.to_ascii_uppercase().to_string();\n'
    '            \n'
    '        }\n'
    '\n'
    '        output.push_str(&c_shift);\n'
    '    }\n'
    '    output\n'
)
_RUST137_ENUM = (
    '#[derive(Debug, PartialEq)]\n'
    'pub enum RtnType<S, F, I> {\n'
    '    Empty(),\n'
    '    String(S),\n'
    '    Float(F),\n'
    '    Int(I),\n'
    '}\n'
)
# Go helpers that the published `prompt` defines before the requested function but `declaration`
# (all that a translation shows of the target, and the head of translation programs) leaves out.
# Verbatim from the prompt, with their comment; the harness adds the imports they use.
_GO10_IS_PALINDROME = (
    "// Test if given string is a palindrome.\n"
    "func IsPalindrome(str string) bool {\n"
    "    runes := []rune(str)\n"
    "    result := make([]rune, 0)\n"
    "    for i := len(runes) - 1; i >= 0; i-- {\n"
    "        result = append(result, runes[i])\n"
    "    }\n"
    "    return str == string(result)\n"
    "}\n"
)
_GO32_POLY = (
    "// Evaluates polynomial with coefficients xs at point x.\n"
    "// return xs[0] + xs[1] * x + xs[1] * x^2 + .... xs[n] * x^n\n"
    "func Poly(xs []int, x float64) float64{\n"
    "    sum := 0.0\n"
    "    for i, coeff := range xs {\n"
    "        sum += float64(coeff) * math.Pow(x,float64(i))\n"
    "    }\n"
    "    return sum\n"
    "}\n"
)
_GO38_ENCODE_CYCLIC = (
    "// returns encoded string by cycling groups of three characters.\n"
    "func EncodeCyclic(s string) string {\n"
    "    groups := make([]string, 0)\n"
    "    for i := 0; i < ((len(s) + 2) / 3); i++ {\n"
    "        groups = append(groups, s[3*i:int(math.Min(float64(3*i+3), float64(len(s))))])\n"
    "    }\n"
    "    newGroups := make([]string, 0)\n"
    "    for _, group := range groups {\n"
    "        runes := []rune(group)\n"
    "        if len(group) == 3 {\n"
    "            newGroups = append(newGroups, string(append(runes[1:], runes[0])))\n"
    "        } else {\n"
    "            newGroups = append(newGroups, group)\n"
    "        }\n"
    "    }\n"
    '    return strings.Join(newGroups, "")\n'
    "}\n"
)
_GO50_ENCODE_SHIFT = (
    "// returns encoded string by shifting every character by 5 in the alphabet.\n"
    "func EncodeShift(s string) string {\n"
    "    runes := []rune(s)\n"
    "    newRunes := make([]rune, 0)\n"
    "    for _, ch := range runes {\n"
    "        newRunes = append(newRunes, (ch+5-'a')%26+'a')\n"
    "    }\n"
    "    return string(runes)\n"
    "}\n"
)
_GO_DECLARATION_EVIDENCE = (
    "the reference evaluated as a translation (program = declaration + reference + test) fails "
    "to compile: undefined: {helper}; the prompt and every other language's declaration define "
    "the helper before the requested function"
)


def _go_helper_fix(task_id: str, helper_name: str, helper: str, signature: str) -> Fix:
    """Put a Go helper from the prompt into the declaration, before the requested signature.

    The published declaration is "\\n" + the signature: exactly one "\\nfunc ". The edit keys on
    that count (two after the fix), so it cannot apply twice or to a declaration that already has
    the helper; the signature itself is left as it is.
    """
    assert signature.startswith("func ")
    return Fix(
        task_id, "wrong-declaration",
        f"`declaration` is only the signature `{signature.rstrip(' {')}`; the helper {helper_name}, "
        "which the test (or the reference) calls, is only in `prompt`, so a translated body, "
        "however correct, cannot compile",
        _GO_DECLARATION_EVIDENCE.format(helper=helper_name),
        (Edit("declaration", "\nfunc ", f"\n{helper}\nfunc ", count=1),),
    )


_HEP = "HumanEvalPack (bigcode-project/octopack evaluation/create/humaneval-x/README.md, 'Modifications')"

FIXES: tuple[Fix, ...] = (
    # --- Python -------------------------------------------------------------------------------
    Fix(
        "Python/142", "typo",
        'stray quote: the docstring opens with """" and the declaration is the signature plus a '
        'lone `"` line (a translation into Python continues an unterminated string)',
        f"reading the data; fixed in {_HEP}: 'Removed a spurious double quotation mark'",
        (
            Edit("prompt", '    """"\n', '    """\n'),
            Edit("declaration", 'def sum_squares(lst):\n    "\n', "def sum_squares(lst):\n"),
        ),
    ),
    # --- C++ ----------------------------------------------------------------------------------
    Fix(
        "CPP/23", "vacuous-test",
        'the test calls strlen("...") with string literals, which resolves to C\'s '
        "strlen(const char*) (the harness includes <cstring>, as the original did): the "
        "solution's `int strlen(string)` is never called",
        "a stand-in completion that throws passes; canonical passes with or without the fix",
        (
            Edit("test", 'assert (strlen("") == 0);', 'assert (strlen(std::string("")) == 0);'),
            Edit("test", 'assert (strlen("x") == 1);', 'assert (strlen(std::string("x")) == 1);'),
            Edit("test", 'assert (strlen("asdasnakj") == 9);', 'assert (strlen(std::string("asdasnakj")) == 9);'),
            Edit("example_test", 'assert (strlen("") == 0);', 'assert (strlen(std::string("")) == 0);'),
            Edit("example_test", 'assert (strlen("abc") == 3);', 'assert (strlen(std::string("abc")) == 3);'),
        ),
    ),
    Fix(
        "CPP/27", "typo", "the function is named `filp_case` (the docstring says flip_case)",
        f"reading the data; renamed in {_HEP}",
        _rename("filp_case", "flip_case", prompt=1, declaration=1, test=3, example_test=1),
    ),
    Fix(
        "CPP/38", "wrong-declaration",
        "`declaration` ends with the first seven lines of decode_cyclic's body instead of its "
        "signature; it leaks into translation prompts",
        "reading the data; THUDM/CodeGeeX#257 (translation prompt holds half a solution)",
        (
            Edit(
                "declaration",
                "string decode_cyclic(string s){ \n   int l=s.length();\n    int num=(l+2)/3;\n"
                "    string x,output;\n    int i;\n    for (i=0;i*3<l;i++)\n    {\n",
                "string decode_cyclic(string s){ \n",
            ),
        ),
    ),
    Fix(
        "CPP/77", "typo", "the function is named `iscuber` (the docstring says iscube)",
        f"reading the data; renamed in {_HEP}",
        _rename("iscuber", "iscube", prompt=1, declaration=1, test=8, example_test=6),
    ),
    # --- Java ---------------------------------------------------------------------------------
    Fix(
        "Java/22", "typo", "the method is named `filterIntergers`",
        f"reading the data; renamed in {_HEP}",
        _rename("filterIntergers", "filterIntegers", prompt=1, declaration=1, test=3, example_test=2),
    ),
    # --- JavaScript ---------------------------------------------------------------------------
    Fix(
        "JavaScript/32", "flaky-test",
        "the test draws its polynomials from Math.random (unseeded), unlike Python, C++, Java "
        "and Go, whose tests use a fixed seed; the reference's bisection stops at width 1e-10, "
        "which leaves |poly(x)| slightly above the 1e-4 tolerance for some polynomials with a "
        "large root (|x| near 11), so the same program passes or fails from run to run",
        "measured: the reference exceeded the tolerance in 13 of 2,000,000 calls (e.g. "
        "[5,2,2,5,7,-10,10,1] gives |poly| = 1.016e-4) and the whole test failed for 2 of 5,000 "
        "seeds, i.e. the canonical run fails about once in 1,500-2,500 runs; with the fixed "
        "seed it passes every time",
        (
            Edit(
                "test",
                "const testfindZero = () => {\n  const getRandomIntInclusive",
                "const testfindZero = () => {\n"
                "  let seed = 42  // mulberry32: the same sequence on every run\n"
                "  const random = () => {\n"
                "    seed = (seed + 0x6D2B79F5) | 0\n"
                "    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed)\n"
                "    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t\n"
                "    return ((t ^ (t >>> 14)) >>> 0) / 4294967296\n"
                "  }\n"
                "  const getRandomIntInclusive",
            ),
            Edit("test", "Math.floor(Math.random() * (max - min + 1))", "Math.floor(random() * (max - min + 1))"),
        ),
    ),
    Fix(
        "JavaScript/32", "broken-example-test",
        "example_test ends with a call to testfindZero, which only the hidden test defines (so "
        "it throws ReferenceError for every solution), and its two asserts close Math.abs( "
        "after the comparison, so they only check one side",
        "canonical fails its example test (run as the test): ReferenceError: testfindZero is "
        "not defined; the one-sided asserts by reading",
        (
            Edit("example_test", "testPoly()\ntestfindZero()\n", "testPoly()\n"),
            Edit(
                "example_test", "Math.abs(findZero([1,2])+0.5 < 1e-4)", "Math.abs(findZero([1,2])+0.5) < 1e-4",
            ),
            Edit(
                "example_test",
                "Math.abs(findZero([-6,11,-6,1])-1 < 1e-4)", "Math.abs(findZero([-6,11,-6,1])-1) < 1e-4",
            ),
        ),
    ),
    Fix(
        "JavaScript/112", "wrong-reference",
        "the reference returns the comma expression `(z, false)` / `(z, true)`, i.e. a bare "
        "boolean, instead of [result string, is palindrome]; it was written against the old "
        "test whose console.assert could not fail",
        "canonical fails its own test: console.assert(JSON.stringify(reverseDelete('abcde', "
        "'ae')) === JSON.stringify(['bcd', false])); CodeGeeX commit 616446d fixed only the "
        f"test; {_HEP}: 'rewrote the solution, which was incorrect'",
        (
            Edit("canonical_solution", "    return (z, false)\n", "    return [t, false]\n"),
            Edit("canonical_solution", "  return (z, true)\n", "  return [t, true]\n"),
        ),
    ),
    Fix(
        "JavaScript/155", "wrong-reference",
        "the reference loops `while (num > 0)`, so evenOddCount(0) is [0, 0]; 0 has one even digit",
        "canonical fails its own test: console.assert(JSON.stringify(evenOddCount(0)) === "
        "JSON.stringify([1, 0])); the Python reference counts the digits of str(abs(num))",
        (
            Edit(
                "canonical_solution",
                "  if (num < 0) { num = -num }\n  while (num > 0) {\n    if (num % 2 == 0) { e++ }\n"
                "    else { o++ }\n    num = (num - num % 10) / 10\n  }\n",
                "  for (const d of String(Math.abs(num))) {\n    if (Number(d) % 2 == 0) { e++ }\n"
                "    else { o++ }\n  }\n",
            ),
        ),
    ),
    # --- Go -----------------------------------------------------------------------------------
    Fix(
        "Go/162", "test-setup",
        'test_setup imports "crypto/md5", which the test never uses: any solution that does not '
        'call md5 (or any stub) fails to compile with `imported and not used: "crypto/md5"`',
        "a stand-in completion that panics gets compile_error instead of a runtime failure; the "
        "harness adds crypto/md5 itself when the solution uses md5",
        (Edit("test_setup", '    "crypto/md5"\n', ""),),
    ),
    _go_helper_fix("Go/10", "IsPalindrome", _GO10_IS_PALINDROME, "func MakePalindrome(str string) string {"),
    _go_helper_fix("Go/32", "Poly", _GO32_POLY, "func FindZero(xs []int) float64 {"),
    _go_helper_fix("Go/38", "EncodeCyclic", _GO38_ENCODE_CYCLIC, "func DecodeCyclic(s string) string {"),
    _go_helper_fix("Go/50", "EncodeShift", _GO50_ENCODE_SHIFT, "func DecodeShift(s string) string {"),
    Fix(
        "Go/50", "wrong-prompt",
        "the helper EncodeShift computes the shifted runes but returns `string(runes)`, i.e. its "
        "input, and the reference DecodeShift does the same; the test only checks "
        "DecodeShift(EncodeShift(s)) == s, so it passes the identity and fails a DecodeShift that "
        "undoes a shift by 5, which is what the docstring and every other language ask for",
        "on the published data a DecodeShift that shifts back by 5 (mod 26) fails the test "
        "(wrong_answer) and `return s` passes; the Python, C++, Java, JavaScript and Rust "
        "encode_shift helpers shift by 5 and their references shift back",
        (
            Edit("prompt", "        newRunes = append(newRunes, (ch+5-'a')%26+'a')\n    }\n    return string(runes)\n",
                 "        newRunes = append(newRunes, (ch+5-'a')%26+'a')\n    }\n    return string(newRunes)\n"),
            Edit("declaration",
                 "        newRunes = append(newRunes, (ch+5-'a')%26+'a')\n    }\n    return string(runes)\n",
                 "        newRunes = append(newRunes, (ch+5-'a')%26+'a')\n    }\n    return string(newRunes)\n"),
            # Go's % keeps the sign of the dividend: +26 keeps 'a'..'e' inside the alphabet.
            Edit("canonical_solution",
                 "        newRunes = append(newRunes, (ch-5-'a')%26+'a')\n    }\n    return string(runes)\n",
                 "        newRunes = append(newRunes, (ch-5-'a'+26)%26+'a')\n    }\n    return string(newRunes)\n"),
        ),
    ),
    Fix(
        "Go/95", "wrong-reference",
        "the reference leaves the loop (`else { break }`) as soon as a second key agrees with the "
        "first, so it looks at only two keys, and which two depends on Go's randomized map "
        "iteration order: it returns true for the test's {\"p\", \"A\", \"B\"} when A and B "
        "come first and for {\"p\", 5, \"a\"} when \"a\" and \"p\" come first",
        "measured (go1.19, the two calls 1,000,000 times each): 12.5% true for each map, so the "
        "test fails in 23% of runs (a sweep caught it: wrong_answer, expected false, actual "
        "true); without the `else { break }` (as in the Java and Rust references, which check "
        "every key) 0 of 1,000,000",
        (
            Edit(
                "canonical_solution",
                '            state = "mixed"\n            break\n        } else {\n            break\n        }\n',
                '            state = "mixed"\n            break\n        }\n',
            ),
        ),
    ),
    # --- Rust ---------------------------------------------------------------------------------
    Fix(
        "Rust/10", "wrong-prompt",
        "declaration ends with the helper's signature `fn is_palindrome_10`, so the model is "
        "asked for the helper while the docstring and test are about make_palindrome, which "
        "only the reference defines",
        "a stand-in completion fails to compile: cannot find function `make_palindrome`; "
        f"{_HEP}: 'Moved is_palindrome to the declaration / prompt'",
        (
            Edit(
                "declaration", "fn is_palindrome_10(str: &str) -> bool {\n",
                "fn is_palindrome_10(str: &str) -> bool {\n" + _RUST10_IS_PALINDROME_BODY
                + "}\n\nfn make_palindrome(str: &str) -> String {\n",
            ),
            Edit(
                "canonical_solution",
                "\n        let s: String = str.chars().rev().collect();\n        return s==str;\n"
                "    }\n    \n    fn make_palindrome(str: &str) -> String {\n",
                "",
            ),
        ),
    ),
    Fix(
        "Rust/32", "wrong-prompt",
        "the declaration ends with the helper's signature `fn poly`, so the model is asked for "
        "poly while the docstring is about find_zero; poly itself (which the docstring and the "
        "test use) is shown nowhere",
        f"reading the data; {_HEP}: 'Move poly() to the prompt'",
        (
            Edit(
                "declaration", "fn poly(xs: &Vec<f64>, x: f64) -> f64 {\n\n",
                "fn poly(xs: &Vec<f64>, x: f64) -> f64 {\n" + _RUST32_POLY_BODY
                + "}\n\nfn find_zero(xs: &Vec<f64>) -> f64 {\n\n",
            ),
            Edit(
                "canonical_solution",
                "\n        let mut sum = 0.0;\n        for i in 0..xs.len() {\n"
                "            sum += xs[i] * x.powi(i as i32);\n        }\n        sum\n    }\n"
                "    \n    fn find_zero(xs: &Vec<f64>) -> f64 {\n",
                "",
            ),
        ),
    ),
    Fix(
        "Rust/32", "vacuous-test",
        "the whole test module is wrapped in /* */, so nothing is tested; once enabled it does "
        "not compile with rand 0.8 (it uses the rand 0.4 call gen_range(a, b))",
        "a stand-in completion that panics passes; THUDM/CodeGeeX#246 and its open fix PR #247 "
        f"'fix: Rust/32 unit test in comment'; {_HEP}: 'Removed the comments that were "
        "deactivating the tests'",
        (
            Edit("test", "\n/*\n#[cfg(test)]\n", "\n#[cfg(test)]\n"),
            Edit("test", "\n}\n*/\n", "\n}\n"),
            Edit("test", "rng.gen_range(0, 4)", "rng.gen_range(0..4)"),
            Edit("test", "rng.gen_range(0, 21)", "rng.gen_range(0..21)"),
        ),
    ),
    Fix(
        "Rust/32", "wrong-reference",
        "the reference runs Newton's method from x = 0 with no iteration limit: on the random "
        "polynomials of the (now enabled) test it often never terminates or stops on a value "
        "that fails the assertion. Replaced by the bisection of the Python, Java, JavaScript "
        "and Go references",
        "measured on the enabled test (random polynomials from thread_rng): the Newton reference "
        "failed 161 of 300 runs (137 by timeout); the bisection's worst |poly(x)| over 2,000,000 "
        "random polynomials is 1.1e-4, under the test's 1e-3",
        (
            Edit(
                "canonical_solution",
                "        let mut ans = 0.0;\n        let mut value = poly(xs, ans);\n"
                "        while value.abs() > 1e-6 {\n            let mut driv = 0.0;\n"
                "            for i in 1..xs.len() {\n"
                "                driv += xs[i] * ans.powi((i - 1) as i32) * (i as f64);\n"
                "            }\n            ans = ans - value / driv;\n            value = poly(xs, ans);\n"
                "        }\n        ans\n    }\n",
                "    let mut begin = -1.0;\n    let mut end = 1.0;\n"
                "    while poly(xs, begin) * poly(xs, end) > 0.0 {\n        begin *= 2.0;\n        end *= 2.0;\n    }\n"
                "    while end - begin > 1e-10 {\n        let center = (begin + end) / 2.0;\n"
                "        if poly(xs, center) * poly(xs, begin) > 0.0 {\n            begin = center;\n"
                "        } else {\n            end = center;\n        }\n    }\n    begin\n}\n",
            ),
        ),
    ),
    Fix(
        "Rust/38", "wrong-prompt",
        "the helper encode_cyclic, which the docstring refers to and the test calls, is defined "
        "only after the reference solution, so the model never sees it and a correct "
        "decode_cyclic cannot compile",
        "a stand-in completion fails to compile: cannot find function `encode_cyclic`; "
        f"{_HEP}: 'Moved the encode_cyclic function prior to the decode_cyclic function like in "
        "other languages'",
        (
            Edit(
                "declaration", "fn decode_cyclic(s: &str) -> String {\n\n",
                _RUST38_ENCODE_CYCLIC + "\nfn decode_cyclic(s: &str) -> String {\n\n",
            ),
            Edit("canonical_solution", _RUST38_ENCODE_CYCLIC + "\n", ""),
        ),
    ),
    Fix(
        "Rust/50", "wrong-prompt",
        "the declaration ends with the helper's signature `fn encode_shift`, so the model is "
        "asked for encode_shift while the docstring and the test are about decode_shift (defined "
        "only in the reference, after encode_shift's body)",
        "a stand-in completion fails to compile: cannot find function `decode_shift`; "
        f"{_HEP}: 'Moved encode_shift to the declaration / prompt'",
        (
            Edit(
                "declaration", "fn encode_shift(s: &str) -> String {\n\n",
                "fn encode_shift(s: &str) -> String {" + _RUST50_ENCODE_SHIFT_BODY
                + "}\n\nfn decode_shift(s: &str) -> String {\n",
            ),
            Edit(
                "canonical_solution",
                _RUST50_ENCODE_SHIFT_BODY + "}\n\npub fn decode_shift(s: &str) -> String {\n", "",
            ),
        ),
    ),
    Fix(
        "Rust/50", "rand-api",
        "the test uses the rand 0.4 call gen_range(a, b); rand 0.8 (our toolchain, and any "
        "rand since 0.8) takes a range, gen_range(a..b)",
        "canonical fails to compile: error[E0061]: this method takes 1 argument but 2 arguments "
        "were supplied (rand-0.8.5 gen_range)",
        (
            Edit("test", "rng.gen_range(0, 2)", "rng.gen_range(0..2)"),
            Edit("test", "rng.gen_range(b'a', b'z' + 1)", "rng.gen_range(b'a'..=b'z')"),
            Edit("test", "rng.gen_range(b'A', b'Z' + 1)", "rng.gen_range(b'A'..=b'Z')"),
        ),
    ),
    Fix(
        "Rust/77", "typo", "the function is named `iscuber`",
        f"reading the data; renamed in {_HEP}",
        _rename("iscuber", "iscube", declaration=1, test=9),
    ),
    Fix(
        "Rust/137", "wrong-prompt",
        "the signature returns RtnType<String,f64,i32>, an enum defined only in the reference "
        "solution: a model must guess its exact variants for the test to compile",
        "a stand-in completion fails to compile: use of undeclared type `RtnType`",
        (
            Edit(
                "declaration",
                "fn compare_one<'a>(a:&'a dyn Any, b:&'a dyn Any) -> RtnType<String,f64,i32>{\n",
                _RUST137_ENUM + "\nfn compare_one<'a>(a:&'a dyn Any, b:&'a dyn Any) -> RtnType<String,f64,i32>{\n",
            ),
            Edit("canonical_solution", _RUST137_ENUM + "\n", ""),
        ),
    ),
)


def fixes_for(task_id: str) -> list[Fix]:
    return [fix for fix in FIXES if fix.task_id == task_id]


def apply_fixes(problems: list[Problem]) -> list[Problem]:
    """The fixed variant of a language's problems (order kept)."""
    return [_apply_all(p) for p in problems]


def _apply_all(problem: Problem) -> Problem:
    for fix in fixes_for(problem.task_id):
        problem = fix.apply(problem)
    return problem
