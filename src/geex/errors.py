"""Errors that the CLI turns into a one-line message instead of a traceback.

Library code says what is wrong in its own words and names a parameter in backticks (`pairs`,
`max_new_tokens`): a program calling geex reads the names it passed. The CLI shows each such name as
the flag that sets it (``--pairs``), read from the command's own parser (``spelled``), so a message
is written once and never names a flag that the caller does not have."""

from __future__ import annotations

import re
from collections.abc import Mapping

_PARAMETER = re.compile(r"`([a-z][a-z0-9_]*)`")


class UserError(Exception):
    """A mistake in the user's input (bad path, malformed file, unknown name): reported, not raised."""


class GeexWarning(UserWarning):
    """Something the user should know that does not stop the command (random weights, a missing
    optional package, a slow setting). The one channel for such messages: library code calls
    ``warnings.warn(message, GeexWarning)``, never ``print``, so a program using geex as a library
    can filter or record them; the CLI prints each one, every time, as a ``WARNING:`` line."""


def spelled(message: str, flags: Mapping[str, str]) -> str:
    """``message`` with every backticked parameter that ``flags`` knows (parameter -> flag) replaced
    by its flag; other backticked words stay as they are."""
    return _PARAMETER.sub(lambda m: flags.get(m.group(1), m.group(0)), message)
