"""Hostile programs against the real harness: every language, through assembly, runner and sandbox.

Each program of ``hostile_programs.py`` is a completion for task 53 (``add``) in a samples file that
``evaluate`` runs like any other (two workers, 3 s timeout, no verdict cache), next to correct
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
import secrets
import shutil
import socket
import stat
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
from tests.humanevalx.hostile_programs import CONTAINED, KINDS, TASK, hostile

ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = ("python", "cpp", "java", "js", "go", "rust")
TIMEOUT_S = 3.0
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
                    else KILL_PARENT[lang] if kind == "kill_parent" else EXPECTED[kind])
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
        ["results.jsonl", "report.json", "report.md", "secret.txt"]), list(scene.out.iterdir())


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
    failed = {k: v for k, v in got.items() if not v.startswith("passed")}
    assert not failed, failed
    assert os.path.exists(target)
    assert any(a.startswith("AF_INET ") for a in scene.listener.accepted), scene.listener.accepted
    assert any(a.startswith("AF_UNIX ") for a in scene.listener.accepted), scene.listener.accepted
