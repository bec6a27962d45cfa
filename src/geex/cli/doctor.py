"""``geex doctor``: whether each HumanEval-X toolchain and the sandbox work on this machine (the checks
are ``geex.humanevalx.doctor``'s). A top-level command, not under ``humanevalx``: it is what a
harness error tells the user to run."""

from __future__ import annotations

import argparse


def _cmd_doctor(args: argparse.Namespace) -> int:
    from geex.humanevalx.doctor import doctor
    from geex.languages import parse_languages

    return doctor(languages=parse_languages(args.languages) if args.languages else None)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``geex doctor``."""
    doc = subparsers.add_parser("doctor", help="check every HumanEval-X toolchain and the sandbox",
                               description="Per language: the toolchain, its version, and whether a hello-world "
                                           "test compiles and runs in the sandbox; install hints when not.")
    doc.add_argument("--languages", "-l", help="comma-separated subset: python,cpp,java,js,go,rust (default: all)")
    doc.set_defaults(func=_cmd_doctor)
