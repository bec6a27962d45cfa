"""Top-level definitions in code after a generated function, and the ones that function needs.

Models often keep writing after the function they were asked for: a second version of it, an
unrelated function, a ``main``, a test, Markdown prose and fences. A helper the function calls must
survive the cut (a correct answer needs it), everything else must go (a second definition of the
target does not compile, prose does not parse). The rule is name-based and reads a *code view*
(comments, literals and fence lines blanked by ``geex.languages.cleanup.code_view``), so a name in
a string or a comment is not a use:

- the code after the function is split into top-level *items*, each recognised by its header:
  C++ functions (``Type::name`` too), ``struct``/``class``/``union``/``enum``, ``namespace``,
  ``using``/``typedef``, global variables, ``#define``, ``#include``; Java methods, fields and
  nested types of ``class
  Solution``, then the top-level types after that class is closed; JS ``function``, ``class``,
  ``const``/``let``/``var``; Go ``func``, methods, ``type``, ``var``, ``const``; Rust ``fn``,
  ``struct``/``enum``/``union``/``trait``/``mod``, ``type``, ``const``/``static``, ``impl``,
  ``macro_rules!``, ``use``. A line that starts no item (prose, a statement, a stray brace) is
  skipped together with any block it opens;
- an item is *needed* if it defines a name that the function's body uses, or that a needed item
  uses (a helper of a helper, the struct a helper returns). Methods (a Go method, a Rust ``impl``
  block, a C++ ``Type::name``) are needed with their type (or trait), or when their name is used
  and their type is defined;
- no item may define a name again: not one the *context* defines (the prompt or declaration the
  completion continues, which holds the target function itself: a recursive body calls it), not
  one an earlier item defines (the first version wins; a C++ or Java overload with another number
  of parameters is not a redefinition). Prototypes (C++ and Java declarations
  without a body) define nothing that way, so their definition may follow. A C++ ``#include``
  is kept when a kept item follows it.

A C++ helper after the function compiles only if the body declared it first (``bool
is_prime(int);`` inside the body): cleanup keeps it either way, the compiler decides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ID = r"[A-Za-z_$][\w$]*"
_IDENTIFIER = re.compile(_ID)
_H = r"[^\S\n]"  # horizontal white space: a header's type and name share a line
_PARAMS = r"\((?:[^;{}()]|\((?:[^;{}()]|\([^;{}()]*\))*\))*\)"  # a parameter list (parens nested twice)

# Words that start statements: never the name of a definition nor part of its type.
_KEYWORDS = frozenset(
    "if else for while do switch case return sizeof new delete throw catch try goto break continue "
    "default typeof instanceof in of await yield".split()
)


@dataclass(frozen=True)
class Header:
    """How one kind of top-level item starts, matched at the item's first character.

    ``block``: the item ends at the ``}`` closing its body (a function, a type), else it is a
    statement ending at its ``;`` (or the end of its line in Go and JavaScript); ``line``: a
    preprocessor line. ``kind``: ``def`` defines names, ``impl`` defines methods of a type (named
    by the ``recv`` group or the ``impl`` line), ``proto`` declares without defining, ``include``
    is kept with whatever else is kept (the ``#include`` a helper after it may need).
    """

    pattern: re.Pattern[str]
    block: bool
    kind: str = "def"
    line: bool = False


@dataclass(frozen=True)
class Item:
    """One top-level item: where it is in the text and what it defines."""

    start: int
    end: int
    names: frozenset[str]
    uses: frozenset[str]
    kind: str = "def"
    owner: str | None = None  # impl: the type the methods belong to
    trait: str | None = None  # Rust ``impl Trait for Type``
    arity: int | None = None  # a C++/Java function: overloads of one name differ in their parameters


def _h(pattern: str, block: bool, kind: str = "def", line: bool = False) -> Header:
    return Header(re.compile(pattern), block, kind, line)


# -- C++ ----------------------------------------------------------------------------------------
_CPP_MOD = (r"(?:static|inline|constexpr|consteval|const|extern|volatile|unsigned|signed|long|short|mutable|"
            r"virtual|explicit|friend|thread_local|struct|class|enum|typename)")
_CPP_TYPE = (
    rf"(?:{_CPP_MOD}{_H}+)*(?:::)?{_ID}(?:::{_ID})*(?:{_H}*<[^;{{}}()\n]*>)?(?:::{_ID})*"
    rf"(?:{_H}*(?:const\b|[*&]+))*"
)
_CPP_QUALS = (rf"(?:{_H}*(?:const|volatile|noexcept(?:\([^()\n]*\))?|override|final|&&?|->[^;{{}}\n]+|"
              rf":[^;{{\n]+))*")
_TEMPLATE = r"(?:template\s*<[^;{}]*>\s*)?"
_CPP_HEADERS = (
    _h(r"#[^\S\n]*include\b", block=False, kind="include", line=True),
    _h(rf"#[^\S\n]*define[^\S\n]+(?P<name>{_ID})", block=False, line=True),
    _h(rf"{_TEMPLATE}(?P<typedef>typedef\s+)?(?:struct|class|union|enum(?:\s+(?:class|struct))?)"
       rf"(?:\s+(?P<name>{_ID}))?(?:\s+final)?(?:\s*:[^;{{}}]*)?\s*(?P<body>[{{;])", block=False),
    _h(rf"namespace\s+(?P<name>{_ID})\s*\{{", block=True),
    _h(rf"using\s+(?P<name>{_ID})\s*=", block=False),
    _h(r"(?P<typedef>typedef)\b", block=False),
    # a function (or prototype) with a return type; a qualified name (Type::name, a constructor) may have none
    _h(rf"{_TEMPLATE}(?:(?P<type>{_CPP_TYPE}){_H}*[*&]*{_H}*)?"
       rf"(?<![\w$])(?P<name>(?:{_ID}::)*~?{_ID}|(?:{_ID}::)*operator{_H}*(?:\(\)|[^\s(]+))"
       rf"{_H}*(?P<params>{_PARAMS}){_CPP_QUALS}\s*(?P<body>[{{;])", block=True),
    _h(rf"(?P<type>{_CPP_TYPE}){_H}*[*&]*{_H}*(?<![\w$])(?P<name>{_ID}){_H}*(?:\[[^\];{{}}\n]*\]{_H}*)*(?=[=;{{(,])",
       block=False),
)

# -- Java ---------------------------------------------------------------------------------------
_JAVA_ANN = r"(?:@[\w.]+(?:\([^()]*\))?\s*)*"
_JAVA_MOD = (r"(?:(?:public|private|protected|static|final|abstract|synchronized|native|strictfp|default|"
             r"transient|volatile|sealed|non-sealed)\s+)*")
_JAVA_TYPE = rf"[\w.$]+(?:{_H}*<[^;{{}}()]*>)?(?:{_H}*\[{_H}*\])*"
_JAVA_TYPES = _h(rf"{_JAVA_ANN}{_JAVA_MOD}(?:class|interface|enum|record|@interface)\s+(?P<name>{_ID})", block=True)
_JAVA_MEMBERS = (
    _JAVA_TYPES,
    _h(rf"{_JAVA_ANN}{_JAVA_MOD}(?:<[^;{{}}()]*>\s*)?(?:(?P<type>{_JAVA_TYPE}){_H}+)?(?P<name>{_ID}){_H}*(?P<params>{_PARAMS})"
       rf"\s*(?:throws\s+[\w.,\s]+?)?\s*(?P<body>[{{;])", block=True),
    _h(rf"{_JAVA_ANN}{_JAVA_MOD}(?P<type>{_JAVA_TYPE}){_H}+(?P<name>{_ID}){_H}*(?:\[{_H}*\]{_H}*)*(?=[=;,])",
       block=False),
)

# -- JavaScript ---------------------------------------------------------------------------------
_JS_HEADERS = (
    _h(rf"(?:async\s+)?function\b\s*\*?\s*(?P<name>{_ID})\s*\(", block=True),
    _h(rf"class\s+(?P<name>{_ID})", block=True),
    _h(r"(?P<decl>const|let|var)\s+(?=[\[{A-Za-z_$])", block=False),
)

# -- Go -----------------------------------------------------------------------------------------
_GO_HEADERS = (
    _h(rf"func\s+(?P<name>{_ID})\s*(?:\[[^\]\n]*\]\s*)?\(", block=True),
    _h(rf"func\s*\((?P<recv>[^()]*)\)\s*(?P<name>{_ID})\s*(?:\[[^\]\n]*\]\s*)?\(", block=True, kind="impl"),
    _h(r"(?P<decl>type|var|const)\b\s*(?=[(A-Za-z_])", block=False),
)

# -- Rust ---------------------------------------------------------------------------------------
_RUST_ATTR = r"(?:#\[[^\n]*\]\s*)*"
_RUST_VIS = r"(?:pub(?:\s*\([^()\n]*\))?\s+)?"
_RUST_HEADERS = (
    _h(rf"{_RUST_ATTR}{_RUST_VIS}(?:(?:default|const|async|unsafe|extern)\s+)*fn\s+(?P<name>{_ID})", block=True),
    _h(rf"{_RUST_ATTR}{_RUST_VIS}(?:(?:unsafe|auto)\s+)*(?:struct|enum|union|trait|mod)\s+(?P<name>{_ID})",
       block=True),
    _h(rf"{_RUST_ATTR}{_RUST_VIS}type\s+(?P<name>{_ID})", block=False),
    _h(rf"{_RUST_ATTR}{_RUST_VIS}(?:const|static)\s+(?:mut\s+)?(?P<name>{_ID})\s*:", block=False),
    _h(rf"{_RUST_ATTR}(?:unsafe\s+)?impl\b", block=True, kind="impl"),
    _h(rf"{_RUST_ATTR}macro_rules!\s*(?P<name>{_ID})", block=True),
    _h(rf"{_RUST_VIS}(?P<use>use)\s", block=False),
    _h(rf"extern\s+crate\s+(?P<name>{_ID})(?:\s+as\s+(?P<alias>{_ID}))?", block=False),
)

HEADERS: dict[str, tuple[Header, ...]] = {
    "cpp": _CPP_HEADERS, "java": _JAVA_MEMBERS, "js": _JS_HEADERS, "go": _GO_HEADERS, "rust": _RUST_HEADERS,
}
JAVA_TOP_LEVEL: tuple[Header, ...] = (_JAVA_TYPES,)  # after class Solution is closed

_ASI = frozenset({"go", "js"})  # a statement may end at the end of its line
_CONTINUES = tuple("=+-*/%&|^<>!?:,.([{")  # a line ending so goes on on the next one
_TRAILING_SEMICOLON = re.compile(r"[ \t]*;")
_BODY_NEXT = re.compile(r"[^\S\n]*\{")  # braces before a body: a Go interface{} result, a C++ a{x} initializer
_EXTENT = re.compile(r"[()\[\]{};\n]")
_SPACE = re.compile(r"\s*")
_BRACE = re.compile(r"[{}]")


# Local variables a piece of code binds itself (``let x``, ``x :=``): a use of that name in that
# code is not a use of a top-level definition (a model's ``const result = f(1);`` after the
# function is not needed by a body with its own ``let result``).
_LOCAL_BINDINGS = {
    "js": re.compile(rf"\b(?:let|const|var)\s+({_ID})"),
    "go": re.compile(rf"\bvar\s+({_ID}(?:\s*,\s*{_ID})*)|({_ID}(?:\s*,\s*{_ID})*)\s*:="),
    "rust": re.compile(rf"\blet\s+(?:mut\s+)?({_ID})"),
}


def identifiers(code: str) -> set[str]:
    """Every name in a code view."""
    return set(_IDENTIFIER.findall(code))


def uses(lang: str, code: str) -> set[str]:
    """The names a code view uses from outside: its identifiers less the local variables it binds.

    Over-approximated (a field, a method or a parameter name counts as a use): at worst a
    definition is kept that was not needed.
    """
    names = identifiers(code)
    binding = _LOCAL_BINDINGS.get(lang)
    if binding is not None:
        for m in binding.finditer(code):
            bound = next(g for g in m.groups() if g is not None)
            names -= {x.strip() for x in bound.split(",")}
    return names


def _complete_at(lang: str, code: str, start: int, newline: int) -> bool:
    """Go/JS: the statement ``code[start:newline]`` is complete (no operator pending)."""
    if code[start:newline].rstrip().endswith(_CONTINUES):
        return False
    if lang == "js":  # a method chain or a ternary may go on on the next line
        nxt = _SPACE.match(code, newline).end()
        return nxt >= len(code) or code[nxt] not in ".?:"
    return True


def extent(lang: str, code: str, start: int, block: bool) -> int | None:
    """End (exclusive) of the item that starts at ``code[start]``; None if the text ends first.

    Brackets of all kinds are counted. A block item ends at the ``}`` that closes its body (with a
    ``;`` right after it; a ``}`` followed by ``{`` on its line closed a type before the body); any item ends at a ``;`` outside brackets; a statement also ends at a
    ``}`` that ends its line (``const f = () => {...}``) and, in Go and JS, at the end of a complete
    line. A closing bracket that opens nowhere (the end of an enclosing block) also gives None.
    """
    depth = 0
    n = len(code)
    for m in _EXTENT.finditer(code, start):
        i = m.start()
        c = code[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth < 0:
                return None
            if depth == 0 and c == "}":
                if block and not _BODY_NEXT.match(code, i + 1):  # interface{} {, : a{x} { go on
                    semi = _TRAILING_SEMICOLON.match(code, i + 1)
                    return semi.end() if semi else i + 1
                if block:
                    continue
                eol = code.find("\n", i)
                if not code[i + 1: n if eol < 0 else eol].strip():
                    return i + 1
        elif depth == 0 and c == ";":
            return i + 1
        elif depth == 0 and c == "\n" and not block and lang in _ASI and _complete_at(lang, code, start, i):
            return len(code[:i].rstrip())
    if depth == 0 and not block and lang in _ASI and _complete_at(lang, code, start, n) and code[start:].strip():
        return len(code.rstrip())
    return None


def _line_end(code: str, start: int) -> int:
    """End of the (preprocessor) line at ``start``: lines ending in a backslash go on."""
    m = re.compile(r"(?:[^\n]*\\\r?\n)*[^\n]*").match(code, start)
    return len(code[: m.end()].rstrip())


def _last_segment(path: str | None) -> str | None:
    return path.rsplit("::", 1)[-1] if path else None


def _strip_generics(text: str) -> str:
    """``text`` without its ``<...>`` groups (nested ones too)."""
    prev = None
    while prev != text:
        prev, text = text, re.sub(r"<[^<>]*>", " ", text)
    return text


def _split_top(text: str) -> list[str]:
    """``text`` split at the commas outside brackets."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(text):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    return parts + [text[start:]]


def _js_declarators(text: str) -> set[str]:
    """Names bound by ``a = 1, {b, c: d} = o, [e] = xs`` (destructuring over-approximated)."""
    names: set[str] = set()
    for part in _split_top(text):
        lhs = part.split("=", 1)[0].strip()
        if lhs[:1] in ("[", "{"):
            names |= identifiers(lhs)
        elif m := _IDENTIFIER.match(lhs):
            names.add(m.group())
    return names


def _go_names(decl: str, rest: str) -> set[str]:
    """Names of ``type T ...``, ``var a, b int``, ``const ( A = 1; B )`` (``rest``: after the keyword)."""
    rest = rest.strip()
    lines = rest[1:].rstrip().removesuffix(")").splitlines() if rest.startswith("(") else [rest]
    names: set[str] = set()
    for line in lines:
        m = re.match(rf"\s*({_ID}(?:\s*,\s*{_ID})*)", line)
        if m:
            found = [x.strip() for x in m.group(1).split(",")]
            names |= set(found[:1] if decl == "type" else found)
    return names


def _rust_use_names(tree: str) -> set[str]:
    """Names a ``use`` tree brings in scope: leaves, ``as`` aliases, ``path::{self}``."""
    names = {m.group(1) for m in re.finditer(rf"({_ID})\s*::\s*\{{[^{{}}]*\bself\b", tree)}
    tree = re.sub(rf"{_ID}(?:\s*::\s*{_ID})*\s+as\s+({_ID})", r"\1", tree)
    for m in re.finditer(rf"({_ID})(\s*::)?", tree):
        if not m.group(2) and m.group(1) not in ("self", "super", "crate"):
            names.add(m.group(1))
    return names


def _cpp_typedef_names(item: str) -> set[str]:
    """The name a plain ``typedef`` introduces (``typedef long long ll;``, ``typedef int (*fn)(int);``)."""
    m = re.search(rf"\(\s*\*\s*({_ID})\s*\)", item) or re.search(rf"({_ID})\s*(?:\[[^\]]*\]\s*)*;\s*$", item)
    return {m.group(1)} if m else set()


def _impl(lang: str, m: re.Match[str], item: str) -> tuple[frozenset[str], str | None, str | None]:
    """(method names, owner type, trait) of a Go method or a Rust ``impl`` block."""
    if lang == "go":
        recv = _strip_generics(m.group("recv"))
        owner = re.search(rf"({_ID})\s*(?:\[[^\]]*\])?\s*$", recv)
        return frozenset({m.group("name")}), owner.group(1) if owner else None, None
    head = item[: item.find("{")] if "{" in item else item
    head = re.split(r"\bwhere\b", _strip_generics(re.sub(r"#\[[^\n]*\]", " ", head)))[0]
    hm = re.search(r"impl\s+(?:!?(?P<trait>[\w:]+)\s+for\s+)?(?:&\s*(?:'\w+\s+)?(?:mut\s+)?)?(?:dyn\s+)?(?P<owner>[\w:]+)",
                   head)
    methods = frozenset(re.findall(rf"\bfn\s+({_ID})", item))
    if hm is None:
        return methods, None, None
    return methods, _last_segment(hm.group("owner")), _last_segment(hm.group("trait"))


def _item(lang: str, header: Header, m: re.Match[str], code: str, start: int, end: int) -> Item:
    """The item ``code[start:end]`` whose header matched as ``m``."""
    text = code[start:end]
    rest = code[m.end():end]  # after the header
    used = frozenset(uses(lang, text))
    g = m.groupdict()
    if header.kind == "impl":
        names, owner, trait = _impl(lang, m, text)
        if lang == "cpp" or owner is not None or trait is not None:
            return Item(start, end, names, used, "impl", owner, trait)
        return Item(start, end, names, used, "impl")
    name = g.get("name")
    names = {name} if name else set()
    kind = "proto" if g.get("body") == ";" and (lang != "cpp" or not g.get("typedef")) else header.kind
    if lang == "cpp" and g.get("typedef") is not None and "body" not in g:
        names = _cpp_typedef_names(text)
    elif lang == "cpp" and "typedef" in g and g.get("body") == "{":
        names |= identifiers(text[text.rfind("}") + 1:])  # declarators: struct P {...} p, q;
    elif lang == "cpp" and name and "::" in name:  # Type::method defined outside its class
        owner, _, method = name.rpartition("::")
        return Item(start, end, frozenset({method.lstrip("~")}), used, "impl", _last_segment(owner))
    elif lang == "js" and g.get("decl"):
        names = _js_declarators(rest.rstrip().removesuffix(";"))
    elif lang == "go" and g.get("decl"):
        names = _go_names(g["decl"], rest)
    elif lang == "rust" and g.get("use"):
        names = _rust_use_names(rest.rstrip().removesuffix(";"))
    elif lang == "rust" and g.get("alias"):
        names = {g["alias"]}
    arity = None
    if g.get("params") is not None:
        inner = g["params"][1:-1].strip()
        arity = 0 if inner in ("", "void") else len(_split_top(inner))
    return Item(start, end, frozenset(n for n in names if n not in _KEYWORDS), used, kind, arity=arity)


def _header_at(lang: str, headers: tuple[Header, ...], code: str, pos: int) -> tuple[Header, re.Match[str]] | None:
    """The first header that matches at ``pos`` and is not a statement in disguise."""
    for header in headers:
        m = header.pattern.match(code, pos)
        if m is None:
            continue
        g = m.groupdict()
        if g.get("name") in _KEYWORDS or (g.get("type") and identifiers(g["type"]) & _KEYWORDS):
            continue
        # No return type: a Java constructor or a C++ Type::name definition, with a body (a call
        # `f(x);` or `f(x) {` in C++ is a statement).
        if "type" in g and g["type"] is None and (g.get("body") != "{" or (lang == "cpp" and "::" not in g["name"])):
            continue
        return header, m
    return None


def items(lang: str, code: str, start: int, headers: tuple[Header, ...],
          closes: bool = False) -> tuple[list[Item], int | None]:
    """The top-level items of ``code[start:]`` and where the enclosing block closes.

    ``closes``: a ``}`` outside any item closes the block the items are in (Java's ``class
    Solution``); its index is returned, else None. An item the text ends inside (an unfinished
    helper) ends the scan: it and what follows are not items.
    """
    found: list[Item] = []
    n = len(code)
    pos = start
    junk_depth = 0  # braces opened by lines that are no item
    while True:
        q = _SPACE.match(code, pos).end()
        if q >= n:
            return found, None
        if junk_depth == 0 and (hit := _header_at(lang, headers, code, q)):
            header, m = hit
            end = _line_end(code, q) if header.line else extent(lang, code, q, header.block)
            if end is None:
                return found, None
            found.append(_item(lang, header, m, code, q, end))
            pos = end
            continue
        eol = code.find("\n", q)
        eol = n if eol < 0 else eol
        for b in _BRACE.finditer(code, q, eol):
            if b.group() == "{":
                junk_depth += 1
            elif junk_depth:
                junk_depth -= 1
            elif closes:
                return found, b.start()
        pos = eol


def defined_names(lang: str, code: str) -> frozenset[str]:
    """Names that ``code`` (the context, a code view) defines, in any block (a Java method too)."""
    headers = HEADERS[lang] + (JAVA_TOP_LEVEL if lang == "java" else ())
    names: set[str] = set()
    for line in re.finditer(r"(?m)^[^\S\n]*(?=\S)", code):
        hit = _header_at(lang, headers, code, line.end())
        if hit is None:
            continue
        header, m = hit
        end = _line_end(code, line.end()) if header.line else extent(lang, code, line.end(), header.block)
        if end is None:  # the target function's own header: its body continues in the completion
            eol = code.find("\n", m.end())
            end = len(code) if eol < 0 else eol
        item = _item(lang, header, m, code, line.end(), end)
        if item.kind == "def":
            names |= item.names
    return frozenset(names)


def needed(found: list[Item], used: set[str], context: frozenset[str]) -> list[Item]:
    """The items the code using ``used`` needs, transitively, in text order (see the module doc)."""
    claimed = set(context)  # names defined once and for all
    overloads: dict[str, set[int]] = {}  # C++/Java function name -> the arities defined
    eligible: list[Item] = []
    for it in found:
        if it.kind == "def":
            if it.names & claimed:
                continue  # a redefinition: the context's or an earlier item's version stands
            if it.arity is not None and len(it.names) == 1:  # an overload (another parameter count)
                (name,) = it.names
                if it.arity in overloads.setdefault(name, set()):
                    continue
                overloads[name].add(it.arity)
            elif it.names & overloads.keys():
                continue
            else:
                claimed |= it.names
        elif it.kind == "proto" and it.names & context:
            continue
        eligible.append(it)
    used = set(used)
    kept: set[int] = set()
    kept_names: set[str] = set()
    changed = True
    while changed:
        changed = False
        for k, it in enumerate(eligible):
            if k in kept:
                continue
            if it.kind == "impl":
                with_type = it.owner in kept_names or it.trait in kept_names
                take = with_type or bool(it.names & used and it.owner in kept_names | context)
            else:
                take = bool(it.names & used)
            if take:
                kept.add(k)
                used |= it.uses
                if it.kind == "def":
                    kept_names |= it.names
                changed = True
    if kept:  # an #include is of use to the kept code after it
        last = max(kept)
        kept |= {k for k, it in enumerate(eligible) if it.kind == "include" and k < last}
    return [it for k, it in enumerate(eligible) if k in kept]
