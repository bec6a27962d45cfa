"""Leases of unprivileged uids for sandboxed programs, unique across concurrent geex processes.

A worker's programs run under a uid that nothing else uses while the lease is held, so
RLIMIT_NPROC counts only that worker's processes and "kill every process of this uid" after a
sample cannot hit another evaluation running on the same machine. A lease is an exclusive
``flock`` on a file per uid: the kernel releases it when the holder exits, even on ``kill -9``.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

# Far above every range a distribution hands out (system users < 1000, regular users < 60000,
# systemd DynamicUser 61184-65519, container subuid ranges from 100000 in steps of 65536 usually
# below 10^6 per user): nothing but geex runs under these uids.
UID_BASE = 2_000_000_000
UID_SPAN = 2000
LOCK_DIR = Path("/tmp/geex-uid-leases")


class UidLease:
    """Holds one uid until ``release()`` (or process exit)."""

    def __init__(self) -> None:
        LOCK_DIR.mkdir(exist_ok=True)
        if LOCK_DIR.stat().st_uid == os.geteuid():
            LOCK_DIR.chmod(0o1777)  # mkdir's mode is cut by the umask
        for uid in range(UID_BASE, UID_BASE + UID_SPAN):
            # 0600: a sandboxed program (another uid) must not be able to open, and so lock, a lease file
            try:
                fd = os.open(LOCK_DIR / f"{uid}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            except PermissionError:  # another user's lease file
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            self.uid, self._fd = uid, fd
            return
        raise RuntimeError(f"all {UID_SPAN} sandbox uids from {UID_BASE} are in use")

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
