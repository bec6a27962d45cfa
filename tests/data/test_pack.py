"""Tokenizer training and packing: the trained layout loads and round-trips, the packed streams hold
every document once with its EOS, sequences tile the stream, the order resumes exactly."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from geex.data.pack import PackedDataset, document_positions, pack
from geex.data.tokenizer import train_tokenizer
from geex.errors import UserError
from geex.models.tokenizers.codegeex import CodeGeeXTokenizer
from tests.conftest import SHARED_TOKENIZER

VOCAB = 600  # what a BPE trained on the corpus below reaches


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, dataset_dir) -> Path:
    """Real code that no commit of this project changes: the first 40 HumanEval-X Python problems
    (prompt and solution) from ../shared, as two JSONL shards."""
    d = tmp_path_factory.mktemp("shards")
    with gzip.open(dataset_dir / "humaneval_python.jsonl.gz", "rt") as f:
        codes = [r["prompt"] + r["canonical_solution"] for r in map(json.loads, list(f)[:40])]
    for name, part in (("a.jsonl", codes[:20]), ("b.jsonl", codes[20:])):
        with open(d / name, "w") as f:
            for code in part:
                f.write(json.dumps({"code": "# language: Python\n" + code}) + "\n")
    return d


@pytest.fixture(scope="module")
def tokenizer(corpus, tmp_path_factory) -> Path:
    return train_tokenizer([str(corpus)], tmp_path_factory.mktemp("tok"), vocab_size=VOCAB)


def _docs(corpus: Path) -> list[str]:
    return [json.loads(line)["code"] for p in sorted(corpus.glob("*.jsonl")) for line in p.open()]


def test_trained_tokenizer_layout_and_round_trip(tokenizer):
    vocab = json.loads((tokenizer / "vocab.json").read_text())
    added = json.loads((tokenizer / "added_tokens.json").read_text())
    assert len(vocab) + len(added) == VOCAB and vocab["<|endoftext|>"] == 0
    assert sorted(added.values()) == list(range(len(vocab), VOCAB))  # the whitespace tokens follow the BPE
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
    # an EOS id with ids on both sides of it: only that id ends a document
    assert document_positions(np.array([5, 7, 3, 9, 7, 1]), 7).tolist() == [0, 1, 0, 1, 2, 0]


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


def test_the_split_is_the_hash_under_the_fraction_by_hand():
    """A document is held out when the first 8 hex digits of its SHA-256, as a number, fall strictly
    below fraction × 2³²: at a fraction of exactly that number it stays in train, one above it goes
    to valid."""
    from geex.data.pack import _is_valid

    code = "def f():\n    return 1\n"
    h = int(hashlib.sha256(code.encode()).hexdigest()[:8], 16)
    assert 0 < h < 2 ** 32 - 1
    assert not _is_valid(code, h / 2 ** 32)
    assert _is_valid(code, (h + 1) / 2 ** 32)
    assert not _is_valid(code, 0.0) and _is_valid(code, (2 ** 32 - 1) / 2 ** 32)
    # half a unit above the hash of a document in the upper half: the scale is exactly 2^32
    upper = next(c for c in (f"x = {i}\n" for i in range(100))
                 if int(hashlib.sha256(c.encode()).hexdigest()[:8], 16) > 2 ** 31)
    hu = int(hashlib.sha256(upper.encode()).hexdigest()[:8], 16)
    assert _is_valid(upper, (hu + 0.5) / 2 ** 32) and not _is_valid(upper, (hu - 0.5) / 2 ** 32)


def test_the_index_describes_the_pack(corpus, tokenizer, tmp_path):
    out = tmp_path / "packed"
    index = pack([str(corpus)], str(tokenizer), out, seq_len=32, valid=0.25, workers=1, progress=False)
    tok = CodeGeeXTokenizer(tokenizer)
    assert index == json.loads((out / "index.json").read_text())
    assert (index["format"], index["seq_len"], index["dtype"]) == ("geex/packed/1", 32, "uint16")
    assert (index["vocab_size"], index["eos_id"], index["valid_fraction"]) == (VOCAB, tok.eos_id, 0.25)
    assert index["tokenizer"] == str(tokenizer.resolve())
    assert index["shards"] == [str(corpus / "a.jsonl"), str(corpus / "b.jsonl")]
    assert index["train"]["documents"] + index["valid"]["documents"] == 40


def test_a_vocabulary_past_uint16_is_packed_as_uint32(corpus, tokenizer, tmp_path, monkeypatch):
    """Token ids fit ``uint16`` up to a vocabulary of 65,536; one more and the stream is ``uint32``."""
    import geex.models.tokenizers.codegeex as tokenizer_module

    real_init = tokenizer_module.CodeGeeXTokenizer.__init__
    for vocab, dtype in ((65536, "uint16"), (65537, "uint32")):
        def init(self, *a, vocab=vocab, **k):
            real_init(self, *a, **k)
            self.vocab_size = vocab
        monkeypatch.setattr(tokenizer_module.CodeGeeXTokenizer, "__init__", init)
        out = tmp_path / dtype
        index = pack([str(corpus / "a.jsonl")], str(tokenizer), out, seq_len=32, valid=0.0, workers=1,
                     progress=False)
        assert index["dtype"] == dtype
        stream = np.fromfile(out / "train.bin", dtype=dtype)
        assert stream.size == index["train"]["tokens"]
        monkeypatch.undo()
        tok = CodeGeeXTokenizer(tokenizer)
        want = [json.loads(line)["code"] for line in (corpus / "a.jsonl").open()]
        assert tok.decode(stream.tolist()) == "<|endoftext|>".join(want) + "<|endoftext|>"


def test_a_changed_shard_is_tokenized_again(corpus, tokenizer, tmp_path):
    """The reuse key is the shard's path, size and modification time (and the tokenizer, split and
    dtype): new content of the same size, or any new size, is read again; nothing stale survives."""
    shard = tmp_path / "s.jsonl"
    shard.write_text(json.dumps({"code": "aaaa"}) + "\n")
    out = tmp_path / "packed"
    tok = CodeGeeXTokenizer(tokenizer)

    def packed_text() -> str:
        pack([str(shard)], str(tokenizer), out, seq_len=1, valid=0.0, workers=1, progress=False)
        return tok.decode(np.fromfile(out / "train.bin", dtype=np.uint16).tolist())

    assert packed_text() == "aaaa<|endoftext|>"
    stat = shard.stat()
    shard.write_text(json.dumps({"code": "bbbb"}) + "\n")  # the same size: only the time tells
    os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10 ** 9))
    assert packed_text() == "bbbb<|endoftext|>"
    shard.write_text(json.dumps({"code": "cc"}) + "\n")  # another size, the same time
    os.utime(shard, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10 ** 9))
    assert packed_text() == "cc<|endoftext|>"
    assert len(list((out / "parts").glob("*.done"))) == 3
    other = tmp_path / "tok2"
    shutil.copytree(tokenizer, other)  # another tokenizer: read again, not taken from the parts
    pack([str(shard)], str(other), out, seq_len=1, valid=0.0, workers=1, progress=False)
    assert len(list((out / "parts").glob("*.done"))) == 4


def test_empty_splits_warn_with_counts(corpus, tokenizer, tmp_path):
    with pytest.warns(RuntimeWarning, match=r"validation split is empty: 0 documents, 0 tokens, and a "
                                            r"sequence needs 32 \(`valid` 0.0\)"):
        index = pack([str(corpus)], str(tokenizer), tmp_path / "a", seq_len=31, valid=0.0, workers=1,
                     progress=False)
    assert index["valid"] == {"tokens": 0, "documents": 0, "sequences": 0}
    big = index["train"]["tokens"]
    with pytest.warns(RuntimeWarning, match=f"training split is empty: 40 documents, {big} tokens, and a "
                                            f"sequence needs {big + 1}"):
        index = pack([str(corpus)], str(tokenizer), tmp_path / "b", seq_len=big, valid=0.0, workers=1,
                     progress=False)
    assert index["train"]["sequences"] == 0
    with pytest.raises(UserError, match=f"fewer than {big + 1} tokens"):
        PackedDataset(tmp_path / "b", "train")
    with pytest.raises(UserError, match="validation split is empty \\(it holds no sequence of 32 tokens"):
        PackedDataset(tmp_path / "a", "valid")
    with pytest.raises(UserError, match="validation split is empty"):  # the split's name, however made
        PackedDataset(tmp_path / "a", "".join(["va", "lid"]))
    with pytest.warns(RuntimeWarning) as caught:  # exactly one sequence (seq_len + 1 tokens): no warning for it
        index = pack([str(corpus)], str(tokenizer), tmp_path / "c", seq_len=big - 1, valid=0.0, workers=1,
                     progress=False)
    assert index["train"]["sequences"] == 1 and len(PackedDataset(tmp_path / "c")) == 1
    assert [str(w.message).split(":")[0] for w in caught] == ["the validation split is empty"]


def test_an_output_that_cannot_be_made_is_a_user_error(corpus, tokenizer, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError) as e:
        pack([str(corpus)], str(tokenizer), tmp_path / "file" / "packed", progress=False)
    assert str(e.value) == f"cannot write {tmp_path / 'file' / 'packed'}: Not a directory"  # the reason, no errno


def test_pack_options_are_checked(corpus, tokenizer, tmp_path):
    for seq_len, valid in ((0, 0.1), (8, -0.01), (8, 1.0), (8, 1.5)):
        with pytest.raises(UserError, match="`seq_len`"):
            pack([str(corpus)], str(tokenizer), tmp_path / "x", seq_len=seq_len, valid=valid, progress=False)
    index = pack([str(corpus)], str(tokenizer), tmp_path / "y", seq_len=1, valid=0.0, workers=1, progress=False)
    assert index["train"]["sequences"] == index["train"]["tokens"] - 1  # seq_len 1: every pair


def test_the_dataset_refuses_what_is_not_a_pack(corpus, tokenizer, tmp_path):
    out = tmp_path / "packed"
    pack([str(corpus)], str(tokenizer), out, seq_len=32, valid=0.25, workers=1, progress=False)
    with pytest.raises(UserError, match="no split 'test'"):
        PackedDataset(out, "test")
    index = json.loads((out / "index.json").read_text())
    for other in ("geex/packed/0", "geex/packed/2"):  # older and newer formats alike
        (out / "index.json").write_text(json.dumps({**index, "format": other}))
        with pytest.raises(UserError, match="not a geex/packed/1 dataset"):
            PackedDataset(out)
    (out / "index.json").write_text("{")
    with pytest.raises(UserError, match="no readable index.json"):
        PackedDataset(out)


def test_data_parallel_parts_split_one_shared_order(corpus, tokenizer, tmp_path):
    """Two ranks reading part 0 and part 1 of each step see, together, what one process reads: the
    first half of the step's sequences and the second, in order."""
    out = tmp_path / "packed"
    pack([str(corpus)], str(tokenizer), out, seq_len=16, valid=0.0, workers=1, progress=False)
    n = len(PackedDataset(out))
    # epoch 0's order is numpy's permutation seeded with [seed, 0]; the default seed is 0
    assert PackedDataset(out, seed=5).next_indices(n) == np.random.default_rng([5, 0]).permutation(n).tolist()
    assert PackedDataset(out).next_indices(n) == np.random.default_rng([0, 0]).permutation(n).tolist()
    one, rank0, rank1 = (PackedDataset(out, seed=5) for _ in range(3))
    for _ in range(3):
        whole = one.next_batch(6)
        assert np.array_equal(rank0.next_batch(3, part=0, parts=2), whole[:3])
        assert np.array_equal(rank1.next_batch(3, part=1, parts=2), whole[3:])
    assert rank0.state_dict() == rank1.state_dict() == one.state_dict()


def test_sequence_counts_by_hand(corpus, tokenizer, tmp_path):
    """A stream of n tokens holds (n - 1) // L sequences of L + 1 tokens (the last token of one is the
    first of the next): checked at an even n and L = n / 2 (one sequence, not two), and at an odd L
    (sequence 0 is the stream's first L + 1 tokens)."""
    tok = CodeGeeXTokenizer(tokenizer)
    docs = _docs(corpus)
    n = sum(len(tok.encode(d)) + 1 for d in docs)
    if n % 2:  # make n even: one more document of an odd number of tokens with its EOS
        extra = next(t for t in ("ab", "a b", "abc", "a bc", "x = 1") if len(tok.encode(t)) % 2 == 0)
        docs.append(extra)
        n += len(tok.encode(extra)) + 1
    shard = tmp_path / "s.jsonl"
    shard.write_text("".join(json.dumps({"code": d}) + "\n" for d in docs))
    index = pack([str(shard)], str(tokenizer), tmp_path / "even", seq_len=n // 2, valid=0.0, workers=1, progress=False)
    assert (index["train"]["tokens"], index["train"]["sequences"]) == (n, 1)
    pack([str(shard)], str(tokenizer), tmp_path / "odd", seq_len=15, valid=0.0, workers=1, progress=False)
    stream = np.fromfile(tmp_path / "odd" / "train.bin", dtype=np.uint16)
    ds = PackedDataset(tmp_path / "odd")
    assert len(ds) == (n - 1) // 15 and np.array_equal(ds.sequence(0), stream[:16])


def test_pack_defaults(corpus, tokenizer, tmp_path, capfd):
    """A sequence of 2048 tokens and 0.5 % held out unless told otherwise; progress=False prints nothing."""
    index = pack([str(corpus)], str(tokenizer), tmp_path / "p", progress=False)
    assert (index["seq_len"], index["valid_fraction"]) == (2048, 0.005)
    out, err = capfd.readouterr()
    assert "tokenize" not in out + err
