"""geex's Python test harness: ``python -I -B geex_run.py`` in the work directory of ``main.py``.

Prologue, program, epilogue (see ``geex/humanevalx/execution/proof.py``): the secret is read from stdin
before any code of the sample runs, and written to the report descriptor only once the test's
last statement has run without an exception. ``exit(0)``, ``raise SystemExit``, ``os._exit(0)``,
``atexit`` or signal handlers all end the program before that.

``main.layout.json`` (from assembly) says where the parts of ``main.py`` lie; with it:

- the test runs in a namespace of its own, built *before* the sample runs: a copy of the
  built-ins, the imports preamble and the prompt's helper functions (``poly``, ``encode_cyclic``),
  each executed on its own. A completion that rebinds ``len``, ``sorted``, ``builtins.abs`` or a
  helper at module level does not change what the test computes;
- the test's view of the function under test is a proxy that turns every result into plain
  built-in data (``int``, ``str``, ``list``, ``dict`` …; subclasses become their base type, numpy
  scalars and arrays Python values) or raises ``TypeError``: an object whose ``__eq__`` says yes
  to everything never reaches the test's comparisons;
- comparisons of the test with a literal (``== 5``, ``in [1, 2]``, ``!= -1``) compare plain data
  too (an AST rewrite), whatever the other side is.

The test's code is compiled, and this file's functions see the built-ins, as they were before the
sample ran (the sample's ``__main__`` keeps the real ``builtins`` module).

Without a layout (a program not made by assembly) the whole file runs as one module.

Not covered: a sample that introspects the interpreter on purpose (frames, ``gc``, tracing) can
reach the secret or the test; a sample that patches a shared module (``random.randint``) changes
the test's inputs. Both are attacks, not early exits.
"""

import _ast  # the C node classes only: the ``ast`` and ``json`` modules cost milliseconds per sample
import builtins
import os
import sys
import types

# This file's functions look built-ins up in this copy, taken before the sample runs: a sample that
# rebinds ``builtins.type`` or ``builtins.isinstance`` changes nothing for the harness.
__builtins__ = dict(builtins.__dict__)


def _main() -> None:
    fd_text = os.environ.get("GEEX_PROOF_FD")
    secret = b""
    if fd_text is not None:
        while not secret.endswith(b"\n") and len(secret) < 256:
            chunk = os.read(0, 1)
            if not chunk:
                break
            secret += chunk
        secret = secret.strip()
        report_fd = int(fd_text)
        os.set_inheritable(report_fd, False)  # the sample's child processes do not get it
    write = os.write

    with open("main.py", encoding="utf-8") as f:
        source = f.read()
    try:
        with open("main.layout.json", encoding="utf-8") as f:
            layout = _json_value(_parse(f.read(), "main.layout.json", "eval").body)
    except FileNotFoundError:
        layout = None

    def part(start: int, end: int | None = None) -> str:
        """``source[start:end]`` at its own line numbers (for tracebacks)."""
        return "\n" * source.count("\n", 0, start) + source[start:end]

    sample = types.ModuleType("__main__")
    sample.__file__ = "main.py"
    sample.__builtins__ = builtins  # the real module, as any __main__ has (not this file's copy)
    sys.modules["__main__"] = sample  # `import __main__` gives the program, not this harness
    sys.argv = ["main.py"]

    if layout is None:
        exec(compile(source, "main.py", "exec"), sample.__dict__)
    else:
        # everything of the test's is made before the sample runs
        test_ns = {"__name__": "__main__", "__builtins__": dict(__builtins__)}
        exec(compile(part(*layout["prelude"]), "main.py", "exec"), test_ns)
        if layout.get("helpers"):
            exec(compile(part(*layout["helpers"]), "main.py", "exec"), test_ns)
        test = compile(_plain_comparisons(_parse(part(layout["test"]), "main.py", "exec")), "main.py", "exec")
        entry = layout.get("entry")

        exec(compile(source[: layout["test"]], "main.py", "exec"), sample.__dict__)

        if entry is None:  # no function to test: the test sees the program's names (plain data still)
            test_ns = sample.__dict__
        elif entry in sample.__dict__:
            test_ns[entry] = _plain_results(sample.__dict__[entry])
        test_ns["__geex_plain__"] = _plain
        exec(test, test_ns)

    if fd_text is not None and secret:
        write(report_fd, secret)


# -- plain built-in data ---------------------------------------------------------------------------
_SCALARS = (int, float, complex, str, bytes, bytearray, bool, type(None))
# subclasses: the base type's own conversion, which ignores the subclass's overrides
_SCALAR_BASES = (
    (int, int.__int__), (float, float.__float__), (complex, complex.__complex__),
    (str, str.__str__), (bytes, bytes.__bytes__), (bytearray, bytearray),
)


def _plain(value, _path=None):
    """``value`` as built-in data the test can compare with built-in semantics, or TypeError."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    for base, convert in _SCALAR_BASES:
        if isinstance(value, base):
            return convert(value)
    path = set() if _path is None else _path
    if id(value) in path:
        raise TypeError("geex: a result that contains itself is not plain data")
    path.add(id(value))
    try:
        if isinstance(value, list):
            return [_plain(x, path) for x in list.__iter__(value)]
        if isinstance(value, tuple):
            return tuple(_plain(x, path) for x in tuple.__iter__(value))
        if isinstance(value, dict):
            return {_plain(k, path): _plain(v, path) for k, v in dict.items(value)}
        if isinstance(value, frozenset):
            return frozenset(_plain(x, path) for x in frozenset.__iter__(value))
        if isinstance(value, set):
            return {_plain(x, path) for x in set.__iter__(value)}
        np = sys.modules.get("numpy")
        if np is not None and isinstance(value, np.ndarray):
            return _plain(np.ndarray.tolist(value), path)
        if np is not None and isinstance(value, np.generic):
            return _plain(np.generic.item(value), path)
    finally:
        path.discard(id(value))
    raise TypeError(
        f"geex: the test compares only built-in data (int, float, str, list, dict, ...), "
        f"not a {kind.__module__}.{kind.__qualname__}"
    )


def _plain_results(function):
    """``function`` for the test: each result converted by :func:`_plain`."""

    def candidate(*args, **kwargs):
        return _plain(function(*args, **kwargs))

    return candidate


def _parse(text: str, filename: str, mode: str):
    return compile(text, filename, mode, _ast.PyCF_ONLY_AST)


def _json_value(node):
    """The value of a JSON document parsed as a Python expression (objects, arrays, strings,
    numbers, null): what assembly writes to ``main.layout.json``."""
    if isinstance(node, _ast.Constant):
        return node.value
    if isinstance(node, _ast.List):
        return [_json_value(e) for e in node.elts]
    if isinstance(node, _ast.Dict):
        return {_json_value(k): _json_value(v) for k, v in zip(node.keys, node.values)}
    if isinstance(node, _ast.Name) and node.id in ("null", "true", "false"):
        return {"null": None, "true": True, "false": False}[node.id]
    raise ValueError("geex: main.layout.json is not the layout assembly writes")


def _literal(node) -> bool:
    """A constant, a signed number, or a list/tuple/set/dict display of literals."""
    if isinstance(node, _ast.Constant):
        return True
    if isinstance(node, _ast.UnaryOp) and isinstance(node.op, (_ast.USub, _ast.UAdd)):
        return isinstance(node.operand, _ast.Constant)
    if isinstance(node, (_ast.List, _ast.Tuple, _ast.Set)):
        return all(_literal(e) for e in node.elts)
    if isinstance(node, _ast.Dict):
        return all(k is not None and _literal(k) for k in node.keys) and all(_literal(v) for v in node.values)
    return False


def _plain_call(operand):
    """``__geex_plain__(operand)``, at the operand's place in the source."""
    where = {k: getattr(operand, k) for k in ("lineno", "col_offset", "end_lineno", "end_col_offset")}
    return _ast.Call(_ast.Name("__geex_plain__", _ast.Load(), **where), [operand], [], **where)


def _plain_comparisons(node):
    """The tree with every comparison against a literal (any operator but ``is``) comparing
    plain data: ``x == <literal>`` becomes ``__geex_plain__(x) == <literal>``."""
    for field in node._fields:
        value = getattr(node, field, None)
        if isinstance(value, list):
            value[:] = [_plain_comparisons(v) if isinstance(v, _ast.AST) else v for v in value]
        elif isinstance(value, _ast.AST):
            setattr(node, field, _plain_comparisons(value))
    if isinstance(node, _ast.Compare):
        operands = [node.left, *node.comparators]
        if any(not isinstance(op, (_ast.Is, _ast.IsNot)) for op in node.ops) and any(map(_literal, operands)):
            wrapped = [o if _literal(o) else _plain_call(o) for o in operands]
            node.left, node.comparators = wrapped[0], wrapped[1:]
    return node


if __name__ == "__main__":
    _main()
