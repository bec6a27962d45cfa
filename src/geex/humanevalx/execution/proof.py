"""Proof that a test ran to the end: exit status 0 alone is not a pass.

A completion can end its program with status 0 before the test has checked anything (``exit(0)``
in the function, an ``atexit`` hook, a static initializer, an ELF constructor, a panic hook …).
So every test run gets a fresh secret (16 random bytes, hex) that the program cannot know in
advance: it is in neither the program text, nor argv, nor the environment. The harness writes one
line ``<secret>\\n`` per proof the program owes to the program's **stdin** (a pipe whose write end
is closed before the program starts), and hands it a second pipe, the **report** channel, whose
descriptor number is in ``$GEEX_PROOF_FD``. Per language, geex's own code reads the line before
any code of the sample runs (the *prologue*) and writes the secret to the report channel after the
test's last statement (the *epilogue*); the harness reads the channel after the program is gone.
Passed = exit status 0 **and** exactly the expected proof (:class:`Proof`).

Where the prologue and epilogue live (``harness/`` holds the files: the Python and JS scripts are
copied next to the program, the others built into the runner's cache at preparation and bound
read-only into the sandbox):

- Python: ``geex_run.py`` reads the secret, then runs the program's parts (see ``assembly.py``:
  the test in a namespace of its own, the completion's results turned into built-in data),
  then reports.
- C++: ``geex_proof.c``, linked before the program: a ``.preinit_array`` entry (the first of the
  executable's initializers) reads the secret; the link wraps ``main`` (``-Wl,--wrap=main``) so
  that the report follows the test's ``main`` returning 0.
- Java: ``GeexMain`` (first on the class path) reads the secret in its static initializer, calls
  ``Main.main`` and reports.
- JavaScript: ``geex_run.js`` reads the secret, freezes a strict ``console.assert``, refuses a
  program that returns from its top level, ``require``-s the program (whose test calls a
  module-level ``const`` assert, see ``assembly.py``), reports.
- Go: package ``geexproof``, imported by the sample's package (so initialized before it), reads the
  secret; the generated test main runs the tests (``-test.paniconexit0``) and reports only if
  every test function returned and ``m.Run()`` gave 0.
- Rust: ``proof.rs``, spliced by assembly into each ``#[test]`` function as items private to its
  body: a ``.preinit_array`` entry reads one line, a guard reports when the function returns
  without panicking.

The reporting code cannot be called by name from the sample (private items, a static C function,
a private Java method, a closure, a package the sample cannot import), and C and Rust use raw
system calls, so a sample that defines its own ``read``/``write`` does not see the secret.

Residual, deliberate attacks (documented in ``docs/architecture.md``): code that runs before the
prologue (an IFUNC resolver or a ``.preinit_array`` entry of the sample's own placed before geex's,
in C++ or Rust), or that finds the secret in the process's memory afterwards or rewrites its stack
(Python frames or ``gc``, Java reflection into ``GeexMain``, ``/proc/self/mem``, a debugger),
forges the proof. Such a sample is no longer an accidental early exit but an attack on the harness.
"""

from __future__ import annotations

import enum
import fcntl
import functools
import hashlib
import os
import secrets
import shutil
from importlib import resources
from pathlib import Path

ENV_FD = "GEEX_PROOF_FD"  # the report channel's descriptor number in the program
_MAX_REPORT = 1 << 16  # more than this is not a proof anyway
_MAX_PROOFS = 1000  # their lines must fit in the stdin pipe's buffer (written before the program starts)


class Proof(str, enum.Enum):
    """What the report channel held after the program ended."""

    SHOWN = "shown"  # exactly the expected proof: the test ran to the end
    MISSING = "missing"  # nothing: the program ended before the test did (or never started it)
    WRONG = "wrong"  # something else: garbled, partial or forged


EARLY_EXIT = "the test did not run to the end (early exit): status 0 without geex's proof of completion"
WRONG_PROOF = "the test's proof of completion was wrong (something else was written to geex's report channel)"


def failure_detail(proof: Proof) -> str:
    """The one-line reason a program that exited 0 did not pass."""
    return EARLY_EXIT if proof is Proof.MISSING else WRONG_PROOF


class ProofChannel:
    """The secret on the program's stdin and the report pipe, for one run (a context manager).

    ``owner``: the uid the program runs as, when the harness drops to one: the report pipe is
    given to it so that a runtime that cannot use an inherited descriptor number directly (Java)
    may reopen it through ``/proc/self/fd``. Writing to it is all that gains: the secret is not in it.
    """

    def __init__(self, proofs: int = 1, owner: int | None = None) -> None:
        if not 1 <= proofs <= _MAX_PROOFS:
            raise ValueError(f"a program owes 1 to {_MAX_PROOFS} proofs, not {proofs}")
        self.proofs = proofs
        self.secret = secrets.token_hex(16).encode()
        self._fds: list[int] = []
        try:
            stdin_r, stdin_w = self._pipe()
            self.report_r, self.report_w = self._pipe()
            os.write(stdin_w, (self.secret + b"\n") * proofs)  # a few hundred bytes: never blocks
            os.close(stdin_w)
            self._fds.remove(stdin_w)
            self.stdin = stdin_r
            if owner is not None and owner != os.geteuid():
                os.fchown(self.report_w, owner, owner)
            os.set_blocking(self.report_r, False)
        except BaseException:
            self.close()
            raise

    def _pipe(self) -> tuple[int, int]:
        r, w = os.pipe()
        self._fds += [r, w]
        return r, w

    @property
    def env(self) -> dict[str, str]:
        return {ENV_FD: str(self.report_w)}

    @property
    def pass_fds(self) -> tuple[int, ...]:
        return (self.report_w,)

    def collect(self) -> Proof:
        """Read the report channel (after the program and its children are gone) and judge it."""
        data = b""
        while len(data) <= _MAX_REPORT:
            try:
                chunk = os.read(self.report_r, _MAX_REPORT)
            except BlockingIOError:
                break
            if not chunk:
                break
            data += chunk
        if not data:
            return Proof.MISSING
        return Proof.SHOWN if data == self.secret * self.proofs else Proof.WRONG

    def close(self) -> None:
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds.clear()

    def __enter__(self) -> ProofChannel:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# -- the harness's own files ----------------------------------------------------------------------
@functools.cache
def harness_text(name: str) -> str:
    """A file of ``geex/humanevalx/execution/harness``."""
    return resources.files("geex.humanevalx.execution").joinpath("harness", name).read_text(encoding="utf-8")


@functools.cache
def harness_digest(names: tuple[str, ...]) -> str:
    """Changes whenever one of these harness files does (part of a runner's fingerprint; Rust's
    ``proof.rs`` is in the program text, so in the program's hash instead)."""
    h = hashlib.sha256()
    for name in names:
        h.update(name.encode() + b"\0" + harness_text(name).encode() + b"\0")
    return h.hexdigest()[:16]


def install(dest: Path, names: tuple[str, ...], build=None) -> Path:
    """Copy harness files into ``dest`` once (then ``build(tmp_dir)``, e.g. a compile step), made
    world-readable; atomic, and safe against another geex process doing the same."""
    if dest.is_dir():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest.parent / ".proof.lock", "w") as lock:  # one lock file per cache directory
        fcntl.flock(lock, fcntl.LOCK_EX)
        if dest.is_dir():
            return dest
        tmp = dest.with_name(dest.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for name in names:
            (tmp / name).write_text(harness_text(name), encoding="utf-8")
        if build is not None:
            build(tmp)
        for p in [tmp, *tmp.iterdir()]:
            p.chmod(0o755 if p.is_dir() else 0o644)
        tmp.rename(dest)
    return dest
