"""``geex generate`` end to end on a tiny converted model (random weights, real tokenizer)."""

from __future__ import annotations

import subprocess
import sys

import torch

from geex.models.codegeex import CodeGeeX, get_config
from geex.models.formats.codegeex import to_official
from geex.models.fusion import checkpoint_state_dict


def _geex(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "geex", *args], capture_output=True, text=True, timeout=300)


def test_generate_streams_a_completion_with_tokens_per_second(tmp_path, tokenizer_dir):
    model = CodeGeeX(get_config("codegeex-tiny", padded_vocab_size=50432, vocab_size=50400))
    model.init_weights(torch.Generator().manual_seed(0))
    torch.save(to_official(checkpoint_state_dict(model)), tmp_path / "tiny.pt")
    r = _geex("model", "convert", str(tmp_path / "tiny.pt"), str(tmp_path / "tiny"), "--n-head", "4",
              "--tokenizer", str(tokenizer_dir))
    assert r.returncode == 0, r.stderr
    args = ["generate", "--model", str(tmp_path / "tiny"), "--prompt", "def fib(n):\n", "--max-new-tokens", "6"]
    greedy = _geex(*args, "--greedy")
    assert greedy.returncode == 0, greedy.stderr
    assert "tokens/s" in greedy.stderr and "finish: " in greedy.stderr
    assert greedy.stderr.startswith("6 tokens in ")  # the random model never emits EOS here
    assert len(greedy.stdout) > 1  # the streamed text (+ a final newline)
    seeded = [_geex(*args, "--seed", "3").stdout for _ in range(2)]
    assert seeded[0] == seeded[1]  # reproducible (greedy is the argmax: the engine tests check it)
    for mode in ("int8", "int4"):  # quantized at load time; the CPU path dequantizes
        q = _geex(*args, "--greedy", "--quantize", mode)
        assert q.returncode == 0 and q.stderr.startswith("6 tokens in "), q.stderr


def test_generate_user_errors():
    r = _geex("generate", "--model", "/nonexistent", "--prompt", "x")
    assert r.returncode == 2 and "is not a preset" in r.stderr and "Traceback" not in r.stderr
    r = _geex("generate", "--model", "codegeex-tiny", "--prompt", "x", "--tokenizer", "/nonexistent")
    assert r.returncode == 2 and "no tokenizer files" in r.stderr
    # a library warning (GeexWarning) reaches the user once, as one line
    assert r.stderr.count("WARNING: codegeex-tiny with random weights (no --checkpoint): the text is noise\n") == 1
    r = _geex("generate", "--model", "codegeex-tiny", "--prompt", "x", "--temperature", "0")
    assert r.returncode == 2 and "--temperature" in r.stderr
    r = _geex("generate", "--model", "codegeex-tiny", "--prompt", "x", "--quantize", "int3")
    assert r.returncode == 2 and "--quantize" in r.stderr
    if not torch.cuda.is_available():
        r = _geex("generate", "--model", "codegeex-tiny", "--prompt", "x", "--device", "cuda")
        assert r.returncode == 2 and "no CUDA device" in r.stderr and "Traceback" not in r.stderr
