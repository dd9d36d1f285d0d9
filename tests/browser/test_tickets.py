"""An agent turns a chat into a ticket from the workspace, then answers it on the ticket page."""

from __future__ import annotations

import asyncio
import re

import pytest
from playwright.async_api import expect

from chat.models import Ticket
from tests.auth import log_in_browser
from tests.factories import AgentFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct-horse-battery-staple"


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


async def test_ticket_created_from_the_workspace_and_answered(open_page, alice, bob):
    agent = await open_page()
    await log_in_browser(agent, username="alice", password=PASSWORD, next_path="/agent/")
    presence = agent.locator("#presence")
    await expect(presence).to_have_value("offline")
    await presence.select_option("online")

    visitor = await open_page()
    await visitor.goto("/chat/")
    await visitor.get_by_label("Your name").fill("Vera Visitor")
    await visitor.get_by_label("E-mail (optional)").fill("vera@example.com")
    await visitor.get_by_label("How can we help?").fill("Please send me the invoice again.")
    await visitor.get_by_role("button", name="Start chat").click()

    chat = agent.locator("article.chat").filter(has_text="Vera Visitor")
    await chat.get_by_role("button", name="Accept").click()
    await expect(chat.locator(".log")).to_contain_text("Please send me the invoice again.")
    await chat.get_by_role("button", name="Create ticket").click()
    link = chat.locator(".ticket-result a")
    # Ids come from the database's sequence, which PostgreSQL does not reset between tests.
    await expect(link).to_have_text(re.compile(r"^Ticket \d+$"))
    ticket_id = await asyncio.to_thread(lambda: Ticket.objects.get().pk)
    assert await link.inner_text() == f"Ticket {ticket_id}"

    ticket_page = await open_page()
    await log_in_browser(ticket_page, username="alice", password=PASSWORD, next_path="/tickets/")
    await ticket_page.get_by_role("link", name="Please send me the invoice again.").click()
    await expect(ticket_page.locator(".ticket-transcript")).to_contain_text(
        "Please send me the invoice again."
    )
    await ticket_page.get_by_label("Reply by e-mail to vera@example.com").fill(
        "Here it is, attached."
    )
    await ticket_page.get_by_role("button", name="Send reply").click()
    await expect(ticket_page.locator(".ticket-thread")).to_contain_text("Here it is, attached.")
    await ticket_page.get_by_label("Status").select_option("solved")
    await ticket_page.get_by_role("button", name="Change status").click()
    await expect(ticket_page.get_by_label("Status")).to_have_value("solved")
    ticket = await asyncio.to_thread(
        lambda: Ticket.objects.select_related("conversation__visitor").get()
    )
    assert (ticket.status, ticket.conversation.visitor.name) == ("solved", "Vera Visitor")

    # Alice hands the ticket to Bob; Bob's workspace tells him, the thread keeps the change.
    bob_page = await open_page()
    await log_in_browser(bob_page, username="bob", password=PASSWORD, next_path="/agent/")
    await expect(bob_page.locator("#presence")).to_be_enabled()
    await ticket_page.get_by_label("Assignee").select_option(label="Bob Agent")
    await ticket_page.get_by_role("button", name="Assign").click()
    await expect(ticket_page.locator(".ticket-thread")).to_contain_text(
        "Alice Agent assigned the ticket to Bob Agent (was Alice Agent)."
    )
    await expect(ticket_page.locator(".ticket-meta")).to_contain_text("assignee Bob Agent")
    note = bob_page.locator("#notifications li").filter(has_text="Alice Agent gave you a ticket")
    await expect(note.get_by_role("link")).to_have_text(
        f"Ticket {ticket_id}: Please send me the invoice again."
    )
    # Now Bob holds it: Alice may no longer give it away.
    await expect(ticket_page.locator(".ticket-assign")).to_contain_text(
        "Only a supervisor of this department can give it to someone else."
    )
