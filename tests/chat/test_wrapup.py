"""Closing a chat with a disposition, blocking a visitor, `hello` naming its chat, and proactive
invitations counted once per visit (docs/protocol.md: "Closing, blocking and files", "Visitor
endpoint", "Widget frames"). Over the real ASGI application, good input and bad."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from chat import services
from chat.models import (
    AgentProfile,
    Conversation,
    InvitationRule,
    ProactiveInvitation,
    Ticket,
    Visitor,
    VisitorBlock,
)
from compliance.models import AuditEntry
from config.asgi import application
from tests.chat.helpers import (
    ORIGIN,
    agent_socket,
    open_chat,
    pending,
    receive_until,
    visitor_socket,
)

pytestmark = pytest.mark.django_db(transaction=True)


def of_type(kind: str):
    return lambda f: f["type"] == kind


async def error_of(comm, frame: dict) -> dict:
    await comm.send_json_to(frame)
    return await receive_until(comm, of_type("error"))


async def visitor_from(ip: str, *, token: str | None = None, conversation_id=None, last_seq: int = 0):
    """A visitor socket whose connection comes from `ip` (as daphne puts it in the scope)."""
    comm = WebsocketCommunicator(application, "/ws/visitor/", headers=[ORIGIN])
    comm.scope["client"] = (ip, 50000)  # read by the application when it starts, just below
    connected, _ = await comm.connect()
    assert connected
    await comm.send_json_to({"type": "hello", "token": token, "last_seq": last_seq, "conversation_id": conversation_id})
    welcome = await receive_until(comm, of_type("welcome"))
    return comm, welcome


def _get(model, **kwargs):
    return database_sync_to_async(lambda: model.objects.get(**kwargs))()


# --- hello names the chat its last_seq counts in ------------------------------------------


async def test_hello_with_the_open_chat_resumes_after_last_seq(agent):
    visitor, agent_comm, conversation_id, token = await open_chat()
    await agent_comm.send_json_to({"type": "message", "conversation_id": conversation_id, "body": "two", "client_id": "a2"})
    two = await receive_until(visitor, lambda f: f["type"] == "message" and f["body"] == "two")
    comm = WebsocketCommunicator(application, "/ws/visitor/", headers=[ORIGIN])
    await comm.connect()
    await comm.send_json_to(
        {"type": "hello", "token": token, "last_seq": two["seq"] - 1, "conversation_id": conversation_id}
    )
    welcome = await receive_until(comm, of_type("welcome"))
    history = await receive_until(comm, of_type("history"))
    assert welcome["conversation"]["conversation_id"] == conversation_id and welcome["blocked"] is False
    assert [m["body"] for m in history["messages"]] == ["two"]
    for c in (comm, visitor, agent_comm):
        await c.disconnect()


async def test_hello_naming_another_chat_gets_the_open_chat_in_full(department):
    visitor, token = await database_sync_to_async(services.create_visitor)()
    old = await database_sync_to_async(services.start_conversation)(
        visitor=visitor, department_slug="support", message="old one"
    )
    await database_sync_to_async(services.end_by_visitor)(visitor=visitor)
    new = await database_sync_to_async(services.start_conversation)(
        visitor=visitor, department_slug="support", message="new one"
    )
    comm = WebsocketCommunicator(application, "/ws/visitor/", headers=[ORIGIN])
    await comm.connect()
    # The client holds 2 messages of the old chat; the new chat's seq 1 must not be skipped.
    await comm.send_json_to({"type": "hello", "token": token, "last_seq": 2, "conversation_id": old.pk})
    welcome = await receive_until(comm, of_type("welcome"))
    history = await receive_until(comm, of_type("history"))
    assert welcome["conversation"]["conversation_id"] == new.pk
    assert [m["body"] for m in history["messages"]] == ["new one"]
    await comm.disconnect()


async def test_hello_naming_an_ended_chat_brings_it_back_even_from_zero(department):
    visitor, token = await database_sync_to_async(services.create_visitor)()
    first = await database_sync_to_async(services.start_conversation)(
        visitor=visitor, department_slug="support", message="first chat"
    )
    await database_sync_to_async(services.end_by_visitor)(visitor=visitor)
    await database_sync_to_async(services.start_conversation)(
        visitor=visitor, department_slug="support", message="second chat"
    )
    await database_sync_to_async(services.end_by_visitor)(visitor=visitor)
    comm = WebsocketCommunicator(application, "/ws/visitor/", headers=[ORIGIN])
    await comm.connect()
    await comm.send_json_to({"type": "hello", "token": token, "last_seq": 0, "conversation_id": first.pk})
    welcome = await receive_until(comm, of_type("welcome"))
    history = await receive_until(comm, of_type("history"))
    assert welcome["conversation"]["conversation_id"] == first.pk
    assert welcome["conversation"]["status"] == "abandoned"
    assert history["messages"][0]["body"] == "first chat"
    await comm.disconnect()


async def test_hello_naming_another_visitors_chat_gets_nothing(department):
    owner, _ = await database_sync_to_async(services.create_visitor)()
    theirs = await database_sync_to_async(services.start_conversation)(
        visitor=owner, department_slug="support", message="private"
    )
    comm = WebsocketCommunicator(application, "/ws/visitor/", headers=[ORIGIN])
    await comm.connect()
    await comm.send_json_to({"type": "hello", "token": None, "last_seq": 5, "conversation_id": theirs.pk})
    welcome = await receive_until(comm, of_type("welcome"))
    assert welcome["conversation"] is None
    assert await pending(comm) == []  # no history of someone else's chat
    await comm.disconnect()


@pytest.mark.parametrize("value", ["41", 4.5, True, -1, [1]])
async def test_hello_with_a_bad_conversation_id_is_refused(department, value):
    comm = WebsocketCommunicator(application, "/ws/visitor/", headers=[ORIGIN])
    await comm.connect()
    error = await error_of(comm, {"type": "hello", "token": None, "conversation_id": value})
    assert error["code"] == "invalid_field"
    assert not await database_sync_to_async(Visitor.objects.exists)()  # nothing created
    await comm.disconnect()


# --- closing with a disposition -------------------------------------------------------------


async def test_agent_closes_an_ended_chat_as_resolved(agent):
    visitor, agent_comm, conversation_id, _ = await open_chat()
    error = await error_of(agent_comm, {"type": "close", "conversation_id": conversation_id, "disposition": "resolved"})
    assert error["code"] == "not_ended"  # still open
    await visitor.send_json_to({"type": "end"})
    await receive_until(agent_comm, of_type("ended"))
    await agent_comm.send_json_to({"type": "close", "conversation_id": conversation_id, "disposition": "resolved"})
    closed = await receive_until(agent_comm, of_type("closed"))
    assert closed == {"type": "closed", "conversation_id": conversation_id, "disposition": "resolved",
                      "ticket_id": None, "ticket_url": None}
    row = await _get(Conversation, pk=conversation_id)
    assert row.disposition == "resolved" and row.disposition_by_id is not None and row.disposition_at
    # Choosing again replaces it.
    await agent_comm.send_json_to({"type": "close", "conversation_id": conversation_id, "disposition": "spam"})
    await receive_until(agent_comm, of_type("closed"))
    assert (await _get(Conversation, pk=conversation_id)).disposition == "spam"
    for c in (visitor, agent_comm):
        await c.disconnect()


async def test_end_with_a_follow_up_disposition_opens_the_ticket(agent):
    visitor, agent_comm, conversation_id, _ = await open_chat()
    await database_sync_to_async(Visitor.objects.update)(email="vera@example.com", name="Vera")
    error = await error_of(agent_comm, {"type": "end", "conversation_id": conversation_id, "disposition": "later"})
    assert error["code"] == "invalid_field"
    assert (await _get(Conversation, pk=conversation_id)).status == "active"  # a bad one ends nothing
    await agent_comm.send_json_to({"type": "end", "conversation_id": conversation_id, "disposition": "follow_up"})
    closed = await receive_until(agent_comm, of_type("closed"))
    ticket = await _get(Ticket, pk=closed["ticket_id"])
    assert ticket.conversation_id == conversation_id and ticket.source == "chat"
    assert closed["ticket_url"] == f"/tickets/{ticket.pk}/"
    row = await _get(Conversation, pk=conversation_id)
    assert (row.status, row.disposition) == ("ended", "follow_up")
    for c in (visitor, agent_comm):
        await c.disconnect()


async def test_follow_up_needs_the_visitors_email_and_changes_nothing_without_it(agent):
    visitor, agent_comm, conversation_id, _ = await open_chat()
    await agent_comm.send_json_to({"type": "end", "conversation_id": conversation_id})
    await receive_until(agent_comm, of_type("ended"))
    error = await error_of(agent_comm, {"type": "close", "conversation_id": conversation_id, "disposition": "follow_up"})
    assert error["code"] == "no_email"
    assert (await _get(Conversation, pk=conversation_id)).disposition == ""
    assert not await database_sync_to_async(Ticket.objects.exists)()
    for c in (visitor, agent_comm):
        await c.disconnect()


async def test_only_the_agent_who_held_the_chat_closes_it(agent, second_agent):
    visitor, agent_comm, conversation_id, _ = await open_chat()
    await agent_comm.send_json_to({"type": "end", "conversation_id": conversation_id})
    await receive_until(agent_comm, of_type("ended"))
    bob, _ = await agent_socket("bob")
    for frame in (
        {"type": "close", "conversation_id": conversation_id, "disposition": "resolved"},
        {"type": "block", "conversation_id": conversation_id, "by": "token"},
        {"type": "close", "conversation_id": 99999, "disposition": "resolved"},
        {"type": "close", "conversation_id": "1", "disposition": "resolved"},
    ):
        assert (await error_of(bob, frame))["code"] == "not_found"
    assert (await _get(Conversation, pk=conversation_id)).disposition == ""
    assert not await database_sync_to_async(VisitorBlock.objects.exists)()
    for c in (visitor, agent_comm, bob):
        await c.disconnect()


async def test_an_ended_chat_waits_for_its_disposition_across_a_reload(agent, second_agent):
    visitor, agent_comm, conversation_id, _ = await open_chat()
    await agent_comm.send_json_to({"type": "message", "conversation_id": conversation_id, "body": "bye", "client_id": "b1"})
    await receive_until(agent_comm, lambda f: f["type"] == "message" and f["body"] == "bye")
    await agent_comm.send_json_to({"type": "end", "conversation_id": conversation_id})
    await receive_until(agent_comm, of_type("ended"))
    await agent_comm.disconnect()

    # The page is reloaded: the ended chat is back, with its history, to be closed.
    again, state = await agent_socket("alice")
    (shown,) = [c for c in state["conversations"] if c["conversation_id"] == conversation_id]
    assert shown["status"] == "ended"
    await again.send_json_to({"type": "sync", "conversation_id": conversation_id, "last_seq": 0})
    history = await receive_until(again, of_type("history"))
    assert "bye" in [m["body"] for m in history["messages"]]
    # Nobody else gets it, nor its history.
    bob, bob_state = await agent_socket("bob")
    assert conversation_id not in [c["conversation_id"] for c in bob_state["conversations"]]
    error = await error_of(bob, {"type": "sync", "conversation_id": conversation_id, "last_seq": 0})
    assert error["code"] == "not_found"

    await again.send_json_to({"type": "close", "conversation_id": conversation_id, "disposition": "resolved"})
    await receive_until(again, of_type("closed"))
    await again.disconnect()
    closed_state = (await agent_socket("alice"))
    assert conversation_id not in [c["conversation_id"] for c in closed_state[1]["conversations"]]
    error = await error_of(closed_state[0], {"type": "sync", "conversation_id": conversation_id, "last_seq": 0})
    assert error["code"] == "not_found"
    for c in (visitor, bob, closed_state[0]):
        await c.disconnect()


async def test_a_chat_that_never_reached_an_agent_takes_no_disposition(agent):
    agent_comm, _ = await agent_socket("alice")
    await agent_comm.send_json_to({"type": "presence", "status": "online"})
    await receive_until(agent_comm, lambda f: f["type"] == "presence" and f["status"] == "online")
    visitor, _ = await visitor_socket()
    await visitor.send_json_to({"type": "start", "department": "support", "message": "hi", "client_id": "x"})
    offer = await receive_until(agent_comm, of_type("offer"))
    await visitor.send_json_to({"type": "end"})
    ended = await receive_until(agent_comm, of_type("ended"))
    assert ended["status"] == "missed"
    error = await error_of(agent_comm, {"type": "close", "conversation_id": offer["conversation_id"], "disposition": "resolved"})
    assert error["code"] == "not_ended"
    for c in (visitor, agent_comm):
        await c.disconnect()


# --- blocking -------------------------------------------------------------------------------


async def test_blocked_visitor_gets_the_offline_form_never_a_chat(agent):
    visitor, agent_comm, conversation_id, token = await open_chat()
    assert (await error_of(agent_comm, {"type": "block", "conversation_id": conversation_id, "by": "cookie"}))[
        "code"
    ] == "invalid_field"
    await agent_comm.send_json_to(
        {"type": "block", "conversation_id": conversation_id, "by": "token", "reason": "Spam links"}
    )
    blocked = await receive_until(agent_comm, of_type("blocked"))
    assert blocked["by"] == "token"
    conversation = await _get(Conversation, pk=conversation_id)
    assert (conversation.status, conversation.ended_by, conversation.disposition) == ("ended", "agent", "spam")
    block = await _get(VisitorBlock, pk=blocked["block_id"])
    assert block.enabled and block.reason == "Spam links" and block.conversation_id == conversation_id
    entry = await _get(AuditEntry, action="chat.visitor_blocked")
    assert entry.target == f"conversation:{conversation_id}"
    # The visitor's page: the chat ended (a neutral line, nothing about a block).
    ended = await receive_until(visitor, lambda f: f["type"] == "conversation" and f["status"] == "ended")
    assert "block" not in str(ended).lower()

    again, welcome = await visitor_socket(token=token)
    assert welcome["blocked"] is True
    error = await error_of(again, {"type": "start", "department": "support", "message": "let me in"})
    assert error["code"] == "blocked" and "leave us a message" in error["message"]
    assert await database_sync_to_async(Conversation.objects.count)() == 1  # no new chat
    await again.send_json_to(
        {"type": "offline", "department": "support", "email": "s@example.com", "message": "Still here"}
    )
    assert (await receive_until(again, of_type("offline_received")))["ticket_id"]

    # Lifted in the back office: chatting works again.
    await database_sync_to_async(VisitorBlock.objects.update)(enabled=False)
    third, welcome = await visitor_socket(token=token)
    assert welcome["blocked"] is False
    await third.send_json_to({"type": "start", "department": "support", "message": "hello again"})
    assert (await receive_until(third, of_type("conversation")))["status"] in ("queued", "offered")
    for c in (visitor, agent_comm, again, third):
        await c.disconnect()


async def test_a_block_by_ip_address_covers_new_visitors_from_it(agent):
    agent_comm, _ = await agent_socket("alice")
    await agent_comm.send_json_to({"type": "presence", "status": "online"})
    await receive_until(agent_comm, lambda f: f["type"] == "presence" and f["status"] == "online")
    spammer, _ = await visitor_from("203.0.113.7")
    await spammer.send_json_to({"type": "start", "department": "support", "message": "buy now", "client_id": "s1"})
    offer = await receive_until(agent_comm, of_type("offer"))
    # Blocking works while the chat still rings, too: it ends as missed, with no disposition.
    await agent_comm.send_json_to({"type": "block", "conversation_id": offer["conversation_id"], "by": "ip"})
    blocked = await receive_until(agent_comm, of_type("blocked"))
    block = await _get(VisitorBlock, pk=blocked["block_id"])
    assert (block.kind, block.ip_address, block.visitor_id) == ("ip", "203.0.113.7", None)
    assert (await _get(Conversation, pk=offer["conversation_id"])).status == "missed"

    newcomer, welcome = await visitor_from("203.0.113.7")  # a fresh token, the same address
    assert welcome["blocked"] is True
    assert (await error_of(newcomer, {"type": "start", "department": "support"}))["code"] == "blocked"
    elsewhere, welcome = await visitor_from("198.51.100.2")
    assert welcome["blocked"] is False
    for c in (agent_comm, spammer, newcomer, elsewhere):
        await c.disconnect()


async def test_block_by_ip_without_a_known_address_is_refused(agent):
    visitor, agent_comm, conversation_id, _ = await open_chat()  # the test socket has no address
    error = await error_of(agent_comm, {"type": "block", "conversation_id": conversation_id, "by": "ip"})
    assert error["code"] == "no_ip"
    assert not await database_sync_to_async(VisitorBlock.objects.exists)()
    assert (await _get(Conversation, pk=conversation_id)).status == "active"
    for c in (visitor, agent_comm):
        await c.disconnect()


# --- invitations: once per rule and visit ---------------------------------------------------


async def test_an_invitation_is_recorded_once_per_visit(department, agent):
    await database_sync_to_async(AgentProfile.objects.update)(presence="online")
    rule = await database_sync_to_async(InvitationRule.objects.create)(
        name="Pricing", department=department, url_pattern="*/pricing*", seconds_on_page=0
    )
    comm, _ = await visitor_socket()
    ask = {"type": "invite_request", "rule_id": rule.pk, "page_url": "https://shop.test/pricing"}
    await comm.send_json_to(ask)
    first = await receive_until(comm, of_type("invitation"))
    # The next page of the same visit: the unanswered invitation is shown again, not recorded again.
    await comm.send_json_to({**ask, "page_url": "https://shop.test/pricing/plans"})
    second = await receive_until(comm, of_type("invitation"))
    assert second["invitation_id"] == first["invitation_id"]
    await comm.send_json_to({"type": "invite_reply", "invitation_id": first["invitation_id"], "accepted": False})
    await receive_until(comm, of_type("invitation_answered"))
    await comm.send_json_to(ask)
    assert (await receive_until(comm, of_type("invitation")))["invitation_id"] is None  # declined: not again
    assert await database_sync_to_async(ProactiveInvitation.objects.count)() == 1
    await comm.disconnect()


async def test_a_blocked_visitor_is_never_invited(department, agent):
    await database_sync_to_async(AgentProfile.objects.update)(presence="online")
    rule = await database_sync_to_async(InvitationRule.objects.create)(
        name="All", department=department, url_pattern="*", seconds_on_page=0
    )
    comm, _ = await visitor_socket()
    visitor = await database_sync_to_async(lambda: Visitor.objects.get())()
    await database_sync_to_async(VisitorBlock.objects.create)(
        kind="token", visitor=visitor, created_at=visitor.created_at
    )
    await comm.send_json_to({"type": "invite_request", "rule_id": rule.pk, "page_url": "https://shop.test/"})
    assert (await receive_until(comm, of_type("invitation")))["invitation_id"] is None
    assert not await database_sync_to_async(ProactiveInvitation.objects.exists)()
    await comm.disconnect()
