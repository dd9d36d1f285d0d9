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

    # Once ended, the supervisor reviews the mock chat like a real one, annotates it in the back
    # office and shares it; the agent acknowledges it from the workspace; the supervisor sees it.
    await chat.get_by_role("button", name="End chat").click()
    await supervisor.goto("/coaching/mock/")
    row = supervisor.locator("#mock-chats tr").filter(has_text="Double charge")
    await expect(row).to_contain_text("Ended")
    await row.get_by_role("button", name="Review").click()
    await expect(supervisor.locator(".coaching-transcript")).to_contain_text(
        "let me check that for you"
    )
    annotation = supervisor.locator("#annotations-0")
    await annotation.get_by_label("Category").select_option(label="Praise")
    await annotation.get_by_label("Comment").fill("You apologised before checking: well done.")
    await supervisor.locator("input[name=_continue]").click()
    await expect(supervisor.locator(".coaching-transcript, .chat-annotations").first).to_be_visible()
    await expect(supervisor.locator("body")).to_contain_text(
        "You apologised before checking: well done."
    )
    await supervisor.goto("/admin/coaching/review/")
    review_row = supervisor.locator("#result_list tbody tr").first
    await review_row.locator("input.action-select").check()
    await supervisor.locator("select[name=action]").select_option("share_with_agent")
    await supervisor.locator("button[name=index]").click()
    await expect(supervisor.locator(".messagelist")).to_contain_text("Shared 1 review(s).")

    await agent.get_by_role("link", name="Coaching inbox").click()
    await agent.get_by_role("link", name="Chat").first.click()
    await expect(agent.locator("body")).to_contain_text("You apologised before checking: well done.")
    await agent.get_by_label("Reply to your supervisor").fill("Thanks, I will keep doing that.")
    await agent.get_by_role("button", name="Acknowledge").click()
    await expect(agent.locator(".notice")).to_contain_text("your supervisor can see")

    await supervisor.goto("/admin/coaching/review/")
    await expect(supervisor.locator("#result_list")).to_contain_text("Acknowledged by the agent")
    await supervisor.locator("#result_list tbody tr a").first.click()
    await expect(supervisor.locator("body")).to_contain_text("Thanks, I will keep doing that.")
