"""The agent workspace in a real browser: canned responses by /shortcut, @tags, transfers.

What only a browser shows: the composer expands a shortcut and keeps unknown ones as typed, a
tagged agent sees the notification and can open the chat, the visitor's page never contains a
note, and a transfer with a note reaches the other agent's screen.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from playwright.async_api import Page, expect

from chat.models import CannedResponse, Message
from tests.auth import log_in_browser
from tests.factories import AgentFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct-horse-battery-staple"
SCREENSHOTS_DIR = settings.BASE_DIR / "docs" / "screenshots"
UPDATE_SCREENSHOTS = os.environ.get("COACHLINE_UPDATE_SCREENSHOTS") == "1"


@pytest.fixture
def alice(department):
    return AgentFactory(
        user=UserFactory(username="alice", password=PASSWORD),
        display_name="Alice Agent",
        departments=[department],
    )


@pytest.fixture
def bob(department):
    return AgentFactory(
        user=UserFactory(username="bob", password=PASSWORD),
        display_name="Bob Agent",
        departments=[department],
    )


@pytest.fixture
def greeting(db):
    return CannedResponse.objects.create(
        shortcut="greeting",
        title="Greeting",
        body="Hello {visitor_name}, my name is {agent_name}. How can I help?",
    )


async def agent_online(open_page, username: str) -> Page:
    page = await open_page(width=1400, height=900)
    await log_in_browser(page, username=username, password=PASSWORD, next_path="/agent/")
    await expect(page.locator("#presence")).to_have_value("offline")
    await page.locator("#presence").select_option("online")
    return page


async def visitor_starts(open_page, text: str) -> Page:
    visitor = await open_page(width=900, height=760)
    await visitor.goto("/chat/")
    await visitor.get_by_label("Your name").fill("Vera Visitor")
    await visitor.get_by_label("Department").select_option("support")
    await visitor.get_by_label("How can we help?").fill(text)
    await visitor.get_by_role("button", name="Start chat").click()
    await expect(visitor.locator("#prechat")).to_be_hidden()
    return visitor


async def accept(agent: Page):
    chat = agent.locator("article.chat").filter(has_text="Vera Visitor")
    await chat.get_by_role("button", name="Accept").click()
    await expect(chat.locator(".title")).to_contain_text("active")
    return chat


async def test_canned_response_by_shortcut(open_page, alice, greeting):
    agent = await agent_online(open_page, "alice")
    visitor = await visitor_starts(open_page, "Where is my parcel?")
    chat = await accept(agent)
    box = chat.get_by_label("Message")

    # An unknown shortcut: a clear message, nothing sent, the text stays.
    await box.fill("/nosuch")
    await chat.get_by_role("button", name="Send").click()
    await expect(chat.locator(".canned-hint")).to_contain_text("No canned response /nosuch")
    await expect(box).to_have_value("/nosuch")

    # A known one is expanded with the placeholders filled, then sent as it stands.
    expected = "Hello Vera Visitor, my name is Alice Agent. How can I help?"
    await box.fill("/greeting")
    await chat.get_by_role("button", name="Send").click()
    await expect(box).to_have_value(expected)
    await chat.get_by_role("button", name="Send").click()
    await expect(visitor.locator("#log")).to_contain_text(expected)
    await expect(chat.locator(".log")).to_contain_text("[/greeting]")

    # Picked from the searchable list and edited before sending: recorded as edited.
    await chat.locator(".canned-picker summary").click()
    await chat.get_by_label("Search canned responses").fill("greet")
    await chat.locator(".canned-item").filter(has_text="/greeting").click()
    await box.fill((await box.input_value()) + " Take your time.")
    await chat.get_by_role("button", name="Send").click()
    await expect(visitor.locator("#log")).to_contain_text("Take your time.")
    await expect(chat.locator(".log")).to_contain_text("[/greeting, edited]")

    metas = await database_sync_to_async(
        lambda: [
            m.meta
            for m in Message.objects.filter(role="agent", visibility="public").order_by("seq")
        ]
    )()
    assert metas == [
        {"canned": {"id": greeting.pk, "shortcut": "greeting", "edited": False}},
        {"canned": {"id": greeting.pk, "shortcut": "greeting", "edited": True}},
    ]
    assert "/nosuch" not in await visitor.content()


async def test_tagged_agent_sees_the_note_and_the_visitor_never_does(
    open_page, alice, bob, tmp_path: Path
):
    agent = await agent_online(open_page, "alice")
    helper = await open_page(width=1400, height=900)
    await log_in_browser(helper, username="bob", password=PASSWORD, next_path="/agent/")
    await expect(helper.locator("#presence")).to_have_value("offline")
    visitor = await visitor_starts(open_page, "My refund has not arrived.")
    chat = await accept(agent)

    note = "@bob could you check refund 7781? The visitor is upset."
    await chat.locator(".internal").set_checked(True)
    await chat.get_by_label("Message").fill(note)
    await chat.get_by_role("button", name="Send").click()
    await expect(chat.locator(".log li.vis-internal")).to_contain_text(note)

    # Bob is told, opens the chat, and answers with a note of his own.
    mention = helper.locator("#notifications li.mention")
    await expect(mention).to_contain_text("Alice Agent tagged you in the chat with Vera Visitor")
    await mention.get_by_role("button", name="Open chat").click()
    helping = helper.locator("article.chat.helping")
    await expect(helping.locator(".log")).to_contain_text(note)
    await expect(helping.locator(".log")).to_contain_text("My refund has not arrived.")
    await expect(helping.locator(".internal")).to_be_disabled()
    await expect(helping.get_by_role("button", name="End chat")).to_be_hidden()
    reply = "Refund 7781 was sent yesterday, arrives Friday."
    await helping.get_by_label("Message").fill(reply)
    await helping.get_by_role("button", name="Send").click()
    await expect(chat.locator(".log li.vis-internal").last).to_contain_text(
        f"Bob Agent (internal): {reply}"
    )

    # Alice tells the visitor; the visitor's page has that line and nothing of the notes.
    public = "Good news: your refund arrives on Friday."
    await chat.get_by_label("Message").fill(public)
    await chat.get_by_role("button", name="Send").click()
    await expect(visitor.locator("#log")).to_contain_text(public)
    await asyncio.sleep(1)
    await visitor.reload()
    await expect(visitor.locator("#log")).to_contain_text(public)
    content = await visitor.content()
    for secret in (note, reply, "7781", "@bob", "Bob Agent"):
        assert secret not in content

    target = SCREENSHOTS_DIR if UPDATE_SCREENSHOTS else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    await chat.locator(".visitor-panel summary").click()
    await agent.screenshot(path=target / "agent.png", full_page=True)


async def test_transfer_to_another_agent_with_a_note(open_page, alice, bob):
    # Bob comes online only after Alice holds the chat, so routing cannot give it to him first.
    holder = await agent_online(open_page, "alice")
    visitor = await visitor_starts(open_page, "I want to change my plan.")
    chat = await accept(holder)
    await expect(visitor.locator("#status")).to_have_text("You are chatting with Alice Agent.")
    receiver, receiver_name = await agent_online(open_page, "bob"), "Bob Agent"
    await expect(receiver.locator("#presence")).to_have_value("online")
    await holder.reload()  # the transfer list shows presences as of the page's state frame
    chat = holder.locator("article.chat").filter(has_text="Vera Visitor")

    # Alice asks first, in a direct message from the Team list.
    await holder.locator("#team").get_by_role("button", name="Bob Agent (online)").click()
    await holder.get_by_label("Direct message").fill("Can you take Vera? She wants the yearly plan.")
    await holder.get_by_role("button", name="Send to agent").click()
    await expect(holder.locator("#dm-log")).to_contain_text("You: Can you take Vera?")
    await expect(receiver.locator("#team .unread")).to_have_text("new")
    await receiver.locator("#team").get_by_role("button", name="Alice Agent (online)").click()
    await expect(receiver.locator("#dm-log")).to_contain_text("Alice Agent: Can you take Vera?")
    await chat.get_by_label("Transfer to").select_option(label=f"Agent: {receiver_name} (online)")
    await chat.get_by_label("Transfer note").fill("Wants the yearly plan, already verified.")
    await chat.get_by_role("button", name="Transfer").click()
    await expect(chat.locator(".title")).to_contain_text("no longer yours")

    incoming = receiver.locator("article.chat").filter(has_text="Vera Visitor")
    await expect(incoming.locator(".transfer-received")).to_have_text(
        "Transfer note: Wants the yearly plan, already verified."
    )
    await incoming.get_by_role("button", name="Accept").click()
    await expect(incoming.locator(".log")).to_contain_text("I want to change my plan.")
    await expect(visitor.locator("#status")).to_have_text(f"You are chatting with {receiver_name}.")
    assert "already verified" not in await visitor.content()
    await expect(holder.locator("#count")).to_have_text("0 / 3")
    await expect(receiver.locator("#count")).to_have_text("1 / 3")
