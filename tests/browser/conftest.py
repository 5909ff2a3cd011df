"""The review page in a real browser: Debian's headless Chromium driven by Playwright, against a real server on a free
loopback port (a thread of this process), over Azurite holding review items written the way the Function App writes
them (tests/pipelines/review_helpers.py: result record, verified copy with the app's metadata, sidecar).

No browser is ever downloaded: Playwright launches /usr/bin/chromium (`make test` installs Debian's package when it
can, scripts/browser.sh). Without it, every test here is skipped with one line naming it.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pipelines"))  # review_helpers: the app's way of writing

from review_helpers import ReviewWorld, make_world

from devkit.browser import CHROMIUM_ARGS, chromium_path, missing_reason
from pipelines.review import web

LAPTOP = {"width": 1366, "height": 768}


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Without the browser, every test that needs it is skipped from here: one place, so pytest's summary folds them
    into ONE line naming the missing browser (a skip raised in a fixture is reported once per test)."""
    if "browser" in item.fixturenames:
        missing = missing_reason()
        if missing:
            pytest.skip(missing)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One headless Chromium for the session (each test opens its own contexts: separate cookies, like two people)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: make setup")
    playwright = sync_api.sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=str(chromium_path()), args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()


@pytest.fixture
def world(blob_service) -> Iterator[ReviewWorld]:
    w = make_world(blob_service)
    try:
        yield w
    finally:
        w.drop()


@pytest.fixture
def serve(world) -> Iterator[Callable[..., web.RunningPage]]:
    """Start review pages over ``world`` (one per reviewer, as two people would each run their own); all stopped after
    the test."""
    started: list[web.RunningPage] = []

    def start(reviewer: str = "alice", *, token: str | None = None, api: Any = None) -> web.RunningPage:
        options = web.listen_options("127.0.0.1", 0, reviewer=reviewer, token=token, allow_remote=False)
        page = web.start(world.blob_service, world.config, options, api=api)
        page.serve_in_thread()
        started.append(page)
        return page

    try:
        yield start
    finally:
        for page in started:
            page.stop()


@pytest.fixture
def context(browser) -> Iterator[Any]:
    """A fresh browser context at laptop size; every dialog (an alert a hostile name might raise) is recorded."""
    ctx = browser.new_context(viewport=LAPTOP)
    ctx.dialogs = []
    ctx.on("page", lambda page: page.on("dialog", lambda d: (ctx.dialogs.append(d.message), d.dismiss())))
    try:
        yield ctx
    finally:
        ctx.close()
