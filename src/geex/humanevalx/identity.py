"""The harness's own code identity: a hash of every source file a verdict depends on.

A cached verdict (and a resumed result) is reused only under the same fingerprint; a version
constant that someone must remember to bump does not protect it from a harness change, so the
fingerprint includes this hash. Which files: the import closure of the runners and of the assembly
(``ENTRIES``: every ``geex`` module they import, directly or not, found by reading their ``import``
statements, and the packages' ``__init__``), plus the data files shipped inside those packages
(``humanevalx/execution/java/GeexJavac.java``). A module that joins the closure later is hashed without
anyone listing it; the orchestrator and the reports are outside it, so changing them keeps the cache.
"""

from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import geex

if TYPE_CHECKING:
    from geex.humanevalx.execution.runners import Runner
    from geex.humanevalx.execution.sandbox import Sandbox

# what decides a verdict: the runners (recipes, sandbox, verdict rules) and the assembly of programs
ENTRIES = ("geex.humanevalx.execution.runners", "geex.humanevalx.assembly")


def _module_file(root: Path, name: str) -> Path | None:
    """The file of module ``name`` under the ``geex`` package directory ``root``, if it is one."""
    parts = name.split(".")
    if parts[0] != "geex":
        return None
    base = root.joinpath(*parts[1:])
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _imported(path: Path, name: str) -> set[str]:
    """Module names ``path`` (module ``name``) may import: ``import a.b``, ``from a import b``
    (``a`` and ``a.b``: ``b`` may be a module), relative forms resolved; anywhere in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            found.add(origin)
            found.update(f"{origin}.{alias.name}" for alias in node.names)
    # importing a.b.c runs a/__init__ and a/b/__init__ first
    return {".".join(n.split(".")[: i + 1]) for n in found for i in range(len(n.split(".")))}


def _data_files(package_dir: Path) -> list[Path]:
    """Files in a package's subdirectories that are not packages themselves (shipped data)."""
    out = []
    for sub in sorted(p for p in package_dir.iterdir() if p.is_dir() and not (p / "__init__.py").exists()):
        if sub.name == "__pycache__":
            continue
        out += [f for f in sorted(sub.rglob("*")) if f.is_file() and "__pycache__" not in f.parts]
    return out


def closure(root: Path, entries: tuple[str, ...] = ENTRIES) -> list[Path]:
    """Every file that ``identity`` hashes, sorted."""
    seen: dict[str, Path] = {}
    todo = [".".join(e.split(".")[: i + 1]) for e in entries for i in range(e.count(".") + 1)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = _module_file(root, name)
        if path is None:
            continue
        seen[name] = path
        todo += sorted(_imported(path, name) - seen.keys())
    files = set(seen.values())
    for path in list(files):
        if path.name == "__init__.py":
            files.update(_data_files(path.parent))
    return sorted(files)


def identity(root: Path, entries: tuple[str, ...] = ENTRIES) -> str:
    """Hash of the closure's files: their paths relative to ``root`` and their bytes."""
    h = hashlib.sha256()
    for path in closure(root, entries):
        data = path.read_bytes()
        h.update(f"{path.relative_to(root).as_posix()}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()[:16]


@functools.cache
def harness_identity() -> str:
    """The identity of the installed harness (computed once per process)."""
    return identity(Path(geex.__file__).resolve().parent)


def verdict_fingerprint(runner: Runner, sandbox: Sandbox, timeout_s: float) -> str:
    """What a verdict of ``runner``'s is reusable under: its toolchain, recipe and limits, the
    sandbox's isolation and memory limit, and the harness's code. Computed where programs run (each
    node of a cluster for itself), so a node with another toolchain cannot pass for this one."""
    key = f"{runner.verdict_key(timeout_s)}|{sandbox.isolation.value}|{sandbox.memory_mechanism}|{harness_identity()}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]
