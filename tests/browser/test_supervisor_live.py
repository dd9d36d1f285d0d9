"""A supervisor sits in on a live chat in the browser, whispers, and the agent sees it marked;
the visitor's page never shows the whisper, neither live nor after a reload."""

from __future__ import annotations

import asyncio

import pytest
from playwright.async_api import expect

from tests.auth import log_in_browser
from tests.factories import AgentFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct-horse-battery-staple"
WHISPER = "Whisper: offer her the Thursday slot first"


@pytest.fixture
def people(department):
    AgentFactory(
        user=UserFactory(username="alice", password=PASSWORD),
        display_name="Alice Agent",
        departments=[department],
    )
    UserFactory(username="sam", password=PASSWORD, is_superuser=True)


async def test_supervisor_sits_in_whispers_and_barges_in(open_page, people):
    agent = await open_page()
    await log_in_browser(agent, username="alice", password=PASSWORD, next_path="/agent/")
    await expect(agent.locator("#presence")).to_have_value("offline")
    await agent.locator("#presence").select_option("online")

    visitor = await open_page(width=900, height=760)
    await visitor.goto("/chat/")
    await visitor.get_by_label("Your name").fill("Vera Visitor")
    await visitor.get_by_label("How can we help?").fill("I need a new appointment.")
    await visitor.get_by_role("button", name="Start chat").click()
    chat = agent.locator("article.chat").filter(has_text="Vera Visitor")
    await chat.get_by_role("button", name="Accept").click()
    await expect(visitor.locator("#status")).to_have_text("You are chatting with Alice Agent.")

    supervisor = await open_page()
    await log_in_browser(supervisor, username="sam", password=PASSWORD, next_path="/coaching/live/")
    row = supervisor.locator("#live-rows tr").filter(has_text="Vera Visitor")
    await expect(row).to_contain_text("Alice Agent")
    await row.get_by_role("button", name="Sit in").click()
    log = supervisor.locator("#sitin-log")
    await expect(log).to_contain_text("I need a new appointment.")

    # Following live: the agent types and answers, the supervisor sees both.
    await chat.get_by_label("Message").fill("Hello Vera")
    await expect(supervisor.locator("#sitin-typing")).to_have_text("The agent is typing…")
    await chat.get_by_role("button", name="Send").click()
    await expect(log).to_contain_text("Alice Agent: Hello Vera")

    await supervisor.get_by_label("Whisper to the agent").fill(WHISPER)
    await supervisor.get_by_role("button", name="Whisper").click()
    await expect(chat.locator(".log li.vis-whisper")).to_contain_text(f"(whisper): {WHISPER}")
    await expect(log).to_contain_text(WHISPER)

    await chat.get_by_label("Message").fill("Would Thursday suit you?")
    await chat.get_by_role("button", name="Send").click()
    await expect(visitor.locator("#log")).to_contain_text("Would Thursday suit you?")
    await asyncio.sleep(1)
    assert WHISPER not in await visitor.content()
    await visitor.reload()
    await expect(visitor.locator("#log")).to_contain_text("Would Thursday suit you?")
    await asyncio.sleep(1)
    assert WHISPER not in await visitor.content()
    assert "supervisor" not in (await visitor.content()).lower()

    # Barge-in: now the visitor is told.
    await supervisor.get_by_role("button", name="Join the chat").click()
    await expect(visitor.locator("#log")).to_contain_text("A supervisor joined the chat.")
    await supervisor.get_by_label("Message to the visitor").fill("Hi Vera, I'm the team lead.")
    await supervisor.get_by_role("button", name="Send to visitor").click()
    await expect(visitor.locator("#log")).to_contain_text("Hi Vera, I'm the team lead.")
    await expect(chat.locator(".log")).to_contain_text("Hi Vera, I'm the team lead.")


async def test_live_list_is_pushed_as_chats_start_are_accepted_and_end(open_page, people):
    """The supervisor's page is open before anything happens; it never asks for the list again,
    yet the chat appears, gets its agent, counts its duration up, and goes when it ends."""
    supervisor = await open_page()
    sent_by_page: list[str] = []
    supervisor.on(
        "websocket", lambda ws: ws.on("framesent", lambda payload: sent_by_page.append(payload))
    )
    await log_in_browser(supervisor, username="sam", password=PASSWORD, next_path="/coaching/live/")
    await expect(supervisor.locator("#live-empty")).to_be_visible()

    agent = await open_page()
    await log_in_browser(agent, username="alice", password=PASSWORD, next_path="/agent/")
    await expect(agent.locator("#presence")).to_have_value("offline")
    await agent.locator("#presence").select_option("online")

    visitor = await open_page(width=900, height=760)
    await visitor.goto("/chat/")
    await visitor.get_by_label("Your name").fill("Walt Waiting")
    await visitor.get_by_label("How can we help?").fill("Is my prescription ready?")
    await visitor.get_by_role("button", name="Start chat").click()

    row = supervisor.locator("#live-rows tr").filter(has_text="Walt Waiting")
    await expect(row).to_contain_text("offered")
    await expect(row).to_contain_text("Alice Agent")
    await expect(supervisor.locator("#live-empty")).to_be_hidden()

    chat = agent.locator("article.chat").filter(has_text="Walt Waiting")
    await chat.get_by_role("button", name="Accept").click()
    await expect(row).to_contain_text("active")
    duration = row.locator(".live-duration")
    before = await duration.text_content()
    await expect(duration).not_to_have_text(before or "", timeout=3000)  # the clock runs

    await visitor.get_by_role("button", name="End chat").click()
    await expect(row).to_have_count(0)
    await expect(supervisor.locator("#live-empty")).to_be_visible()
    # Pushed, not polled: the page sent no request for the list (pings only).
    assert not [p for p in sent_by_page if '"live"' in p], sent_by_page
