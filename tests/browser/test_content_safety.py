"""Content safety in the real browser: visitor-supplied text is shown as text on the agent's
page (no script runs, no element is injected), and the copy/paste switches reach the pages."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from compliance.models import ContentSafetySettings
from tests.auth import log_in_browser
from tests.factories import AgentFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct-horse-battery-staple"
NAME = '<img src=x onerror="window.__pwned=\'name\'">Eve'
EMAIL = '"<svg/onload=window.__pwned=1>"@example.com'
MESSAGE = "<script>window.__pwned='message'</script><b>bold?</b> & more"
PAGE_PATH = "/chat/?campaign='><img src=x onerror=window.__pwned=3>"


@pytest.fixture
def alice(department):
    return AgentFactory(
        user=UserFactory(username="alice", password=PASSWORD),
        display_name="Alice Agent",
        departments=[department],
    )


@pytest.fixture
def copy_blocked_for_agents(db):
    return ContentSafetySettings.objects.create(pk=1, block_copy_agent=True, block_copy_visitor=False)


async def dispatch_blocked(page, selector: str, kind: str) -> bool:
    """Fire a real clipboard event at the element; True if the page's script cancelled it."""
    return await page.evaluate(
        """([selector, kind]) => {
            const event = new ClipboardEvent(kind, {bubbles: true, cancelable: true});
            document.querySelector(selector).dispatchEvent(event);
            return event.defaultPrevented;
        }""",
        [selector, kind],
    )


async def test_visitor_fields_show_as_text_and_copy_is_blocked_for_agents_only(
    open_page, alice, copy_blocked_for_agents
):
    agent = await open_page()
    await log_in_browser(agent, username="alice", password=PASSWORD, next_path="/agent/")
    await expect(agent.locator("#presence")).to_have_value("offline")
    await agent.locator("#presence").select_option("online")

    visitor = await open_page(width=900, height=760)
    await visitor.goto(PAGE_PATH)
    page_url = await visitor.evaluate("window.location.href")
    # An attacker is not held to the form's e-mail check: type it as plain text.
    await visitor.evaluate("document.querySelector('#prechat input[name=email]').type = 'text'")
    await visitor.get_by_label("Your name").fill(NAME)
    await visitor.get_by_label("E-mail (optional)").fill(EMAIL)
    await visitor.get_by_label("Department").select_option("support")
    await visitor.get_by_label("How can we help?").fill(MESSAGE)
    await visitor.get_by_role("button", name="Start chat").click()
    await expect(visitor.locator("#prechat")).to_be_hidden()

    chat = agent.locator("article.chat").first
    await chat.get_by_role("button", name="Accept").click()
    await expect(chat.locator(".log")).to_contain_text(MESSAGE)
    await expect(chat.locator(".title")).to_contain_text(NAME)
    await expect(chat.locator(".visitor-info")).to_contain_text(EMAIL)
    await expect(chat.locator(".visitor-info")).to_contain_text(page_url)
    for page in (agent, visitor):
        assert await page.evaluate("window.__pwned") is None
        assert await page.locator("img[src=x], svg, main script, .log b").count() == 0

    # The agent workspace blocks copying chat text and pasting into the composer ...
    assert await dispatch_blocked(agent, "article.chat .log li", "copy")
    assert await dispatch_blocked(agent, "article.chat .log li", "cut")
    assert await dispatch_blocked(agent, "article.chat .message-input", "paste")
    # ... but not outside the chats, and the visitor's page is not blocked (switched off).
    assert not await dispatch_blocked(agent, "#queue", "copy")
    assert not await dispatch_blocked(visitor, "#log li", "copy")
    assert not await dispatch_blocked(visitor, "#message-input", "paste")


async def test_links_in_chat_text_are_clickable_but_only_http_and_https(open_page, alice):
    agent = await open_page()
    await log_in_browser(agent, username="alice", password=PASSWORD, next_path="/agent/")
    await agent.locator("#presence").select_option("online")
    visitor = await open_page(width=900, height=760)
    await visitor.goto("/chat/")
    await visitor.get_by_label("Your name").fill("Vera")
    await visitor.get_by_label("Department").select_option("support")
    text = "Order at https://shop.example/o?id=7. Also javascript:window.__pwned=1 and data:text/html,x"
    await visitor.get_by_label("How can we help?").fill(text)
    await visitor.get_by_role("button", name="Start chat").click()
    chat = agent.locator("article.chat").first
    await chat.get_by_role("button", name="Accept").click()
    await expect(chat.locator(".log")).to_contain_text("javascript:window.__pwned=1")
    for page, log in ((agent, "article.chat .log"), (visitor, "#log")):
        links = page.locator(f"{log} a")
        await expect(links).to_have_count(1)
        assert await links.get_attribute("href") == "https://shop.example/o?id=7"
        assert await links.text_content() == "https://shop.example/o?id=7"
        assert "noopener" in await links.get_attribute("rel")
        assert await page.evaluate("window.__pwned") is None
