"""``geex data pack``: corpus shards -> one token stream per split, cut into fixed-length sequences.

Each document (the ``code`` of a JSONL line, else its ``content`` or ``text``) is tokenized with
the CodeGeeX tokenizer (or any trained with ``geex tokenizer train``) and followed by EOS;
documents are concatenated in input order into ``train.bin`` / ``valid.bin`` (``uint16`` while the
vocabulary fits, else ``uint32``), and sequence ``i`` of length L is ``tokens[i*L : i*L + L + 1]``
(inputs and shifted targets). Unlike
the original, which padded every document to 2049 tokens with EOS and trained on the padding,
nothing is padded. A document goes to ``valid`` when its hash falls under ``--valid`` (so the split
does not depend on order or workers). Shards are tokenized in parallel, one file each, and a
re-run reuses the shards already done. ``index.json`` describes the result.

``PackedDataset`` reads it: a seeded permutation of sequences per epoch, and a position that
``state_dict``/``load_state_dict`` save and restore, so a resumed run sees exactly the sequences an
uninterrupted one would. ``document_positions`` restarts positions after each EOS (for training
with attention reset at document boundaries).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from geex import jsonl
from geex.data.sources import document_text
from geex.data.tokenizer import shard_files
from geex.errors import UserError

FORMAT = "geex/packed/1"
SPLITS = ("train", "valid")


def _is_valid(code: str, fraction: float) -> bool:
    return int(hashlib.sha256(code.encode()).hexdigest()[:8], 16) < fraction * 0x100000000


def _tokenize_shard(args: tuple[str, str, str, float, str]) -> dict:
    """Worker: one shard -> ``PARTS/<name>.<split>.bin`` (+ a ``.done`` marker written last)."""
    shard, tokenizer_dir, parts, valid, dtype = args
    from geex.models.tokenizers.codegeex import CodeGeeXTokenizer

    tok = CodeGeeXTokenizer(tokenizer_dir)
    st = os.stat(shard)  # a shard, tokenizer or split fraction that changed is tokenized again
    key = f"{Path(shard).resolve()}|{st.st_size}|{st.st_mtime_ns}|{Path(tokenizer_dir).resolve()}|{valid}|{dtype}"
    name = hashlib.sha256(key.encode()).hexdigest()[:16]
    done = Path(parts) / f"{name}.done"
    if done.is_file():
        return json.loads(done.read_text())
    out = {s: [] for s in SPLITS}
    docs = {s: 0 for s in SPLITS}
    for i, obj in jsonl.objects(shard):
        code = document_text(obj, f"{shard}:{i}")
        split = "valid" if _is_valid(code, valid) else "train"
        # literal: a document that spells <|endoftext|> must not end there
        out[split].append(np.asarray(tok.encode(code, literal=True) + [tok.eos_id], dtype=dtype))
        docs[split] += 1
    info = {"name": name, "documents": docs, "tokens": {}}
    for s in SPLITS:
        arr = np.concatenate(out[s]) if out[s] else np.zeros(0, dtype=dtype)
        arr.tofile(Path(parts) / f"{name}.{s}.bin")
        info["tokens"][s] = int(arr.size)
    done.write_text(json.dumps(info))
    return info


def pack(inputs: list[str], tokenizer_dir: str, out: Path, seq_len: int = 2048, valid: float = 0.005,
         workers: int = 0, progress: bool = True) -> dict:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from geex.models.tokenizers.codegeex import CodeGeeXTokenizer

    if seq_len < 1 or not 0 <= valid < 1:
        raise UserError("`seq_len` must be >= 1 and `valid` in [0, 1)")
    tok = CodeGeeXTokenizer(tokenizer_dir)
    dtype = "uint16" if tok.vocab_size <= 65536 else "uint32"
    shards = shard_files(inputs)
    parts = out / "parts"
    try:
        parts.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot write {out}: {e.strerror or e}") from None
    jobs = [(str(s), str(tokenizer_dir), str(parts), valid, dtype) for s in shards]
    bar = Progress(TextColumn("tokenize"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), disable=not progress)
    # workers leave Ctrl-C to the main process, which stops them (no traceback from each worker)
    with bar, ProcessPoolExecutor(workers or os.cpu_count() or 1, initializer=signal.signal,
                                  initargs=(signal.SIGINT, signal.SIG_IGN)) as pool:
        task = bar.add_task("", total=len(jobs))
        infos = []
        for info in pool.map(_tokenize_shard, jobs):
            infos.append(info)
            bar.advance(task)
    index = {"format": FORMAT, "seq_len": seq_len, "dtype": dtype, "vocab_size": tok.vocab_size,
             "eos_id": tok.eos_id, "tokenizer": str(Path(tokenizer_dir).resolve()), "valid_fraction": valid,
             "shards": [str(s) for s in shards]}
    for s in SPLITS:
        with open(out / f"{s}.bin", "wb") as f:
            for info in infos:
                f.write((parts / f"{info['name']}.{s}.bin").read_bytes())
        n = sum(i["tokens"][s] for i in infos)
        index[s] = {"tokens": n, "documents": sum(i["documents"][s] for i in infos),
                    "sequences": max(0, (n - 1) // seq_len)}
    (out / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    for s, advice in (("valid", "geex train will need run.eval_every=0; pack with a larger `valid` to evaluate on "
                                "held-out data"),
                      ("train", "geex train cannot use it; pack more documents or a smaller `seq_len`")):
        if index[s]["sequences"] == 0:
            warnings.warn(f"the {'validation' if s == 'valid' else 'training'} split is empty: "
                          f"{index[s]['documents']} documents, {index[s]['tokens']} tokens, and a sequence needs "
                          f"{seq_len + 1} (`valid` {valid}); {advice}", RuntimeWarning, stacklevel=2)
    return index


def document_positions(seq: np.ndarray, eos_id: int) -> np.ndarray:
    """Position ids that restart at 0 after every EOS (the EOS itself ends its document)."""
    idx = np.arange(len(seq))
    starts = np.zeros(len(seq), dtype=np.int64)
    after_eos = np.flatnonzero(seq[:-1] == eos_id) + 1
    starts[after_eos] = after_eos
    return idx - np.maximum.accumulate(starts)


class PackedDataset:
    """Sequences of one split in a seeded order per epoch; iteration resumes where a state left it."""

    def __init__(self, directory: str | Path, split: str = "train", seed: int = 0) -> None:
        directory = Path(directory)
        try:
            self.index = json.loads((directory / "index.json").read_text())
        except (OSError, ValueError):
            raise UserError(f"{directory} is not a packed dataset (no readable index.json)") from None
        if self.index.get("format") != FORMAT or split not in SPLITS:
            raise UserError(f"{directory}: not a {FORMAT} dataset, or no split {split!r}")
        self.seq_len = self.index["seq_len"]
        self.n = self.index[split]["sequences"]
        if self.n == 0 and split == "valid":
            raise UserError(f"{directory}: the validation split is empty (it holds no sequence of {self.seq_len + 1} "
                            f"tokens; packed by geex data pack --valid {self.index.get('valid_fraction')}): set run.eval_every=0 "
                            "to train without held-out evaluation, or run geex data pack again with a larger --valid")
        if self.n == 0:
            raise UserError(f"{directory}: the {split} split has fewer than {self.seq_len + 1} tokens: run geex data pack "
                            "on more documents or with a smaller --seq-len")
        self.tokens = np.memmap(directory / f"{split}.bin", dtype=self.index["dtype"], mode="r")
        self.seed, self.epoch, self.position = seed, 0, 0
        self._order = self._permutation(0)

    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)

    def __len__(self) -> int:
        return self.n

    def sequence(self, i: int) -> np.ndarray:
        """Sequence ``i``: ``seq_len + 1`` tokens (inputs, and targets shifted by one)."""
        start = i * self.seq_len
        return np.asarray(self.tokens[start:start + self.seq_len + 1], dtype=np.int64)

    def next_indices(self, count: int) -> list[int]:
        """The next ``count`` sequence indices in the epoch's order, wrapping into the next epoch."""
        out = []
        for _ in range(count):
            if self.position == self.n:
                self.epoch, self.position = self.epoch + 1, 0
                self._order = self._permutation(self.epoch)
            out.append(int(self._order[self.position]))
            self.position += 1
        return out

    def next_batch(self, batch: int, part: int = 0, parts: int = 1) -> np.ndarray:
        """[batch, seq_len + 1]: part ``part`` of the next ``batch * parts`` sequences. Data-parallel
        ranks each read their own part of one shared order, so the sequences a step sees do not
        depend on how many processes share it."""
        indices = self.next_indices(batch * parts)[part * batch:(part + 1) * batch]
        return np.stack([self.sequence(i) for i in indices])

    def state_dict(self) -> dict:
        return {"seed": self.seed, "epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.seed, self.epoch, self.position = state["seed"], state["epoch"], state["position"]
        self._order = self._permutation(self.epoch)
