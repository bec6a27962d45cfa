"""The layout's rules, read from the code itself: imports form no cycle between files, execution
imports nothing of the benchmark pipeline above it, functions stay short, and the module tables of
``docs/architecture.md`` name files that exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import geex

SRC = Path(geex.__file__).resolve().parent
DOCS = SRC.parents[1] / "docs" / "architecture.md"
MAX_LINES = 80
# allowed to be longer: Triton kernels (one GPU program reads best whole) and the brace lexer
LONG_ALLOWED = {("languages/cleanup.py", "_lex")}


def _modules() -> dict[str, Path]:
    found = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """The geex modules ``path`` imports anywhere in the file (a function's import counts: it still
    ties the two files together)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            origins = [(a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            origins = [(base, a.name) for a in node.names]
        else:
            continue
        for origin, member in origins:
            target = f"{origin}.{member}" if member and f"{origin}.{member}" in modules else origin
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, name, modules) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle():
    """Positive control: a three-module ring and a self-contained pair are found, a chain is not."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"e"}, "e": {"d"}, "f": {"a"}, "g": set()}
    assert sorted(_cycles(graph)) == [["a", "b", "c"], ["d", "e"]]


def test_no_file_level_import_cycle():
    assert _cycles(_graph()) == []


def test_execution_imports_nothing_of_the_pipeline():
    graph = _graph()
    leaks = {(m, d) for m, deps in graph.items() if m.startswith("geex.humanevalx.execution")
             for d in deps if d.startswith("geex.humanevalx") and not d.startswith("geex.humanevalx.execution")}
    assert leaks == set()


def test_functions_are_short():
    long = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC).as_posix()
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            triton = any("jit" in ast.unparse(d) for d in node.decorator_list)
            lines = node.end_lineno - node.lineno + 1
            if lines > MAX_LINES and not triton and (rel, node.name) not in LONG_ALLOWED:
                long.append(f"{rel}:{node.lineno} {node.name} ({lines} lines)")
    assert long == []


def test_the_module_tables_name_files_that_exist():
    """In each ``## `geex.<component>``` section, every file a table row starts with exists."""
    missing = []
    for section in re.split(r"^## ", DOCS.read_text(), flags=re.M)[1:]:
        component = re.match(r"`geex\.(\w+)`", section)
        if component is None:
            continue
        for row in re.findall(r"^\| (.+?) \|", section, flags=re.M):
            for name in re.findall(r"`([\w/]+(?:\.py|/))`", row):
                if not (SRC / component.group(1) / name).exists():
                    missing.append(f"{component.group(1)}/{name}")
    assert missing == []


def _printed_warnings(source: str) -> list[int]:
    """Lines where ``print`` writes a warning (a string naming one) instead of ``warnings.warn``."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
            text = " ".join(c.value for a in node.args for c in ast.walk(a)
                            if isinstance(c, ast.Constant) and isinstance(c.value, str))
            if re.search(r"\bwarning\b|is not installed", text, re.I):
                lines.append(node.lineno)
    return lines


def test_library_code_warns_through_one_channel():
    """Outside the CLI, a warning is ``warnings.warn(..., GeexWarning)``: a library user can filter
    it, and the CLI prints each as one ``WARNING:`` line. The finder finds a printed one."""
    assert _printed_warnings('print(f"WARNING: {x} is odd", file=sys.stderr)\nprint("ok")') == [1]
    assert _printed_warnings('print("geex: tensorboard is not installed")') == [1]
    found = {str(p.relative_to(SRC)): lines for p in SRC.rglob("*.py")
             if "cli" not in p.relative_to(SRC).parts and (lines := _printed_warnings(p.read_text()))}
    assert found == {}



def _geex_flags() -> set[str]:
    """Every long flag of every ``geex`` command, from the real parser."""
    import argparse

    from geex.cli import build_parser

    flags, parsers = set(), [build_parser()]
    while parsers:
        parser = parsers.pop()
        for action in parser._actions:
            flags.update(s for s in action.option_strings if s.startswith("--"))
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
    return flags - {"--help", "--version"}


def _flags_in_messages(source: str, flags: set[str]) -> list[tuple[int, str]]:
    """(line, flag) for each geex flag written into a ``UserError`` or ``warnings.warn`` message,
    unless the message names the command it belongs to (``geex data pack --valid``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
        if name not in ("UserError", "warn"):
            continue
        text = " ".join(c.value for a in node.args for c in ast.walk(a)
                        if isinstance(c, ast.Constant) and isinstance(c.value, str))
        if re.search(r"\bgeex [a-z]", text):
            continue
        found += [(node.lineno, flag) for flag in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", text) if flag in flags]
    return found


def test_library_errors_name_parameters_not_flags():
    """Outside the CLI, errors and warnings name a parameter in backticks (`max_new_tokens`), in the
    library's words; the CLI shows it as its flag (test_cli_mistakes checks the spelling users see).
    The finder finds a flag, and passes another program's flag and one that names its command."""
    flags = _geex_flags()
    assert {"--pairs", "--max-new-tokens", "--set", "--valid"} <= flags
    assert _flags_in_messages('raise UserError(f"--pairs: {x} is bad")', flags) == [(1, "--pairs")]
    assert _flags_in_messages('warnings.warn("use a smaller --max-new-tokens", GeexWarning)', flags) == [
        (1, "--max-new-tokens")]
    assert _flags_in_messages('raise UserError("pip install x --no-deps; `pairs`")', flags) == []
    assert _flags_in_messages('raise UserError("run geex data pack --valid 0.1")', flags) == []
    found = {str(p.relative_to(SRC)): hits for p in SRC.rglob("*.py")
             if "cli" not in p.relative_to(SRC).parts and (hits := _flags_in_messages(p.read_text(), flags))}
    assert found == {}
