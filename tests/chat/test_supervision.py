"""The supervisor socket: live view, sit-in, whisper and barge-in, against the real ASGI app.

A whisper reaches the chat's agent, marked as a whisper, and never the visitor: not live, not in
history after a reload. Every sit-in, whisper and barge-in leaves an audit entry.
"""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from chat.models import Message
from compliance.models import AuditEntry
from config.asgi import application
from tests.chat.helpers import ORIGIN, agent_socket, session_cookie_for, visitor_socket
from tests.chat.test_visibility import Recording
from tests.factories import AgentFactory, UserFactory, give_role

pytestmark = pytest.mark.django_db(transaction=True)

WHISPER = "WHISPER: offer the goodwill voucher now"


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


async def supervisor_socket(username: str) -> tuple[Recording, dict]:
    cookie = await session_cookie_for(username)
    comm = WebsocketCommunicator(
        application, "/ws/supervisor/", headers=[ORIGIN, (b"cookie", cookie)]
    )
    connected, _ = await comm.connect()
    assert connected, f"supervisor socket for {username} refused"
    live = await comm.receive_json_from()
    assert live["type"] == "live"
    return Recording(comm, [live]), live


async def active_chat() -> tuple[Recording, Recording, int, str]:
    alice_comm, state = await agent_socket("alice")
    alice = Recording(alice_comm, [state])
    await alice.send({"type": "presence", "status": "online"})
    await alice.until(lambda f: f["type"] == "presence" and f["status"] == "online")
    visitor_comm, welcome = await visitor_socket()
    visitor = Recording(visitor_comm, [welcome])
    await visitor.send(
        {"type": "start", "department": "support", "message": "hi", "client_id": "v0"}
    )
    offer = await alice.until(lambda f: f["type"] == "offer")
    conversation_id = offer["conversation_id"]
    await alice.send({"type": "accept", "conversation_id": conversation_id})
    await alice.until(lambda f: f["type"] == "history")
    await visitor.until(lambda f: f["type"] == "conversation" and f["status"] == "active")
    return alice, visitor, conversation_id, welcome["token"]


def audit_actions(conversation_id: int) -> list[str]:
    return list(
        AuditEntry.objects.filter(target=f"conversation:{conversation_id}")
        .order_by("id")
        .values_list("action", flat=True)
    )


async def test_sit_in_and_whisper_reach_the_agent_and_never_the_visitor(agent, supervisor):
    alice, visitor, conversation_id, token = await active_chat()
    sup, live = await supervisor_socket("sam")
    [row] = [r for r in live["conversations"] if r["conversation_id"] == conversation_id]
    assert row["agent"]["name"] == "Alice Agent" and row["status"] == "active"

    await sup.send({"type": "sit_in", "conversation_id": conversation_id})
    history = await sup.until(lambda f: f["type"] == "history")
    assert history["messages"][0]["body"] == "hi"

    # Following: the visitor's messages, and the typing of both sides.
    await visitor.send({"type": "typing", "active": True})
    typing = await sup.until(lambda f: f["type"] == "typing")
    assert typing["role"] == "visitor"
    await alice.send({"type": "typing", "conversation_id": conversation_id})
    typing = await sup.until(lambda f: f["type"] == "typing" and f["role"] == "agent")
    await visitor.send({"type": "message", "body": "is anyone there?", "client_id": "v1"})
    await sup.until(lambda f: f.get("type") == "message" and f["body"] == "is anyone there?")

    await sup.send(
        {"type": "whisper", "conversation_id": conversation_id, "body": WHISPER, "client_id": "w1"}
    )
    await sup.until(lambda f: f["type"] == "ack" and f["client_id"] == "w1")
    got = await alice.until(lambda f: f.get("type") == "message" and f["body"] == WHISPER)
    assert got["visibility"] == "whisper" and got["whisper_to"] == agent.user_id
    assert got["role"] == "supervisor"

    # The agent's public answer comes after the whisper: once the visitor has it, it has all.
    await alice.send(
        {
            "type": "message",
            "conversation_id": conversation_id,
            "body": "Yes, here!",
            "client_id": "a1",
        }
    )
    await visitor.until(lambda f: f.get("type") == "message" and f["body"] == "Yes, here!")
    await visitor.settle()
    reloaded_comm, welcome = await visitor_socket(token=token, last_seq=0)
    reloaded = Recording(reloaded_comm, [welcome])
    await reloaded.until(lambda f: f["type"] == "history")
    await reloaded.settle()
    for who in (visitor, reloaded):
        assert WHISPER not in who.text()
        assert "supervisor" not in who.text().lower()  # not even a trace of the sit-in
    stored = await database_sync_to_async(
        lambda: Message.objects.get(conversation_id=conversation_id, body=WHISPER)
    )()
    assert stored.visibility == "whisper" and stored.public_seq is None
    actions = await database_sync_to_async(audit_actions)(conversation_id)
    assert actions == ["chat.sit_in", "chat.whisper"]
    for comm in (alice, visitor, reloaded, sup):
        await comm.comm.disconnect()


async def test_barge_in_is_announced_to_the_visitor_then_the_supervisor_may_write(
    agent, supervisor
):
    alice, visitor, conversation_id, _ = await active_chat()
    sup, _ = await supervisor_socket("sam")
    await sup.send(
        {"type": "message", "conversation_id": conversation_id, "body": "Hello", "client_id": "s0"}
    )
    refused = await sup.until(lambda f: f["type"] == "error")
    assert refused["code"] == "not_joined"
    await sup.send({"type": "barge_in", "conversation_id": conversation_id})
    await visitor.until(
        lambda f: f.get("type") == "message" and f["body"] == "A supervisor joined the chat."
    )
    await sup.send(
        {
            "type": "message",
            "conversation_id": conversation_id,
            "body": "I am the team lead.",
            "client_id": "s1",
        }
    )
    await sup.until(lambda f: f["type"] == "ack" and f["client_id"] == "s1")
    said = await visitor.until(lambda f: f.get("type") == "message" and f["role"] == "supervisor")
    assert said["body"] == "I am the team lead."
    await alice.until(lambda f: f.get("type") == "message" and f["body"] == "I am the team lead.")
    actions = await database_sync_to_async(audit_actions)(conversation_id)
    assert actions == ["chat.barge_in"]
    for comm in (alice, visitor, sup):
        await comm.comm.disconnect()


async def test_supervisor_of_another_department_can_neither_see_nor_whisper(
    agent, other_department
):
    def make_billing_lead():
        lead = give_role(UserFactory(username="bill", is_staff=True), "Supervisor")
        AgentFactory(user=lead, display_name="Bill Lead", departments=[other_department])

    await database_sync_to_async(make_billing_lead)()
    alice, visitor, conversation_id, _ = await active_chat()
    lead, live = await supervisor_socket("bill")
    assert conversation_id not in [r["conversation_id"] for r in live["conversations"]]
    for frame in (
        {"type": "sit_in", "conversation_id": conversation_id},
        {"type": "whisper", "conversation_id": conversation_id, "body": "psst", "client_id": "x"},
        {"type": "barge_in", "conversation_id": conversation_id},
    ):
        await lead.send(frame)
        error = await lead.until(lambda f: f["type"] == "error")
        assert error["code"] == "not_found", error
    count = await database_sync_to_async(
        lambda: Message.objects.filter(conversation_id=conversation_id, body="psst").count()
    )()
    assert count == 0
    await visitor.settle()
    assert "psst" not in visitor.text()
    for comm in (alice, visitor, lead):
        await comm.comm.disconnect()


async def test_a_non_supervisor_is_refused_at_the_handshake(db):
    await database_sync_to_async(lambda: UserFactory(username="vera", is_staff=False))()
    cookie = await session_cookie_for("vera")
    comm = WebsocketCommunicator(
        application, "/ws/supervisor/", headers=[ORIGIN, (b"cookie", cookie)]
    )
    connected, _ = await comm.connect()
    assert not connected


async def test_take_over_moves_the_chat_to_the_supervisor(agent, department):
    def make_lead():
        lead = give_role(UserFactory(username="lena", is_staff=True), "Supervisor")
        AgentFactory(user=lead, display_name="Lena Lead", departments=[department])

    await database_sync_to_async(make_lead)()
    alice, visitor, conversation_id, _ = await active_chat()
    lead, _ = await supervisor_socket("lena")
    lead_agent_comm, _ = await agent_socket("lena")  # the lead's own workspace
    lead_agent = Recording(lead_agent_comm)
    await lead.send({"type": "take_over", "conversation_id": conversation_id})
    await visitor.until(
        lambda f: f.get("type") == "message" and f["body"] == "A supervisor took over the chat."
    )
    gone = await alice.until(lambda f: f["type"] == "unassigned")
    assert gone == {
        "type": "unassigned",
        "conversation_id": conversation_id,
        "reason": "taken_over",
    }
    mine = await lead_agent.until(lambda f: f.get("type") == "conversation")
    assert mine["conversation_id"] == conversation_id and mine["status"] == "active"
    # Held by the lead now: its workspace writes to the visitor, Alice's cannot any more.
    await lead_agent.send(
        {
            "type": "message",
            "conversation_id": conversation_id,
            "body": "Lena here, I will finish this.",
            "client_id": "l1",
        }
    )
    await visitor.until(
        lambda f: f.get("type") == "message" and f["body"] == "Lena here, I will finish this."
    )
    await alice.send(
        {
            "type": "message",
            "conversation_id": conversation_id,
            "body": "still me",
            "client_id": "a9",
        }
    )
    refused = await alice.until(lambda f: f["type"] == "error")
    assert refused["code"] == "not_found"
    actions = await database_sync_to_async(audit_actions)(conversation_id)
    assert actions == ["chat.take_over"]
    for comm in (alice, visitor, lead, lead_agent):
        await comm.comm.disconnect()
