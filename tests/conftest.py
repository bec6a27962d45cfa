"""Shared test set-up: HumanEval-X data from ../shared (as CI lays it out), toolchain checks."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASET = ROOT.parent / "shared" / "humaneval-x"
SHARED_TOKENIZER = ROOT.parent / "shared" / "tokenizer" / "codegeex"

# Without a GPU, Triton kernels run on the CPU through Triton's interpreter; it must be chosen before
# any kernel is defined.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

if "GEEX_HUMANEVALX" not in os.environ and SHARED_DATASET.is_dir():
    os.environ["GEEX_HUMANEVALX"] = str(SHARED_DATASET)

# The suite's own verdict cache, fresh every session: a warm machine-wide cache must never answer
# for the code under test. Subprocesses inherit it. (The toolchain caches stay the machine's: set-up
# installs into them, e.g. js-md5.)
SESSION_CACHE = Path(tempfile.mkdtemp(prefix="geex-test-cache-"))
os.environ["GEEX_VERDICT_CACHE"] = str(SESSION_CACHE / "verdicts.sqlite")
# torch.compile's kernels too: Inductor's machine-wide cache (/tmp/torchinductor_$USER) would let a
# second run skip the compilation that the compiled-training test exists to exercise (and CI never has)
os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(SESSION_CACHE / "inductor")


def pytest_sessionfinish(session, exitstatus) -> None:
    shutil.rmtree(SESSION_CACHE, ignore_errors=True)


@pytest.fixture(scope="session")
def dataset_dir() -> Path:
    path = Path(os.environ.get("GEEX_HUMANEVALX", SHARED_DATASET))
    if not path.is_dir():
        pytest.fail(f"HumanEval-X data not found at {path}: set GEEX_HUMANEVALX")
    return path


@pytest.fixture(scope="session")
def tokenizer_dir() -> Path:
    if not (SHARED_TOKENIZER / "vocab.json").is_file():
        pytest.fail(f"CodeGeeX tokenizer files not found at {SHARED_TOKENIZER}")
    return SHARED_TOKENIZER


@pytest.fixture(scope="session")
def codegeex_tokenizer(tokenizer_dir):
    from geex.models.tokenizers.codegeex import CodeGeeXTokenizer

    return CodeGeeXTokenizer(tokenizer_dir)


@pytest.fixture(scope="session")
def default_model_fp32():
    """The embedded default model as ``registry.load()`` returns it (fp32, not prepared), loaded once
    for the session (~5 s a load). Shared: tests must not change it (copy it first)."""
    from geex.models import registry

    return registry.load(dtype=torch.float32)


def free_port() -> int:
    """A TCP port free now on 127.0.0.1 (torchrun's rendezvous in multi-process tests)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
