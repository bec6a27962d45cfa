"""A hostile local user: another, unprivileged uid on the machine, attacking a running evaluation.

Run by ``test_hostile.py`` as a script (``setpriv --reuid 4242 ... python3 hostile_user.py``) under
the system interpreter, so it uses the standard library only. It reads requests on stdin, one JSON
object a line, and answers each with one JSON line on stdout: the attempts it made, each
``{"op", "path", "ok", "error"}`` (``error``: the errno name). The test tells it what a real
attacker could guess or watch: the harness's temp directory, each new work directory, each moment a
command is about to run in one. Requests:

- ``bait``: plant, in the harness's temp directory, stale-looking jobs roots (``geex-jobs-<a dead
  pid>-*``): a link to a directory of the victim's, and a directory holding such links; the
  harness removes stale jobs roots, and must not follow them.
- ``workdir``: a work directory was just made (empty): list the jobs root, create and link entries
  in it, list the work directory, plant links at every name the harness writes there; the first
  time, also list the uid lease directory, create and ``flock`` lease files (holding them: leases
  exhausted) and plant a link among them.
- ``run``: a command is about to run in the work directory: list it, read, open for writing and
  replace (rename its own file over) every name the harness or a compiler writes there, create one.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import sys

# Every name a runner or compiler writes into a work directory (all six languages).
HARNESS_FILES = (
    "main.py", "main.cpp", "main", "Main.java", "Main.class", "Solution.class", "test.js",
    "main_test.go", "testmain.go", "importcfg.main", "sample.a", "main.a", "main.test", "main.rs",
)
LEASES_TRIED = 4  # lease files to create and hold from the first leased uid on


class Attacker:
    def __init__(self) -> None:
        self.held: list[int] = []  # lease files it managed to lock (kept open: the locks stay)
        self.leases_done = False
        self.home = ""  # its own directory, on the work directories' file system
        self.count = 0

    def attempt(self, log: list, op: str, path: str, action) -> None:
        try:
            action()
            log.append({"op": op, "path": path, "ok": True, "error": None})
        except OSError as e:
            log.append({"op": op, "path": path, "ok": False, "error": errno.errorcode.get(e.errno, str(e.errno))})

    def own_file(self, content: bytes) -> str:
        self.count += 1
        path = os.path.join(self.home, f"f{self.count}")
        with open(path, "wb") as f:
            f.write(content)
        os.chmod(path, 0o755)
        return path

    def bait(self, req: dict, log: list) -> None:
        tmp, victim, dead = req["tempdir"], req["victim_dir"], req["dead_pid"]
        self.home = os.path.join(tmp, f"attacker-{os.getuid()}")
        os.mkdir(self.home, 0o755)
        link = os.path.join(tmp, f"geex-jobs-{dead}-link")
        self.attempt(log, "bait: stale jobs root linking to the victim", link, lambda: os.symlink(victim, link))
        stale = os.path.join(tmp, f"geex-jobs-{dead}-dir")
        self.attempt(log, "bait: stale jobs root holding links", stale, lambda: os.mkdir(stale, 0o777))
        for name, target in (("victim", victim), ("victim-file", req["victim_file"])):
            path = os.path.join(stale, name)
            self.attempt(log, "bait: link in a stale jobs root", path, lambda p=path, t=target: os.symlink(t, p))

    def workdir(self, req: dict, log: list) -> None:
        wd, canary = req["path"], req["canary"]
        jobs = os.path.dirname(wd)
        self.attempt(log, "list jobs root", jobs, lambda: os.listdir(jobs))
        mine = os.path.join(jobs, "s0-attacker")
        self.attempt(log, "create in jobs root", mine, lambda: os.close(os.open(mine, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)))
        link = os.path.join(jobs, "s1-attacker")
        self.attempt(log, "link in jobs root", link, lambda: os.symlink(canary, link))
        self.attempt(log, "list work dir", wd, lambda: os.listdir(wd))
        for name in HARNESS_FILES:
            path = os.path.join(wd, name)
            self.attempt(log, "plant link", path, lambda p=path: os.symlink(canary, p))
        if not self.leases_done:
            self.leases_done = True
            self.leases(req, log)

    def leases(self, req: dict, log: list) -> None:
        leases, base = req["lease_dir"], req["uid_base"]
        self.attempt(log, "list lease dir", leases, lambda: os.listdir(leases))
        for uid in range(base, base + LEASES_TRIED):
            path = os.path.join(leases, f"{uid}.lock")

            def hold(p=path) -> None:
                fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o666)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    os.close(fd)
                    raise
                self.held.append(fd)

            self.attempt(log, "hold lease", path, hold)
        # far enough up that the harness (two workers) takes none of them in the positive control
        link = os.path.join(leases, f"{base + 50}.lock")
        self.attempt(log, "link lease", link, lambda: os.symlink(req["canary"], link))

    def run(self, req: dict, log: list) -> None:
        wd = req["path"]
        self.attempt(log, "list work dir", wd, lambda: os.listdir(wd))
        for name in HARNESS_FILES:
            path = os.path.join(wd, name)

            def read(p=path) -> None:
                with open(p, "rb") as f:
                    f.read(1)

            self.attempt(log, "read", path, read)
            self.attempt(log, "open for writing", path, lambda p=path: os.close(os.open(p, os.O_WRONLY)))
            # not a program: whatever ran it would fail, and the sample's verdict with it
            src = self.own_file(b"geex-attacker\n")
            self.attempt(log, "replace", path, lambda s=src, p=path: os.rename(s, p))
        mine = os.path.join(wd, "attacker")
        self.attempt(log, "create in work dir", mine, lambda: os.close(os.open(mine, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)))

    def serve(self) -> None:
        for line in sys.stdin:
            req = json.loads(line)
            log: list = []
            getattr(self, req["phase"])(req, log)
            sys.stdout.write(json.dumps(log) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    Attacker().serve()
