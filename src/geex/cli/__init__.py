"""The ``geex`` command. Subcommands map to components; this package only parses, calls and prints.

A command group is a module here whose ``add_parser(subparsers)`` registers its subcommands with
their handlers, so a new group is one more module, imported and named in ``COMMANDS``; a handler
imports its component only when it runs, so ``geex --help`` and option mistakes stay fast. Shared
options are ``geex.cli.options``'s.

This module assembles the parser, and it is the one place where a ``UserError`` becomes
``geex: error: ...`` on one line (exit status 2) and where Ctrl-C is handled for every command
("stopping…", then what was kept and the command that resumes; exit status 130). Errors and warnings
name parameters in the library's words (`max_new_tokens`); here they become the command's flags
(``--max-new-tokens``, see ``geex.errors.spelled``)."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import warnings
from collections.abc import Callable

from geex import __version__, interrupts
from geex.cli import data, doctor, generate, humanevalx, model, serve, train
from geex.errors import GeexWarning, UserError, spelled

COMMANDS = (doctor, model, data, train, generate, serve, humanevalx)  # in the order --help lists them


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="geex", description="CodeGeeX re-implemented: models, training, serving, and the HumanEval-X benchmark.",
    )
    parser.add_argument("--version", action="version", version=f"geex {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


class _Interrupts:
    """Ctrl-C, the same way for every command: the first one says "stopping…" at once and raises
    KeyboardInterrupt in the main thread, so the command ends through its own clean-up (running
    sandboxed tests finish, files are closed); a second one quits at once. Quitting at once is safe
    because every resumable output is written to survive a kill at any moment (results and samples
    append whole lines, checkpoints are renamed into place when complete)."""

    def __init__(self) -> None:
        self.count = 0
        self.previous = None

    def __enter__(self) -> "_Interrupts":
        try:
            self.previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread (geex.cli.main called from a library's thread)
            self.previous = None
        return self

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)

    def _handle(self, signum: int, frame) -> None:
        self.count += 1
        if self.count > 1:
            sys.stderr.write("\ngeex: interrupted again: quitting now; what was written is kept\n")
            sys.stderr.flush()
            os._exit(130)
        sys.stderr.write("\nstopping… (Ctrl-C again to quit at once)\n")
        sys.stderr.flush()
        if interrupts.defer_now():  # a critical write (a checkpoint) finishes first, then it stops
            return
        raise KeyboardInterrupt


def _interrupted(args: argparse.Namespace, argv: list[str]) -> int:
    """The one-line report of a stopped command: what was kept, and the command that resumes."""
    kept: Callable[[argparse.Namespace], str] | None = getattr(args, "kept", None)
    command = shlex.join(["geex", *argv])
    if kept is None:
        print("geex: interrupted", file=sys.stderr)
    else:
        try:
            what = kept(args)
        except Exception as e:  # noqa: BLE001 - the report of an interrupt must not end in a traceback
            what = f"(what was kept could not be read: {e})"
        print(f"geex: interrupted: {what}; resume with: {command}", file=sys.stderr)
    return 130


def command_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, str]:
    """Each parameter of the command that ``args`` ran (an argument's ``dest``, which is the library's
    name for it) -> the long flag that sets it, from the parser down the chosen subcommands."""
    flags: dict[str, str] = {}
    current: argparse.ArgumentParser | None = parser
    while current is not None:
        chosen = None
        for action in current._actions:
            long = [s for s in action.option_strings if s.startswith("--")]
            if long and action.dest not in ("help", argparse.SUPPRESS):
                flags.setdefault(action.dest, long[0])
            if isinstance(action, argparse._SubParsersAction):
                chosen = action.choices.get(getattr(args, action.dest, None))
        current = chosen
    return flags


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    flags = command_flags(parser, args)
    warnings.simplefilter("default", RuntimeWarning)
    warnings.simplefilter("always", GeexWarning)
    warnings.formatwarning = lambda msg, cat, *a, **k: f"WARNING: {spelled(str(msg), flags)}\n"
    with _Interrupts():
        try:
            return args.func(args)
        except UserError as e:
            print(f"geex: error: {spelled(str(e), flags)}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            return _interrupted(args, argv)
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1

