"""The playground at ``/`` in a real browser: pytest-playwright drives Debian's ``chromium`` (no
browser download) against ``geex serve`` on the default model. Typing streams ghost text, the stats
show a time to first token and a rate, Esc cancels mid-stream (the server counts it), Translate and
Explain answer. Screenshots of each tab go to ``$GEEX_PLAYGROUND_SHOTS`` when it is set (that is how
``docs/playground-*.png`` are made)."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from geex.serve.config import ServeConfig
from tests.serve.conftest import default_engine, metric_sum, start_server

pytest.importorskip("playwright")
from playwright.sync_api import expect  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed "
                                "(scripts/setup.sh installs it)")

STEP_S = 0.02  # while `slow` is set, each model step waits this long: a stream long enough to cancel by hand


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Debian's chromium, offline: no background traffic to a network that is not there."""
    return {**browser_type_launch_args, "executable_path": shutil.which("chromium"),
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync"]}


@pytest.fixture(scope="module")
def chromium(browser_type_launch_args):
    """The browser for this module only. pytest-playwright's own ``page`` keeps Playwright's sync
    API (an event loop marked running in the main thread) alive to the end of the session, and every
    later ``asyncio.run`` in the main thread would fail: this one stops with the module."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(**browser_type_launch_args)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    context = chromium.new_context()
    yield context.new_page()
    context.close()


@pytest.fixture(scope="module")
def server(default_model):
    engine = default_engine(default_model)
    slow = threading.Event()
    hook = engine.scheduler.model.register_forward_pre_hook(lambda *_: time.sleep(STEP_S) if slow.is_set() else None)
    running = start_server(ServeConfig(port=0), engine=engine)
    running.slow = slow
    yield running
    running.stop()
    engine.scheduler.close()
    hook.remove()


def _shot(page, name: str) -> None:
    where = os.environ.get("GEEX_PLAYGROUND_SHOTS")
    if where:
        page.screenshot(path=str(Path(where) / f"playground-{name}.png"), full_page=True)


def _number(page, testid: str) -> float:
    text = page.get_by_test_id(testid).inner_text()
    return float(text) if text not in ("–", "") else 0.0


def test_complete_streams_ghost_text_and_esc_cancels(page, server):
    page.goto(server.url + "/")
    assert "geex" in page.title()
    page.get_by_test_id("model").filter(has_text="FIM: prefix only").wait_for()  # /v1/models read
    prefix = page.get_by_test_id("prefix")
    prefix.fill("")
    prefix.press_sequentially("def fibonacci(n):\n    ", delay=20)
    page.get_by_test_id("status").filter(has_text="done").wait_for(timeout=60_000)
    assert page.get_by_test_id("ghost").inner_text().strip()  # the completion, streamed in
    assert _number(page, "ttft") > 0 and _number(page, "tps") > 0
    _shot(page, "complete")

    # a longer completion, cancelled by Esc while it streams
    server.slow.set()
    page.get_by_test_id("mode").select_option("free")
    before = metric_sum(server.url, "geex_requests_cancelled_total")
    prefix.press_sequentially("# ", delay=20)
    expect(page.get_by_test_id("ghost")).not_to_have_text("", timeout=60_000)  # streaming now
    page.keyboard.press("Escape")
    page.get_by_test_id("status").filter(has_text="cancelled").wait_for()
    deadline = time.monotonic() + 10
    while metric_sum(server.url, "geex_requests_cancelled_total") < before + 1:
        assert time.monotonic() < deadline, "the server did not count the cancel"
        time.sleep(0.1)
    server.slow.clear()


@pytest.mark.parametrize("tab", ["translate", "explain", "generate"])
def test_task_tabs_answer(page, server, tab):
    page.goto(server.url + "/")
    page.get_by_test_id(f"tab-{tab}").click()
    if tab == "translate":
        page.get_by_test_id("language").select_option("js")
    page.get_by_test_id(f"run-{tab}").click()
    page.get_by_test_id("status").filter(has_text="done").wait_for(timeout=120_000)
    assert page.get_by_test_id(f"out-{tab}").inner_text().strip()
    assert _number(page, "ttft") > 0
    _shot(page, tab)


def test_the_page_runs_only_its_own_script(server):
    import httpx

    r = httpx.get(server.url + "/")
    assert "script-src 'self'" in r.headers["content-security-policy"] and r.headers["x-content-type-options"] == "nosniff"
    assert httpx.get(server.url + "/playground/app.js").headers["content-type"].startswith("text/javascript")
    assert httpx.get(server.url + "/playground/..%2Fapp.py").status_code == 404
    assert httpx.get(server.url + "/playground/secret.txt").status_code == 404
