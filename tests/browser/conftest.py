"""Browser tests: the real pages, served by a real daphne process, driven by Debian's Chromium.

Without /usr/bin/chromium these tests skip and say why. CI sets COACHLINE_REQUIRE_BROWSER=1 so
that a missing browser fails the run instead of quietly skipping the only end-to-end check.

The server runs in a subprocess on the test database: the SQLite file of the embedded default,
or PostgreSQL's test database plus the same Redis (with a channel prefix of its own) in real
mode. Tests therefore need `django_db(transaction=True)` so their rows are committed and visible
to the server.

The tests use Playwright's async API on purpose: the sync API keeps an event loop marked as
running in the main thread, which makes Django refuse every ORM call in fixtures and in the
database teardown (SynchronousOnlyOperation).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import async_playwright, expect

from tests import serverprocs

# Debian's chromium; COACHLINE_CHROMIUM points elsewhere (or at nothing, to try the skip).
CHROMIUM = Path(os.environ.get("COACHLINE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REQUIRE_BROWSER = os.environ.get("COACHLINE_REQUIRE_BROWSER") == "1"
# Generous for a loaded CI machine; a passing run waits only as long as it has to.
TIMEOUT_MS = 10_000
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(autouse=True)
def _require_browser() -> None:
    if CHROMIUM.exists():
        return
    reason = f"Chromium not found at {CHROMIUM}: install Debian's `chromium` package"
    if REQUIRE_BROWSER:
        pytest.fail(f"{reason} (COACHLINE_REQUIRE_BROWSER=1 makes this a failure)", pytrace=False)
    pytest.skip(f"{reason}; set COACHLINE_REQUIRE_BROWSER=1 to fail instead of skipping")


# --- the server ---------------------------------------------------------------------------


@pytest.fixture
def daphne_server(transactional_db: None) -> Iterator[serverprocs.DaphneServer]:
    """A daphne process serving config.asgi on a free port, on this test's database.

    Its output goes to test-artifacts/; the path is printed, and pytest shows it when a test fails.
    """
    overrides = {
        "DATABASE_URL": serverprocs.current_database_url(),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
    }
    if os.environ.get("REDIS_URL"):
        # A prefix of its own: other servers and test runs on the same Redis never see our events.
        overrides["CHANNEL_LAYER_PREFIX"] = f"browsertest-{uuid.uuid4().hex[:12]}"
    with serverprocs.running_servers(
        1, env=serverprocs.child_env(overrides), name="browser-daphne"
    ) as (server,):
        print(server.describe())
        yield server


# --- the browser --------------------------------------------------------------------------


@pytest.fixture
async def chromium() -> AsyncIterator[Any]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture
async def open_page(chromium: Any, daphne_server: serverprocs.DaphneServer) -> AsyncIterator[Any]:
    """Opens a page in a fresh browser context (own cookies and storage: one person each).

    JavaScript errors on any page fail the test: a page that throws is broken even if the
    assertions happen to pass.
    """
    contexts = []
    errors: list[str] = []

    async def _open(*, width: int = 1280, height: int = 800) -> Any:
        context = await chromium.new_context(
            base_url=daphne_server.base_url, viewport={"width": width, "height": height}
        )
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}"))
        return page

    yield _open
    for context in contexts:
        await context.close()
    if errors:
        pytest.fail("JavaScript errors on the pages:\n" + "\n".join(errors))
