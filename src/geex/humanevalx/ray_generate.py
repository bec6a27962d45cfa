"""Generation on a Ray cluster (``geex humanevalx generate/run --ray``): one copy of the model a GPU
(``--device cuda``; with ``--device cpu`` one a node), each a Ray actor that makes whole batches.

The batches are the fixed, seeded ones of ``generate``; the driver hands the next missing one to
whichever copy is free and appends what comes back to its part, ``OUT.parts/ray.jsonl``; the merge
(``parallel.merge``) then writes OUT in batch order, so the file is the one a single device writes
and an interrupted run resumes at any number of copies. A copy lost with its node gives its batch
back to the others. Ray is imported here only.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from geex.errors import UserError
from geex.humanevalx.config import GenerateConfig
from geex.humanevalx.execution.ray_pool import join_cluster, lost_with_node
from geex.humanevalx.generate import Unit, batches, generate_batch, samples_header, units
from geex.humanevalx.parallel import merge, missing, open_part


class Copy:
    """One copy of the model on a node (a Ray actor)."""

    def __init__(self, cfg: GenerateConfig, backend_args: dict, device: str) -> None:
        from geex.humanevalx.backends import make_backend

        self.cfg, self.backend = cfg, make_backend(device=device, **backend_args)

    def header(self) -> dict:
        return samples_header(self.cfg, self.backend)

    def batch(self, i: int, batch: list[Unit]) -> list[dict]:
        """Batch ``i``'s records (its units come from the driver: nodes need no copy of the data)."""
        return generate_batch(self.cfg, self.backend, batch, i)


def run_on_ray(cfg: GenerateConfig, backend_args: dict, device: str, address: str, out: Path,
               progress: bool = True, console: Console | None = None) -> Path:
    """Generate ``out`` with the model copies of the Ray cluster at ``address`` (see the module)."""
    ray = join_cluster(address)
    console = console or Console(stderr=True)
    try:
        return _generate(ray, cfg, backend_args, device, out, progress, console)
    finally:
        ray.shutdown()


def _generate(ray, cfg: GenerateConfig, backend_args: dict, device: str, out: Path, progress: bool,
              console: Console) -> Path:
    gpu = device.startswith("cuda")
    nodes = [n for n in ray.nodes() if n["Alive"] and n["Resources"].get("GPU" if gpu else "CPU", 0) >= 1]
    count = int(sum(n["Resources"]["GPU"] for n in nodes)) if gpu else len(nodes)
    if not count:
        raise UserError(f"`ray`: the cluster has no {'GPU' if gpu else 'node with a CPU'}")
    actor = ray.remote(num_gpus=1 if gpu else 0, num_cpus=0 if gpu else 1)(Copy)
    copies = [actor.options(scheduling_strategy="SPREAD").remote(cfg, backend_args, "cuda" if gpu else "cpu")
              for _ in range(count)]
    headers, failed = {}, []
    for copy, answer in [(c, c.header.remote()) for c in copies]:
        try:
            headers[copy] = ray.get(answer)
        except ray.exceptions.RayError as e:  # its node died, or the model could not be made there
            failed.append(" ".join(str(getattr(e, "cause", None) or e).split())[:400])
    if not headers:
        raise UserError(f"`ray`: no copy of the model could start: {failed[0]}")
    if failed:
        console.print(f"Ray: {len(failed)} of {count} copies could not start ({failed[0][:200]}); going on with "
                      f"{len(headers)}")
    copies = list(headers)
    header = headers[copies[0]]
    if any(h != header for h in headers.values()):
        raise UserError("`ray`: the nodes' copies of the model differ (another model file or geex on some node)")
    plan = batches(units(cfg), cfg.batch_size)
    todo = deque(missing(out, header, plan))
    console.print(f"Ray: {len(copies)} copies of the model ({'one a GPU' if gpu else 'one a node'}), "
                  f"{len(todo)} of {len(plan)} batches to make")
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=console, disable=not progress)
    with bar, open_part(out, "ray", header, plan) as log:
        total = sum(len(b) for b in plan)
        task = bar.add_task("generate", total=total, completed=total - sum(len(plan[i]) for i in todo))
        running: dict = {}  # object ref -> (copy, batch index)
        free = list(copies)
        while todo or running:
            while todo and free:
                copy, i = free.pop(), todo.popleft()
                running[copy.batch.remote(i, plan[i])] = (copy, i)
            ready, _ = ray.wait(list(running), num_returns=1)
            copy, i = running.pop(ready[0])
            try:
                records = ray.get(ready[0])
            except lost_with_node(ray):
                todo.appendleft(i)  # the copy went with its node: another makes the batch
                if not free and not running:
                    raise UserError("`ray`: every copy of the model was lost (their nodes died); run the same "
                                    "command again to resume") from None
                continue
            log.write(records)
            free.append(copy)
            bar.advance(task, len(records))
    if not merge(cfg, out, plan):
        raise UserError(f"{out}: some batches are missing after the cluster finished")
    return out
