"""The code in a chat model's answer, as the completion that continues the problem's prompt.

An instruct model answers in Markdown: prose, one or more fenced blocks, often the whole function
again (signature and docstring restated), helpers before or after it, sometimes only a body. The
harness tests a *completion* (head + completion + test, ``assembly``; head = the prompt or, for
translation, the target declaration), so the answer is turned into one, as if the model had
continued the head — then prompt and answer never define the function twice:

1. **The block**: the answer's fenced blocks (an unclosed last fence runs to the end of the
   answer; a backtick fence after prose on its line opens a block when it names a language or
   nothing); the *last* one tagged with the target language (or untagged) that defines the entry
   point with a body (a corrected version follows a first draft; an echo of the prompt is no
   answer), else the last that defines it, else the first in the language, else the first block.
   No fence at all: the whole answer is the block. Python: earlier blocks of the language come
   with it (a helper shown first); C++: the types of earlier blocks it uses (a class shown first,
   then a function calling it).
2. **The function**: the entry point is the head's last function. Its definition in the block
   (Python: the last, as Python runs it) gives the completion: its body (a restated docstring
   dropped; a JavaScript arrow's expression body returned), with the block's other definitions.
   Python: the definitions the function reads without binding them are nested at the start of
   the body (the cleanup cuts Python at the first unindented line; a nested helper is in scope;
   an example variable named like a parameter or a local is not pulled in, nor a statement that
   calls the function); the body is re-indented to the head's; if the answer renamed the
   parameters, its whole function is nested and called with the head's. Brace languages:
   definitions before the function follow it (cleanup keeps those the body uses; a Java member
   stays inside its class; ``main`` goes), C++ declares each such function at the start of the
   body (block scope; a ``static`` is dropped so the two agree), and the answer's C++
   ``#include``, Java ``import`` and Rust ``use`` lines the head lacks lead the completion — the
   assembly hoists the first two to the top of the program, a ``use`` is valid in a body.
   A C++ answer that defines a type, typedef, global or template before its function (which
   cannot follow a function that uses it) is *forwarded*: the head's function declares the
   answer's, renamed ``<entry>__answer``, and returns its result; the answer follows in its order.
   A C++ entry point that is a member of a top-level class (LeetCode's ``class Solution``) is
   forwarded too, to a function of the head's signature that calls the member. Java types defined
   before the method's class follow the completion (after the class closes).
3. **No definition of the entry point**: the block is taken as the body (Python: indented if it
   is not; a brace language: closed with ``}`` if it does not close itself).

``extract`` returns the completion and how it was found (kept in the samples file beside the raw
answer), so a surprising score can be traced to the answer or to the extraction.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from geex.languages import Language, get_language
from geex.languages.cleanup import _body_close, cleanup, code_view, function_end
from geex.languages.definitions import HEADERS, _split_top, _strip_generics, defined_names, extent, items

# Markdown info strings that name each language (compared lower-case, first word only)
FENCE_TAGS: dict[str, frozenset[str]] = {
    "python": frozenset({"python", "py", "python3", "py3"}),
    "cpp": frozenset({"cpp", "c++", "cc", "cxx", "hpp", "c"}),
    "java": frozenset({"java"}),
    "js": frozenset({"javascript", "js", "node", "nodejs", "jsx", "mjs"}),
    "go": frozenset({"go", "golang"}),
    "rust": frozenset({"rust", "rs"}),
}
_OPEN = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^\n`]*)$", re.MULTILINE)
# a backtick fence after prose on its line ("Here it is: ```python"), not Markdown but common: taken
# when its info string is one language's tag, or nothing with a closing fence to come, and the next
# line is not itself a fence (prose naming "a ```python block" before the real one)
_OPEN_LATE = re.compile(r"^[ \t]*(?:[^\s`]|`[^\n`]+`)(?:[^\n`]|`[^\n`]+`)*(?P<fence>`{3,})[ \t]*(?P<info>[^\n`]*)$",
                        re.MULTILINE)  # the prose may hold `inline code`
_FENCE_LINE = re.compile(r"[ \t]*(?:`{3,}|~{3,})")
_BARE_CLOSE = re.compile(r"^[ \t]*`{3,}[ \t]*$", re.MULTILINE)
_TAGS = frozenset().union(*FENCE_TAGS.values())
_PY_DEF = r"^(?P<indent>[ \t]*)(?:async[ \t]+)?def[ \t]+{name}[ \t]*\("
_JAVA_CLASS = re.compile(r"\b(?:class|interface|enum|record)\s+[\w$]+[^{;]*\{")
_EMPTY_BRACES = re.compile(r"\{[^\S\n]*\}[^\n{;]*\{")  # `{}` with the body's brace after it on its line
# where the entry point's name is read from the head's last function header (a code view)
_ENTRY = {
    "python": re.compile(r"^(?:async[ \t]+)?def[ \t]+([A-Za-z_]\w*)", re.MULTILINE),
    "go": re.compile(r"\bfunc[ \t]+([A-Za-z_]\w*)[ \t]*[\[(]"),
    "rust": re.compile(r"\bfn[ \t]+([A-Za-z_]\w*)"),
    "js": re.compile(r"\b(?:function[ \t]*\*?[ \t]*([A-Za-z_$][\w$]*)|(?:const|let|var)[ \t]+([A-Za-z_$][\w$]*)[ \t]*=)"),
    "cpp": re.compile(r"(?<![\w$])([A-Za-z_]\w*)[ \t]*\("),
    "java": re.compile(r"(?<![\w$])([A-Za-z_$][\w$]*)[ \t]*\("),
}


@dataclass(frozen=True)
class Block:
    """One fenced block of an answer: its code, its info string's first word and where it starts."""

    code: str
    tag: str  # lower-case, "" when untagged
    index: int


@dataclass(frozen=True)
class Extracted:
    """A chat answer's completion and how it was found.

    ``method``: ``function`` (the entry point's definition), ``renamed`` (Python: its parameters
    differ from the head's, so the whole function is nested and called), ``forwarded`` (C++: the
    head's function calls the answer's, renamed, after the types it needs), ``body`` (no
    definition: the block is the body), ``empty`` (no code at all)."""

    completion: str
    method: str
    block: int | None  # which fenced block (0-based); None: the answer had no fence
    fence: str | None  # the block's language tag as written ("" untagged); None: no fence

    def record(self) -> dict:
        return {"method": self.method, "block": self.block, "fence": self.fence}


def fenced_blocks(answer: str) -> list[Block]:
    """The fenced code blocks of a Markdown answer, in order. A fence closes at a line of at least
    as many of its characters; an unclosed last fence runs to the end (an answer cut by the token
    limit)."""
    blocks: list[Block] = []
    pos = 0
    while (m := _next_open(answer, pos)) is not None:
        fence = m.group("fence")
        body_start = m.end() + 1
        close = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$", re.MULTILINE)
        c = close.search(answer, min(body_start, len(answer)))
        code = answer[body_start:c.start()] if c else answer[body_start:]
        tag = m.group("info").strip().split()[0].lower() if m.group("info").strip() else ""
        blocks.append(Block(code, tag, len(blocks)))
        if c is None:
            break
        pos = c.end()
    return blocks


def _next_open(answer: str, pos: int) -> re.Match | None:
    """The next opening fence from ``pos``: at the start of a line, or after prose (``_OPEN_LATE``),
    looked for only before the next line-start fence."""
    first = _OPEN.search(answer, pos)
    for late in _OPEN_LATE.finditer(answer, pos, first.start() if first else len(answer)):
        info = late.group("info").strip().lower()
        if _FENCE_LINE.match(answer, late.end() + 1):
            continue
        if info in _TAGS or (not info and _BARE_CLOSE.search(answer, late.end())):
            return late
    return first


def entry_point(language: Language | str, head: str) -> str | None:
    """The name of the function the head leaves open (its last function header)."""
    lang = get_language(language) if isinstance(language, str) else language
    if lang.name == "python":
        found = _ENTRY["python"].findall(head)
        return found[-1] if found else None
    view = code_view(lang, head, final=True)
    brace = view.rstrip().rfind("{")
    if brace < 0:
        return None
    line_start = view.rfind("\n", 0, brace) + 1
    # the header may span lines: read from the statement's start (after the last ; { or })
    start = max(view.rfind(c, 0, brace) for c in ";{}") + 1
    for m in _ENTRY[lang.name].finditer(view, min(start, line_start), brace):
        return next(g for g in m.groups() if g)
    return None


def _defines(lang: str, code: str, name: str) -> bool:
    """Whether ``code`` defines ``name`` with a body (an echo of the prompt's signature and docstring
    alone does not count)."""
    if lang == "python":
        try:
            tree = ast.parse(code)
        except SyntaxError:
            return re.search(_PY_DEF.format(name=re.escape(name)), code, re.MULTILINE) is not None
        return any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name
                   and _without_docstring(n.body) for n in tree.body)
    view = code_view(lang, code, final=True)
    found = _brace_definition(lang, view, name)
    return found is not None and bool(view[found[1] + 1:].strip(" \t\n}"))


def choose_block(language: Language, blocks: list[Block], entry: str | None) -> Block | None:
    """Of an answer's ``blocks``, the one holding its code (see the module doc, step 1); None without
    any. The last block that defines the entry point wins: a corrected version follows a first draft."""
    if not blocks:
        return None
    ours = [b for b in blocks if b.tag in FENCE_TAGS[language.name] or b.tag == ""]
    for group in (ours, blocks):
        for b in reversed(group):
            if entry and _defines(language.name, b.code, entry):
                return b
    return ours[0] if ours else blocks[0]


def extract(language: Language | str, answer: str, head: str) -> Extracted:
    """The completion (cleaned as every completion is) that a chat ``answer`` gives for ``head``."""
    lang = get_language(language) if isinstance(language, str) else language
    answer = answer.replace("\r\n", "\n")
    entry = entry_point(lang, head)
    blocks = fenced_blocks(answer)
    block = choose_block(lang, blocks, entry)
    code = block.code if block is not None else answer
    if block is not None and lang.name == "python":  # helpers may sit in earlier blocks of the language
        earlier = [b.code for b in blocks[:block.index]
                   if b.tag in FENCE_TAGS["python"] or b.tag == ""]
        joined = "\n".join([*earlier, code])
        if earlier and _parses(joined):
            code = joined
    if block is not None and lang.name == "cpp":
        code = _with_earlier_types(blocks[:block.index], code)
    where = (block.index, block.tag) if block is not None else (None, None)
    if not code.strip():
        return Extracted("", "empty", *where)
    if lang.name == "python":
        completion, method = _python(code, entry, head)
    else:
        completion, method = _brace(lang.name, code, entry, head)
    return Extracted(cleanup(lang, completion, head), method, *where)


def _with_earlier_types(earlier: list[Block], code: str) -> str:
    """C++: ``code`` after the types (classes, structs, typedefs: items without parameters) that
    earlier C++ blocks define and ``code`` uses without defining — an answer may show its class in
    one block and a function calling it in the next. An earlier block's functions stay out (a
    draft of the entry point would be defined twice)."""
    view = code_view("cpp", code, final=True)
    used, have = set(re.findall(r"[A-Za-z_]\w*", view)), defined_names("cpp", view)
    types: list[str] = []
    for b in earlier:
        if b.tag not in FENCE_TAGS["cpp"] and b.tag != "":
            continue
        block_view = code_view("cpp", b.code, final=True)
        types += [b.code[it.start:it.end].strip("\n") for it in items("cpp", block_view, 0, HEADERS["cpp"])[0]
                  if it.kind == "def" and it.arity is None and it.names & used and not it.names & have]
    return "\n".join([*types, code]) if types else code


# -- Python --------------------------------------------------------------------------------------

def _head_indent(head: str) -> str:
    """The indentation of the head's open function body (its docstring's), four spaces by default."""
    for line in reversed(head.splitlines()):
        if line.strip():
            indent = line[:len(line) - len(line.lstrip())]
            return indent or "    "
    return "    "


def _reindent(lines: list[str], old: str, new: str) -> str:
    """Lines whose indentation starts with ``old`` get ``new`` in its place (blank lines kept)."""
    return "".join(new + line[len(old):] if line.startswith(old) else line for line in lines)


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except SyntaxError:
        return False
    return True


def _without_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        return body[1:]
    return body


def _python(code: str, entry: str | None, head: str) -> tuple[str, str]:
    indent = _head_indent(head)
    if entry is not None:
        try:
            tree = ast.parse(code)
        except SyntaxError:
            tree = None
        if tree is not None:
            found = _python_from_tree(code, tree, entry, head, indent)
            if found is not None:
                return found
        elif (body := _python_by_lines(code, entry)) is not None:
            lines, old = body
            return _reindent(lines, old, indent), "function"
    lines = code.splitlines(keepends=True)
    first = next((line for line in lines if line.strip() and not line.lstrip().startswith("#")), "")
    if first[:1] in (" ", "\t"):
        old = first[:len(first) - len(first.lstrip())]
        return _reindent(lines, old, indent), "body"
    return "".join(indent + line if line.strip() else line for line in lines), "body"


def _source(lines: list[str], node: ast.stmt) -> list[str]:
    first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
    return lines[first - 1:node.end_lineno]


def _uses(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _free(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """Names a function reads that it does not bind itself (parameters, assignments, loop and
    comprehension variables, nested definitions): what must come from outside it. A name that is
    both (``global``, or read before it is assigned) counts as bound: a module-level example
    variable of the same name as a local must not be pulled in."""
    a = fn.args
    bound = {x.arg for x in [*a.posonlyargs, *a.args, *a.kwonlyargs, *(v for v in (a.vararg, a.kwarg) if v)]}
    for n in ast.walk(fn):
        if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
            bound.add(n.id)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n is not fn:
            bound.add(n.name)
        elif isinstance(n, ast.arg):
            bound.add(n.arg)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            bound |= {(x.asname or x.name).split(".")[0] for x in n.names}
    return _uses(fn) - bound


def _calls(node: ast.AST, name: str) -> bool:
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == name for n in ast.walk(node))


def _defined(node: ast.stmt) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}


def _params(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    a = fn.args
    return [x.arg for x in [*a.posonlyargs, *a.args]] + ([f"*{a.vararg.arg}"] if a.vararg else []) + \
        [f"{x.arg}={x.arg}" for x in a.kwonlyargs] + ([f"**{a.kwarg.arg}"] if a.kwarg else [])


def _head_function(head: ast.Module, entry: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
    fns = [n for n in head.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == entry]
    return fns[-1] if fns else None


def _python_from_tree(code: str, tree: ast.Module, entry: str, head: str, indent: str) -> tuple[str, str] | None:
    lines = code.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    fns = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == entry]
    if not fns:
        return None
    target = fns[-1]  # as Python runs it: the last definition stands
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom, ast.Assign,
             ast.AnnAssign)
    others = [n for n in tree.body if isinstance(n, kinds) and n is not target and not _calls(n, entry)
              and not (isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == entry)]
    try:
        head_tree = ast.parse(head)
    except SyntaxError:
        head_tree = ast.Module(body=[], type_ignores=[])
    mine = _head_function(head_tree, entry)
    renamed = mine is not None and _params(mine) != _params(target)
    needed: list[ast.stmt] = []
    used = _free(target)
    # what the head defines stands (as cleanup keeps it in the brace languages): not nested again
    given = {name for n in head_tree.body if isinstance(n, kinds) for name in _defined(n)}
    changed = True
    while changed:  # helpers the function uses, and the helpers they use
        changed = False
        for n in others:
            if n not in needed and _defined(n) & used and not _defined(n) & given:
                needed.append(n)
                used |= _free(n) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) else _uses(n)
                changed = True
    nested = "".join(_reindent(_source(lines, n), "", indent) for n in sorted(needed, key=lambda n: n.lineno))
    if renamed:
        whole = _reindent(_source(lines, target), "", indent)
        return nested + whole + f"{indent}return {entry}({', '.join(_params(mine))})\n", "renamed"
    body = target.body
    given_body = mine.body if mine is not None else []
    same = 0  # statements the head's function already begins with (an import before the docstring)
    while same < min(len(body), len(given_body)) and ast.dump(body[same]) == ast.dump(given_body[same]):
        same += 1
    body = _without_docstring(body[same:])  # a restated docstring, reworded: the head has its own
    if not body:
        return nested, "function"
    body_lines = lines[body[0].lineno - 1:target.end_lineno]
    first = lines[body[0].lineno - 1]
    old = first[:len(first) - len(first.lstrip())]
    if body[0].lineno == target.lineno:  # `def f(x): a = x; return a` on one line
        return nested + "".join(f"{indent}{ast.get_source_segment(code, b)}\n" for b in body), "function"
    return nested + _reindent(body_lines, old, indent), "function"


def _python_by_lines(code: str, entry: str) -> tuple[list[str], str] | None:
    """The body lines and their indentation of a ``def`` in code that does not parse (an answer
    cut short, prose inside the block): from the line after the signature's ``:`` to the first line
    indented no deeper than the ``def``, a leading docstring skipped."""
    m = re.search(_PY_DEF.format(name=re.escape(entry)), code, re.MULTILINE)
    if m is None:
        return None
    lines = code[m.start():].splitlines(keepends=True)
    depth, k = 0, 0
    for k, line in enumerate(lines):  # the signature ends at the first line closing its parentheses with ':'
        depth += line.count("(") + line.count("[") - line.count(")") - line.count("]")
        if depth <= 0 and line.split("#")[0].rstrip().endswith(":"):
            break
    else:
        return None
    body = []
    for line in lines[k + 1:]:
        if line.strip() and len(line) - len(line.lstrip()) <= len(m.group("indent")):
            break
        body.append(line)
    text = "".join(body)
    doc = re.match(r"\s*[rRuU]?(\"\"\"|''')[\s\S]*?\1[^\n]*\n?", text)
    if doc:
        body = text[doc.end():].splitlines(keepends=True)
    while body and not body[-1].strip():
        body.pop()
    first = next((line for line in body if line.strip()), "")
    return body, first[:len(first) - len(first.lstrip())]


# -- brace languages ------------------------------------------------------------------------------

def _brace_definition(lang: str, view: str, name: str) -> tuple[int, int] | None:
    """(start of the header's line, index of its body's ``{``) of the first definition of ``name``
    in a code view: the name after ``func`` (Go) / ``fn`` (Rust) / a type (C++, Java), its
    parameters (JavaScript: ``function name(`` or ``name = (...) =>`` / ``= function``), then the
    body's brace with no ``;`` or ``}`` between. A JavaScript arrow with an expression body gives
    the index of its ``=>`` instead (see ``_arrow_expression``)."""
    word = re.escape(name)
    pattern = {
        "js": (rf"(?:\bfunction\s*\*?\s*{word}\s*\(|(?<![\w$.]){word}\s*=\s*(?:async\s*)?"
               rf"(?:function\b[^(]*\(|\(|[A-Za-z_$][\w$]*\s*=>))"),
        "go": rf"\bfunc\s+(?:\([^()]*\)\s*)?{word}\s*[\[(]",
        "rust": rf"\bfn\s+{word}\s*[<(]",
    }.get(lang, rf"(?<![\w$.:>]){word}\s*[(<\[]")
    for m in re.finditer(pattern, view):
        depth = view.count("{", 0, m.start()) - view.count("}", 0, m.start())
        if depth > _DEPTH.get(lang, 0):
            continue  # inside another function or type (a struct's method of the same name)
        before = view[:m.start()].rstrip()  # a C++ return type may sit on the line above
        if lang in ("cpp", "java") and not re.search(r"[\w$>*&\]]$", before):
            continue  # a call (`x = f(a)`, `if (f(x)) {`), not a definition
        if re.search(r"\b(?:return|new|else|throw|await|case|do)$", before):
            continue
        brace = view.find("{", m.end())
        if lang == "js" and (arrow := _arrow_expression(view, m.end())) is not None and (brace < 0 or arrow < brace):
            return view.rfind("\n", 0, m.start()) + 1, arrow
        if brace < 0 or any(c in view[m.end():brace] for c in ";}"):
            continue
        while _EMPTY_BRACES.match(view, brace):  # Go's `interface{}` result, not the body
            brace = view.find("{", brace + 1)
        return view.rfind("\n", 0, m.start()) + 1, brace
    return None


_DEPTH = {"java": 1, "rust": 1}  # a Java method sits in its class; a Rust fn may sit in an `impl`


def _arrow_expression(view: str, pos: int) -> int | None:
    """Index of the ``=>`` of an arrow function whose body is an expression (``(s) => s.length``),
    the parameters starting before ``pos``; None for a block body or no arrow."""
    m = re.compile(r"[^;{}]*?=>\s*").match(view, pos)
    if m is None or view[m.end():m.end() + 1] == "{":
        return None
    return m.end() - len(m.group()) + m.group().index("=>")


def _cpp_declaration(text: str, view: str, start: int) -> str | None:
    """A block-scope declaration of the C++ function defined at ``start``, or None for what cannot
    be declared inside a function (a template)."""
    brace = view.find("{", start)
    header = " ".join(text[start:brace].split())
    if header.startswith("template") or "(" not in header:
        return None
    header = re.sub(r"^(?:(?:static|inline|constexpr)\s+)+", "", header)
    return header + ";"


def _enclosing_class(view: str, start: int) -> tuple[int, int]:
    """(where the header's line of the Java class around ``start`` begins, where its body begins:
    after its ``{``); (0, 0) if none."""
    for m in reversed(list(_JAVA_CLASS.finditer(view, 0, start))):
        if _body_close(view[m.end():start]) is None:  # its body is not closed before the method
            return view.rfind("\n", 0, m.start()) + 1, m.end()
    return 0, 0


_MOVED_TO_TOP = {  # what a completion carries to its start; the assembly hoists C++ includes and Java imports
    "cpp": re.compile(r"#[ \t]*include\b[^\n]*"),
    "java": re.compile(r"import[ \t]+(?:static[ \t]+)?[\w.]+(?:\.\*)?[ \t]*;"),
    "rust": re.compile(r"use[ \t][^;]*;"),  # a `use` is valid inside a function body too
}


def _brace(lang: str, code: str, entry: str | None, head: str) -> tuple[str, str]:
    view = code_view(lang, code, final=True)
    found = _brace_definition(lang, view, entry) if entry else None
    if found is None and lang == "cpp" and entry and (member := _cpp_member(code, view, entry, head)) is not None:
        return "".join(f"{line.strip()}\n" for line in _new_top_lines(lang, code, view, len(view), head)) + member, "member"
    if found is None:
        body = code if function_end(lang, code, final=True) is not None else code.rstrip() + "\n}\n"
        return body, "body"
    start, brace = found
    top = _new_top_lines(lang, code, view, start, head)
    if view[brace] != "{":  # a JavaScript arrow with an expression body: `return` it
        expr = re.compile(r"\s*").match(view, brace + 2).end()  # it may start on the next line
        end = extent("js", view, expr, block=False)  # the expression as a statement: to its ; or line end
        end = len(view) if end is None else end
        after = f"\n  return {code[expr:end].strip().removesuffix(';').rstrip()};\n}}" + code[end:]
    else:
        after = code[brace + 1:]
    end = function_end(lang, after, final=True)
    outer, scan_from = _enclosing_class(view, start) if lang == "java" else (0, 0)  # Java: the members before it
    # Java: top-level types before the method's class follow the completion (a file holds several;
    # only the file's own class may be public)
    outside = [it for it in items(lang, view[:outer], 0, HEADERS[lang])[0] if it.kind != "include"] if outer else []
    before = [it for it in items(lang, view[:start], scan_from, HEADERS[lang])[0]
              if "main" not in it.names and it.kind != "include" and not (lang == "rust" and _at_use(view, it.start))]
    declarations = "".join(f"{line.strip()}\n" for line in top)
    given = defined_names(lang, code_view(lang, head, final=True)) if lang == "cpp" else frozenset()
    if lang == "cpp" and view[brace] == "{" and any(_only_before(view, it) and not it.names <= given for it in before):
        forwarded = _cpp_forwarded(code, view.find(entry, start), entry, head)
        if forwarded is not None:
            return declarations + forwarded, "forwarded"
    moved = "".join("\n" + _unstatic(lang, code[code.rfind("\n", 0, it.start) + 1:it.end]) for it in before)
    if lang == "cpp":
        decls = [_cpp_declaration(code, view, it.start) for it in before if it.kind == "def"
                 and it.arity is not None and "{" in view[it.start:it.end] and not it.names & given]
        declarations += "".join(f"    {d}\n" for d in decls if d)
    if end is None:  # the function is not closed (an answer cut short): the rest is its body
        return declarations + after, "function"
    types = "".join("\n\n" + re.sub(r"^(\s*(?:@[\w.]+(?:\([^()]*\))?\s*)*)public\s+", r"\1",
                                     code[code.rfind("\n", 0, it.start) + 1:it.end].strip("\n")) for it in outside)
    return declarations + after[:end] + moved + after[end:] + types, "function"


def _new_top_lines(lang: str, code: str, view: str, end: int, head: str) -> list[str]:
    """The answer's include / import / use lines before ``end`` that the head lacks (a restated one
    is the head's), which lead the completion."""
    if lang not in _MOVED_TO_TOP:
        return []
    known = {"".join(line.split()) for line in head.splitlines()}
    return [code[m.start():m.end()] for m in _MOVED_TO_TOP[lang].finditer(view[:end]) if _at_line_start(view, m.start())
            and "".join(code[m.start():m.end()].split()) not in known]


def _only_before(view: str, it) -> bool:
    """A C++ item that cannot follow the function that uses it: a type, a typedef or alias, a global,
    a template (a plain function can: it is declared in the body)."""
    if it.kind not in ("def", "impl"):
        return False
    plain_function = it.arity is not None and "{" in view[it.start:it.end] and not view[it.start:it.end].lstrip().startswith("template")
    return not plain_function


def _cpp_head_signature(head: str, entry: str) -> tuple[str, re.Match, list[str]] | None:
    """The head's C++ function header (without its ``{``), the match of ``entry(params)`` in it, and
    its parameters' names; None if they cannot be read."""
    head_view = code_view("cpp", head, final=True)
    brace = head_view.rstrip().rfind("{")
    line = head_view.rfind("\n", 0, head_view.rfind(entry + "(", 0, brace)) + 1
    header = head[line:brace].strip()
    m = re.search(rf"\b{re.escape(entry)}\s*\((.*)\)", header, re.DOTALL)
    if m is None:
        return None
    names = []
    for param in _split_top(_strip_generics(m.group(1))) if m.group(1).strip() not in ("", "void") else []:
        found = re.findall(r"[A-Za-z_]\w*", re.sub(r"=.*|\[[^\]]*\]", "", param, flags=re.DOTALL))
        if not found:
            return None
        names.append(found[-1])
    return header, m, names


def _cpp_forwarded(code: str, name_at: int, entry: str, head: str) -> str | None:
    """The completion for a C++ answer whose function needs what the answer defines before it: the
    head's function forwards its parameters to the answer's function, renamed ``<entry>__answer``
    and declared in the body with the head's signature, and the answer follows in its own order
    (cleanup keeps what the forwarding call needs). A recursive call of the entry point goes through
    the head's function, which forwards again. None if the head's parameters cannot be read."""
    signature = _cpp_head_signature(head, entry)
    if signature is None:
        return None
    header, m, names = signature
    declaration, forwarding = _forwarding(header, m, names, entry)
    answer = code[:name_at] + f"{entry}__answer" + code[name_at + len(entry):]
    return f"{forwarding}{_without_includes(answer)}\n"


def _forwarding(header: str, m: re.Match, names: list[str], entry: str) -> tuple[str, str]:
    """(the head's signature renamed ``<entry>__answer``, the rest of the head's function: that
    function declared, its result returned, the function closed)."""
    declaration = header[:m.start()] + header[m.start():].replace(entry, f"{entry}__answer", 1)
    return declaration, f"    {declaration};\n    return {entry}__answer({', '.join(names)});\n}}\n"


def _without_includes(code: str) -> str:
    """``code`` without its ``#include`` lines (the completion leads with those the head lacks)."""
    return "\n".join(line for line in code.splitlines() if not re.match(r"\s*#\s*include\b", line))


_CPP_CLASS = re.compile(r"\b(?:class|struct)\s+([A-Za-z_]\w*)[^{;()]*\{")


def _cpp_member(code: str, view: str, entry: str, head: str) -> str | None:
    """The completion for a C++ answer that defines the entry point as a member of a top-level class
    (LeetCode's ``class Solution { public: ... };``), forwarded like ``_cpp_forwarded``: the head's
    function returns ``<entry>__answer``'s result, the answer follows in its own order, then
    ``<entry>__answer`` (the head's signature) calls the member: ``Class::entry(...)`` if it is
    static, else ``Class().entry(...)``. The class is a ``struct`` there (its members public: an
    answer may leave out ``public:``); of several classes defining the entry point, ``Solution``,
    else the last (a derived class after its base). None if no top-level class defines it or the
    head's parameters cannot be read."""
    signature = _cpp_head_signature(head, entry)
    if signature is None:
        return None
    header, m_head, names = signature
    candidates = []
    for m in _CPP_CLASS.finditer(view):
        if view.count("{", 0, m.start()) != view.count("}", 0, m.start()):
            continue  # not at the top level
        close = _body_close(view[m.end():])
        if close is None:
            break
        inner = view[m.end():m.end() + close - 1]
        found = _brace_definition("cpp", inner, entry)
        if found is not None:
            candidates.append((m, inner, found))
    if not candidates:
        return None
    m, inner, found = next((c for c in candidates if c[0].group(1) == "Solution"), candidates[-1])
    name_at = re.compile(rf"(?<![\w$.:>]){re.escape(entry)}\s*\(").search(inner, found[0]).start()
    declaration = inner[max(inner.rfind(c, 0, name_at) for c in ";{}") + 1:name_at]
    static = re.search(r"\bstatic\b", declaration) is not None
    call = f"{m.group(1)}{'::' if static else '().'}{entry}({', '.join(names)})"
    declaration, forwarding = _forwarding(header, m_head, names, entry)
    answer = _without_includes(code[:m.start()] + re.sub(r"^class\b", "struct", code[m.start():]))
    return f"{forwarding}{answer.strip(chr(10))}\n{declaration} {{\n    return {call};\n}}\n"


def _at_line_start(view: str, pos: int) -> bool:
    return not view[view.rfind("\n", 0, pos) + 1:pos].strip()


def _at_use(view: str, pos: int) -> bool:
    return re.match(r"(?:pub(?:\s*\([^()]*\))?\s+)?use\s", view[pos:pos + 40]) is not None


def _unstatic(lang: str, item: str) -> str:
    """A C++ helper moved after the function it preceded is declared in that function's body, which
    gives it external linkage: its own ``static`` would then contradict the declaration."""
    return re.sub(r"^(\s*)static\s+(?=[^=;]*\()", r"\1", item) if lang == "cpp" else item
