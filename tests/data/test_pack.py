"""Tokenizer training and packing: the trained layout loads and round-trips, the packed streams hold
every document once with its EOS, sequences tile the stream, the order resumes exactly."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from geex.data.pack import PackedDataset, document_positions, pack
from geex.data.tokenizer import train_tokenizer
from geex.errors import UserError
from geex.models.tokenizer import CodeGeeXTokenizer

from tests.conftest import SHARED_TOKENIZER

SRC = Path(__file__).resolve().parents[2] / "src" / "geex"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Real code: geex's own Python sources as two JSONL shards (those that spell special tokens out,
    which the CodeGeeX tokenizer matches anywhere, left out)."""
    d = tmp_path_factory.mktemp("shards")
    files = [p for p in sorted(SRC.rglob("*.py")) if "<|" not in p.read_text()][:40]
    half = len(files) // 2
    for name, part in (("a.jsonl", files[:half]), ("b.jsonl", files[half:])):
        with open(d / name, "w") as f:
            for p in part:
                f.write(json.dumps({"code": "# language: Python\n" + p.read_text()}) + "\n")
    return d


@pytest.fixture(scope="module")
def tokenizer(corpus, tmp_path_factory) -> Path:
    return train_tokenizer([str(corpus)], tmp_path_factory.mktemp("tok"), vocab_size=1200)


def _docs(corpus: Path) -> list[str]:
    return [json.loads(line)["code"] for p in sorted(corpus.glob("*.jsonl")) for line in p.open()]


def test_trained_tokenizer_layout_and_round_trip(tokenizer):
    vocab = json.loads((tokenizer / "vocab.json").read_text())
    added = json.loads((tokenizer / "added_tokens.json").read_text())
    assert len(vocab) + len(added) == 1200 and vocab["<|endoftext|>"] == 0
    assert sorted(added.values()) == list(range(len(vocab), 1200))  # the whitespace tokens follow the BPE
    assert "extratoken" not in (tokenizer / "merges.txt").read_text()  # no merges spent on their text
    tok = CodeGeeXTokenizer(tokenizer)
    text = "def f(x):\n    if x:\n        return x  # done\n\tnaïve → 🙂\r\n" + " " * 13 + "y"
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert added["<|extratoken_12|>"] in tok.encode("    return")  # four spaces: one token


def test_pack_holds_every_document_once_with_eos(corpus, tokenizer, tmp_path):
    out = tmp_path / "packed"
    index = pack([str(corpus)], str(tokenizer), out, seq_len=32, valid=0.25, workers=2, progress=False)
    tok = CodeGeeXTokenizer(tokenizer)
    docs = _docs(corpus)
    want = {s: [d for d in docs if (int(hashlib.sha256(d.encode()).hexdigest()[:8], 16) < 0.25 * 2 ** 32) == (s == "valid")]
            for s in ("train", "valid")}
    assert want["valid"] and want["train"]
    for split in ("train", "valid"):
        stream = np.fromfile(out / f"{split}.bin", dtype=index["dtype"])
        assert stream[-1] == tok.eos_id and index[split]["tokens"] == stream.size
        ends = np.flatnonzero(stream == tok.eos_id)
        pieces = np.split(stream, ends + 1)[:-1]
        assert [tok.decode(p[:-1].tolist()) for p in pieces] == want[split]  # in input order
        assert index[split]["documents"] == len(want[split])
        assert index[split]["sequences"] == (stream.size - 1) // 32


def test_sequences_tile_the_stream_and_epochs_cover_them(corpus, tokenizer, tmp_path):
    out = tmp_path / "packed"
    pack([str(corpus)], str(tokenizer), out, seq_len=16, valid=0.0, workers=1, progress=False)
    stream = np.fromfile(out / "train.bin", dtype=np.uint16)
    ds = PackedDataset(out, "train", seed=3)
    assert np.array_equal(ds.sequence(2), stream[32:49]) and len(ds.sequence(0)) == 17
    epoch = ds.next_batch(len(ds))
    rows = {tuple(row) for row in epoch}
    assert len(rows) == len({tuple(ds.sequence(i)) for i in range(len(ds))})  # every sequence once
    assert not np.array_equal(epoch[:, 0], np.stack([ds.sequence(i) for i in range(len(ds))])[:, 0])  # shuffled
    assert ds.epoch == 0 and ds.position == len(ds)
    ds.next_batch(1)
    assert (ds.epoch, ds.position) == (1, 1)  # the next epoch starts in a new order


def test_resumed_order_equals_uninterrupted(corpus, tokenizer, tmp_path):
    out = tmp_path / "packed"
    pack([str(corpus)], str(tokenizer), out, seq_len=64, valid=0.0, workers=1, progress=False)
    n = len(PackedDataset(out))
    batch = max(1, n // 3 + 1)  # batches straddle epoch boundaries
    whole = PackedDataset(out, seed=7)
    reference = [whole.next_batch(batch) for _ in range(8)]
    first = PackedDataset(out, seed=7)
    got = [first.next_batch(batch) for _ in range(3)]
    state = json.loads(json.dumps(first.state_dict()))  # survives a checkpoint file
    second = PackedDataset(out, seed=0)
    second.load_state_dict(state)
    got += [second.next_batch(batch) for _ in range(5)]
    assert all(np.array_equal(a, b) for a, b in zip(got, reference))
    other = PackedDataset(out, seed=8)
    assert not np.array_equal(other.next_batch(batch), reference[0])


def test_a_rerun_reuses_tokenized_shards(corpus, tokenizer, tmp_path):
    out = tmp_path / "packed"
    pack([str(corpus)], str(tokenizer), out, seq_len=32, valid=0.1, workers=1, progress=False)
    parts = {p: p.stat().st_mtime_ns for p in (out / "parts").glob("*.bin")}
    first = (out / "train.bin").read_bytes()
    pack([str(corpus)], str(tokenizer), out, seq_len=32, valid=0.1, workers=1, progress=False)
    assert {p: p.stat().st_mtime_ns for p in (out / "parts").glob("*.bin")} == parts
    assert (out / "train.bin").read_bytes() == first
    pack([str(corpus)], str(tokenizer), out, seq_len=32, valid=0.5, workers=1, progress=False)  # another split
    assert len(list((out / "parts").glob("*.done"))) == 4


def test_document_positions_restart_after_eos():
    seq = np.array([5, 6, 0, 7, 8, 9, 0, 0, 4])
    assert document_positions(seq, 0).tolist() == [0, 1, 2, 0, 1, 2, 3, 0, 0]


def test_errors(tmp_path, tokenizer):
    with pytest.raises(UserError):
        PackedDataset(tmp_path)
    with pytest.raises(UserError):
        pack([str(tmp_path / "missing")], str(tokenizer), tmp_path / "o", progress=False)
    with pytest.raises(UserError):
        train_tokenizer([str(tmp_path / "missing")], tmp_path / "t")


def test_a_document_that_spells_eos_is_not_cut(tmp_path):
    """Corpus text is text: a literal <|endoftext|> in a document stays characters, so the only EOS
    ids are the ones that end documents."""
    shard = tmp_path / "s.jsonl"
    docs = ['# language: Python\nEOS = "<|endoftext|>"\n', "// language: C++\nint x;  // <|extratoken_12|>\n"]
    shard.write_text("".join(json.dumps({"code": d}) + "\n" for d in docs))
    tokdir = SHARED_TOKENIZER
    pack([str(shard)], str(tokdir), tmp_path / "p", seq_len=8, valid=0.0, workers=1, progress=False)
    tokens = np.fromfile(tmp_path / "p" / "train.bin", dtype=np.uint16).tolist()
    tok = CodeGeeXTokenizer(tokdir)
    assert tokens.count(tok.eos_id) == 2
    assert tok.decode(tokens) == "<|endoftext|>".join(docs) + "<|endoftext|>"
