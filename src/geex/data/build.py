"""``geex data build SRC... --out DIR``: source code in, tagged, filtered, deduplicated JSONL shards out.

Per file: language (from the source, else extension, else ``#!`` line; files of no CodeGeeX
language are dropped), UTF-8 decoding, CodeGeeX's filters (``geex.data.filters``), exact dedup by
content hash, near dedup by MinHash LSH over word 5-grams (``datasketch``; Jaccard ≥ 0.85 by
default). Kept files get CodeGeeX's language tag line and go to ``DIR/shard-SSS-NNNNN.jsonl``
(``{"code", "language", "path", "sha256"}``; SSS = the source's index). Decoding, filtering and
hashing run in a process pool; deduplication, which needs every earlier file, runs in order in
the main process, so the output does not depend on the number of workers.

Resumable per source: after each source, the dedup state and counts are saved (``DIR/state.pkl``);
a re-run with the same arguments skips the finished sources and redoes an unfinished one (its
partial shards are deleted first). ``DIR/stats.json`` / ``stats.md``: files and bytes kept and
dropped, per language and per reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import re
import signal
from collections import defaultdict, deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from geex.data.filters import FilterConfig, reject_reason
from geex.data.sources import Document, read_source
from geex.errors import UserError
from geex.files import atomic_write
from geex.languages.corpus import corpus_language, detect

STATE_FORMAT = "geex/data-build/1"
_WORDS = re.compile(r"\w+")


@dataclass(frozen=True)
class BuildConfig:
    sources: tuple[str, ...]
    out: Path
    filters: FilterConfig = FilterConfig()
    near_dup_threshold: float = 0.85  # 1.0: exact dedup only
    num_perm: int = 128
    shingle: int = 5  # words a shingle
    shard_docs: int = 10_000
    workers: int = 0  # 0: all cores
    exclude: tuple[str, ...] = ()  # glob patterns of file or directory names to skip

    def identity(self) -> dict:
        """What the output depends on (a resumed build must match it)."""
        d = asdict(self)
        d.pop("out"), d.pop("workers")
        d["sources"] = [str(Path(s).resolve()) for s in self.sources]
        return d


@dataclass
class Result:
    path: str
    language: str | None
    size: int
    reason: str | None  # None: kept so far (dedup decides next)
    text: str = ""
    sha256: str = ""
    minhash: object = None  # a datasketch MinHash


def _process(doc: Document, cfg: BuildConfig) -> Result:
    """Worker: language, decoding, filters, hashes (no shared state)."""
    size = len(doc.data)
    if doc.language:  # given by the source
        try:
            lang = corpus_language(doc.language).name
        except UserError:
            return Result(doc.path, None, size, "unknown_language")
    else:
        found = detect(doc.path, doc.data[:256])
        lang = found.name if found else None
    if lang is None:
        return Result(doc.path, None, size, "unknown_language")
    try:
        text = doc.data.decode("utf-8")
    except UnicodeDecodeError:
        return Result(doc.path, lang, size, "not_utf8")
    reason = reject_reason(text, size, cfg.filters)
    if reason:
        return Result(doc.path, lang, size, reason)
    sha = hashlib.sha256(doc.data).hexdigest()
    minhash = None
    if cfg.near_dup_threshold < 1.0:
        from datasketch import MinHash

        words = _WORDS.findall(text)
        m = MinHash(num_perm=cfg.num_perm, seed=1)
        n = cfg.shingle
        m.update_batch([" ".join(words[i:i + n]).encode() for i in range(max(1, len(words) - n + 1))])
        minhash = m  # the object itself: rebuilding one from hash values differs across datasketch versions
    return Result(doc.path, lang, size, None, text, sha, minhash)


@dataclass
class _State:
    identity: dict
    sources_done: int = 0
    seen: set = field(default_factory=set)
    lsh: object = None
    stats: dict = field(default_factory=lambda: {"kept": {}, "dropped": {}})

    def count(self, kind: str, lang: str | None, reason: str, size: int) -> None:
        key = f"{lang or 'unknown'}/{reason}" if kind == "dropped" else (lang or "unknown")
        entry = self.stats[kind].setdefault(key, {"files": 0, "bytes": 0})
        entry["files"] += 1
        entry["bytes"] += size


def _load_state(cfg: BuildConfig) -> _State:
    path = cfg.out / "state.pkl"
    if path.is_file():
        state = pickle.loads(path.read_bytes())
        if not isinstance(state, _State) or state.identity != cfg.identity():
            raise UserError(f"{cfg.out} holds a build with other sources or settings: choose another `out`")
        for shard in cfg.out.glob("shard-*.jsonl"):  # an unfinished source is redone from its start
            if int(shard.name.split("-")[1]) >= state.sources_done:
                shard.unlink()
        return state
    if cfg.out.exists() and any(cfg.out.iterdir()):
        raise UserError(f"{cfg.out} exists and is not a geex data build: choose an empty or new `out`")
    state = _State(cfg.identity())
    if cfg.near_dup_threshold < 1.0:
        from datasketch import MinHashLSH

        state.lsh = MinHashLSH(threshold=cfg.near_dup_threshold, num_perm=cfg.num_perm)
    return state


def _save_state(cfg: BuildConfig, state: _State) -> None:
    atomic_write(cfg.out / "state.pkl", pickle.dumps(state))


def _results(cfg: BuildConfig, docs: Iterator[Document]) -> Iterator[Result]:
    """Processed documents in input order; at most 16 a worker in flight (bounded memory)."""
    workers = cfg.workers or os.cpu_count() or 1
    if workers == 1:
        yield from (_process(d, cfg) for d in docs)
        return
    # workers leave Ctrl-C to the main process, which stops them (no traceback from each worker)
    with ProcessPoolExecutor(workers, initializer=signal.signal, initargs=(signal.SIGINT, signal.SIG_IGN)) as pool:
        pending: deque = deque()
        for doc in docs:
            pending.append(pool.submit(_process, doc, cfg))
            if len(pending) >= 16 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def build(cfg: BuildConfig, progress: bool = True) -> dict:
    """Run (or finish) the build; returns the stats (also written to DIR)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    for s in cfg.sources:
        if not Path(s).exists():
            raise UserError(f"corpus source {s} does not exist")
    try:
        cfg.out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot write {cfg.out}: {e.strerror or e}") from None
    state = _load_state(cfg)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed} files"),
                  TimeElapsedColumn(), disable=not progress) as bar:
        for index in range(state.sources_done, len(cfg.sources)):
            source = cfg.sources[index]
            task = bar.add_task(f"source {index + 1}/{len(cfg.sources)}: {Path(source).name}")
            shard, in_shard, f = 0, 0, None
            try:
                for r in _results(cfg, read_source(source, cfg.exclude)):
                    bar.advance(task)
                    reason = r.reason or _duplicate(state, r)
                    if reason:
                        state.count("dropped", r.language, reason, r.size)
                        continue
                    if f is None or in_shard == cfg.shard_docs:
                        if f is not None:
                            f.close()
                            shard += 1
                        f = open(cfg.out / f"shard-{index:03d}-{shard:05d}.jsonl", "w", encoding="utf-8")
                        in_shard = 0
                    tag = corpus_language(r.language).tag
                    f.write(json.dumps({"code": f"{tag}\n{r.text}", "language": r.language, "path": r.path,
                                        "sha256": r.sha256}, ensure_ascii=False) + "\n")
                    in_shard += 1
                    state.count("kept", r.language, "", r.size)
            finally:
                if f is not None:
                    f.close()
            state.sources_done = index + 1
            _save_state(cfg, state)
    stats = {"format": STATE_FORMAT, "config": cfg.identity(), **state.stats}
    (cfg.out / "stats.json").write_text(json.dumps(stats, indent=2) + "\n")
    (cfg.out / "stats.md").write_text(stats_markdown(stats))
    return stats


def _duplicate(state: _State, r: Result) -> str | None:
    if r.sha256 in state.seen:
        return "exact_duplicate"
    state.seen.add(r.sha256)
    if state.lsh is not None:
        if state.lsh.query(r.minhash):
            return "near_duplicate"
        state.lsh.insert(r.sha256, r.minhash)
    return None


def stats_markdown(stats: dict) -> str:
    per_lang: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    reasons: set[str] = set()
    for lang, v in stats["kept"].items():
        per_lang[lang]["kept"] = [v["files"], v["bytes"]]
    for key, v in stats["dropped"].items():
        lang, reason = key.split("/", 1)
        per_lang[lang][reason] = [v["files"], v["bytes"]]
        reasons.add(reason)
    cols = ["kept", *sorted(reasons)]
    lines = ["# Corpus build", "", "Files (and MB) kept and dropped, per language and reason.", "",
             "| language | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    total = defaultdict(lambda: [0, 0])
    for lang in sorted(per_lang, key=lambda x: -per_lang[x]["kept"][1]):
        cells = []
        for c in cols:
            n, b = per_lang[lang][c]
            total[c][0] += n
            total[c][1] += b
            cells.append(f"{n} ({b / 1e6:.2f})" if n else "–")
        lines.append(f"| {lang} | " + " | ".join(cells) + " |")
    lines.append("| **all** | " + " | ".join(f"{total[c][0]} ({total[c][1] / 1e6:.2f})" for c in cols) + " |")
    return "\n".join(lines) + "\n"
