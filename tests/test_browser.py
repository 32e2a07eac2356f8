"""End to end in a real browser: Playwright (Python) driving Debian's Chromium against the app
served by uvicorn. Loads the queue, approves one capability (keyboard shortcut), edits one,
rejects one, checks the store, and saves a screenshot to test-artifacts/.

Skips when /usr/bin/chromium is missing, unless DECOMPOSER_REQUIRE_SERVICES=1 (CI), where it
fails: `.ci/run` installs Debian's `chromium` package. A browser is never downloaded.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from test_review import REPO_ROOT, cap_row, extract_tool

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
ARTIFACTS = REPO_ROOT / "test-artifacts"


def _require_browser() -> None:
    problem = None
    if not CHROMIUM.exists():
        problem = f"{CHROMIUM} is missing (apt-get install -y chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "playwright is not installed (pip install -e '.[dev]')"
    if problem is None:
        return
    if os.environ.get("DECOMPOSER_REQUIRE_SERVICES") == "1":
        pytest.fail(f"browser test required but {problem}")
    pytest.skip(problem)


@pytest.fixture
def server(settings) -> Iterator[str]:
    import uvicorn

    from decomposer.web import UISettings, create_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ui = UISettings(secret="browser-test-" + "y" * 20, allowed_hosts=("127.0.0.1",))
    config = uvicorn.Config(
        create_app(settings, ui), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


@pytest.fixture
def page() -> Iterator[Any]:
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        context.set_default_timeout(10_000)
        yield context.new_page()
        context.close()
        browser.close()


@pytest.fixture
def ids(cli, tmp_path, monkeypatch) -> dict[str, str]:
    _require_browser()  # before seeding: skip fast
    return extract_tool(cli, tmp_path, monkeypatch)


def test_review_in_the_browser(ids, settings, server, page):
    # fixture order matters: the CLI (asyncio.run) seeds the store before Playwright's loop starts
    pitr, sync, free = (
        ids["Point-in-time recovery"],
        ids["Synchronous replication"],
        ids["Free tier"],
    )

    page.goto(server + "/")
    page.fill("input[name=name]", "Robin Reviewer")
    page.click("button[type=submit]")
    page.wait_for_url(server + "/")
    assert page.locator("[data-item]").count() == 3
    assert "Robin Reviewer" in page.inner_text("header")

    # approve the first with the keyboard: j selects, Enter opens, a approves
    page.keyboard.press("j")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server}/capabilities/{pitr}")
    assert page.locator("mark").first.inner_text() == (
        "point-in-time recovery to any second within 35 days"
    )
    page.keyboard.press("a")
    page.wait_for_url(f"{server}/capabilities/{sync}")  # moved on to the next pending one
    assert "approved " + pitr in page.inner_text(".flash")

    # edit the second: e opens the form
    page.keyboard.press("e")
    page.fill("textarea[name=description]", "Writes are acknowledged by three zones.")
    page.click("button[value=approve_edits]")
    page.wait_for_url(f"{server}/capabilities/{free}")

    # reject the third with a reason
    page.fill("[data-reject-note]", "pricing, not a capability")
    page.click("button.danger")
    page.wait_for_url(f"{server}/capabilities/{free}")
    assert page.text_content("[data-status]") == "rejected"

    assert cap_row(settings, pitr)[0].status == "approved"
    cap, events = cap_row(settings, sync)
    assert (cap.status, cap.description) == ("approved", "Writes are acknowledged by three zones.")
    assert events[-1].edited and events[-1].actor == "Robin Reviewer"
    cap, events = cap_row(settings, free)
    assert (cap.status, events[-1].note) == ("rejected", "pricing, not a capability")

    page.goto(f"{server}/capabilities/{sync}")
    assert "with edits" in page.inner_text(".history")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "capability-page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    page.goto(server + "/")
    assert page.locator("[data-item]").count() == 0
