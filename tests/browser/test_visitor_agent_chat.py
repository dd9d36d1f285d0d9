"""A visitor and an agent chat on the real pages, in a real browser, over a real daphne.

What only a browser shows: the pages' JavaScript speaks the protocol correctly, a reload resumes
the conversation from the visitor's stored token, and an internal note never reaches the
visitor's page, neither live nor in the history sent after a reload.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from django.conf import settings
from playwright.async_api import Page, expect

from tests.auth import log_in_browser
from tests.factories import AgentFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct-horse-battery-staple"
# Screenshots go to docs/screenshots only when asked, so `make test` leaves the tree clean.
SCREENSHOTS_DIR = settings.BASE_DIR / "docs" / "screenshots"
UPDATE_SCREENSHOTS = os.environ.get("COACHLINE_UPDATE_SCREENSHOTS") == "1"


@pytest.fixture
def alice(department):
    return AgentFactory(
        user=UserFactory(username="alice", password=PASSWORD),
        display_name="Alice Agent",
        departments=[department],
    )


async def log_lines(page: Page, log: str) -> list[str]:
    """The people's lines of a chat log, in order (system lines such as "joined" left out)."""
    return [
        " ".join(t.split())
        for t in await page.locator(f"{log} li.msg:not(.msg-system)").all_inner_texts()
    ]


async def test_visitor_and_agent_chat_with_resume_and_internal_note(
    open_page, alice, tmp_path: Path
):
    # --- the agent logs in and goes online ---------------------------------------------
    agent = await open_page(width=1280, height=800)
    await log_in_browser(agent, username="alice", password=PASSWORD, next_path="/agent/")
    presence = agent.locator("#presence")
    await expect(presence).to_have_value("offline")  # the socket's state frame has arrived
    await presence.select_option("online")

    # --- the visitor starts a chat -----------------------------------------------------
    visitor = await open_page(width=900, height=760)
    await visitor.goto("/chat/")
    start = visitor.get_by_role("button", name="Start chat")
    await visitor.get_by_label("Your name").fill("Vera Visitor")
    await visitor.get_by_label("E-mail (optional)").fill("vera@example.com")
    await visitor.get_by_label("Department").select_option("support")
    await visitor.get_by_label("How can we help?").fill("Hello, I need to move my appointment.")
    await start.click()  # waits until Start is enabled, i.e. the visitor's socket is open
    await expect(visitor.locator("#prechat")).to_be_hidden()

    # --- the agent gets the offer and accepts ------------------------------------------
    chat = agent.locator("article.chat").filter(has_text="Vera Visitor")
    await chat.get_by_role("button", name="Accept").click()
    await expect(chat.locator(".title")).to_contain_text("active")
    await expect(chat.locator(".log")).to_contain_text("Hello, I need to move my appointment.")
    await expect(visitor.locator("#status")).to_have_text("You are chatting with Alice Agent.")

    # --- messages both ways ------------------------------------------------------------
    async def agent_says(text: str, *, internal: bool = False) -> None:
        await chat.locator(".internal").set_checked(internal)
        await chat.get_by_label("Message").fill(text)
        await chat.get_by_role("button", name="Send").click()
        await expect(chat.locator(".log")).to_contain_text(text)

    async def visitor_says(text: str) -> None:
        await visitor.locator("#message-input").fill(text)
        await visitor.locator("#composer").get_by_role("button", name="Send").click()
        await expect(chat.locator(".log")).to_contain_text(text)

    await agent_says("Hi Vera, I'm Alice. Which day suits you?")
    await expect(visitor.locator("#log")).to_contain_text(
        "Hi Vera, I'm Alice. Which day suits you?"
    )
    await visitor_says("Thursday morning, please.")
    await expect(visitor.locator("#log li.msg-visitor").last).not_to_have_class("pending")

    # --- an internal note stays with the staff -----------------------------------------
    note = "NOTE for the team: the visitor rebooked twice already"
    await agent_says(note, internal=True)
    await expect(chat.locator(".log li.vis-internal")).to_contain_text(
        f"Alice Agent (internal): {note}"
    )
    await agent_says("Thursday at 9:30 is free. Shall I book it?")
    # The public line sent after the note has arrived, so the note would have by now too.
    await expect(visitor.locator("#log")).to_contain_text(
        "Thursday at 9:30 is free. Shall I book it?"
    )
    await asyncio.sleep(1)
    assert note not in await visitor.content()

    conversation = [
        "You: Hello, I need to move my appointment.",
        "Alice Agent: Hi Vera, I'm Alice. Which day suits you?",
        "You: Thursday morning, please.",
        "Alice Agent: Thursday at 9:30 is free. Shall I book it?",
    ]
    assert await log_lines(visitor, "#log") == conversation

    # --- the visitor reloads: same conversation, nothing more, and it goes on ---------------
    await visitor.reload()
    await expect(visitor.locator("#prechat")).to_be_hidden()
    await expect(visitor.locator("#status")).to_have_text("You are chatting with Alice Agent.")
    await expect(visitor.locator("#log")).to_contain_text(
        "Thursday at 9:30 is free. Shall I book it?"
    )
    await asyncio.sleep(1)
    assert await log_lines(visitor, "#log") == conversation
    assert note not in await visitor.content()

    await visitor_says("Yes please, book it.")
    await agent_says("Done: Thursday 9:30. See you then!")
    await expect(visitor.locator("#log")).to_contain_text("Done: Thursday 9:30. See you then!")
    # Typing indicators go away once each side stops typing (a 2-second pause).
    await expect(visitor.locator("#typing")).to_be_hidden()
    await expect(chat.locator(".typing")).to_be_hidden()
    assert await log_lines(visitor, "#log") == [
        *conversation,
        "You: Yes please, book it.",
        "Alice Agent: Done: Thursday 9:30. See you then!",
    ]
    assert note not in await visitor.content()

    # --- screenshots (docs/screenshots with COACHLINE_UPDATE_SCREENSHOTS=1) ------------------
    target = SCREENSHOTS_DIR if UPDATE_SCREENSHOTS else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    await agent.screenshot(path=target / "agent.png", full_page=True)
    await visitor.screenshot(path=target / "visitor.png", full_page=True)
