"""A supervisor starts a mock chat and plays the visitor; the agent sees it marked as training."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from coaching.models import Scenario
from tests.auth import log_in_browser
from tests.factories import AgentFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
def people(department):
    AgentFactory(
        user=UserFactory(username="alice", password=PASSWORD),
        display_name="Alice Agent",
        departments=[department],
    )
    UserFactory(username="sam", password=PASSWORD, is_superuser=True)
    Scenario.objects.create(
        title="Double charge",
        opening_line="You charged me twice!",
        persona="Upset, calms down with a concrete next step.",
    )


async def test_supervisor_plays_the_visitor_of_a_mock_chat(open_page, people):
    agent = await open_page()
    await log_in_browser(agent, username="alice", password=PASSWORD, next_path="/agent/")
    await expect(agent.locator("#presence")).to_have_value("offline")

    supervisor = await open_page()
    await log_in_browser(supervisor, username="sam", password=PASSWORD, next_path="/coaching/mock/")
    await supervisor.get_by_label("Scenario").select_option(label="Double charge")
    await supervisor.get_by_label("Agent").select_option(label="Alice Agent")
    await supervisor.get_by_role("button", name="Start").click()
    await expect(supervisor.locator(".errorlist")).to_contain_text(
        "Alice Agent is not online with a free chat slot"
    )

    await agent.locator("#presence").select_option("online")
    await expect(agent.locator("#presence")).to_have_value("online")
    await supervisor.get_by_label("Agent").select_option(label="Alice Agent")
    await supervisor.get_by_role("button", name="Start").click()
    await expect(supervisor.locator("#mock")).to_contain_text("Upset, calms down")

    chat = agent.locator("article.chat").filter(has_text="Training: Double charge")
    await expect(chat.locator(".title")).to_contain_text("TRAINING")
    await chat.get_by_role("button", name="Accept").click()
    await expect(chat.locator(".log")).to_contain_text("You charged me twice!")
    # The supervisor's window is the visitor's: it shows the chat and can answer.
    await expect(supervisor.locator("#log")).to_contain_text("You charged me twice!")
    await chat.get_by_label("Message").fill("I am sorry, let me check that for you.")
    await chat.get_by_role("button", name="Send").click()
    await expect(supervisor.locator("#log")).to_contain_text("let me check that for you")
    await supervisor.locator("#message-input").fill("Thank you.")
    await supervisor.locator("#composer").get_by_role("button", name="Send").click()
    await expect(chat.locator(".log")).to_contain_text("Thank you.")
