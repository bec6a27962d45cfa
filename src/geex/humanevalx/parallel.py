"""Generation by several processes at once (one a device: ``--devices``; one a rank: ``torchrun``)
whose samples file is, line for line, the file one process writes.

The work is the same fixed list of batches (``generate.batches``), batch i sampled with seed
``seed + i``, so a batch's samples do not depend on which process makes it. Process r of w makes the
batches i ≡ r (mod w) and appends each whole to its part, ``OUT.parts/rank-R-of-W.jsonl`` (the
samples header first). The merge appends complete batches to OUT in order, so OUT is always a
prefix of the one-process file: an interrupted run resumes as one does, at any number of processes
(a process skips the batches OUT or a part already holds), and the parts go once OUT is complete.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from geex.errors import UserError
from geex.files import Appender, atomic_write, differing, json_lines, read_log
from geex.humanevalx.backends import Backend
from geex.humanevalx.config import GenerateConfig
from geex.humanevalx.generate import (
    FORMAT,
    Unit,
    batches,
    complete_prefix,
    generate_batch,
    object_line,
    recorded,
    resume,
    samples_header,
    units,
)


@dataclass(frozen=True)
class Share:
    """The batches process ``rank`` of ``world`` makes: those whose index is ``rank`` mod ``world``."""

    rank: int
    world: int

    def owns(self, batch: int) -> bool:
        return batch % self.world == self.rank


def parts_dir(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


def _in_out(out: Path, header: dict, plan: list[list[Unit]]) -> int:
    """Batches OUT already holds whole (read only: the merge alone writes OUT)."""
    log = recorded(out, header)
    return 0 if log is None else complete_prefix(log.values[1:], plan)


def _parts(out: Path, plan: list[list[Unit]]) -> tuple[dict | None, dict[int, list[dict]]]:
    """The parts' header (all must have the same) and the batches they hold whole."""
    header, whole = None, {}
    for part in sorted(parts_dir(out).glob("*.jsonl")):
        values = read_log(part, parse=object_line, repair=False).values
        if not values:
            continue
        if header is not None and values[0] != header:
            raise UserError(f"{part} was generated with other settings than {parts_dir(out)}'s other parts: "
                            "delete that folder to start over")
        header = values[0]
        by_batch: dict[int, list[dict]] = defaultdict(list)
        for rec in values[1:]:
            by_batch[rec.get("batch", -1)].append(rec)
        whole.update({i: recs for i, recs in by_batch.items() if 0 <= i < len(plan) and len(recs) == len(plan[i])})
    return header, whole


def generate_share(cfg: GenerateConfig, backend: Backend, out: Path, share: Share) -> None:
    """Make this process's batches that neither OUT nor a part holds, into its own part."""
    plan = batches(units(cfg), cfg.batch_size)
    header = samples_header(cfg, backend)
    todo = missing(out, header, plan)
    with open_part(out, f"rank-{share.rank}-of-{share.world}", header, plan) as log:
        for i in todo:
            if share.owns(i):
                log.write(generate_batch(cfg, backend, plan[i], i))


def missing(out: Path, header: dict, plan: list[list[Unit]]) -> list[int]:
    """The batches neither OUT nor a part holds whole."""
    done = _in_out(out, header, plan)
    theirs, whole = _parts(out, plan)
    if theirs is not None and theirs != header:
        raise UserError(f"{parts_dir(out)} holds samples generated with other settings "
                        f"({', '.join(differing(theirs, header))}): delete it to start over")
    return [i for i in range(done, len(plan)) if i not in whole]


def open_part(out: Path, name: str, header: dict, plan: list[list[Unit]]) -> Appender:
    """The part ``OUT.parts/NAME.jsonl`` to append whole batches to, its own earlier content cut back
    to whole batches (a crash can cut the last one short)."""
    part = parts_dir(out) / f"{name}.jsonl"
    try:
        part.parent.mkdir(parents=True, exist_ok=True)
        mine = read_log(part, parse=object_line, repair=False).values
        if mine and mine[0] != header:
            raise UserError(f"{part} was generated with other settings: delete {part.parent} to start over")
        sizes = Counter(r.get("batch") for r in mine[1:])
        keep = [r for r in mine[1:] if isinstance(r.get("batch"), int) and 0 <= r["batch"] < len(plan)
                and sizes[r["batch"]] == len(plan[r["batch"]])]
        if not mine or len(keep) != len(mine) - 1:  # one write: never a torn header
            atomic_write(part, json_lines([header, *keep]))
        return Appender(part)
    except OSError as e:
        raise UserError(f"cannot write {part}: {e.strerror or e}") from None


def merge(cfg: GenerateConfig, out: Path, plan: list[list[Unit]] | None = None) -> bool:
    """Append the parts' whole batches to OUT in order; True (and the parts removed) once OUT holds
    every batch. ``plan``: the batches of ``cfg``, if the caller has them."""
    plan = plan if plan is not None else batches(units(cfg), cfg.batch_size)
    header, whole = _parts(out, plan)
    if header is None:
        raise UserError(f"{parts_dir(out)} holds no samples to merge")
    if header.get("geex") != FORMAT:
        raise UserError(f"{parts_dir(out)} does not hold geex samples")
    start = resume(out, header, plan)
    if start == 0:
        atomic_write(out, json_lines([header]))
    done = start
    with Appender(out) as log:
        while done < len(plan) and done in whole:
            log.write(whole[done])
            done += 1
    if done == len(plan):
        shutil.rmtree(parts_dir(out), ignore_errors=True)
        return True
    return False


class _Written:
    """Samples written so far to OUT and its parts (for the progress bar), counted in the bytes added
    since the last look: at n = 200 the files are hundreds of MB, not to be read again every second."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.seen: dict[Path, tuple[int, int, int]] = {}  # path -> (inode, bytes read, newlines in them)

    def __call__(self) -> int:
        total = 0
        for path in [self.out, *parts_dir(self.out).glob("*.jsonl")]:
            try:
                st = path.stat()
                inode, offset, lines = self.seen.get(path, (st.st_ino, 0, 0))
                if inode != st.st_ino or st.st_size < offset:  # rewritten (a part cut back to whole batches)
                    offset, lines = 0, 0
                with open(path, "rb") as f:
                    f.seek(offset)
                    added = f.read()
            except FileNotFoundError:
                continue
            self.seen[path] = (st.st_ino, offset + len(added), lines + added.count(b"\n"))
            total += max(0, self.seen[path][2] - 1)  # the header is no sample
        return total


def _device_worker(cfg: GenerateConfig, backend_args: dict, device: str, out: Path, share: Share) -> None:
    """A spawned process: its own backend on ``device``, its share of the batches."""
    from geex.humanevalx.backends import make_backend

    if device.startswith("cuda"):  # the current device too: CUDA graphs and kernels launch on it
        import torch

        torch.cuda.set_device(device)
    try:
        generate_share(cfg, make_backend(device=device, **backend_args), out, share)
    except UserError as e:
        print(f"geex: error ({device}): {e}", file=sys.stderr)
        sys.exit(2)


def run_on_devices(cfg: GenerateConfig, backend_args: dict, devices: list[str], out: Path,
                   progress: bool = True, console: Console | None = None) -> Path:
    """Generate ``out`` with one process a device (each loads the model on its own device)."""
    context = multiprocessing.get_context("spawn")  # CUDA cannot be used in a forked child
    procs = [context.Process(target=_device_worker, args=(cfg, backend_args, device, out, Share(rank, len(devices))),
                             name=f"geex-generate-{device}") for rank, device in enumerate(devices)]
    plan = batches(units(cfg), cfg.batch_size)
    total = sum(len(b) for b in plan)
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=console or Console(stderr=True), disable=not progress)
    try:
        for p in procs:
            p.start()
        written = _Written(out)
        with bar:
            task = bar.add_task(f"generate ({len(devices)} devices)", total=total)
            while any(p.is_alive() for p in procs):
                failed = [(p, d) for p, d in zip(procs, devices) if p.exitcode not in (None, 0)]
                if failed:
                    raise UserError(f"generation on {failed[0][1]} failed (exit status {failed[0][0].exitcode}); "
                                    "the samples made so far are kept: run the same command again to resume")
                bar.update(task, completed=written())
                time.sleep(1)
            bar.update(task, completed=written())
        failed = [(p, d) for p, d in zip(procs, devices) if p.exitcode != 0]
        if failed:
            raise UserError(f"generation on {failed[0][1]} failed (exit status {failed[0][0].exitcode}); "
                            "the samples made so far are kept: run the same command again to resume")
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
            p.join()
    if not merge(cfg, out, plan):
        raise UserError(f"{out}: some batches are missing after every device finished")
    return out


def torchrun_share() -> Share | None:
    """This process's share under ``torchrun`` (RANK, WORLD_SIZE), or None outside it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return Share(int(os.environ.get("RANK", "0")), world) if world > 1 else None


def merge_when_complete(cfg: GenerateConfig, out: Path, poll_s: float = 2.0) -> Path:
    """Rank 0 under torchrun: wait until the parts hold every batch (torchrun stops every rank if one
    fails), then merge; the parts are read again only when one has grown."""
    plan, last = batches(units(cfg), cfg.batch_size), None
    while True:
        sizes = sorted((p.name, p.stat().st_size) for p in parts_dir(out).glob("*.jsonl"))
        if sizes != last and merge(cfg, out, plan):
            return out
        last = sizes
        time.sleep(poll_s)
