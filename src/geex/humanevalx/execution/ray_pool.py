"""The sandbox slots of every node of a Ray cluster (``geex humanevalx evaluate --ray``).

Each node first shows it can do the work: one of its slots runs the needed languages' check
programs (``geex doctor``'s hello-worlds) in its own sandbox and reports each language's verdict
fingerprint (toolchain version, recipe, limits, sandbox mode, harness code: computed on the node).
A node whose check fails, or whose fingerprints are not the cluster's (the ones most CPUs report),
gets no programs and is reported; the others get one slot (a Ray actor holding one CPU, its own
uid lease and work directories) per CPU they offer. Programs go to slots as slots free up, two in
flight a slot so none waits for the driver; a slot lost with its node gives its programs back to
run elsewhere. Ray is imported here only, and only an evaluation with ``--ray`` imports this.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial

from geex.errors import UserError
from geex.humanevalx.execution.pool import run_program
from geex.humanevalx.execution.program import Program
from geex.humanevalx.execution.runners import Outcome, RunContext, Runner, get_runner, make_jobs_root, remove_jobs_root
from geex.humanevalx.execution.sandbox import Sandbox, detect_isolation
from geex.humanevalx.execution.verdict import Verdict

IN_FLIGHT = 2  # programs sent to a slot before its first answer comes back

Fingerprint = Callable[[Runner, Sandbox, float], str]


@dataclass
class NodeReport:
    """What a node's check found."""

    node_id: str
    name: str  # host:node id prefix, as results.jsonl records it
    cpus: int
    isolation: str = ""
    memory_limit: str = ""
    versions: dict[str, str] = field(default_factory=dict)  # language -> toolchain version
    fingerprints: dict[str, str] = field(default_factory=dict)
    problem: str = ""  # why it gets no programs ("" : it gets them)


def join_cluster(address: str):
    """``ray``, connected to the cluster at ``address`` ("auto": the one this machine belongs to); a
    one-line error where there is none (Ray itself retries an address where nothing listens for
    minutes)."""
    try:
        import ray
    except ImportError:
        raise UserError("`ray` needs Ray on this machine and every node: pip install 'geex[ray]'") from None
    host, _, port = address.rpartition(":")
    if address != "auto" and "://" not in address:
        if not host or not port.isdigit():
            raise UserError(f"`ray` {address!r} is not HOST:PORT (the head's address, e.g. 10.0.0.1:6379)")
        try:
            socket.create_connection((host, int(port)), timeout=10).close()
        except OSError as e:
            raise UserError(f"`ray`: nothing answers at {address} ({e.strerror or e}); start the cluster with "
                            "`ray start --head`") from None
    try:
        ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise UserError(f"`ray`: no Ray cluster at {address} ({' '.join(str(e).split())[:300]}); start one with "
                        "`ray start --head`") from None
    _errors_to_stderr(ray)
    return ray


def lost_with_node(ray) -> tuple[type[Exception], ...]:
    """What a call to an actor raises when the actor went with its node (the work can go elsewhere)."""
    e = ray.exceptions
    return e.RayActorError, e.NodeDiedError, e.WorkerCrashedError, e.ObjectLostError


def _errors_to_stderr(ray) -> None:
    """Ray prints the cluster's error messages (a node died, ...) on the driver's stdout, where the
    report goes: they go to stderr. (A private function of the pinned Ray; left alone if it moved.)"""
    worker = getattr(ray._private, "worker", None)
    original = getattr(worker, "print_to_stdstream", None)
    if original is None or getattr(original, "geex", False):
        return

    def to_stderr(data: dict, ignore_prefix: bool) -> None:
        original({**data, "is_err": True}, ignore_prefix)

    to_stderr.geex = True
    worker.print_to_stdstream = to_stderr


def agree(nodes: list[NodeReport]) -> dict[str, str]:
    """The cluster's fingerprints: those of the most CPUs among the nodes that passed their check; a
    node with others (another toolchain version, sandbox mode or geex) is given a ``problem``."""
    votes: Counter = Counter()
    for r in nodes:
        if not r.problem:
            votes[tuple(sorted(r.fingerprints.items()))] += r.cpus
    if not votes:
        return {}
    chosen = dict(votes.most_common(1)[0][0])
    for r in nodes:
        if not r.problem and r.fingerprints != chosen:
            differ = sorted(lang for lang in chosen if r.fingerprints.get(lang) != chosen[lang])
            r.problem = (f"its {', '.join(differ)} verdicts would not be the cluster's (another toolchain version, "
                         f"sandbox mode or geex: {', '.join(r.versions.get(lang, '?') for lang in differ)})")
    return chosen


class Slot:
    """One sandbox slot on a node (a Ray actor of one CPU)."""

    def __init__(self, languages: list[str], timeout_s: float, slot: int) -> None:
        import ray

        self.sandbox = Sandbox(isolation=detect_isolation())
        self.runners = {lang: get_runner(lang) for lang in languages}
        self.timeout_s = timeout_s
        self.jobs_root = make_jobs_root()
        self.ctx = RunContext(self.sandbox, self.jobs_root, slot, timeout_s)
        self.name = f"{socket.gethostname()}:{ray.get_runtime_context().get_node_id()[:8]}"

    def check(self, programs: Mapping[str, Program], fingerprint: Fingerprint) -> dict:
        """Each language's check program run here, and what this node's verdicts are worth."""
        report: dict = {"name": self.name, "isolation": self.sandbox.isolation.value,
                        "memory_limit": self.sandbox.memory_mechanism, "versions": {}, "fingerprints": {},
                        "failed": {}}
        for lang, runner in self.runners.items():
            report["versions"][lang] = runner.cached_status.version
            report["fingerprints"][lang] = fingerprint(runner, self.sandbox, self.timeout_s)
            outcome = run_program(runner, programs[lang], self.ctx)
            if outcome.verdict is not Verdict.PASSED:
                report["failed"][lang] = f"{outcome.verdict.value}: {outcome.detail[-200:]}"
        return report

    def execute(self, program: Program) -> Outcome:
        outcome = run_program(self.runners[program.language.name], program, self.ctx)
        outcome.node = self.name
        return outcome

    def close(self) -> None:
        self.ctx.close()
        remove_jobs_root(self.jobs_root)


class RayPool:
    """Slots on every node of the Ray cluster at ``address`` that passes its check (see the module):
    one a CPU, or ``slots_per_node`` (at most its CPUs)."""

    def __init__(self, address: str, languages: list[str], timeout_s: float, checks: Mapping[str, Program],
                 fingerprint: Fingerprint, say: Callable[[str], None], slots_per_node: int | None = None) -> None:
        ray = self._ray = join_cluster(address)
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self._lock = threading.Lock()
        self._queue: deque[tuple[Program, Future]] = deque()
        self._free: list = []  # a slot appears once for each program it may still take
        self._live: set = set()
        slot_actor = ray.remote(num_cpus=1)(Slot)

        def on(node_id: str):
            return slot_actor.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False))

        nodes = [n for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) >= 1]
        if not nodes:
            self.close()
            raise UserError(f"`ray`: the cluster at {address} has no node with a CPU")
        probes = {n["NodeID"]: on(n["NodeID"]).remote(languages, timeout_s, 0) for n in nodes}
        checked = {node_id: actor.check.remote(dict(checks), fingerprint) for node_id, actor in probes.items()}
        self.nodes: list[NodeReport] = []
        for n in nodes:
            name = f"{n.get('NodeManagerHostname') or n['NodeManagerAddress']}:{n['NodeID'][:8]}"
            report = NodeReport(n["NodeID"], name, int(n["Resources"]["CPU"]))
            try:
                found = ray.get(checked[n["NodeID"]])
            except ray.exceptions.RayError as e:  # e.g. a node that died and the cluster has not noticed yet
                report.problem = f"its check could not run: {type(e).__name__}: {' '.join(str(e).split())[:200]}"
            else:
                report.name, report.isolation, report.memory_limit = found["name"], found["isolation"], found["memory_limit"]
                report.versions, report.fingerprints = found["versions"], found["fingerprints"]
                if found["failed"]:
                    report.problem = "its check failed: " + "; ".join(
                        f"{k}: {' '.join(v.split())}" for k, v in found["failed"].items())
            self.nodes.append(report)
        self.fingerprints = agree(self.nodes)
        for report in self.nodes:
            if report.problem:
                say(f"Ray node {report.name}: {report.problem}; it gets no programs")
                ray.kill(probes[report.node_id])
                continue
            slots = min(report.cpus, slots_per_node or report.cpus)
            for slot in [probes[report.node_id], *(on(report.node_id).remote(languages, timeout_s, i)
                                                    for i in range(1, slots))]:
                self._live.add(slot)
                self._free += [slot] * IN_FLIGHT
        self.slots = len(self._live)
        if not self.slots:
            self.close()
            raise UserError("`ray`: no node of the cluster passed its check (see above)")
        used = [r for r in self.nodes if not r.problem]
        say(f"Ray: {self.slots} slots on {len(used)} of {len(self.nodes)} nodes")
        self.isolation, self.memory_limit, self.versions = used[0].isolation, used[0].memory_limit, used[0].versions

    def prepare(self, languages: Iterable[str]) -> list[str]:
        return []  # each node prepared its languages when it ran its check

    def submit(self, program: Program) -> Future[Outcome]:
        fut: Future[Outcome] = Future()
        with self._lock:
            self._queue.append((program, fut))
            self._dispatch()
        return fut

    def _dispatch(self) -> None:
        """Send queued programs to free slots (the lock held)."""
        while self._queue and self._free:
            program, fut = self._queue.popleft()
            if fut.cancelled():
                continue
            slot = self._free.pop()
            slot.execute.remote(program).future().add_done_callback(partial(self._finished, slot, program, fut))

    def _finished(self, slot, program: Program, fut: Future, done: Future) -> None:
        try:
            outcome = done.result()
        except lost_with_node(self._ray):  # the slot went with its node: the program runs elsewhere
            with self._lock:
                self._live.discard(slot)
                self._free = [s for s in self._free if s is not slot]
                self._queue.appendleft((program, fut))
                if not self._live:
                    failed, self._queue = list(self._queue), deque()
                else:
                    failed = []
                    self._dispatch()
            for _, waiting in failed:
                if not waiting.cancelled():
                    waiting.set_exception(UserError("`ray`: every slot of the cluster was lost (its nodes died)"))
            return
        except BaseException as e:  # noqa: BLE001 - given to the evaluation, which stops
            outcome, error = None, e
        else:
            error = None
        with self._lock:
            if slot in self._live:
                self._free.append(slot)
            self._dispatch()
        if fut.cancelled():
            return
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(outcome)

    def close(self) -> None:
        """Drop what has not started, free every slot (their work directories and uid leases) and
        leave the cluster running."""
        ray = self._ray
        with self._lock:
            self._queue.clear()
            live, self._live, self._free = list(getattr(self, "_live", ())), set(), []
        closing = [slot.close.remote() for slot in live]
        try:
            ray.get(closing, timeout=60)
        except ray.exceptions.RayError:
            pass
        for slot in live:
            ray.kill(slot)
        ray.shutdown()
