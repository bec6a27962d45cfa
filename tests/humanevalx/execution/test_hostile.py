"""Hostile programs against the real harness: every language, through assembly, runner and sandbox.

Each program of ``hostile_programs.py`` is a completion for task 53 (``add``) in a samples file that
``evaluate`` runs like any other (two workers, 4 s timeout, no verdict cache), next to correct
samples that must still pass. Then: the verdict of every program, that none of the escapes worked
(the program would have *passed*), the exit status a program chose (137, 152) recorded as such, the
memory limit recorded, that no process of a sandbox uid and no child of a program is left, and that
no file was left behind (jobs root, I/O files, the write targets, the late write of a detached
child). Positive controls run the escape programs with the protection removed (no namespaces, a
wider allow-list, bubblewrap's options on its command line, no seccomp filter, no memory cgroup,
no geex-exec), to show that they do escape when they can, so the assertions here can fail.

Needs root and bubblewrap (``bubblewrap+uid``): a fork bomb must never run without the uid drop.
"""

from __future__ import annotations

import fcntl
import glob
import io
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import warnings
from collections import Counter
from pathlib import Path

import pytest
from rich.console import Console

from geex.humanevalx.assembly import assemble
from geex.humanevalx.dataset import load_problems
from geex.humanevalx.evaluate import EvalConfig, evaluate
from geex.humanevalx.execution import uids
from geex.humanevalx.execution.cgroups import MemoryControl
from geex.humanevalx.execution.runners import Outcome, RunContext, cache_root, get_runner
from geex.humanevalx.execution.sandbox import SAFE_PATH, Isolation, Sandbox, detect_isolation
from geex.humanevalx.execution.uids import UID_BASE, UID_SPAN, lease_dir_fd
from geex.languages import get_language
from tests.humanevalx.execution.hostile_programs import CONTAINED, ENV_SECRET, EXIT_STATUSES, KINDS, TASK, hostile

ROOT = Path(__file__).resolve().parents[3]
LANGUAGES = ("python", "cpp", "java", "js", "go", "rust")
TIMEOUT_S = 4.0  # enough for a JVM to start and flood 64 MB on a busy 2-core machine
OUTLIVE_SLEEP_S = 1  # the detached child sleeps 1.xxxxxx s before its late write
# memory_beyond_rlimit: 1.5 GB (above the run's 1 GB memory cgroup, below the machine's free memory)
# as 32 memfd files / native blocks of 48 MB (each below RLIMIT_FSIZE), or 4 processes of 400 MB
# (each far below its own RLIMIT_AS)
MEMORY = {"mem_files": 32, "mem_file_mb": 48, "mem_children": 4, "mem_child_mb": 400}

pytestmark = [pytest.mark.toolchains, pytest.mark.serial]  # programs at their limits: alone

# A program that only spins or only sleeps meets the sandbox's CPU and wall clocks, which do not depend
# on the language: those two run in Python here (each waits the full timeout); every language's
# spinning program is also timed out in test_verdicts.py.
CLOCK_ONLY = ("infinite_loop", "sleep_forever")
# Verdicts. Escape attempts fail with runtime_error (status 3) and the CONTAINED marker.
ESCAPES = ("read_secrets", "write_outside", "network", "setuid", "proc_cmdline", "nested_userns")
EXPECTED = {
    "infinite_loop": {"timeout"},
    "sleep_forever": {"timeout"},
    "memory_bomb": {"resource_limit"},
    "memory_beyond_rlimit": {"resource_limit"},  # the run's memory cgroup: an OOM kill
    "huge_output": {"resource_limit"},
    "huge_stderr": {"resource_limit"},
    "outlive": {"passed"},  # the program itself is correct; its child must not survive
    **{kind: {"runtime_error"} for kind in ESCAPES},
    # correct, but ends with 137 / 152: an exit status (not SIGKILL, not a SIGXCPU time limit)
    **{f"exit_{status}": {"runtime_error"} for status in EXIT_STATUSES},
}
# A fork bomb that retries forever never ends on its own: timeout. Where the language runtime
# needs threads of its own (JVM, Go, V8, Rust's test harness) it may instead die of EAGAIN.
FORK_BOMB = {"python": {"timeout"}, "cpp": {"timeout"}}
FORK_BOMB_THREADED = {"timeout", "resource_limit"}
# Killing the parent, every pid, pid 1 and kill(-1): only kill(-1) can hit anything (the caller's
# own processes), and it does not signal the caller itself, except where it has to go through
# /bin/kill (Rust's std has no kill): that kills the test binary, its parent.
KILL_PARENT = {lang: {"passed"} for lang in LANGUAGES} | {"rust": {"runtime_error"}}
# Rust's test harness captures a test's stdout in memory: its flood ends at the memory limit or, on a
# busy machine, at the timeout first (both contained; seen in CI while other work ran)
HUGE_OUTPUT = {"rust": {"resource_limit", "timeout"}}


def _strong() -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return detect_isolation() is Isolation.BUBBLEWRAP_UID


needs_strong_sandbox = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("bwrap") or not _strong(),
    reason="hostile programs only run under bubblewrap+uid (root, bubblewrap, setpriv)",
)


# -- what is on the machine ------------------------------------------------------------------------
def _processes() -> list[tuple[int, int, str]]:
    """(pid, real uid, command line) of every process."""
    out = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", "rb") as f:
                uid = next(int(line.split()[1]) for line in f if line.startswith(b"Uid:"))
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, StopIteration, ValueError):
            continue
        out.append((int(entry.name), uid, cmd))
    return out


def _lease_held(uid: int) -> bool:
    """Whether some geex process (this one included) holds the lease of ``uid`` right now."""
    dir_fd, _ = lease_dir_fd()
    try:
        fd = os.open(f"{uid}.lock", os.O_RDONLY, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    finally:
        os.close(dir_fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the lock if we got it
    return False


def leftovers(token: str) -> list[tuple[int, int, str]]:
    """Processes left behind: a sandbox uid whose lease nobody holds (other evaluations on the
    machine hold theirs), or any process mentioning ``token``. Only what persists for 0.5 s."""

    def scan() -> set[tuple[int, int, str]]:
        return {
            (pid, uid, cmd) for pid, uid, cmd in _processes()
            if (UID_BASE <= uid < UID_BASE + UID_SPAN and not _lease_held(uid))
            or (token in cmd and pid != os.getpid())
        }

    first = scan()
    if not first:
        return []
    time.sleep(0.5)
    return sorted(first & scan())


class Listener:
    """A TCP listener on 127.0.0.1 and a world-connectable unix socket; records every connection."""

    def __init__(self, unix_path: Path) -> None:
        self.tcp = socket.create_server(("127.0.0.1", 0))
        self.port = self.tcp.getsockname()[1]
        self.unix = socket.socket(socket.AF_UNIX)
        self.unix.bind(str(unix_path))
        os.chmod(unix_path, 0o777)
        self.unix.listen()
        self.accepted: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._serve, args=(s,), daemon=True) for s in (self.tcp, self.unix)]
        for t in self._threads:
            t.start()

    def _serve(self, sock: socket.socket) -> None:
        sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, addr = sock.accept()
            except (TimeoutError, OSError):
                continue
            self.accepted.append(f"{sock.family.name} {addr!r}")
            conn.close()

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join()
        self.tcp.close()
        self.unix.close()


class Scene:
    """Everything one hostile run needs and leaves: secrets, targets, listeners, private temp."""

    def __init__(self, language: str, dataset_dir: Path) -> None:
        self.language = language
        self.token = secrets.token_hex(6)
        self.digits = str(int(self.token, 16))[-6:]
        tag = f"geex-hostile-{self.token}"
        self.out = Path(tempfile.mkdtemp(prefix=f"{tag}-out-", dir="/var/tmp"))  # not under /tmp: not hidden by the private /tmp
        self.visible = Path(tempfile.mkdtemp(prefix=f"{tag}-vis-", dir="/var/tmp"))
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{tag}-tmp-", dir="/tmp"))  # tempfile.tempdir of the harness
        for d in (self.out, self.visible, self.tmp):
            d.chmod(0o755)
        self.home_secret = Path.home() / f".{tag}-secret"
        self.cache_secret = cache_root() / f"{tag}-secret"
        self.out_secret = self.out / "secret.txt"
        for f in (self.home_secret, self.cache_secret, self.out_secret):
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(self.token)
            f.chmod(0o644)
        self.secrets = [
            str(dataset_dir / f"humaneval_{language}.jsonl.gz"), str(self.out / "results.jsonl"),
            str(self.out_secret), str(self.home_secret), str(self.cache_secret),
        ]
        # World-readable files that the old sandbox (``/`` read-only minus a few hidden directories)
        # showed to every program; only the allow-list keeps them out now.
        self.elsewhere = self._world_readable_elsewhere(tag, dataset_dir)
        self.secrets += [str(f) for f in self.elsewhere.values()]
        self.targets = [
            f"/etc/{tag}", str(ROOT / tag), str(Path.home() / tag), f"/tmp/{tag}", f"/var/tmp/{tag}",
            f"/dev/shm/{tag}", str(self.out / tag), str(self.visible / tag),
        ]
        self.mark = f"/var/tmp/{tag}-late"
        # a set-uid root copy of id where the sandbox sees it (the system directories are bound in)
        self.suid_dir = Path("/usr/local/lib") / tag
        self.suid_dir.mkdir(parents=True)
        self.suid = self.suid_dir / "id"
        shutil.copy("/usr/bin/id", self.suid)
        self.suid.chmod(0o4755)
        self.listener = Listener(self.visible / "sock")

    def _world_readable_elsewhere(self, tag: str, dataset_dir: Path) -> dict[str, Path]:
        """A copy of the dataset in another directory, a source file of another checkout (next to
        this one), a file in another local user's home and another model's samples file: each
        0644 in 0755 directories (``self.roots`` lists what ``close`` removes)."""
        self.made_home = not Path("/home").exists()
        try:
            checkout = Path(tempfile.mkdtemp(prefix=f"{tag}-checkout-", dir=ROOT.parent))
        except OSError:  # the checkout's parent is not ours to write: elsewhere then
            checkout = Path(tempfile.mkdtemp(prefix=f"{tag}-checkout-", dir="/var/tmp"))
        self.roots = [
            Path(tempfile.mkdtemp(prefix=f"{tag}-data-", dir="/var/tmp")), checkout,
            Path("/home") / tag, Path(tempfile.mkdtemp(prefix=f"{tag}-runs-", dir="/var/tmp")),
        ]
        files = {
            "dataset copy": self.roots[0] / "humaneval-x" / f"humaneval_{self.language}.jsonl.gz",
            "other checkout": checkout / "src" / "geex" / "cli" / "__init__.py",
            "other user's home": self.roots[2] / "secret",
            "other model's samples": self.roots[3] / "other-model" / "samples.jsonl",
        }
        for f in files.values():
            f.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(dataset_dir / f"humaneval_{self.language}.jsonl.gz", files["dataset copy"])
        shutil.copyfile(ROOT / "src" / "geex" / "cli" / "__init__.py", files["other checkout"])
        files["other user's home"].write_text(self.token)
        files["other model's samples"].write_text(json.dumps({"task_id": TASK[self.language], "completion": self.token}) + "\n")
        for root in self.roots:
            for d in [root, *(p for p in root.rglob("*") if p.is_dir())]:
                d.chmod(0o755)
        for f in files.values():
            f.chmod(0o644)
        return files

    def params(self, **override) -> dict:
        return {
            "secrets": self.secrets, "need": 1, "targets": self.targets, "port": self.listener.port,
            "outside_host": "1.1.1.1", "outside_port": 53, "unix": str(self.visible / "sock"),
            "sleep": f"{OUTLIVE_SLEEP_S}.{self.digits}", "mark": self.mark, "suid": str(self.suid),
            "token": self.token, **MEMORY, "mem_mark": self.mem_mark,
            **override,
        }

    @property
    def mem_mark(self) -> str:
        """Prefix of the JavaScript memory holders' marker files (in the sandbox's private /tmp)."""
        return f"/tmp/geex-hostile-{self.token}-mem"

    def written(self) -> list[str]:
        """Host files the programs created (the host's /tmp included: the sandbox's is private)."""
        return [p for p in [*self.targets, self.mark, *glob.glob(self.mem_mark + "*")] if os.path.lexists(p)]

    def close(self) -> None:
        self.listener.close()
        for p in [*self.targets, self.mark, self.home_secret, self.cache_secret, *glob.glob(self.mem_mark + "*")]:
            if os.path.lexists(p):
                os.unlink(p)
        for d in (self.out, self.visible, self.tmp, self.suid_dir, *self.roots):
            shutil.rmtree(d, ignore_errors=True)
        if self.made_home:
            try:
                os.rmdir("/home")
            except OSError:
                pass


@pytest.fixture
def scene(request, dataset_dir, monkeypatch):
    s = Scene(request.param, dataset_dir)
    monkeypatch.setattr(tempfile, "tempdir", str(s.tmp))  # the harness's jobs root and I/O files
    monkeypatch.setenv(ENV_SECRET, s.token)  # e.g. an API token in the harness's environment
    yield s
    s.close()


def _write_samples(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _canonical(problems: dict, language: str, numbers: list[int]) -> list[dict]:
    prefix = TASK[language].split("/")[0]
    return [{"task_id": f"{prefix}/{n}", "completion": problems[f"{prefix}/{n}"].canonical_solution,
             "completion_id": 0} for n in numbers]


def _evaluate(samples: Path, out: Path, *languages: str) -> dict:
    cfg = EvalConfig(
        samples=str(samples), out_dir=out, languages=[get_language(lang) for lang in languages], workers=2,
        timeout_s=TIMEOUT_S, use_cache=False, clean=False, progress=False,
        console=Console(file=io.StringIO()),
    )
    return evaluate(cfg)


# -- the suite -------------------------------------------------------------------------------------
@needs_strong_sandbox
@pytest.mark.parametrize("scene", LANGUAGES, indirect=True)
def test_hostile_programs_are_contained(scene: Scene):
    lang = scene.language
    problems = load_problems([get_language(lang)], None, False)
    task = TASK[lang]
    # correct samples before (other tasks) and after the hostile ones: the harness must go on
    rows = _canonical(problems, lang, [0, 1])
    kinds = [kind for kind in KINDS if lang == "python" or kind not in CLOCK_ONLY]
    rows += [{"task_id": task, "completion": hostile(lang, kind, **scene.params()), "completion_id": i}
             for i, kind in enumerate(kinds)]
    rows += _canonical(problems, lang, [2, 3, 4])
    samples = scene.visible / "samples.jsonl"
    _write_samples(samples, rows)

    report = _evaluate(samples, scene.out, lang)

    assert report["isolation"] == "bubblewrap+uid"
    # the memory limit in force (what stops memory_beyond_rlimit) is a cgroup, and recorded as such
    assert report["memory_limit"] in ("cgroup1", "cgroup2")
    assert report["memory_limit"] == Sandbox().memory_mechanism
    records = {}
    for line in (scene.out / "results.jsonl").read_text().splitlines():
        rec = json.loads(line)
        records[(rec["task_id"], rec["completion_id"])] = rec
    assert len(records) == len(rows)
    verdicts = {kind: records[(task, i)]["verdict"] for i, kind in enumerate(kinds)}
    details = {kind: records[(task, i)]["detail"] for i, kind in enumerate(kinds)}

    problems_ = []
    for kind in kinds:
        expected = (FORK_BOMB.get(lang, FORK_BOMB_THREADED) if kind == "fork_bomb"
                    else KILL_PARENT[lang] if kind == "kill_parent"
                    else HUGE_OUTPUT.get(lang, EXPECTED[kind]) if kind == "huge_output" else EXPECTED[kind])
        if verdicts[kind] not in expected:
            problems_.append(f"{kind}: {verdicts[kind]} (expected {sorted(expected)}): {details[kind][-400:]}")
        if kind in ESCAPES and CONTAINED not in details[kind]:
            problems_.append(f"{kind}: no {CONTAINED} marker, so not blocked as designed: {details[kind][-400:]}")
    assert not problems_, "\n".join(problems_)
    # the status the program chose, recorded as such
    for status in EXIT_STATUSES:
        rec = records[(task, kinds.index(f"exit_{status}"))]
        assert (rec["exit_code"], rec["signal"]) == (status, None), rec

    # the correct samples, before and after, all passed
    for r in rows:
        if r["task_id"] != task:
            assert records[(r["task_id"], 0)]["verdict"] == "passed", records[(r["task_id"], 0)]
    # nothing reached the listeners (TCP on the host's loopback, the unix socket)
    assert scene.listener.accepted == []
    # wait for the detached children's late write, then: no process left, no file left
    time.sleep(OUTLIVE_SLEEP_S + 1.2)
    assert leftovers(scene.digits) == []
    assert scene.written() == []
    assert list(scene.tmp.iterdir()) == [], "jobs root or I/O files left in the harness's temp dir"
    assert sorted(p.name for p in scene.out.iterdir()) == sorted(
        ["results.jsonl", "report.json", "report.md", "run.json", "secret.txt"]), list(scene.out.iterdir())


# -- positive controls: the same programs escape where nothing stops them ---------------------------
def _binding(*paths: Path) -> Sandbox:
    """The strong sandbox with ``paths`` added to its allow-list (read-only), for the controls."""

    class Binding(Sandbox):
        def command(self, argv, **kw):
            kw["ro_binds"] = (*kw.get("ro_binds", ()), *paths)
            return super().command(argv, **kw)

    return Binding()


class _ArgsOnCommandLine(Sandbox):
    """The strong sandbox as before ``--args``: bubblewrap's options (binds of host paths, the work
    directory) on its own command line, which every process inside reads as /proc/1/cmdline.
    (``popen`` moves the options of a command that starts with the bare name ``bwrap`` only.)"""

    def command(self, argv, **kw):
        full = super().command(argv, **kw)
        if full[0] == "bwrap":
            full[0] = shutil.which("bwrap")
        return full


class _NoSeccomp(Sandbox):
    """The strong sandbox without its seccomp filter."""

    def command(self, argv, **kw):
        kw["seccomp_fd"] = None
        return super().command(argv, **kw)


class _NoCgroup(Sandbox):
    """The strong sandbox without a memory cgroup (as with ``GEEX_SANDBOX_CGROUP=off``, which
    ``memory_control`` reads once per process): only the per-process rlimits bound memory."""

    memory = MemoryControl(None, 0)


class _NoHelper(Sandbox):
    """The strong sandbox without geex-exec: the exit status is bubblewrap's (128 + N for signal N)."""

    helper = None


def _outcome(lang: str, kind: str, sandbox: Sandbox, jobs: Path, **params) -> Outcome:
    problems = load_problems([get_language(lang)], None, False)
    ctx = RunContext(sandbox, jobs, slot=0, timeout_s=10)
    try:
        program = assemble(problems[TASK[lang]], hostile(lang, kind, **params), clean=False)
        return get_runner(lang).execute(program, ctx)
    finally:
        ctx.close()


def _run_unprotected(lang: str, kind: str, sandbox: Sandbox, jobs: Path, **params) -> str:
    outcome = _outcome(lang, kind, sandbox, jobs, **params)
    return outcome.verdict.value + " " + outcome.detail[-300:]


@needs_strong_sandbox
@pytest.mark.parametrize("scene", LANGUAGES, indirect=True)
def test_escape_programs_pass_without_protection(scene: Scene, monkeypatch):
    """Without namespaces (``rlimits``: the harness's own rights) the escape programs pass: every
    secret is read, the connections made, the file written; with the strong sandbox but a wider
    allow-list, the dataset, the output directory and the world-readable files elsewhere (another
    checkout, another user's home, ...) are all readable by the sandbox uid; with bubblewrap's
    options on its command line the work directory's path (the token) is in /proc/1/cmdline;
    without the seccomp filter a nested user namespace is created; without the memory cgroup 1.5 GB
    of memfd files, native memory or processes fit. So their failing above is the sandbox's doing,
    not a bug in the programs."""
    lang = scene.language
    jobs = scene.tmp
    open_sandbox = Sandbox(isolation=Isolation.RLIMITS)
    target = str(scene.visible / "written")
    (scene.out / "results.jsonl").write_text("{}\n")  # what an evaluation writes there
    shown = [scene.secrets[0], str(scene.out_secret), *map(str, scene.elsewhere.values())]
    got = {
        "read_secrets (every one)": _run_unprotected(
            lang, "read_secrets", open_sandbox, jobs, **scene.params(need=len(scene.secrets))),
        "write_outside": _run_unprotected(lang, "write_outside", open_sandbox, jobs, **scene.params(targets=[target])),
        "network (tcp)": _run_unprotected(lang, "network", open_sandbox, jobs, **scene.params()),
        # a closed TCP port and no outside network: only the unix socket can connect
        "network (unix)": _run_unprotected(lang, "network", open_sandbox, jobs, **scene.params(port=1, outside_host="127.0.0.1", outside_port=1)),
        "setuid": _run_unprotected(lang, "setuid", open_sandbox, jobs, **scene.params()),
        # strong sandbox, the secrets' directories bound in (as an allow-list that let them in would)
        "read_secrets (not hidden, every one)": _run_unprotected(
            lang, "read_secrets", _binding(Path(scene.secrets[0]).parent, scene.out, *scene.roots), jobs,
            **scene.params(secrets=shown, need=len(shown))),
        "proc_cmdline (bubblewrap options on its command line)": _run_unprotected(
            lang, "proc_cmdline", _ArgsOnCommandLine(), jobs, **scene.params()),
        "nested_userns (no seccomp filter)": _run_unprotected(
            lang, "nested_userns", _NoSeccomp(), jobs, **scene.params()),
        "memory_beyond_rlimit (no memory cgroup)": _run_unprotected(
            lang, "memory_beyond_rlimit", _NoCgroup(), jobs, **scene.params()),
    }
    # without geex-exec, a chosen exit status of 128 + N reads as signal N: 137 as SIGKILL, 152 as
    # SIGXCPU (a timeout verdict)
    misread = {status: _outcome(lang, f"exit_{status}", _NoHelper(), jobs, **scene.params())
               for status in EXIT_STATUSES}
    # the environment: given to the program (as a runner's own variables are), it is seen
    runner = get_runner(lang)
    monkeypatch.setattr(runner, "run_env", lambda env=runner.run_env(): {**env, ENV_SECRET: "1"})
    got["read_secrets (environment)"] = _run_unprotected(
        lang, "read_secrets", Sandbox(), jobs, **scene.params(secrets=["/nonexistent"]))
    failed = {k: v for k, v in got.items() if not v.startswith("passed")}
    assert not failed, failed
    assert os.path.exists(target)
    assert any(a.startswith("AF_INET ") for a in scene.listener.accepted), scene.listener.accepted
    assert any(a.startswith("AF_UNIX ") for a in scene.listener.accepted), scene.listener.accepted
    assert {s: (o.exit_code, o.signal) for s, o in misread.items()} == {s: (None, s - 128) for s in EXIT_STATUSES}
    assert misread[152].verdict.value == "timeout", misread[152]


@needs_strong_sandbox
@pytest.mark.parametrize("scene", ["python", "java"], indirect=True)
def test_worker_recovers_right_after_a_fork_bomb(scene: Scene):
    """The same worker (same uid) runs a correct program that needs processes/threads right after
    a fork bomb: the bomb's processes must be gone, not just signalled (a dying process still
    counts against RLIMIT_NPROC of the uid)."""
    lang = scene.language
    problems = load_problems([get_language(lang)], None, False)
    runner = get_runner(lang)
    ctx = RunContext(Sandbox(), scene.tmp, slot=0, timeout_s=TIMEOUT_S)
    try:
        uid = ctx.uid
        bomb = runner.execute(assemble(problems[TASK[lang]], hostile(lang, "fork_bomb"), clean=False), ctx)
        assert [p for p in _processes() if p[1] == uid] == []
        after = runner.execute(assemble(problems[TASK[lang]], hostile(lang, "outlive", **scene.params()), clean=False), ctx)
    finally:
        ctx.close()
    assert bomb.verdict.value in FORK_BOMB.get(lang, FORK_BOMB_THREADED)
    assert after.verdict.value == "passed", after


# -- the fallback modes ----------------------------------------------------------------------------
@pytest.fixture
def fresh_isolation():
    detect_isolation.cache_clear()
    yield
    detect_isolation.cache_clear()


@pytest.fixture
def reachable_js(monkeypatch):
    """A JS runner whose caches (the proof wrapper) the sandbox uid can read without namespaces: the
    uid modes bind nothing in, and root's home, where the default cache lives, is private. Built
    under a world-readable $GEEX_CACHE, and used by evaluate() too."""
    from geex.humanevalx import evaluate as evaluate_mod
    from geex.humanevalx.execution.runners.js import JsRunner

    cache = Path(tempfile.mkdtemp(prefix="geex-uid-cache-", dir="/var/tmp"))
    cache.chmod(0o755)
    monkeypatch.setenv("GEEX_CACHE", str(cache))
    runner = JsRunner()
    monkeypatch.setattr(evaluate_mod, "get_runner", lambda lang: runner if lang == "js" else get_runner(lang))
    yield runner
    shutil.rmtree(cache, ignore_errors=True)


@pytest.mark.parametrize(("forced", "recorded"), [("uid", "uid+rlimits"), ("rlimits", "rlimits")])
def test_degraded_mode_warns_and_is_recorded(forced, recorded, problems_js, tmp_path, monkeypatch, fresh_isolation,
                                             reachable_js):
    """Forcing a weaker sandbox still evaluates, but warns loudly and says so in the report."""
    if forced == "uid" and (os.geteuid() != 0 or not shutil.which("setpriv")):
        pytest.skip("the uid mode needs root and setpriv")
    monkeypatch.setenv("GEEX_SANDBOX", forced)
    samples = tmp_path / "samples.jsonl"
    _write_samples(samples, _canonical(problems_js, "js", [53]))
    with pytest.warns(RuntimeWarning, match=rf"SANDBOX DEGRADED.*'{re.escape(recorded)}'"):
        report = _evaluate(samples, tmp_path / "out", "js")
    assert report["isolation"] == recorded
    assert json.loads((tmp_path / "out" / "report.json").read_text())["isolation"] == recorded
    assert f"isolation: **{recorded}**" in (tmp_path / "out" / "report.md").read_text()
    assert report["overall"]["verdicts"]["passed"] == 1


@pytest.fixture(scope="module")
def problems_js(dataset_dir):
    return load_problems([get_language("js")], str(dataset_dir), False)


_JS_SLEEPERS = """\
  const cp = require("child_process");
  while (true) {
    try { cp.spawn("sleep", ["@SLEEP@"], {detached: true, stdio: "ignore"}); } catch (e) {}
  }
}
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="the uid mode needs root and setpriv")
@pytest.mark.parametrize("scene", ["js"], indirect=True)
def test_uid_mode_kills_what_leaves_the_process_group(scene: Scene, problems_js, reachable_js):
    """Without namespaces only the uid drop finds children that ``setsid``: a detached child's late
    write and a swarm of detached sleepers (up to RLIMIT_NPROC) must both be gone after the run.
    Control: under ``rlimits`` (no uid to sweep) the detached child survives and writes."""
    task = problems_js["JavaScript/53"]
    late = assemble(task, hostile("js", "outlive", **scene.params()), clean=False)
    swarm = assemble(task, _JS_SLEEPERS.replace("@SLEEP@", f"60.{scene.digits}"), clean=False)
    uid_ctx = RunContext(Sandbox(isolation=Isolation.UID), scene.tmp, slot=0, timeout_s=2)
    try:
        outcomes = [reachable_js.execute(p, uid_ctx) for p in (late, swarm)]
        uid = uid_ctx.uid
        assert [p for p in _processes() if p[1] == uid] == []
    finally:
        uid_ctx.close()
    assert [o.verdict.value for o in outcomes[:1]] == ["passed"]
    assert outcomes[1].verdict.value in {"timeout", "resource_limit"}, outcomes[1]
    time.sleep(OUTLIVE_SLEEP_S + 1.2)
    assert leftovers(scene.digits) == []
    assert not os.path.exists(scene.mark)

    open_ctx = RunContext(Sandbox(isolation=Isolation.RLIMITS), scene.tmp, slot=0, timeout_s=2)
    try:
        assert reachable_js.execute(late, open_ctx).verdict.value == "passed"
    finally:
        open_ctx.close()
    deadline = time.monotonic() + OUTLIVE_SLEEP_S + 3
    while not os.path.exists(scene.mark) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert os.path.exists(scene.mark), "control: a detached child outlives its run when no uid is swept"


# -- the seccomp filter, call by call ----------------------------------------------------------------
_SYSCALLS = r"""
import ctypes, errno, json, os, platform, socket
libc = ctypes.CDLL(None, use_errno=True)
NR = {"x86_64": {"io_uring_setup": 425, "keyctl": 250}, "aarch64": {"io_uring_setup": 425, "keyctl": 219}}[platform.machine()]
out = {}
def attempt(name, make):
    try:
        make().close()
        out[name] = "ok"
    except OSError as e:
        out[name] = errno.errorcode[e.errno]
attempt("inet", lambda: socket.socket(socket.AF_INET))
attempt("inet6", lambda: socket.socket(socket.AF_INET6))
attempt("netlink", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0))
attempt("unix", lambda: socket.socket(socket.AF_UNIX))
attempt("vsock", lambda: socket.socket(40, socket.SOCK_STREAM))
attempt("packet", lambda: socket.socket(17, socket.SOCK_RAW))
for kind in ("SOCK_STREAM", "SOCK_SEQPACKET", "SOCK_DGRAM"):
    try:
        for s in socket.socketpair(socket.AF_UNIX, getattr(socket, kind)):
            s.close()
        out["pair " + kind] = "ok"
    except OSError as e:
        out["pair " + kind] = errno.errorcode[e.errno]
for name, nr in NR.items():
    r = libc.syscall(nr, 0, 0, 0, 0, 0)
    out[name] = "ok" if r >= 0 else errno.errorcode[ctypes.get_errno()]
print(json.dumps(out))
"""


@needs_strong_sandbox
def test_seccomp_filter():
    """What the filter refuses, what it lets through; and (control) the same calls without it."""
    from geex.humanevalx.execution.sandbox import Limits
    from geex.humanevalx.execution.uids import UidLease

    work = Path(tempfile.mkdtemp(prefix="geex-seccomp-"))
    work.chmod(0o755)
    (work / "calls.py").write_text(_SYSCALLS)
    (work / "calls.py").chmod(0o644)
    lease = UidLease()

    def calls(sandbox: Sandbox) -> dict:
        r = sandbox.run(["/usr/bin/python3", "calls.py"], cwd=work, limits=Limits(wall_s=20, cpu_s=20),
                        uid=lease.uid, cwd_writable=False)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    try:
        got = calls(Sandbox())
        unfiltered = calls(Sandbox(isolation=Isolation.UID))
    finally:
        lease.release()
        shutil.rmtree(work)
    assert got == {
        "inet": "ok", "inet6": "ok", "netlink": "ok",  # confined by the network namespace
        "unix": "EACCES", "vsock": "EACCES", "packet": "EACCES",
        "pair SOCK_STREAM": "ok", "pair SOCK_SEQPACKET": "ok", "pair SOCK_DGRAM": "EACCES",
        "io_uring_setup": "ENOSYS", "keyctl": "ENOSYS",
    }
    assert unfiltered["unix"] == unfiltered["pair SOCK_DGRAM"] == "ok"
    assert unfiltered["io_uring_setup"] != "ENOSYS" and unfiltered["keyctl"] != "ENOSYS"


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="the uid mode needs root and setpriv")
def test_uid_mode_unreachable_toolchain_is_a_harness_error(tmp_path):
    """Without bubblewrap nothing binds the toolchain in: if the dropped uid cannot read it (a cache
    under root's private home), every sample would fail to compile; that is the harness's fault."""
    from geex.humanevalx.execution.runners.base import _world_readable

    runner = get_runner("cpp")
    sandbox = Sandbox(isolation=Isolation.UID)
    runner.prepare(sandbox)
    if _world_readable(runner.pch_header.parent):
        pytest.skip(f"{runner.pch_header.parent} is world-readable here")
    jobs = Path(tempfile.mkdtemp(prefix="geex-unreachable-"))
    ctx = RunContext(sandbox, jobs, slot=0, timeout_s=5)
    try:
        program = assemble(load_problems([get_language("cpp")], None, False)["CPP/53"], "    return x + y;\n}\n", clean=False)
        outcome = runner.execute(program, ctx)
    finally:
        ctx.close()
        shutil.rmtree(jobs)
    assert (outcome.verdict.value, outcome.phase) == ("harness_error", "harness"), outcome
    assert str(runner.pch_header.parent) in outcome.detail and "bubblewrap" in outcome.detail
    # with bubblewrap the same cache is bound in with traversable parents
    assert runner.unreachable_paths(Sandbox(isolation=Isolation.BUBBLEWRAP_UID)) == []


# -- a hostile local user ----------------------------------------------------------------------------
ATTACKER_UID = 4242  # another local user: unprivileged, neither root nor a sandbox uid
CANARY = "the victim's file\n"


class UserScene:
    """A harness temp directory as open as /tmp (1777), a victim's file and directory (root's, the
    targets of the attacker's links), an output directory; all removed by ``close``."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(6)
        tag = f"geex-hostile-user-{self.token}"
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{tag}-tmp-", dir="/tmp"))
        self.tmp.chmod(0o1777)
        self.dir = Path(tempfile.mkdtemp(prefix=f"{tag}-", dir="/var/tmp"))
        self.dir.chmod(0o755)
        self.canary = self.dir / "canary.txt"
        self.victim_dir = self.dir / "victim"
        self.victim_dir.mkdir(mode=0o755)
        for f in (self.canary, self.victim_dir / "keep.txt"):
            f.write_text(CANARY)
            f.chmod(0o644)
        self.out = self.dir / "out"
        self.dead_pid = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1  # no process has it

    def intact(self) -> bool:
        """Whether nothing of the victim's was written, removed or replaced through a link."""
        return (self.canary.read_text() == CANARY and not self.canary.is_symlink()
                and [p.name for p in self.victim_dir.iterdir()] == ["keep.txt"]
                and (self.victim_dir / "keep.txt").read_text() == CANARY)

    def close(self) -> None:
        for d in (self.tmp, self.dir):
            shutil.rmtree(d, ignore_errors=True)


class HostileUser:
    """``hostile_user.py`` running as ``ATTACKER_UID``; ``ask`` sends it a request and waits for its
    attempts (one at a time: the harness's two workers may both call in), ``log`` keeps them all."""

    def __init__(self, scene: UserScene) -> None:
        script = scene.dir / "hostile_user.py"  # readable by the attacker (the tests may live under /root)
        shutil.copyfile(Path(__file__).with_name("hostile_user.py"), script)
        script.chmod(0o644)
        self.proc = subprocess.Popen(
            ["setpriv", f"--reuid={ATTACKER_UID}", f"--regid={ATTACKER_UID}", "--clear-groups", "--",
             "/usr/bin/python3", "-I", str(script)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=scene.dir, env={"PATH": SAFE_PATH}, text=True,
        )
        self.log: list[dict] = []
        self._lock = threading.Lock()

    def ask(self, **request) -> list[dict]:
        with self._lock:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"the attacker died (exit status {self.proc.wait()})")
            attempts = [{"phase": request["phase"], **a} for a in json.loads(line)]
            self.log += attempts
        return attempts

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()


@pytest.fixture
def user_scene(monkeypatch):
    if not Path("/usr/bin/python3").exists():
        pytest.skip("the attacker runs under /usr/bin/python3")
    s = UserScene()
    monkeypatch.setattr(tempfile, "tempdir", str(s.tmp))  # the harness's jobs root and I/O files
    yield s
    s.close()


def _tell_attacker(monkeypatch, attacker: HostileUser, scene: UserScene) -> set[Path]:
    """Show the attacker every work directory as it is made (empty), and again before every command
    that runs in it (files written, then compiled): what a real attacker could guess or watch."""
    workdirs: set[Path] = set()
    new_workdir, run = RunContext.new_workdir, Sandbox.run

    def watched_new_workdir(self) -> Path:
        workdir = new_workdir(self)
        workdirs.add(workdir)
        fd, lease_dir = uids.lease_dir_fd()
        os.close(fd)
        attacker.ask(phase="workdir", path=str(workdir), canary=str(scene.canary), lease_dir=str(lease_dir),
                     uid_base=uids.UID_BASE)
        return workdir

    def watched_run(self, argv, **kw):
        if kw.get("cwd") in workdirs:
            attacker.ask(phase="run", path=str(kw["cwd"]))
        return run(self, argv, **kw)

    monkeypatch.setattr(RunContext, "new_workdir", watched_new_workdir)
    monkeypatch.setattr(Sandbox, "run", watched_run)
    return workdirs


def _attacked_evaluation(scene: UserScene, monkeypatch, languages: tuple[str, ...], numbers: list[int]):
    """Canonical samples of ``languages`` evaluated while the attacker strikes: (records by
    task id, the attacker's attempts, the work directories, the bait it laid)."""
    problems = load_problems([get_language(lang) for lang in languages], None, False)
    rows = [row for lang in languages for row in _canonical(problems, lang, numbers)]
    samples = scene.dir / "samples.jsonl"
    _write_samples(samples, rows)
    attacker = HostileUser(scene)
    try:
        bait = attacker.ask(phase="bait", tempdir=str(scene.tmp), victim_dir=str(scene.victim_dir),
                            victim_file=str(scene.canary), dead_pid=scene.dead_pid)
        workdirs = _tell_attacker(monkeypatch, attacker, scene)
        _evaluate(samples, scene.out, *languages)
    finally:
        attacker.close()
    records = {json.loads(line)["task_id"]: json.loads(line)
               for line in (scene.out / "results.jsonl").read_text().splitlines()}
    assert len(records) == len(rows)
    assert [p for p in _processes() if p[1] == ATTACKER_UID] == []
    return records, [a for a in attacker.log if a["phase"] != "bait"], workdirs, bait


@needs_strong_sandbox
def test_hostile_local_user_gets_nowhere(user_scene: UserScene, monkeypatch):
    """Another local user, while canonical samples of all six languages are evaluated, tries to list
    the jobs root, to create and link entries in it, to list, read, write, replace and plant links in
    every work directory (told each one as it is made and before each command runs in it), to list,
    create, hold and link uid lease files, and lays stale-looking jobs roots linking to a victim's
    files. Every attempt fails for lack of permission, every sample keeps its verdict, and the bait
    is removed without the victim's files being touched."""
    from tests.humanevalx.execution.hostile_user import HARNESS_FILES, LEASES_TRIED

    records, attempts, workdirs, bait = _attacked_evaluation(user_scene, monkeypatch, LANGUAGES, [0, 1])

    assert all(a["ok"] for a in bait), bait  # the temp dir is world-writable, like /tmp
    n = len(records)
    ops = Counter(a["op"] for a in attempts)
    assert len(workdirs) == n
    assert ops["list jobs root"] == ops["create in jobs root"] == ops["link in jobs root"] == n
    assert ops["plant link"] == n * len(HARNESS_FILES)
    assert ops["list lease dir"] == ops["link lease"] == 1 and ops["hold lease"] == LEASES_TRIED
    # the run (and the compile, outside Java's javac server) of every sample was attacked
    assert ops["replace"] >= n * len(HARNESS_FILES) and ops["read"] == ops["replace"]
    denied = [a for a in attempts if a["ok"] or a["error"] != "EACCES"]
    assert denied == [], denied[:10]
    assert {tid: rec["verdict"] for tid, rec in records.items()} == {tid: "passed" for tid in records}
    # the harness leaves another user's stale-looking roots alone (never follows or removes what it
    # does not own), and the victim's files behind the links are intact
    bait = user_scene.tmp / f"geex-jobs-{user_scene.dead_pid}-dir"
    assert bait.is_dir() and bait.stat().st_uid == ATTACKER_UID
    assert user_scene.intact()


@needs_strong_sandbox
def test_hostile_local_user_wins_with_the_old_permissions(user_scene: UserScene, monkeypatch):
    """Positive control: the same attacker against work directories left open (0777, as before they
    were handed to the sample's uid as 0700), a listable jobs root and a world-writable lease
    directory (1777, as the old /tmp scheme had): it lists, reads, replaces and plants links, holds
    leases, and the samples whose programs it replaced fail. So the test above can fail."""
    from geex.humanevalx.execution.runners import base

    new_workdir, hand_over = RunContext.new_workdir, base.hand_over

    def open_workdir(self) -> Path:
        workdir = new_workdir(self)
        workdir.chmod(0o777)
        workdir.parent.chmod(0o755)
        return workdir

    def open_hand_over(workdir: Path, uid: int) -> None:
        hand_over(workdir, uid)
        workdir.chmod(0o777)

    lease_dir = user_scene.dir / "uid-leases"
    lease_dir.mkdir()
    lease_dir.chmod(0o1777)
    monkeypatch.setattr(RunContext, "new_workdir", open_workdir)
    monkeypatch.setattr(base, "hand_over", open_hand_over)
    monkeypatch.setattr(uids, "lease_dir_fd", lambda: (os.open(lease_dir, os.O_RDONLY | os.O_DIRECTORY), lease_dir))
    # uids of their own: leases from this directory must not collide with the real one's holders
    monkeypatch.setattr(uids, "UID_BASE", UID_BASE + 50 * UID_SPAN)

    records, attempts, _, _ = _attacked_evaluation(user_scene, monkeypatch, ("python",), [0, 1, 2])

    succeeded = Counter(a["op"] for a in attempts if a["ok"])
    for op in ("list jobs root", "list work dir", "plant link", "read", "replace", "create in work dir",
               "list lease dir", "hold lease", "link lease"):
        assert succeeded[op] > 0, (op, succeeded)
    assert [rec["verdict"] for rec in records.values()] == ["runtime_error"] * 3, records
