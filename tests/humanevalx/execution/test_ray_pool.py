"""``geex humanevalx evaluate --ray`` on a real Ray cluster on this machine: a head and a worker
node, each started with ``ray start`` (one CPU each, token authentication on, a private temp
directory), the evaluation a ``geex`` process of its own, as a user runs it.

The verdicts must be the single-machine run's (every reference solution passes: the reference sweep
holds that on one machine); each node must run some of the programs (results.jsonl records who ran
what); killing the worker node, and then the driver, mid-run and running again must lose and repeat
nothing; a node whose toolchain check fails must get no program.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("ray")

from geex.humanevalx.execution.ray_pool import NodeReport, agree  # noqa: E402

# serial: 984 programs under their wall-clock limits on a cluster of this machine's cores (beside the
# torch-heavy first phase they would compete for the same two cores), and one long file at the end
# of the first phase was its tail (scripts/test.sh)
pytestmark = [pytest.mark.toolchains, pytest.mark.serial]

ALIVE = """
import json, ray, sys
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
print("ALIVE " + json.dumps([key for n in ray.nodes() if n["Alive"] for key in n["Resources"]]))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """Ray nodes started with ``ray start --block`` in sessions of their own (killed by group)."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.temp = Path(tempfile.mkdtemp(prefix="geex-ray-"))  # short: Ray's socket paths must fit
        self.env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
                    "RAY_USAGE_STATS_ENABLED": "0"}
        self.nodes: list[subprocess.Popen] = []

    def start(self, head: bool = False, path: str | None = None) -> subprocess.Popen:
        ray = str(Path(sys.executable).with_name("ray"))
        where = ["--head", f"--port={self.port}", "--include-dashboard=false", "--disable-usage-stats",
                 f"--temp-dir={self.temp}"] if head else [f"--address={self.address}"]
        env = {**self.env, **({"PATH": path} if path else {})}
        label = f"geex_test_node_{len(self.nodes)}"  # how this node is told from one that died a moment ago
        node = subprocess.Popen([ray, "start", *where, "--num-cpus=1", "--object-store-memory=100000000",
                                 f"--resources={json.dumps({label: 1})}", "--block"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.nodes.append(node)
        deadline = time.monotonic() + 90
        while label not in self.alive():
            assert node.poll() is None, "a Ray node did not start"
            assert time.monotonic() < deadline, "a Ray node did not join in 90 s"
            time.sleep(1)
        return node

    def alive(self) -> list[str]:
        """The resources of the nodes the cluster holds alive (each node's label among them)."""
        out = subprocess.run([sys.executable, "-c", ALIVE, self.address], env=self.env, capture_output=True,
                             text=True, timeout=60)
        # (Ray may print the cluster's news on stdout too: a node that died)
        found = [line for line in out.stdout.splitlines() if line.startswith("ALIVE ")]
        return json.loads(found[-1][6:]) if found else []

    def kill(self, node: subprocess.Popen, wait: bool = False) -> None:
        """SIGKILL to the node's processes; ``wait``: until the cluster has noticed (its health check
        takes ~15 s), so that the next test's work is not placed on a dead node."""
        try:
            os.killpg(node.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        node.wait(timeout=30)
        label = f"geex_test_node_{self.nodes.index(node)}"
        deadline = time.monotonic() + 120
        while wait and label in self.alive():
            assert time.monotonic() < deadline, "the cluster did not notice a killed node in 120 s"
            time.sleep(1)

    def stop(self) -> None:
        for node in reversed(self.nodes):
            self.kill(node)
        shutil.rmtree(self.temp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    c = Cluster()
    try:
        c.start(head=True)
        c.start()
        yield c
    finally:
        c.stop()


def _evaluate(cluster: Cluster, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "geex", "humanevalx", "evaluate", "canonical", "--out", str(out),
                             "--ray", cluster.address, "--quiet", "--no-cache", *extra], env=cluster.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _results(out: Path) -> list[dict]:
    path = out / "results.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def _wait_for(out: Path, driver: subprocess.Popen, enough) -> list[dict]:
    deadline = time.monotonic() + 300
    while not enough(rows := _results(out)):
        assert driver.poll() is None, driver.communicate()
        assert time.monotonic() < deadline, f"{len(rows)} results after 300 s"
        time.sleep(0.2)
    return rows


def test_the_references_pass_across_two_nodes_and_killed_nodes_lose_nothing(cluster, tmp_path):
    out = tmp_path / "eval"
    driver = _evaluate(cluster, out)
    rows = _wait_for(out, driver, lambda rows: len(rows) >= 150 and len({r.get("node") for r in rows}) == 2)
    cluster.kill(cluster.nodes[1])  # the worker node, mid-run: its programs run on the head
    _wait_for(out, driver, lambda later: len(later) >= len(rows) + 60)
    driver.send_signal(signal.SIGKILL)  # and the driver
    driver.wait(timeout=30)
    cluster.start()  # a new worker node
    rerun = _evaluate(cluster, out)
    stdout, stderr = rerun.communicate(timeout=900)
    assert rerun.returncode == 0, stderr[-3000:]
    assert "resuming" in stderr
    results = _results(out)
    ids = Counter(r["sample_id"] for r in results)
    assert len(ids) == 984 and max(ids.values()) == 1  # nothing lost, nothing twice
    assert Counter(r["verdict"] for r in results) == {"passed": 984}  # the single-machine verdicts
    by_node = Counter(r.get("node") for r in results)
    assert len(by_node) == 3 and None not in by_node and min(by_node.values()) > 0, by_node  # each node ran some
    report = json.loads((out / "report.json").read_text())
    assert report["overall"]["verdicts"]["passed"] == 984
    assert report["ray"]["samples_by_node"] == dict(sorted(by_node.items()))
    # the report names the nodes of the second run (the dead one, if the cluster has not yet noticed,
    # as a node whose check could not run) and what each ran; stdout holds the report alone
    assert stdout.startswith("# HumanEval-X evaluation") and "(raylet)" not in stdout
    ray_line = next(line for line in stdout.splitlines() if line.startswith("- Ray: "))
    ran_now = [n for n in report["ray"]["nodes"] if "problem" not in n]
    assert len(ran_now) == 2 and all(f"{n['node']} (1 CPUs, {by_node[n['node']]} samples" in ray_line for n in ran_now)


def test_a_node_whose_toolchain_check_fails_gets_no_programs(cluster, tmp_path):
    """A third node without node.js (its PATH holds everything of /usr/bin but ``node``): its check
    of JavaScript fails, it is reported and runs nothing; the other two run every program."""
    shim = tmp_path / "bin"
    shim.mkdir()
    for tool in Path("/usr/bin").iterdir():
        if tool.name not in ("node", "nodejs"):
            (shim / tool.name).symlink_to(tool)
    path = ":".join([str(Path(sys.executable).parent), str(shim)])  # (/bin is /usr/bin on Debian)
    third = cluster.start(path=path)
    try:
        out = tmp_path / "eval"
        driver = _evaluate(cluster, out, "--languages", "js")
        stdout, stderr = driver.communicate(timeout=600)
        assert driver.returncode == 0, stderr[-3000:]
        assert "its check failed: js" in stderr and "it gets no programs" in stderr
        results = _results(out)
        assert len(results) == 164 and all(r["verdict"] == "passed" for r in results)
        report = json.loads((out / "report.json").read_text())
        excluded = [n["node"] for n in report["ray"]["nodes"] if "problem" in n]
        assert len(excluded) == 1 and len(report["ray"]["nodes"]) == 3
        assert excluded[0] not in {r["node"] for r in results}
        assert report["workers"] == 2
    finally:
        cluster.kill(third, wait=True)


def test_the_cluster_fingerprints_are_the_most_cpus_and_a_node_that_differs_is_left_out():
    """A node whose verdicts would be worth something else (another toolchain version, sandbox
    mode or geex) gets no programs: the fingerprints most CPUs share decide; failed nodes do not vote."""
    nodes = [NodeReport("a", "a", 2, versions={"go": "go1.19"}, fingerprints={"go": "f19", "python": "p"}),
             NodeReport("b", "b", 1, versions={"go": "go1.22"}, fingerprints={"go": "f22", "python": "p"}),
             NodeReport("c", "c", 4, versions={"go": "go1.22"}, fingerprints={"go": "f22", "python": "p"},
                        problem="its check failed: go"),
             NodeReport("d", "d", 2, versions={"go": "go1.19"}, fingerprints={"go": "f19", "python": "p"})]
    assert agree(nodes) == {"go": "f19", "python": "p"}
    assert [bool(n.problem) for n in nodes] == [False, True, True, False]
    assert "its go verdicts would not be the cluster's" in nodes[1].problem and "go1.22" in nodes[1].problem
    assert agree([NodeReport("x", "x", 1, problem="its check failed: js")]) == {}


def test_the_programs_of_a_node_that_dies_run_on_the_others(cluster, tmp_path):
    """The worker node killed mid-run: the programs it held are run again on the head (once the
    cluster notices), and the evaluation finishes by itself, every sample once."""
    out = tmp_path / "eval"
    driver = _evaluate(cluster, out, "--languages", "python")
    _wait_for(out, driver, lambda rows: len(rows) >= 20 and len({r.get("node") for r in rows}) == 2)
    cluster.kill([n for n in cluster.nodes[1:] if n.poll() is None][-1], wait=True)
    try:
        stdout, stderr = driver.communicate(timeout=300)
        assert driver.returncode == 0, stderr[-3000:]
        results = _results(out)
        ids = Counter(r["sample_id"] for r in results)
        assert len(ids) == 164 and max(ids.values()) == 1
        assert all(r["verdict"] == "passed" for r in results)
        assert len({r["node"] for r in results}) == 2
    finally:
        cluster.start()  # the cluster as the other tests found it


def test_without_ray_nothing_imports_it(tmp_path):
    """An evaluation without ``--ray`` runs as it always did and never imports Ray."""
    script = ("import sys\nfrom geex.cli import main\n"
              f"code = main(['humanevalx', 'evaluate', 'canonical', '--languages', 'python', '--out', {str(tmp_path)!r}, "
              "'--quiet'])\nassert code == 0, code\nassert 'ray' not in sys.modules, 'ray was imported'\n"
              "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]
    assert all("node" not in json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines())


def test_generation_on_the_cluster_writes_the_one_process_file(cluster, tmp_path):
    """``generate --ray``: a copy of the default model on each node (CPU), batches handed to whichever
    is free; the file is byte for byte the one a single process writes."""
    from tests.humanevalx.test_parallel import ARGS

    files = {}
    for name, extra in (("one", []), ("ray", ["--ray", cluster.address])):
        files[name] = tmp_path / name / "samples.jsonl"
        done = subprocess.run([sys.executable, "-m", "geex", "humanevalx", "generate", "--out", str(files[name]),
                               *ARGS, *extra], env={**cluster.env, "OMP_NUM_THREADS": "1"}, capture_output=True,
                              text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    assert "Ray: 2 copies of the model" in done.stderr
    assert files["ray"].read_bytes() == files["one"].read_bytes()
