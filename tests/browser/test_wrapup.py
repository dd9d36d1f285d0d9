"""Files both ways, closing a chat with a disposition, and blocking a visitor: the workspace and
the widget on another origin, in a real browser, against a real daphne."""

# ruff: noqa: F811  (the widget fixtures are imported from test_widget and named as arguments)
from __future__ import annotations

import asyncio
import io
import re

import pytest
from playwright.async_api import expect

from chat.models import Attachment, Conversation, Ticket, VisitorBlock
from tests.browser.test_widget import (  # noqa: F401  (fixtures)
    agent_online,
    alice,
    browser,
    host_site,
    open_page,
    shop_allowed,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def png(color=(30, 120, 200)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (24, 16), color).save(out, format="PNG")
    return out.getvalue()


async def widget_chat(open_page, host_site, agent, name: str):
    visitor = await open_page()
    await visitor.goto(f"http://shop.test:{host_site}/")
    widget = visitor.locator("#coachline-widget")
    await widget.get_by_role("button", name="Chat with us").click()
    panel = widget.get_by_role("dialog", name="Chat")
    await panel.get_by_label("Your name").fill(name)
    await panel.get_by_label("E-mail (optional)").fill("vera@example.com")
    await panel.get_by_label("How can we help?").fill("Hello, I need help.")
    await panel.get_by_role("button", name="Start chat").click()
    card = agent.locator("article.chat").filter(has_text=name)
    await card.get_by_role("button", name="Accept").click()
    await expect(panel.locator(".status")).to_have_text("You are chatting with Alice Agent.")
    return visitor, panel, card


async def test_files_both_ways_then_closed_with_a_follow_up_ticket(
    open_page, alice, shop_allowed, host_site
):
    agent = await agent_online(open_page)
    visitor, panel, card = await widget_chat(open_page, host_site, agent, "Vera Visitor")

    # --- the agent sends a picture: a preview on both sides, loaded from the chat server ---
    await card.locator(".file-input").set_input_files(
        {"name": "label.png", "mimeType": "image/png", "buffer": png()}
    )
    await card.get_by_role("button", name="Upload file").click()
    preview = panel.locator(".log .attachment img")
    await expect(preview).to_have_attribute("alt", "label.png")
    for _ in range(100):
        if await preview.evaluate("img => img.complete && img.naturalWidth") == 24:
            break
        await asyncio.sleep(0.1)
    assert await preview.evaluate("img => img.naturalWidth") == 24  # cross-origin, it loaded
    await expect(panel.locator(".log .attachment a").last).to_contain_text("label.png (")
    await expect(card.locator(".log .attachment img.preview")).to_have_attribute("alt", "label.png")

    # --- the visitor sends a file with the paper clip -----------------------------------------
    async with visitor.expect_file_chooser() as chooser_info:
        await panel.get_by_role("button", name="Attach a file").click()
    chooser = await chooser_info.value
    await chooser.set_files({"name": "order.txt", "mimeType": "text/plain", "buffer": b"order 10442"})
    link = card.locator(".log .attachment a").filter(has_text="order.txt")
    await expect(link).to_have_text("order.txt (11 bytes)")
    href = await link.get_attribute("href")
    assert re.fullmatch(r"/agent/attachments/\d+/", href)
    fetched = await agent.request.get(href)
    assert fetched.status == 200 and await fetched.body() == b"order 10442"
    await expect(panel.locator(".log li.msg-visitor .attachment")).to_contain_text("order.txt")
    # A file type that is not allowed is refused in the widget, before any upload.
    async with visitor.expect_file_chooser() as chooser_info:
        await panel.get_by_role("button", name="Attach a file").click()
    await (await chooser_info.value).set_files(
        {"name": "tool.exe", "mimeType": "application/octet-stream", "buffer": b"MZ"}
    )
    await expect(panel.get_by_role("alert")).to_contain_text("Files of this type cannot be sent.")
    assert await asyncio.to_thread(Attachment.objects.count) == 2

    # --- the agent ends the chat and closes it with a follow-up ticket ------------------------
    await card.get_by_role("button", name="End chat").click()
    tools = card.locator(".close-tools")
    await expect(tools).to_be_visible()
    await tools.get_by_role("button", name="Follow-up ticket").click()
    await expect(card).to_have_count(0)  # the card goes away
    note = agent.locator("#notifications li").filter(has_text="Chat closed with a follow-up ticket")
    ticket = await asyncio.to_thread(lambda: Ticket.objects.get())
    await expect(note.get_by_role("link")).to_have_text(f"Ticket {ticket.pk}")
    conversation = await asyncio.to_thread(lambda: Conversation.objects.get())
    assert (conversation.disposition, ticket.conversation_id) == ("follow_up", conversation.pk)
    await expect(panel.locator("form.survey")).to_be_visible()  # the visitor gets the survey


async def test_a_blocked_visitor_gets_the_offline_form(open_page, alice, shop_allowed, host_site):
    agent = await agent_online(open_page)
    visitor, panel, card = await widget_chat(open_page, host_site, agent, "Spam Sender")
    agent.on("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await card.get_by_text("Block visitor").click()
    await card.get_by_label("Reason for the block").fill("Links to a scam")
    await card.get_by_role("button", name="Block", exact=True).click()
    await expect(agent.locator("#notifications")).to_contain_text("The visitor is blocked.")
    await expect(card).to_have_count(0)  # ended and closed as spam
    block = await asyncio.to_thread(lambda: VisitorBlock.objects.select_related("conversation").get())
    assert (block.kind, block.reason, block.conversation.disposition) == ("token", "Links to a scam", "spam")

    # The visitor sees the chat end, nothing about a block; a new chat is refused kindly and the
    # form becomes the offline form with what was typed still in it.
    await expect(panel.locator("form.survey")).to_be_visible()
    await panel.get_by_role("button", name="Start a new chat").click()
    await panel.get_by_label("How can we help?").fill("Why did the chat end?")
    await panel.get_by_role("button", name="Start chat").click()
    await expect(panel.locator(".form-error")).to_contain_text("leave us a message")
    await expect(panel.get_by_role("heading")).to_have_text("Leave us a message")
    await expect(panel.get_by_label("Your message")).to_have_value("Why did the chat end?")
    await panel.get_by_role("button", name="Send message").click()
    await expect(panel.locator(".offline-done")).to_contain_text("sent a confirmation to vera@example.com")
    assert await asyncio.to_thread(lambda: Ticket.objects.filter(source="offline").count()) == 1
    assert await asyncio.to_thread(Conversation.objects.count) == 1

    # After a reload the widget knows at once.
    await visitor.reload()
    widget = visitor.locator("#coachline-widget")
    panel = widget.get_by_role("dialog", name="Chat")
    await expect(panel).to_be_visible()  # it stays open across page loads
    await expect(panel.get_by_role("heading")).to_have_text("Leave us a message")
    await expect(panel.get_by_role("button", name="Send message")).to_be_visible()
