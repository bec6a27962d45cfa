"""``diagnose``: where a cut-short GGUF file ends, on files built here byte by byte from the format's
layout (github.com/ggml-org/ggml docs/gguf.md: magic, version, tensor and key/value counts, key/values
of typed values, tensor infos, aligned tensor data), in both byte orders — so the expected byte
positions are computed by hand, not by the code under test or the ``gguf`` package's reader."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

pytest.importorskip("gguf")

from geex.models.formats.gguf import diagnose, is_gguf  # noqa: E402

# GGUF value types: (type id, struct format) of each scalar, in the format's numbering
SCALARS = [(0, "B", 7), (1, "b", -7), (2, "H", 700), (3, "h", -700), (4, "I", 70_000), (5, "i", -70_000),
           (6, "f", 1.5), (7, "?", True), (10, "Q", 2**40), (11, "q", -(2**40)), (12, "d", 2.5)]
STRING, ARRAY, F32 = 8, 9, 0


class Writer:
    """GGUF bytes in one byte order ("<" or ">")."""

    def __init__(self, order: str) -> None:
        self.order, self.out = order, bytearray()

    def num(self, fmt: str, value) -> Writer:
        self.out += struct.pack(self.order + fmt, value)
        return self

    def string(self, text: str) -> Writer:
        raw = text.encode()
        self.num("Q", len(raw))
        self.out += raw
        return self

    def kv(self, key: str, kind: int, fmt: str | None = None, value=None) -> Writer:
        self.string(key).num("I", kind)
        if kind == STRING:
            return self.string(value)
        return self.num(fmt, value)


def build(order: str = "<", alignment: int | None = 64, dims: tuple[int, ...] = (3, 5),
          extra_keys: bool = True, name: str = "blk.0.weight") -> tuple[bytes, int, int]:
    """(file, where the header and tensor table end, where the tensor data ends): one F32 tensor."""
    n_kv = (len(SCALARS) + 4 if extra_keys else 0) + (alignment is not None)
    w = Writer(order)
    w.out += b"GGUF"
    w.num("I", 3).num("Q", 1).num("Q", n_kv)
    if extra_keys:
        for kind, fmt, value in SCALARS:
            w.kv(f"test.scalar{kind}", kind, fmt, value)
        w.kv("general.name", STRING, value="hand-built")
        w.kv("general.aaa", 4, "I", 128)  # a uint32 whose key sorts before general.alignment: not it
        w.string("test.u16s").num("I", ARRAY).num("I", 2).num("Q", 3)  # an array of scalars
        for v in (1, 2, 3):
            w.num("H", v)
        w.string("test.names").num("I", ARRAY).num("I", STRING).num("Q", 2)  # an array of strings
        w.string("ab").string("cde")
    if alignment is not None:
        w.kv("general.alignment", 4, "I", alignment)
    w.string(name).num("I", len(dims))
    for d in dims:
        w.num("Q", d)
    w.num("I", F32).num("Q", 0)  # type, offset into the data
    header_end = len(w.out)
    align = alignment or 32  # no key, or 0 (which the format does not allow): the default, 32
    start = -(-header_end // align) * align
    data_end = start + 4 * dims[0] * dims[1]
    w.out += b"\0" * (data_end - header_end)
    return bytes(w.out), header_end, data_end


def _write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "m.gguf"
    path.write_bytes(data)
    return path


def test_the_hand_built_file_is_what_the_gguf_package_reads(tmp_path):
    """Positive control on the builder: the ``gguf`` package's reader finds the same tensor where the
    builder put it, and every key."""
    import gguf

    data, header_end, data_end = build()
    reader = gguf.GGUFReader(str(_write(tmp_path, data)))
    assert reader.fields["general.alignment"].contents() == 64
    assert reader.fields["test.names"].contents() == ["ab", "cde"]
    assert reader.fields["test.scalar11"].contents() == -(2**40)
    (t,) = reader.tensors
    assert t.data_offset == -(-header_end // 64) * 64 and t.data_offset + t.n_bytes == data_end


@pytest.mark.parametrize("order", ["<", ">"])
def test_a_complete_file_is_not_diagnosed(order, tmp_path):
    data, _, _ = build(order)
    assert diagnose(_write(tmp_path, data)) is None


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("alignment", [64, None, 0, 1])
def test_a_cut_in_the_data_names_the_exact_end(order, alignment, tmp_path):
    """Every value type skipped by its own size (one wrong size and the walk lands elsewhere), the
    alignment read from its key (or 32), the byte order told from the version."""
    data, _, data_end = build(order, alignment)
    cut = data_end - 10
    path = _write(tmp_path, data[:cut])
    assert diagnose(path) == (f"truncated GGUF file {path}: {cut:,} bytes, but its tensors end at byte "
                              f"{data_end:,} (10 bytes missing: a download cut short?)")


def test_the_alignment_changes_where_the_data_starts():
    """The same file with alignment 64 and with 32 (the default) needs different sizes."""
    _, header_end, end64 = build(alignment=64)
    _, header_end32, end32 = build(alignment=32)
    assert header_end == header_end32 and end64 != end32  # the control: the alignments do differ here


@pytest.mark.parametrize("order", ["<", ">"])
def test_cuts_in_the_header_metadata_and_table(order, tmp_path):
    data, header_end, _ = build(order)
    for cut, where in ((8, "its header"), (30, "its metadata"), (header_end - 3, "its tensor table")):
        path = _write(tmp_path, data[:cut])
        assert diagnose(path) == f"truncated GGUF file {path}: it ends inside {where}, at byte {cut:,}"


def test_a_file_ending_exactly_after_its_header_and_no_tensors(tmp_path):
    """No tensors, nothing after the last key/value: complete, to the last byte."""
    w = Writer("<")
    w.out += b"GGUF"
    w.num("I", 3).num("Q", 0).num("Q", 1).kv("general.name", STRING, value="x")
    assert diagnose(_write(tmp_path, bytes(w.out))) is None


def test_tiny_files(tmp_path):
    for data in (b"", b"GGU"):
        path = _write(tmp_path, data)
        assert diagnose(path) == f"truncated GGUF file {path}: {len(data)} bytes, not even the 'GGUF' signature"
    path = _write(tmp_path, b"GGUF")
    assert diagnose(path) == f"truncated GGUF file {path}: it ends inside its header, at byte 4"


def test_counts_no_file_of_its_size_could_hold_are_corruption(tmp_path):
    """More key/values than the file has bytes: corrupt, not cut short (None); as many as it has
    bytes is still possible, so that file is read as cut short."""
    for n_tensors, n_kv, expected in ((0, 10**6, None), (10**6, 0, None)):
        w = Writer("<")
        w.out += b"GGUF"
        w.num("I", 3).num("Q", n_tensors).num("Q", n_kv)
        assert diagnose(_write(tmp_path, bytes(w.out))) is expected
    w = Writer("<")
    w.out += b"GGUF"
    w.num("I", 3).num("Q", 40).num("Q", 40)
    w.out += b"\x05" * (40 - len(w.out))  # 40 bytes: counts equal to the size
    path = _write(tmp_path, bytes(w.out))
    assert diagnose(path) == f"truncated GGUF file {path}: it ends inside its metadata, at byte 40"


def test_unknown_types_are_corruption_not_a_cut(tmp_path):
    w = Writer("<")
    w.out += b"GGUF"
    w.num("I", 3).num("Q", 0).num("Q", 2)
    w.string("test.odd").num("I", 99)  # no such value type; the file ends here
    assert diagnose(_write(tmp_path, bytes(w.out))) is None
    w = Writer("<")
    w.out += b"GGUF"
    w.num("I", 3).num("Q", 1).num("Q", 0)
    w.string("t").num("I", 1).num("Q", 4).num("I", 9999).num("Q", 0)  # no such tensor type
    assert diagnose(_write(tmp_path, bytes(w.out) + b"\0" * 64)) is None


def test_only_the_signature_makes_a_gguf_file(tmp_path):
    for head, expected in ((b"GGUF", True), (b"GGUE", False), (b"AAAA", False), (b"GGUG", False)):
        path = _write(tmp_path, head + b"\0" * 20)
        assert is_gguf(path) is expected, head


@pytest.mark.parametrize("alignment", [64, None])
def test_a_header_ending_on_the_alignment_needs_no_padding(alignment, tmp_path):
    """The data starts right at the header's end when that end is a multiple of the alignment
    (rounding up a multiple leaves it): the tensor name is lengthened until it is."""
    align = alignment or 32
    name = next(n for n in (f"blk.0.w{'x' * i}" for i in range(align)) if build(alignment=alignment, name=n)[1] % align == 0)
    data, header_end, data_end = build(alignment=alignment, name=name)
    assert data_end == header_end + 4 * 3 * 5  # no padding between header and data
    path = _write(tmp_path, data[:data_end - 7])
    assert diagnose(path) == (f"truncated GGUF file {path}: {data_end - 7:,} bytes, but its tensors end at byte "
                              f"{data_end:,} (7 bytes missing: a download cut short?)")


def test_the_end_adds_the_data_start_and_size_whatever_their_bits(tmp_path):
    """Data start and data size that share set bits (a sum is not an OR of them there)."""
    data, header_end, data_end = build(dims=(8, 4))  # 128 bytes of data
    start = data_end - 128
    assert start & 128 and start + 128 != start | 128  # the control: the bits do overlap here
    path = _write(tmp_path, data[:data_end - 1])
    assert f"end at byte {data_end:,} (1 bytes missing" in diagnose(path)


def test_an_alignment_that_is_not_positive_is_the_default(tmp_path):
    """``general.alignment`` written as a signed -64 (the format wants a positive uint32): the data is
    looked for at the default 32, as for 0."""
    w = Writer("<")
    w.out += b"GGUF"
    w.num("I", 3).num("Q", 1).num("Q", 1).kv("general.alignment", 5, "i", -64)
    w.string("blk.0.weight").num("I", 2).num("Q", 3).num("Q", 5).num("I", F32).num("Q", 0)
    start = -(-len(w.out) // 32) * 32
    path = _write(tmp_path, bytes(w.out) + b"\0" * (start - len(w.out) + 60 - 4))
    assert diagnose(path) == (f"truncated GGUF file {path}: {start + 56:,} bytes, but its tensors end at byte "
                              f"{start + 60:,} (4 bytes missing: a download cut short?)")
