"""The supervisor's live view is pushed, not polled: a chat appears when it is queued, changes
agent and status on offer, accept and transfer, and disappears when it ends or leaves the
supervisor's departments. Only supervisors of the chat's department hear about it, and a
supervisor who loses a department stops hearing about it at the next event.
"""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async

from chat.models import AgentProfile
from tests.chat.helpers import agent_socket, receive_until, visitor_socket
from tests.chat.test_supervision import supervisor_socket
from tests.chat.test_visibility import Recording
from tests.factories import AgentFactory, UserFactory, give_role

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def billing_lead(other_department):
    lead = give_role(UserFactory(username="bill"), "Supervisor")
    AgentFactory(user=lead, display_name="Bill Lead", departments=[other_department])
    return lead


async def until(who: Recording, predicate, *, timeout: float = 10.0) -> dict:
    """Like Recording.until with room for a loaded machine (real mode goes through Redis)."""
    frame = await receive_until(
        who.comm, lambda f: who.frames.append(f) or predicate(f), timeout=timeout
    )
    return frame


def live_frames(who: Recording, conversation_id: int) -> list[dict]:
    return [
        f
        for f in who.frames
        if (f["type"] == "live_row" and f["conversation"]["conversation_id"] == conversation_id)
        or (f["type"] == "live_remove" and f["conversation_id"] == conversation_id)
    ]


async def online_agent(username: str) -> Recording:
    comm, state = await agent_socket(username)
    agent = Recording(comm, [state])
    await agent.send({"type": "presence", "status": "online"})
    await until(agent, lambda f: f["type"] == "presence" and f["status"] == "online")
    return agent


async def test_chats_appear_change_and_disappear_as_they_happen(
    agent, department_supervisor, billing_lead, other_department
):
    sue, live = await supervisor_socket("sue")
    bill, bill_live = await supervisor_socket("bill")
    assert live["conversations"] == [] and bill_live["conversations"] == []
    alice = await online_agent("alice")

    visitor_comm, _ = await visitor_socket()
    visitor = Recording(visitor_comm)
    await visitor.send({"type": "start", "department": "support", "message": "hello"})
    offer = await until(alice, lambda f: f["type"] == "offer")
    conversation_id = offer["conversation_id"]
    ringing = await until(
        sue, lambda f: f["type"] == "live_row" and f["conversation"]["status"] == "offered"
    )
    row = ringing["conversation"]
    assert row["conversation_id"] == conversation_id
    assert row["agent"]["name"] == "Alice Agent" and row["department"]["name"] == "Patient support"
    assert row["waiting"] is True and row["wait_seconds"] >= 0

    await alice.send({"type": "accept", "conversation_id": conversation_id})
    active = await until(
        sue, lambda f: f["type"] == "live_row" and f["conversation"]["status"] == "active"
    )
    assert active["conversation"]["agent"]["name"] == "Alice Agent"
    assert active["conversation"]["waiting"] is False

    # A transfer to Billing: gone from Patient support's view, queued in Billing's.
    await alice.send(
        {
            "type": "transfer",
            "conversation_id": conversation_id,
            "to_department": other_department.pk,
        }
    )
    removed = await until(sue, lambda f: f["type"] == "live_remove")
    assert removed == {"type": "live_remove", "conversation_id": conversation_id}
    arrived = await until(bill, lambda f: f["type"] == "live_row")
    assert arrived["conversation"]["conversation_id"] == conversation_id
    assert arrived["conversation"]["department"]["name"] == "Billing"
    assert (
        arrived["conversation"]["status"] == "queued" and arrived["conversation"]["agent"] is None
    )
    # Billing's lead heard nothing of the chat while it was Patient support's.
    assert live_frames(bill, conversation_id) == [arrived]

    await visitor.send({"type": "end"})
    gone = await until(bill, lambda f: f["type"] == "live_remove")
    assert gone["conversation_id"] == conversation_id
    await sue.settle()
    assert live_frames(sue, conversation_id)[-1] == removed  # nothing after it left her departments
    for who in (sue, bill, alice, visitor):
        await who.comm.disconnect()


async def test_a_supervisor_of_another_department_hears_nothing(agent, billing_lead):
    bill, _ = await supervisor_socket("bill")
    alice = await online_agent("alice")
    visitor_comm, _ = await visitor_socket()
    visitor = Recording(visitor_comm)
    await visitor.send({"type": "start", "department": "support", "message": "hello"})
    offer = await until(alice, lambda f: f["type"] == "offer")
    await alice.send({"type": "accept", "conversation_id": offer["conversation_id"]})
    await until(alice, lambda f: f["type"] == "history")
    await visitor.send({"type": "end"})
    await until(visitor, lambda f: f.get("type") == "conversation" and f["status"] == "ended")
    await bill.settle()
    assert [f["type"] for f in bill.frames] == ["live"], bill.frames
    for who in (bill, alice, visitor):
        await who.comm.disconnect()


async def test_a_supervisor_who_loses_the_department_stops_hearing_at_once(
    agent, department_supervisor, department
):
    sue, _ = await supervisor_socket("sue")
    alice = await online_agent("alice")

    # Sue's department is taken away while her live page is open.
    await database_sync_to_async(
        lambda: AgentProfile.objects.get(user=department_supervisor).departments.remove(department)
    )()
    visitor_comm, _ = await visitor_socket()
    visitor = Recording(visitor_comm)
    await visitor.send({"type": "start", "department": "support", "message": "private matter"})
    offer = await until(alice, lambda f: f["type"] == "offer")
    await alice.send({"type": "accept", "conversation_id": offer["conversation_id"]})
    await until(alice, lambda f: f["type"] == "history")
    await sue.settle()
    assert [f["type"] for f in sue.frames] == ["live"], sue.frames
    assert "private matter" not in sue.text()
    # She may ask for the list again; it is empty, and she has left the department's group.
    await sue.send({"type": "live"})
    again = await until(sue, lambda f: f["type"] == "live")
    assert again["conversations"] == []
    for who in (sue, alice, visitor):
        await who.comm.disconnect()


async def test_a_sit_in_ends_when_the_chat_is_transferred_out_of_the_departments(
    agent, department_supervisor, other_department
):
    sue, _ = await supervisor_socket("sue")
    alice = await online_agent("alice")
    visitor_comm, _ = await visitor_socket()
    visitor = Recording(visitor_comm)
    await visitor.send({"type": "start", "department": "support", "message": "hello"})
    offer = await until(alice, lambda f: f["type"] == "offer")
    conversation_id = offer["conversation_id"]
    await alice.send({"type": "accept", "conversation_id": conversation_id})
    await until(alice, lambda f: f["type"] == "history")
    await sue.send({"type": "sit_in", "conversation_id": conversation_id})
    await until(sue, lambda f: f["type"] == "history")
    await visitor.send({"type": "message", "body": "still support", "client_id": "v1"})
    await until(sue, lambda f: f.get("type") == "message" and f["body"] == "still support")

    await alice.send(
        {
            "type": "transfer",
            "conversation_id": conversation_id,
            "to_department": other_department.pk,
            "note": "billing question about invoice 123",
        }
    )
    left = await until(sue, lambda f: f["type"] == "left")
    assert left == {"type": "left", "conversation_id": conversation_id}
    await visitor.send({"type": "message", "body": "now in billing", "client_id": "v2"})
    await until(visitor, lambda f: f.get("type") == "ack" or f.get("body") == "now in billing")
    await sue.settle()
    assert "now in billing" not in sue.text()
    assert "invoice 123" not in sue.text()  # the transfer note went with the chat
    # And she cannot follow it again.
    await sue.send({"type": "sit_in", "conversation_id": conversation_id})
    refused = await until(sue, lambda f: f["type"] == "error")
    assert refused["code"] == "not_found"
    for who in (sue, alice, visitor):
        await who.comm.disconnect()
