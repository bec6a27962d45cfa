"""Hostile programs against the real harness: every language, through assembly, runner and sandbox.

Each program of ``hostile_programs.py`` is a completion for task 53 (``add``) in a samples file that
``evaluate`` runs like any other (two workers, 4 s timeout, no verdict cache), next to correct
samples that must still pass. Then: the verdict of every program, that none of the escapes worked
(the program would have *passed*), that no process of a sandbox uid and no child of a program is
left, and that no file was left behind (jobs root, I/O files, the write targets, the late write of a
detached child). Positive controls run the escape programs with the protection removed, to show
that they do escape when they can, so the assertions here can fail.

Needs root and bubblewrap (``bubblewrap+uid``): a fork bomb must never run without the uid drop.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import re
import secrets
import shutil
import socket
import tempfile
import threading
import time
import warnings
from pathlib import Path

import pytest
from rich.console import Console

from geex.humanevalx.assembly import assemble
from geex.humanevalx.dataset import load_problems
from geex.humanevalx.evaluate import EvalConfig, evaluate
from geex.humanevalx.runners import RunContext, cache_root, get_runner
from geex.humanevalx.sandbox import Isolation, Sandbox, detect_isolation
from geex.humanevalx.uids import LOCK_DIR, UID_BASE, UID_SPAN
from geex.languages import get_language
from tests.humanevalx.hostile_programs import CONTAINED, ENV_SECRET, KINDS, TASK, hostile

ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = ("python", "cpp", "java", "js", "go", "rust")
TIMEOUT_S = 4.0  # enough for a JVM to start and flood 64 MB on a busy 2-core machine
OUTLIVE_SLEEP_S = 1  # the detached child sleeps 1.xxxxxx s before its late write

pytestmark = pytest.mark.toolchains

# Verdicts. Escape attempts fail with runtime_error (status 3) and the CONTAINED marker.
ESCAPES = ("read_secrets", "write_outside", "network", "setuid")
EXPECTED = {
    "infinite_loop": {"timeout"},
    "sleep_forever": {"timeout"},
    "memory_bomb": {"resource_limit"},
    "huge_output": {"resource_limit"},
    "huge_stderr": {"resource_limit"},
    "outlive": {"passed"},  # the program itself is correct; its child must not survive
    **{kind: {"runtime_error"} for kind in ESCAPES},
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
    try:
        fd = os.open(LOCK_DIR / f"{uid}.lock", os.O_RDONLY)
    except FileNotFoundError:
        return False
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
        self.targets = [
            f"/etc/{tag}", str(ROOT / tag), str(Path.home() / tag), f"/tmp/{tag}", f"/var/tmp/{tag}",
            f"/dev/shm/{tag}", str(self.out / tag), str(self.visible / tag),
        ]
        self.mark = f"/var/tmp/{tag}-late"
        self.suid = self.visible / "id"
        shutil.copy("/usr/bin/id", self.suid)
        self.suid.chmod(0o4755)
        self.listener = Listener(self.visible / "sock")

    def params(self, **override) -> dict:
        return {
            "secrets": self.secrets, "targets": self.targets, "port": self.listener.port,
            "outside_host": "1.1.1.1", "outside_port": 53, "unix": str(self.visible / "sock"),
            "sleep": f"{OUTLIVE_SLEEP_S}.{self.digits}", "mark": self.mark, "suid": str(self.suid),
            **override,
        }

    def written(self) -> list[str]:
        """Host files the programs created (the host's /tmp included: the sandbox's is private)."""
        return [p for p in [*self.targets, self.mark] if os.path.lexists(p)]

    def close(self) -> None:
        self.listener.close()
        for p in [*self.targets, self.mark, self.home_secret, self.cache_secret]:
            if os.path.lexists(p):
                os.unlink(p)
        for d in (self.out, self.visible, self.tmp):
            shutil.rmtree(d, ignore_errors=True)


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


def _evaluate(samples: Path, out: Path, language: str) -> dict:
    cfg = EvalConfig(
        samples=str(samples), out_dir=out, languages=[get_language(language)], workers=2,
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
    kinds = list(KINDS)
    rows += [{"task_id": task, "completion": hostile(lang, kind, **scene.params()), "completion_id": i}
             for i, kind in enumerate(kinds)]
    rows += _canonical(problems, lang, [2, 3, 4])
    samples = scene.visible / "samples.jsonl"
    _write_samples(samples, rows)

    report = _evaluate(samples, scene.out, lang)

    assert report["isolation"] == "bubblewrap+uid"
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
def _run_unprotected(lang: str, kind: str, sandbox: Sandbox, jobs: Path, **params) -> str:
    problems = load_problems([get_language(lang)], None, False)
    ctx = RunContext(sandbox, jobs, slot=0, timeout_s=10)
    try:
        program = assemble(problems[TASK[lang]], hostile(lang, kind, **params), clean=False)
        outcome = get_runner(lang).execute(program, ctx)
    finally:
        ctx.close()
    return outcome.verdict.value + " " + outcome.detail[-300:]


@needs_strong_sandbox
@pytest.mark.parametrize("scene", LANGUAGES, indirect=True)
def test_escape_programs_pass_without_protection(scene: Scene, monkeypatch):
    """Without namespaces (``rlimits``: the harness's own rights) the escape programs pass: the
    secret is read, the connections made, the file written; with the strong sandbox but nothing
    hidden, the dataset and the output directory are readable. So their failing above is the
    sandbox's doing, not a bug in the programs."""
    lang = scene.language
    jobs = scene.tmp
    open_sandbox = Sandbox(hide=[], isolation=Isolation.RLIMITS)
    target = str(scene.visible / "written")
    got = {
        "read_secrets": _run_unprotected(lang, "read_secrets", open_sandbox, jobs, **scene.params()),
        "write_outside": _run_unprotected(lang, "write_outside", open_sandbox, jobs, **scene.params(targets=[target])),
        "network (tcp)": _run_unprotected(lang, "network", open_sandbox, jobs, **scene.params()),
        # a closed TCP port and no outside network: only the unix socket can connect
        "network (unix)": _run_unprotected(lang, "network", open_sandbox, jobs, **scene.params(port=1, outside_host="127.0.0.1", outside_port=1)),
        "setuid": _run_unprotected(lang, "setuid", open_sandbox, jobs, **scene.params()),
        # strong sandbox, dataset and output dir not hidden (home still is: toolchains live there)
        "read_secrets (not hidden)": _run_unprotected(
            lang, "read_secrets", Sandbox(hide=[Path.home()]), jobs,
            **scene.params(secrets=[scene.secrets[0], str(scene.out_secret)])),
    }
    # the environment: given to the program (as a runner's own variables are), it is seen
    runner = get_runner(lang)
    monkeypatch.setattr(runner, "run_env", lambda env=runner.run_env(): {**env, ENV_SECRET: "1"})
    got["read_secrets (environment)"] = _run_unprotected(
        lang, "read_secrets", Sandbox(hide=[Path.home()]), jobs, **scene.params(secrets=["/nonexistent"]))
    failed = {k: v for k, v in got.items() if not v.startswith("passed")}
    assert not failed, failed
    assert os.path.exists(target)
    assert any(a.startswith("AF_INET ") for a in scene.listener.accepted), scene.listener.accepted
    assert any(a.startswith("AF_UNIX ") for a in scene.listener.accepted), scene.listener.accepted


@needs_strong_sandbox
@pytest.mark.parametrize("scene", ["python", "java"], indirect=True)
def test_worker_recovers_right_after_a_fork_bomb(scene: Scene):
    """The same worker (same uid) runs a correct program that needs processes/threads right after
    a fork bomb: the bomb's processes must be gone, not just signalled (a dying process still
    counts against RLIMIT_NPROC of the uid)."""
    lang = scene.language
    problems = load_problems([get_language(lang)], None, False)
    runner = get_runner(lang)
    ctx = RunContext(Sandbox(hide=[Path.home(), cache_root()]), scene.tmp, slot=0, timeout_s=TIMEOUT_S)
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


@pytest.mark.parametrize(("forced", "recorded"), [("uid", "uid+rlimits"), ("rlimits", "rlimits")])
def test_degraded_mode_warns_and_is_recorded(forced, recorded, problems_js, tmp_path, monkeypatch, fresh_isolation):
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
def test_uid_mode_kills_what_leaves_the_process_group(scene: Scene, problems_js):
    """Without namespaces only the uid drop finds children that ``setsid``: a detached child's late
    write and a swarm of detached sleepers (up to RLIMIT_NPROC) must both be gone after the run.
    Control: under ``rlimits`` (no uid to sweep) the detached child survives and writes."""
    task = problems_js["JavaScript/53"]
    late = assemble(task, hostile("js", "outlive", **scene.params()), clean=False)
    swarm = assemble(task, _JS_SLEEPERS.replace("@SLEEP@", f"60.{scene.digits}"), clean=False)
    uid_ctx = RunContext(Sandbox(hide=[], isolation=Isolation.UID), scene.tmp, slot=0, timeout_s=2)
    try:
        outcomes = [get_runner("js").execute(p, uid_ctx) for p in (late, swarm)]
        uid = uid_ctx.uid
        assert [p for p in _processes() if p[1] == uid] == []
    finally:
        uid_ctx.close()
    assert [o.verdict.value for o in outcomes[:1]] == ["passed"]
    assert outcomes[1].verdict.value in {"timeout", "resource_limit"}, outcomes[1]
    time.sleep(OUTLIVE_SLEEP_S + 1.2)
    assert leftovers(scene.digits) == []
    assert not os.path.exists(scene.mark)

    open_ctx = RunContext(Sandbox(hide=[], isolation=Isolation.RLIMITS), scene.tmp, slot=0, timeout_s=2)
    try:
        assert get_runner("js").execute(late, open_ctx).verdict.value == "passed"
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
    from geex.humanevalx.sandbox import Limits
    from geex.humanevalx.uids import UidLease

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
        got = calls(Sandbox(hide=[Path.home()]))
        unfiltered = calls(Sandbox(hide=[Path.home()], isolation=Isolation.UID))
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
    from geex.humanevalx.runners import _world_readable

    runner = get_runner("cpp")
    sandbox = Sandbox(hide=[], isolation=Isolation.UID)
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
    assert runner.unreachable_paths(Sandbox(hide=[Path.home()], isolation=Isolation.BUBBLEWRAP_UID)) == []
