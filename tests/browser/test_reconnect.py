"""The widget and the workspace through a server crash: "Reconnecting…", then caught up, nothing lost.

The server process is killed (SIGKILL, as a crash) in the middle of a chat and started again on
the same port. While it is down both people write; afterwards both pages must say they are
connected again by themselves, and each must show the whole chat, once, in the stored order.

And through a Redis restart (real mode): the server's live stream breaks but the sockets stay
open; once Redis is back the server catches both pages up on the same sockets (chat/layer_watch.py),
so neither page reconnects, and each shows what the other wrote meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests import serverprocs
from tests.browser.chat_pages import (
    COUNT_SOCKETS,
    PASSWORD,
    assert_both_show_the_stored_chat,
    chat_between,
)
from tests.browser.conftest import TIMEOUT_MS
from tests.chaos import RedisServer
from tests.conftest import real_mode
from tests.factories import AgentFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

class Restartable:
    """One daphne process that can crash and come back on the same port."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.server = serverprocs.start_server(env=env, name="reconnect-daphne")

    def crash(self) -> None:
        self.server.kill()

    def start_again(self) -> None:
        old = self.server
        self.server = serverprocs.DaphneServer(
            name=f"reconnect-daphne-{old.port}-again", host=old.host, port=old.port, env=self.env,
            log_path=serverprocs.artifact_path(f"reconnect-daphne-{old.port}-again"))
        serverprocs.wait_until(lambda: serverprocs.http_ok(self.server.url("/healthz")), timeout=60,
                               process=self.server, what="the restarted server to answer")


@pytest.fixture
def restartable(transactional_db: None) -> Iterator[Restartable]:
    overrides = {"DATABASE_URL": serverprocs.current_database_url(), "ALLOWED_HOSTS": "127.0.0.1,localhost"}
    if os.environ.get("REDIS_URL"):
        overrides["CHANNEL_LAYER_PREFIX"] = f"reconnect-{uuid.uuid4().hex[:12]}"
    holder = Restartable(serverprocs.child_env(overrides))
    try:
        yield holder
    finally:
        holder.server.stop()


@pytest.fixture
def alice(department):
    return AgentFactory(user=UserFactory(username="alice", password=PASSWORD), display_name="Alice Agent",
                        departments=[department])


@pytest.fixture
async def browser_pages(chromium: Any) -> AsyncIterator[Any]:
    contexts = []
    errors: list[str] = []

    async def _open(base_url: str) -> Page:
        context = await chromium.new_context(base_url=base_url)
        context.set_default_timeout(TIMEOUT_MS)
        await context.add_init_script(COUNT_SOCKETS)
        contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}"))
        return page

    yield _open
    for context in contexts:
        await context.close()
    if errors:
        pytest.fail("JavaScript errors on the pages:\n" + "\n".join(errors))


@pytest.fixture
async def pages(browser_pages: Any, restartable: Restartable) -> Any:
    return lambda: browser_pages(restartable.server.base_url)


async def test_widget_and_workspace_show_reconnecting_and_catch_up_after_a_server_crash(
    pages, restartable: Restartable, alice
):
    agent, chat, _visitor, panel = await chat_between(pages, restartable.server.port)

    # --- the server crashes ---------------------------------------------------------------
    await asyncio.to_thread(restartable.crash)
    await expect(panel.locator(".connection")).to_have_text("Reconnecting…")
    await expect(agent.locator("#connection")).to_have_text("Reconnecting…")

    # Both write while it is down: kept in their outboxes, shown as not yet sent.
    composer = panel.get_by_label("Message", exact=True)
    await composer.fill("Written while you were gone.")
    await composer.press("Enter")
    mine = panel.locator(".log li.msg-visitor").last
    await expect(mine).to_have_class("msg msg-visitor pending")
    await chat.get_by_label("Message").fill("Still here, are you?")
    await chat.get_by_role("button", name="Send").click()

    # --- it comes back: both pages reconnect and catch up by themselves ---------------------
    await asyncio.to_thread(restartable.start_again)
    await expect(panel.locator(".connection")).to_have_text("")
    await expect(agent.locator("#connection")).to_have_text("")
    await expect(mine).not_to_have_class("msg msg-visitor pending")
    await expect(panel.locator(".log")).to_contain_text("Alice Agent: Still here, are you?")
    await expect(chat.locator(".log")).to_contain_text("Written while you were gone.")

    await assert_both_show_the_stored_chat(
        chat, panel, ["My parcel is late.", "Let me check.", "Written while you were gone.", "Still here, are you?"])


@pytest.fixture
def server_on_own_redis(transactional_db: None) -> Iterator[tuple[RedisServer, serverprocs.DaphneServer]]:
    """A redis-server of this test's own (never the machine's) and a daphne process using it."""
    if not real_mode():
        pytest.skip("needs PostgreSQL and Redis (real mode)")
    redis = RedisServer()
    redis.start()
    env = serverprocs.child_env({
        "DATABASE_URL": serverprocs.current_database_url(), "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "REDIS_URL": redis.url, "CHANNEL_LAYER_PREFIX": f"resync-{uuid.uuid4().hex[:12]}",
    })
    try:
        server = serverprocs.start_server(env=env, name="resync-daphne")
    except BaseException:
        redis.stop()
        raise
    try:
        yield redis, server
    finally:
        server.stop()
        redis.stop()


async def test_widget_and_workspace_catch_up_on_the_same_sockets_after_a_redis_restart(
    browser_pages, server_on_own_redis: tuple[RedisServer, serverprocs.DaphneServer], alice
):
    redis, server = server_on_own_redis
    agent, chat, visitor, panel = await chat_between(lambda: browser_pages(server.base_url), server.port)
    opened = [await page.evaluate("window.__socketsOpened") for page in (agent, visitor)]

    # --- Redis goes away: the sockets stay open, live frames are lost --------------------------
    await asyncio.to_thread(redis.stop)
    composer = panel.get_by_label("Message", exact=True)
    await composer.fill("Written while Redis was down.")
    await composer.press("Enter")
    await chat.get_by_label("Message").fill("Are you still there?")
    await chat.get_by_role("button", name="Send").click()
    # Both are stored (the database is fine) and acknowledged; neither reaches the other page yet.
    await expect(panel.locator(".log li.msg-visitor").last).not_to_have_class("msg msg-visitor pending")
    await asyncio.sleep(1)

    # --- Redis is back: both pages catch up by themselves, without reconnecting -------------------
    await asyncio.to_thread(redis.start)
    await expect(panel.locator(".log")).to_contain_text("Alice Agent: Are you still there?")
    await expect(chat.locator(".log")).to_contain_text("Written while Redis was down.")
    assert [await page.evaluate("window.__socketsOpened") for page in (agent, visitor)] == opened
    await expect(panel.locator(".connection")).to_have_text("")
    await expect(agent.locator("#connection")).to_have_text("")
    # And the live stream works again.
    await chat.get_by_label("Message").fill("Found your parcel.")
    await chat.get_by_role("button", name="Send").click()
    await expect(panel.locator(".log")).to_contain_text("Alice Agent: Found your parcel.")
    await assert_both_show_the_stored_chat(chat, panel, [
        "My parcel is late.", "Let me check.", "Written while Redis was down.", "Are you still there?",
        "Found your parcel."])
