"""``registry.load`` resolving ``--model`` (errors for what it cannot resolve), and ``geex generate``
with the embedded default model, end to end in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from geex.errors import UserError
from geex.models import registry
from tests.conftest import SHARED_TOKENIZER


def _geex(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "geex", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("spec", ["/nonexistent/model", "no-such-model", "./missing/dir", "~/no/such.gguf",
                                  "missing.gguf", "a/b/c"])
def test_a_missing_path_or_unknown_name_is_a_user_error(spec):
    with pytest.raises(UserError) as e:
        registry.load(spec)
    message = str(e.value)
    assert spec in message
    assert "is not a preset" in message and "local path" in message
    assert registry.DEFAULT_MODEL in message  # it lists what is known


def test_a_llama_preset_without_a_tokenizer_is_a_user_error():
    with pytest.raises(UserError, match="`tokenizer`"):
        registry.load("llama-tiny")


def test_the_default_model_path_is_the_installed_gguf_file():
    path = registry.default_model_path()
    assert path.is_file() and path.suffix == ".gguf"
    with open(path, "rb") as f:
        assert f.read(4) == b"GGUF"


def test_a_hub_id_offline_is_a_quick_user_error(tmp_path, monkeypatch):
    """In this process: huggingface_hub read HF_HUB_OFFLINE when it was imported, so its constant is
    patched too; an empty cache, so nothing can be found locally."""
    import huggingface_hub.constants as constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    start = time.perf_counter()
    with pytest.raises(UserError) as e:
        registry.load("someorg/somemodel")
    assert time.perf_counter() - start < 10
    message = str(e.value)
    assert "someorg/somemodel" in message
    assert "offline" in message.lower() and "cache" in message.lower()


def test_a_hub_id_offline_through_the_cli(tmp_path):
    start = time.perf_counter()
    r = _geex("generate", "--model", "someorg/somemodel", "--prompt", "x",
              env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    assert time.perf_counter() - start < 60
    assert r.returncode == 2, r.stderr
    assert "offline" in r.stderr.lower() and "cache" in r.stderr.lower()
    assert "Traceback" not in r.stderr
    assert r.stdout == ""


def test_generate_with_the_default_model():
    r = _geex("generate", "--prompt", "def fibonacci(n):", "--language", "python", "--max-new-tokens", "64")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip(), r.stderr
    lines = [line for line in r.stderr.splitlines() if "tokens/s" in line]
    assert len(lines) == 1, r.stderr
    assert registry.DEFAULT_MODEL in lines[0]
    assert "Traceback" not in r.stderr


def test_chat_with_the_default_model():
    r = _geex("generate", "--chat", "--prompt", "Say hi", "--max-new-tokens", "8", "--greedy")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip(), r.stderr
    assert "<|im_start|>" not in r.stdout and "<|im_end|>" not in r.stdout  # only the reply is printed
    assert "tokens/s" in r.stderr
    n = int(r.stderr.split(" tokens in ")[0].splitlines()[-1])
    assert 1 <= n <= 8


def test_chat_with_a_model_without_a_chat_template_is_a_user_error():
    if not (SHARED_TOKENIZER / "vocab.json").is_file():
        pytest.fail(f"CodeGeeX tokenizer files not found at {SHARED_TOKENIZER}")
    r = _geex("generate", "--chat", "--model", "codegeex-tiny", "--tokenizer", str(SHARED_TOKENIZER),
              "--prompt", "Say hi", "--max-new-tokens", "4")
    assert r.returncode == 2, r.stderr
    assert "chat template" in r.stderr and "--chat" in r.stderr
    assert "Traceback" not in r.stderr
    assert r.stdout == ""


def test_a_gguf_named_file_that_is_not_gguf_says_so(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"PK\x03\x04 not a gguf file")
    with pytest.raises(UserError, match="not a GGUF file"):
        registry.load(str(path))
