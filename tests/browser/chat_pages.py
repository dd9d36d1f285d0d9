"""A chat between Alice (the agent workspace) and Vera (the widget on the demo shop page), for the
browser tests that break the connection under it (test_reconnect.py, test_silent_socket.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connections
from playwright.async_api import Page, expect

from chat.models import Message
from tests.auth import log_in_browser

PASSWORD = "correct-horse-battery-staple"  # alice's, as each test module creates her

# Counts the sockets a page opens: a page caught up in place opens no second one.
COUNT_SOCKETS = """
(() => {
  const Native = window.WebSocket;
  window.__socketsOpened = 0;
  function Counted(url, protocols) { window.__socketsOpened += 1; return new Native(url, protocols); }
  Counted.prototype = Native.prototype;
  for (const k of ["CONNECTING", "OPEN", "CLOSING", "CLOSED"]) Counted[k] = Native[k];
  window.WebSocket = Counted;
})();
"""


@sync_to_async
def stored_public(conversation_id: int | None = None) -> list[tuple[str, str]]:
    try:
        rows = Message.objects.filter(visibility=Message.Visibility.PUBLIC).order_by("conversation_id", "seq")
        return [(m.role, m.body) for m in rows]
    finally:
        connections.close_all()


def lines_of(texts: list[str]) -> list[str]:
    return [" ".join(t.split()) for t in texts]


async def chat_between(open_page: Any, port: int) -> tuple[Page, Any, Page, Any]:
    """Alice in the workspace and Vera in the widget, chatting: (agent page, chat, visitor page, panel)."""
    agent = await open_page()
    await log_in_browser(agent, username="alice", password=PASSWORD, next_path="/agent/")
    await agent.locator("#presence").select_option("online")
    await expect(agent.locator("#presence")).to_have_value("online")
    await asyncio.sleep(0.5)

    # The demo shop page (localhost) with the widget from 127.0.0.1: another origin, as on a customer's site.
    visitor = await open_page()
    await visitor.goto(f"http://localhost:{port}/widget/demo/")
    widget = visitor.locator("#coachline-widget")
    await widget.get_by_role("button", name="Chat with us").click()
    panel = widget.get_by_role("dialog", name="Chat")
    await panel.get_by_label("Your name").fill("Vera Visitor")
    await panel.get_by_label("How can we help?").fill("My parcel is late.")
    await panel.get_by_role("button", name="Start chat").click()
    chat = agent.locator("article.chat").filter(has_text="Vera Visitor")
    await chat.get_by_role("button", name="Accept").click()
    await expect(panel.locator(".status")).to_have_text("You are chatting with Alice Agent.")
    await chat.get_by_label("Message").fill("Let me check.")
    await chat.get_by_role("button", name="Send").click()
    await expect(panel.locator(".log")).to_contain_text("Alice Agent: Let me check.")
    return agent, chat, visitor, panel


async def assert_both_show_the_stored_chat(chat: Any, panel: Any, bodies: list[str]) -> None:
    """Each message stored once, and both pages show exactly the stored chat, in its order."""
    stored = [(role, body) for role, body in await stored_public() if role in ("visitor", "agent")]
    assert sorted(body for _, body in stored) == sorted(bodies)
    expected_widget = [("You: " if role == "visitor" else "Alice Agent: ") + body for role, body in stored]
    widget_lines = lines_of(await panel.locator(".log li.msg:not(.msg-system)").all_inner_texts())
    assert widget_lines == expected_widget
    agent_lines = lines_of(await chat.locator(".log li.msg:not(.msg-system)").all_inner_texts())
    assert [next((b for _, b in stored if b in line), line) for line in agent_lines] == [b for _, b in stored]
