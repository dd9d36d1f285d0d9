"""The embeddable widget on a customer's site, in a real browser, against a real daphne.

The host page is served by a separate little HTTP server under the names shop.test (allowed in
the back office) and evil.test (not allowed); Chromium resolves both to 127.0.0.1. So the widget
really runs on another origin than the chat server: cross-origin script, configuration request
and WebSocket handshake, exactly as on a customer's site.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from playwright.async_api import Page, async_playwright, expect

from chat.models import (
    AllowedOrigin,
    Conversation,
    InvitationRule,
    ProactiveInvitation,
    SurveyResponse,
    Ticket,
    Visitor,
)
from tests.auth import log_in_browser
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, TIMEOUT_MS
from tests.factories import AgentFactory, UserFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct-horse-battery-staple"
SCREENSHOTS_DIR = settings.BASE_DIR / "docs" / "screenshots"
UPDATE_SCREENSHOTS = os.environ.get("COACHLINE_UPDATE_SCREENSHOTS") == "1"

# The host page styles everything it can reach; none of it may reach the widget, and the
# widget's own styles must not change the host page.
HOST_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Shop</title>
<style>
  body {{ font-family: serif; }}
  button {{ background: rgb(255, 0, 0) !important; font-size: 40px; }}
  p.host {{ color: rgb(1, 2, 3); }}
</style></head>
<body><h1>Shop {path}</h1><p class="host">Our products</p><button id="host-button">Buy</button>
<a href="/pricing">Pricing</a>
<script src="{widget}" data-department="support" async></script>
</body></html>"""


@pytest.fixture
def host_site(daphne_server) -> Iterator[int]:
    """A separate web server for the customer's site; returns its port."""
    widget = daphne_server.base_url + "/static/chat/widget.js"

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = HOST_PAGE.format(path=self.path, widget=widget).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                *CHROMIUM_ARGS,
                "--host-resolver-rules=MAP shop.test 127.0.0.1, MAP evil.test 127.0.0.1",
            ],
        )
        try:
            yield instance
        finally:
            await instance.close()


@pytest.fixture
async def open_page(browser, daphne_server) -> AsyncIterator[Any]:
    contexts = []
    errors: list[str] = []

    async def _open(*, width: int = 1280, height: int = 800) -> Page:
        context = await browser.new_context(
            base_url=daphne_server.base_url, viewport={"width": width, "height": height}
        )
        context.set_default_timeout(TIMEOUT_MS)
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
def alice(department):
    return AgentFactory(
        user=UserFactory(username="alice", password=PASSWORD),
        display_name="Alice Agent",
        departments=[department],
    )


@pytest.fixture
def shop_allowed(db):
    return AllowedOrigin.objects.create(origin="shop.test")


async def agent_online(open_page) -> Page:
    agent = await open_page()
    await log_in_browser(agent, username="alice", password=PASSWORD, next_path="/agent/")
    presence = agent.locator("#presence")
    await expect(presence).to_have_value("offline")
    await presence.select_option("online")
    await expect(presence).to_have_value("online")
    return agent


async def test_visitor_and_agent_chat_through_the_widget_on_another_origin(
    open_page, alice, shop_allowed, host_site, tmp_path: Path
):
    agent = await agent_online(open_page)
    await asyncio.sleep(0.5)  # the presence change is stored before the widget asks

    visitor = await open_page(width=1000, height=800)
    await visitor.goto(f"http://shop.test:{host_site}/")
    widget = visitor.locator("#coachline-widget")
    launcher = widget.get_by_role("button", name="Chat with us")
    await launcher.click()
    panel = widget.get_by_role("dialog", name="Chat")
    await expect(panel).to_be_visible()

    # Isolation: the host's red-button rule does not reach the widget; the host keeps its look.
    assert await launcher.evaluate("b => getComputedStyle(b).backgroundColor") != "rgb(255, 0, 0)"
    assert (
        await visitor.locator("p.host").evaluate("p => getComputedStyle(p).color") == "rgb(1, 2, 3)"
    )
    assert (
        await visitor.locator("#host-button").evaluate("b => getComputedStyle(b).fontSize")
        == "40px"
    )

    # --- pre-chat form, by keyboard -------------------------------------------------------
    await panel.get_by_label("Your name").fill("Vera Visitor")
    await panel.get_by_label("E-mail (optional)").fill("vera@example.com")
    await panel.get_by_label("How can we help?").fill("Hello from the shop, my parcel is late.")
    await panel.get_by_label("How can we help?").press("Tab")
    await visitor.keyboard.press("Enter")  # focus is on "Start chat"
    await expect(panel.locator(".status")).to_have_text(
        "Connecting you to an agent…"
    )  # offered to Alice

    # --- the agent accepts; the visitor sees the agent's name and initials -----------------
    chat = agent.locator("article.chat").filter(has_text="Vera Visitor")
    await chat.get_by_role("button", name="Accept").click()
    await expect(panel.locator(".status")).to_have_text("You are chatting with Alice Agent.")
    await expect(panel.locator(".agent .initials")).to_have_text("AA")

    # --- messages both ways, typing indicator, delivery state ------------------------------
    await chat.get_by_label("Message").fill("Hi Vera, let me check")
    await expect(panel.locator(".typing")).to_have_text("Alice Agent is typing…")
    await chat.get_by_role("button", name="Send").click()
    await expect(panel.locator(".log")).to_contain_text("Alice Agent: Hi Vera, let me check")
    composer = panel.get_by_label("Message", exact=True)
    await composer.fill("The order number is 10442.")
    await composer.press("Enter")
    await expect(chat.locator(".log")).to_contain_text("The order number is 10442.")
    mine = panel.locator(".log li.msg-visitor").last
    await expect(mine).to_contain_text("The order number is 10442.")
    await expect(mine).not_to_have_class("msg msg-visitor pending")

    # --- navigation on the host site: the chat goes on ------------------------------------
    await composer.fill("draft not sent yet")
    await visitor.goto(f"http://shop.test:{host_site}/pricing")
    panel = visitor.locator("#coachline-widget").get_by_role("dialog", name="Chat")
    await expect(panel).to_be_visible()  # it stays open across pages
    await expect(panel.locator(".log")).to_contain_text("The order number is 10442.")
    await expect(panel.locator(".log")).to_contain_text("Hi Vera, let me check")
    await expect(panel.get_by_label("Message", exact=True)).to_have_value(
        "draft not sent yet"
    )  # nothing typed is lost
    lines = await panel.locator(".log li.msg:not(.msg-system)").all_inner_texts()
    assert [" ".join(t.split()) for t in lines] == [
        "You: Hello from the shop, my parcel is late.",
        "Alice Agent: Hi Vera, let me check",
        "You: The order number is 10442.",
    ]
    await chat.get_by_label("Message").fill("It ships today.")
    await chat.get_by_role("button", name="Send").click()
    await expect(panel.locator(".log")).to_contain_text("Alice Agent: It ships today.")
    live = await panel.locator(".log").get_attribute("aria-live")
    assert live == "polite"

    target = SCREENSHOTS_DIR if UPDATE_SCREENSHOTS else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    await visitor.screenshot(path=target / "visitor.png")

    # --- the visitor ends; the survey; the transcript ------------------------------------
    await panel.get_by_role("button", name="End chat").click()
    survey = panel.locator("form.survey")
    await expect(survey).to_be_visible()
    await survey.get_by_label("4").check()
    await survey.get_by_label("Comment (optional)").fill("Quick and kind.")
    await survey.get_by_role("button", name="Send feedback").click()
    await expect(panel.locator(".survey-done")).to_have_text("Thank you for your feedback.")
    conversation = await asyncio.to_thread(
        lambda: Conversation.objects.get(visitor__name="Vera Visitor")
    )
    response = await asyncio.to_thread(
        lambda: SurveyResponse.objects.get(conversation=conversation)
    )
    assert (response.rating, response.comment) == (4, "Quick and kind.")
    await panel.get_by_role("button", name="E-mail me the transcript").click()
    await expect(panel.locator(".transcript-done")).to_have_text(
        "The transcript is on its way to vera@example.com."
    )


async def test_offline_form_becomes_a_ticket(open_page, alice, shop_allowed, host_site):
    visitor = await open_page()
    await visitor.goto(f"http://shop.test:{host_site}/")
    widget = visitor.locator("#coachline-widget")
    await widget.get_by_role("button", name="Chat with us").click()
    panel = widget.get_by_role("dialog", name="Chat")
    await expect(panel.get_by_role("heading")).to_have_text(
        "Leave us a message"
    )  # nobody is online
    await panel.get_by_label("Your name").fill("Otto")
    await panel.get_by_role("button", name="Send message").click()
    await expect(panel.locator(".form-error")).to_contain_text(
        "E-mail"
    )  # required offline; nothing sent
    await panel.get_by_label("E-mail", exact=True).fill("otto@example.com")
    await panel.get_by_label("Your message").fill("Please call me about my invoice.")
    await panel.get_by_role("button", name="Send message").click()
    await expect(panel.locator(".offline-done")).to_contain_text(
        "sent a confirmation to otto@example.com"
    )
    ticket = await asyncio.to_thread(lambda: Ticket.objects.get())
    assert (ticket.source, ticket.email, ticket.subject) == (
        "offline",
        "otto@example.com",
        "Please call me about my invoice.",
    )


async def test_proactive_invitation_accepted(open_page, alice, department, shop_allowed, host_site):
    await asyncio.to_thread(
        lambda: InvitationRule.objects.create(
            name="Pricing help",
            department=department,
            url_pattern="*/pricing*",
            seconds_on_page=1,
            message="Questions about our prices?",
        )
    )
    agent = await agent_online(open_page)
    visitor = await open_page()
    await visitor.goto(f"http://shop.test:{host_site}/pricing")
    widget = visitor.locator("#coachline-widget")
    invitation = widget.get_by_role("dialog", name="Invitation to chat")
    await expect(invitation).to_contain_text("Questions about our prices?")
    await invitation.get_by_role("button", name="Chat now").click()
    panel = widget.get_by_role("dialog", name="Chat")
    await panel.get_by_label("How can we help?").fill("Is there a student discount?")
    await panel.get_by_role("button", name="Start chat").click()
    await agent.locator("article.chat").get_by_role("button", name="Accept").click()
    await expect(panel.locator(".status")).to_have_text("You are chatting with Alice Agent.")
    row = await asyncio.to_thread(
        lambda: ProactiveInvitation.objects.select_related("conversation").get()
    )
    assert row.status == "accepted" and row.conversation is not None
    assert row.conversation.subject == "Is there a student discount?"


async def test_widget_on_a_site_that_is_not_allowed_is_refused(
    open_page, alice, shop_allowed, host_site
):
    visitor = await open_page()
    await visitor.goto(f"http://evil.test:{host_site}/")
    widget = visitor.locator("#coachline-widget")
    await widget.get_by_role("button", name="Chat with us").click()
    panel = widget.get_by_role("dialog", name="Chat")
    await expect(panel.get_by_role("alert")).to_have_text(
        "Chat is not available on this site. The site owner has to allow it in Coachline."
    )
    await expect(panel.locator("form.prechat")).to_be_hidden()
    await asyncio.sleep(1)
    assert not await asyncio.to_thread(lambda: Visitor.objects.exists())  # no socket was opened
