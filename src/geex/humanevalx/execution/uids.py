"""Leases of unprivileged uids for sandboxed programs, unique across concurrent geex processes.

A worker's programs run under a uid that nothing else uses while the lease is held, so
RLIMIT_NPROC counts only that worker's processes and "kill every process of this uid" after a
sample cannot hit another evaluation running on the same machine. A lease is an exclusive
``flock`` on a file per uid: the kernel releases it when the holder exits, even on ``kill -9``.

Only root drops to other uids, so only root takes leases. The lease files live in a root-owned
0700 directory (``/run/geex/uid-leases``, else ``/var/lib/geex/uid-leases``): another local user
can neither plant a symbolic link there, nor hold (exhaust) the leases, nor see which are taken.
Every open is relative to the checked directory and refuses to follow a link.
"""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path

# Far above every range a distribution hands out (system users < 1000, regular users < 60000,
# systemd DynamicUser 61184-65519, container subuid ranges from 100000 in steps of 65536 usually
# below 10^6 per user): nothing but geex runs under these uids.
# Earlier geex versions leased 2,000,000,000-2,000,001,999 through a world-writable /tmp directory:
# a range of its own keeps the two lease schemes from handing out one uid twice on a shared machine.
UID_BASE = 2_000_010_000
UID_SPAN = 2000
LOCK_DIRS = (Path("/run/geex/uid-leases"), Path("/var/lib/geex/uid-leases"))


class LeaseDirError(RuntimeError):
    """No private directory for lease files could be made or trusted."""


def _open_private_dir(path: Path) -> int:
    """An fd of ``path`` (created if needed), after checking that it and its parent are real
    directories owned by root, the leaf 0700 and the parent not writable by others."""
    parent_fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        for i, part in enumerate(path.parts[1:]):
            last = i == len(path.parts) - 2
            try:
                os.mkdir(part, 0o700 if last else 0o755, dir_fd=parent_fd)
            except FileExistsError:
                pass
            fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent_fd)
            st = os.fstat(fd)
            bad = st.st_uid != 0 or (st.st_mode & 0o022 and not (st.st_mode & stat.S_ISVTX and not last))
            if last and not bad and stat.S_IMODE(st.st_mode) != 0o700:
                os.fchmod(fd, 0o700)  # ours (root-owned), made with another umask
            if bad:
                os.close(fd)
                raise LeaseDirError(f"{path}: {part} is not a root-owned directory closed to others")
            os.close(parent_fd)
            parent_fd = fd
        return parent_fd
    except OSError as e:
        os.close(parent_fd)
        raise LeaseDirError(f"{path}: {e.strerror or e}") from e


def lease_dir_fd() -> tuple[int, Path]:
    """The first usable lease directory: (open fd, path)."""
    errors = []
    for path in LOCK_DIRS:
        try:
            return _open_private_dir(path), path
        except LeaseDirError as e:
            errors.append(str(e))
    raise LeaseDirError("no private directory for uid leases: " + "; ".join(errors))


class UidLease:
    """Holds one uid until ``release()`` (or process exit). Root only."""

    def __init__(self) -> None:
        if os.geteuid() != 0:
            raise PermissionError("uid leases are for root (only root drops to other uids)")
        dir_fd, self.directory = lease_dir_fd()
        try:
            for uid in range(UID_BASE, UID_BASE + UID_SPAN):
                fd = os.open(f"{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                             0o600, dir_fd=dir_fd)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    os.close(fd)
                    continue
                self.uid, self._fd = uid, fd
                return
        finally:
            os.close(dir_fd)
        raise RuntimeError(f"all {UID_SPAN} sandbox uids from {UID_BASE} are in use")

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
