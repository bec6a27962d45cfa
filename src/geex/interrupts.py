"""Ctrl-C that waits for a critical write: ``with deferred():`` around work that must not be cut.

The CLI's SIGINT handler raises KeyboardInterrupt in the main thread so that a command ends through
its own clean-up. Some work must not be cut in the middle: a library may turn the exception into its
own (torch.distributed.checkpoint wraps it into a CheckpointException, which then ends in a
traceback). Inside ``deferred()`` the handler only records the request; it is raised when the block
ends, right after the write is complete.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

_depth = 0
_pending = False


def defer_now() -> bool:
    """Called by the SIGINT handler: True (and remembered) when inside ``deferred()``."""
    global _pending
    if _depth:
        _pending = True
        return True
    return False


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    global _depth, _pending
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if not _depth and _pending:
            _pending = False
            raise KeyboardInterrupt
