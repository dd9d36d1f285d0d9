"""The widget while waiting and while the network misbehaves, in a real browser on another origin.

- The place in the queue, as it changes.
- A message whose frame is lost, or whose answer is lost, is resent with the same client_id: it
  is shown as not sent yet while it waits, then sent, and stored and shown exactly once.
- A message the server refuses says why and gives the text back.
- "Seconds on the site" of a proactive invitation count across page loads.

The lost frames are made by Playwright's WebSocket routing, between the page and the real server.
"""

# ruff: noqa: F811  (the widget fixtures are imported from test_widget and named as arguments)
from __future__ import annotations

import asyncio
import json
import re
import time
from typing import Any

import pytest
from playwright.async_api import Page, expect

from chat.models import AgentProfile, InvitationRule, Message, ProactiveInvitation
from tests.browser.test_widget import (  # noqa: F401  (fixtures)
    agent_online,
    alice,
    browser,
    host_site,
    open_page,
    shop_allowed,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SOCKET = re.compile(r".*/ws/visitor/$")


async def widget_panel(page: Page, url: str) -> Any:
    await page.goto(url)
    widget = page.locator("#coachline-widget")
    await widget.get_by_role("button", name="Chat with us").click()
    return widget.get_by_role("dialog", name="Chat")


async def start_chat(panel: Any, name: str, question: str) -> None:
    await panel.get_by_label("Your name").fill(name)
    await panel.get_by_label("How can we help?").fill(question)
    await panel.get_by_role("button", name="Start chat").click()


def count_messages(**kwargs) -> int:
    return Message.objects.filter(**kwargs).count()


async def test_the_visitor_sees_its_place_in_the_queue_while_waiting(
    open_page, alice, shop_allowed, host_site
):
    await asyncio.to_thread(lambda: AgentProfile.objects.filter(pk=alice.pk).update(max_chats=1))
    agent = await agent_online(open_page)

    # Alice's one slot is taken by a first chat.
    first = await open_page()
    await first.goto("/chat/")
    await first.get_by_label("Your name").fill("First Visitor")
    await first.get_by_label("How can we help?").fill("I was here first")
    await first.get_by_role("button", name="Start chat").click()
    first_card = agent.locator("article.chat").filter(has_text="First Visitor")
    await first_card.get_by_role("button", name="Accept").click()
    await expect(first.locator("#status")).to_have_text("You are chatting with Alice Agent.")

    second = await widget_panel(await open_page(), f"http://shop.test:{host_site}/")
    await start_chat(second, "Second Visitor", "Is my order on its way?")
    await expect(second.locator(".status")).to_have_text("You are next in line.")
    third = await widget_panel(await open_page(), f"http://shop.test:{host_site}/")
    await start_chat(third, "Third Visitor", "Do you ship abroad?")
    await expect(third.locator(".status")).to_have_text("You are number 2 in line.")
    # The agent's queue shows both, in that order.
    await expect(agent.locator("#queue li")).to_have_count(2)
    await expect(agent.locator("#queue li").first).to_contain_text("Second Visitor")

    # The first chat ends: the second is offered, the third moves up.
    await first_card.get_by_role("button", name="End chat").click()
    await expect(second.locator(".status")).to_have_text("Connecting you to an agent…")
    await expect(third.locator(".status")).to_have_text("You are next in line.")
    await agent.locator("article.chat").filter(has_text="Second Visitor").get_by_role(
        "button", name="Accept"
    ).click()
    await expect(second.locator(".status")).to_have_text("You are chatting with Alice Agent.")
    await expect(third.locator(".status")).to_have_text("You are next in line.")


async def test_a_lost_send_or_a_lost_answer_is_resent_and_never_doubled(
    open_page, alice, shop_allowed, host_site
):
    agent = await agent_online(open_page)
    visitor = await open_page()

    plan: dict[str, Any] = {"drop": 0, "hold": False, "swallow_body": None, "swallow_id": None}
    dropped: list[str] = []
    held: list[str] = []
    swallowed: set[str] = set()
    routes: list[Any] = []

    def route(ws: Any) -> None:
        server = ws.connect_to_server()
        routes.append((ws, server))

        def to_server(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("type") == "message":
                if plan["drop"]:
                    plan["drop"] -= 1
                    dropped.append(message)
                    return
                if plan["hold"]:
                    plan["hold"] = False
                    held.append(message)
                    return
                if frame.get("body") == plan["swallow_body"]:
                    plan["swallow_id"] = frame.get("client_id")
            server.send(message)

        def to_page(message: str | bytes) -> None:
            frame = json.loads(message)
            kind = frame.get("type")
            if (
                plan["swallow_id"]
                and frame.get("client_id") == plan["swallow_id"]
                and kind in ("ack", "message")
                and kind not in swallowed
            ):
                swallowed.add(kind)  # the first answer and the first echo are lost on the way
                return
            ws.send(message)

        ws.on_message(to_server)
        server.on_message(to_page)

    await visitor.route_web_socket(SOCKET, route)
    panel = await widget_panel(visitor, f"http://shop.test:{host_site}/")
    await start_chat(panel, "Vera Visitor", "Hello, my parcel is late.")
    card = agent.locator("article.chat").filter(has_text="Vera Visitor")
    await card.get_by_role("button", name="Accept").click()
    await expect(panel.locator(".status")).to_have_text("You are chatting with Alice Agent.")
    composer = panel.get_by_label("Message", exact=True)

    # 1. The frame is lost on the way to the server: no answer, so the widget says it has not
    #    gone yet and sends it again by itself (held here until the state was seen).
    plan.update(drop=1, hold=True)
    await composer.fill("First try is lost")
    await composer.press("Enter")
    line = panel.locator(".log li.pending").filter(has_text="First try is lost")
    await expect(line.locator(".state")).to_have_text("Sending…")
    await expect(line.locator(".state")).to_contain_text("Not sent yet, retrying", timeout=15_000)
    assert len(dropped) == 1 and len(held) == 1
    assert json.loads(held[0])["client_id"] == json.loads(dropped[0])["client_id"]
    routes[-1][1].send(held[0])  # the resend goes through now
    await expect(card.locator(".log")).to_contain_text("First try is lost")
    await expect(panel.locator(".log li.pending")).to_have_count(0)

    # 2. The server stores it, but its answer (ack and echo) is lost: the resend with the same
    #    client_id is answered from the database and stored nothing new.
    plan.update(swallow_body="The answer is lost")
    await composer.fill("The answer is lost")
    await composer.press("Enter")
    await expect(card.locator(".log")).to_contain_text("The answer is lost")  # stored
    plan.update(hold=True)  # the resend waits here until the widget was seen saying so
    line = panel.locator(".log li.pending").filter(has_text="The answer is lost")
    await expect(line.locator(".state")).to_contain_text("Not sent yet, retrying", timeout=15_000)
    assert swallowed == {"ack", "message"} and len(held) == 2
    assert json.loads(held[1])["client_id"] == plan["swallow_id"]
    routes[-1][1].send(held[1])
    await expect(panel.locator(".log li.pending")).to_have_count(0, timeout=15_000)

    # Exactly once everywhere: the database, the widget, the agent's screen.
    for text in ("First try is lost", "The answer is lost"):
        assert await asyncio.to_thread(count_messages, body=text) == 1
        await expect(panel.locator(".log li.msg").filter(has_text=text)).to_have_count(1)
        await expect(card.locator(".log li").filter(has_text=text)).to_have_count(1)
    mine = await panel.locator(".log li.msg-visitor").all_inner_texts()
    assert [" ".join(t.split()) for t in mine] == [
        "You: Hello, my parcel is late.",
        "You: First try is lost",
        "You: The answer is lost",
    ]

    # 3. The connection breaks right after a send: the message waits and goes after the reconnect.
    plan.update(drop=1)
    await composer.fill("Sent while the line breaks")
    await composer.press("Enter")
    for _ in range(100):
        if len(dropped) == 2:
            break
        await asyncio.sleep(0.05)
    assert len(dropped) == 2
    await routes[-1][0].close()  # the page's socket closes; the widget reconnects and resends
    await expect(card.locator(".log")).to_contain_text("Sent while the line breaks")
    await expect(panel.locator(".log li.pending")).to_have_count(0)
    assert await asyncio.to_thread(count_messages, body="Sent while the line breaks") == 1


async def test_a_refused_message_says_why_and_gives_the_text_back(
    open_page, alice, shop_allowed, host_site
):
    agent = await agent_online(open_page)
    panel = await widget_panel(await open_page(), f"http://shop.test:{host_site}/")
    await start_chat(panel, "Vera Visitor", "Hello")
    await agent.locator("article.chat").filter(has_text="Vera Visitor").get_by_role(
        "button", name="Accept"
    ).click()
    await expect(panel.locator(".status")).to_have_text("You are chatting with Alice Agent.")
    composer = panel.get_by_label("Message", exact=True)
    # Typing shows on the agent's side and stops showing after a pause, even when nothing is sent.
    card = agent.locator("article.chat").filter(has_text="Vera Visitor")
    await composer.fill("I was going to say")
    await expect(card.locator(".typing")).to_be_visible()
    await expect(card.locator(".typing")).to_be_hidden(timeout=8_000)
    await composer.fill("")
    # Pasted past the box's limit (a script can): the server refuses it for good.
    long_text = "x" * 4001
    await composer.evaluate("(t, text) => { t.value = text; }", long_text)
    await composer.press("Enter")
    line = panel.locator(".log li.pending.failed")
    await expect(line).to_contain_text("Not sent (The message is longer than 4000 characters.)")
    await line.get_by_role("button", name="Edit").click()
    await expect(composer).to_have_value(long_text)  # nothing typed is lost
    await expect(panel.locator(".log li.pending")).to_have_count(0)
    assert await asyncio.to_thread(count_messages, role="visitor") == 1  # only "Hello"


async def test_seconds_on_the_site_count_across_page_loads(
    open_page, alice, department, shop_allowed, host_site
):
    await asyncio.to_thread(
        lambda: InvitationRule.objects.create(
            name="Pricing help",
            department=department,
            url_pattern="*/pricing*",
            seconds_on_page=16,
            message="Questions about our prices?",
        )
    )
    await agent_online(open_page)
    visitor = await open_page()
    await visitor.goto(f"http://shop.test:{host_site}/")  # not a pricing page: no invitation here
    invitation = visitor.locator("#coachline-widget").get_by_role("dialog", name="Invitation to chat")
    await asyncio.sleep(10)
    await expect(invitation).to_be_hidden()
    started = time.monotonic()
    await visitor.goto(f"http://shop.test:{host_site}/pricing")
    # 10 s on the site already: it comes about 6 s after this page opens, where counting per
    # page would take 16 s (the margins allow for a slow, shared test machine).
    await expect(invitation).to_contain_text("Questions about our prices?", timeout=30_000)
    waited = time.monotonic() - started
    assert waited < 13, f"the invitation took {waited:.1f} s on the pricing page"
    await invitation.get_by_role("button", name="No thanks").click()
    await expect(invitation).to_be_hidden()
    for _ in range(50):  # the answer travels over the socket; give the server a moment
        row = await asyncio.to_thread(lambda: ProactiveInvitation.objects.get())
        if row.status != "sent":
            break
        await asyncio.sleep(0.1)
    assert row.status == "declined" and row.page_url.endswith("/pricing")
    # Another pricing page of the same visit: not invited again.
    await visitor.goto(f"http://shop.test:{host_site}/pricing/plans")
    await asyncio.sleep(2)
    await expect(invitation).to_be_hidden()
    assert await asyncio.to_thread(ProactiveInvitation.objects.count) == 1
