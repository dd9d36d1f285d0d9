"""A socket that dies without a close event: the widget and the workspace notice and reconnect.

A laptop waking from sleep, or a NAT or proxy dropping an idle connection, leaves a WebSocket the
browser still calls open while nothing gets through either way. Here Playwright's WebSocket
routing plays that link: after `cut()` nothing passes in either direction on the sockets open at
that moment, and no close reaches either side. Both pages must find out by themselves (no pong
to their pings: static/chat/socket.js and widget.js), say "Reconnecting…", open a new socket and
resend what was written into the dead one, so each person sees the other's message.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Page, WebSocketRoute, expect

from tests.browser.chat_pages import (
    COUNT_SOCKETS,
    PASSWORD,
    assert_both_show_the_stored_chat,
    chat_between,
)
from tests.browser.conftest import TIMEOUT_MS
from tests.factories import AgentFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Pings every 0.5 s and a socket given up when one is unanswered for 2 s (20 s and 25 s on a real page).
FAST_TIMING = "window.CoachlineTiming = { ping: 500, silence: 2000, ack: 1000 };"

# Records every text the connection line shows (the widget's is inside its shadow root).
WATCH_STATUS = """
(selector) => {
  const [host, inner] = selector.split(" >>> ");
  const line = inner ? document.querySelector(host).shadowRoot.querySelector(inner) : document.querySelector(host);
  window.__statusSeen = [line.textContent];
  new MutationObserver(() => window.__statusSeen.push(line.textContent))
    .observe(line, { childList: true, characterData: true, subtree: true });
}
"""


class Link:
    """Every page socket, relayed to the server until `cut()` makes the open ones go dead."""

    def __init__(self) -> None:
        self.routes: list[WebSocketRoute] = []
        self.dead: set[int] = set()
        self.lose_next_message_frame = False  # one frame lost on its way to the server
        self.lost: list[str] = []

    def relay(self, route: WebSocketRoute) -> None:
        server = route.connect_to_server()
        self.routes.append(route)

        def to_server(message: str | bytes) -> None:
            if self.lose_next_message_frame and isinstance(message, str) and '"type":"message"' in message:
                self.lose_next_message_frame = False
                self.lost.append(message)
                return
            if id(route) not in self.dead:
                server.send(message)

        def to_page(message: str | bytes) -> None:
            if id(route) not in self.dead:
                route.send(message)

        route.on_message(to_server)
        server.on_message(to_page)

    def cut(self) -> None:
        self.dead.update(id(route) for route in self.routes)


@pytest.fixture
def alice(department):
    return AgentFactory(user=UserFactory(username="alice", password=PASSWORD), display_name="Alice Agent",
                        departments=[department])


@pytest.fixture
async def linked_pages(chromium: Any, daphne_server: Any) -> AsyncIterator[tuple[Any, Link]]:
    link = Link()
    contexts = []
    errors: list[str] = []

    async def _open() -> Page:
        context = await chromium.new_context(base_url=daphne_server.base_url)
        context.set_default_timeout(TIMEOUT_MS)
        await context.add_init_script(FAST_TIMING + COUNT_SOCKETS)
        await context.route_web_socket(re.compile(r"/ws/"), link.relay)
        contexts.append(context)
        page = await context.new_page()
        page.on("pageerror", lambda exc: errors.append(f"{page.url}: {exc}"))
        return page

    yield _open, link
    for context in contexts:
        await context.close()
    if errors:
        pytest.fail("JavaScript errors on the pages:\n" + "\n".join(errors))


async def test_both_pages_give_up_a_silent_socket_reconnect_and_deliver_what_was_written_into_it(
    linked_pages, daphne_server, alice
):
    open_page, link = linked_pages
    agent, chat, visitor, panel = await chat_between(open_page, daphne_server.port)
    assert await agent.evaluate("window.__socketsOpened") == 1
    assert await visitor.evaluate("window.__socketsOpened") == 1

    await agent.evaluate(WATCH_STATUS, "#connection")
    await visitor.evaluate(WATCH_STATUS, "#coachline-widget >>> .connection")

    link.cut()
    # Written into the dead sockets: neither reaches the server on them.
    composer = panel.get_by_label("Message", exact=True)
    await composer.fill("Are you still there?")
    await composer.press("Enter")
    await chat.get_by_label("Message").fill("Yes, one moment.")
    await chat.get_by_role("button", name="Send").click()

    await expect(panel.locator(".log")).to_contain_text("Alice Agent: Yes, one moment.")
    await expect(chat.locator(".log")).to_contain_text("Are you still there?")
    # Each said so while it was away (briefly: the new socket opens within a second), and is
    # connected again.
    assert "Reconnecting…" in await agent.evaluate("window.__statusSeen")
    assert "Reconnecting…" in await visitor.evaluate("window.__statusSeen")
    await expect(panel.locator(".connection")).to_have_text("")
    await expect(agent.locator("#connection")).to_have_text("")
    assert await agent.evaluate("window.__socketsOpened") == 2
    assert await visitor.evaluate("window.__socketsOpened") == 2
    await assert_both_show_the_stored_chat(
        chat, panel, ["My parcel is late.", "Let me check.", "Are you still there?", "Yes, one moment."])


async def test_a_socket_that_keeps_answering_is_not_given_up(linked_pages, daphne_server, alice):
    # The pongs keep a quiet chat's sockets alive: no reconnection while nobody writes.
    open_page, _link = linked_pages
    agent, _chat, visitor, panel = await chat_between(open_page, daphne_server.port)
    await agent.wait_for_timeout(5000)  # 2.5 silence limits
    assert await agent.evaluate("window.__socketsOpened") == 1
    assert await visitor.evaluate("window.__socketsOpened") == 1
    await expect(panel.locator(".connection")).to_have_text("")


async def test_a_message_whose_frame_was_lost_is_sent_again_on_the_same_socket(linked_pages, daphne_server, alice):
    open_page, link = linked_pages
    agent, chat, _visitor, panel = await chat_between(open_page, daphne_server.port)
    link.lose_next_message_frame = True
    await chat.get_by_label("Message").fill("Found it.")
    await chat.get_by_role("button", name="Send").click()
    # No ack within 1 s (10 s on a real page): sent again with the same client_id, stored once.
    await expect(panel.locator(".log")).to_contain_text("Alice Agent: Found it.")
    assert len(link.lost) == 1 and "Found it." in link.lost[0]
    assert await agent.evaluate("window.__socketsOpened") == 1
    await assert_both_show_the_stored_chat(chat, panel, ["My parcel is late.", "Let me check.", "Found it."])
