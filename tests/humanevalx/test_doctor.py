"""``geex doctor`` after the README set-up: every toolchain present and a hello-world passes."""

from __future__ import annotations

import io

from rich.console import Console

from geex.humanevalx.doctor import HELLO, doctor
from geex.languages import LANGUAGE_NAMES


def test_hello_world_for_every_language():
    assert set(HELLO) == set(LANGUAGE_NAMES)


def test_doctor_all_green():
    buf = io.StringIO()
    code = doctor(Console(file=buf, width=200))
    text = buf.getvalue()
    assert "bubblewrap+uid" in text, text
    for name in ("Python", "C++", "Java", "JavaScript", "Go", "Rust"):
        assert name in text
    assert text.count("passed (") == 6, text
    assert code == 0, text
