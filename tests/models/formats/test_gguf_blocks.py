"""The default model's quantized weights against the GGUF block formats as ggml defines them
(``dequantize_row_q4_1`` / ``dequantize_row_q8_0`` in ggml-quants.c), decoded here by hand from the
file's bytes: the loader's dequantization (the ``gguf`` package) is not its own oracle, and
``transformers`` calls the same function, so it cannot be one either."""

from __future__ import annotations

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

from geex.models.formats.gguf import _dequantize  # noqa: E402
from geex.models.registry import default_model_path  # noqa: E402


def _q4_1(raw: np.ndarray) -> np.ndarray:
    """Blocks of 20 bytes: scale d (f16), minimum m (f16), 16 bytes of nibbles; weight j of a block is
    d * q_j + m, q_j the low nibble of byte j for j < 16 and the high nibble of byte j - 16 after."""
    blocks = raw.reshape(-1, 20)
    d = blocks[:, 0:2].copy().view(np.float16).astype(np.float32)
    m = blocks[:, 2:4].copy().view(np.float16).astype(np.float32)
    qs = blocks[:, 4:20]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32)  # [blocks, 32]
    return (q * d + m).reshape(-1)


def _q8_0(raw: np.ndarray) -> np.ndarray:
    """Blocks of 34 bytes: scale d (f16), 32 signed bytes; weight j is d * q_j."""
    blocks = raw.reshape(-1, 34)
    d = blocks[:, 0:2].copy().view(np.float16).astype(np.float32)
    q = blocks[:, 2:34].copy().view(np.int8).astype(np.float32)
    return (q * d).reshape(-1)


@pytest.fixture(scope="module")
def reader():
    return gguf.GGUFReader(str(default_model_path()))


def test_q4_1_and_q8_0_blocks_decoded_by_hand(reader):
    by_type: dict[str, list] = {}
    for t in reader.tensors:
        by_type.setdefault(t.tensor_type.name, []).append(t)
    assert by_type.get("Q4_1") and by_type.get("Q8_0")
    checked = 0
    for name, decode in (("Q4_1", _q4_1), ("Q8_0", _q8_0)):
        for t in by_type[name][:6]:
            raw = np.asarray(t.data, dtype=np.uint8).reshape(-1)
            want = decode(raw).reshape([int(d) for d in reversed(t.shape)])
            got = _dequantize(t)
            assert got.shape == want.shape, t.name
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-6, err_msg=t.name)
            checked += 1
    assert checked >= 7
    # the decoding is not trivially satisfied: the weights vary, and the minimum matters in Q4_1
    t = by_type["Q4_1"][0]
    w = _dequantize(t)
    assert w.std() > 0 and len(np.unique(w[:4])) > 1
