"""A whole chat over the real ASGI app: start, routing, accept, messages both ways, end."""

import pytest
from channels.db import database_sync_to_async

from chat.models import Assignment, Conversation, Message
from tests.chat.helpers import agent_socket, receive_until, visitor_socket

pytestmark = pytest.mark.django_db(transaction=True)


async def test_visitor_and_agent_chat_end_to_end(agent):
    agent_comm, _state = await agent_socket("alice")
    await agent_comm.send_json_to({"type": "presence", "status": "online"})
    await receive_until(agent_comm, lambda f: f["type"] == "presence" and f["status"] == "online")

    visitor, welcome = await visitor_socket()
    assert welcome["token"] and welcome["conversation"] is None
    await visitor.send_json_to(
        {"type": "start", "department": "support", "name": "Vera", "message": "Hello, I need help", "client_id": "v-1"}
    )
    offer = await receive_until(agent_comm, lambda f: f["type"] == "offer")
    conversation_id = offer["conversation_id"]
    assert offer["visitor"]["name"] == "Vera"

    await agent_comm.send_json_to({"type": "accept", "conversation_id": conversation_id})
    history = await receive_until(agent_comm, lambda f: f["type"] == "history")
    assert [m["body"] for m in history["messages"]][:1] == ["Hello, I need help"]

    joined = await receive_until(visitor, lambda f: f["type"] == "conversation" and f["status"] == "active")
    assert joined["agent"]["name"] == "Alice Agent"

    await agent_comm.send_json_to(
        {"type": "message", "conversation_id": conversation_id, "client_id": "a-1", "body": "Hi Vera, I'm Alice."}
    )
    ack = await receive_until(agent_comm, lambda f: f["type"] == "ack")
    got = await receive_until(visitor, lambda f: f["type"] == "message" and f["role"] == "agent")
    assert got["body"] == "Hi Vera, I'm Alice." and got["seq"] == ack["seq"] and got["author"] == "Alice Agent"

    await visitor.send_json_to({"type": "message", "client_id": "v-2", "body": "Thanks!"})
    visitor_ack = await receive_until(visitor, lambda f: f["type"] == "ack")
    assert visitor_ack["seq"] == ack["seq"] + 1
    received = await receive_until(agent_comm, lambda f: f["type"] == "message" and f["role"] == "visitor")
    assert received["body"] == "Thanks!"

    await visitor.send_json_to({"type": "end"})
    ended = await receive_until(agent_comm, lambda f: f["type"] == "ended")
    assert ended["status"] == "ended"

    conversation = await database_sync_to_async(Conversation.objects.get)(pk=conversation_id)
    assert conversation.status == "ended" and conversation.ended_by == "visitor"
    assert conversation.queued_at <= conversation.assigned_at <= conversation.first_agent_reply_at <= conversation.ended_at
    bodies = await database_sync_to_async(lambda: list(Message.objects.filter(conversation_id=conversation_id)
                                                         .values_list("seq", "role", "body")))()
    assert [s for s, _, _ in bodies] == list(range(1, len(bodies) + 1))
    assert bodies[-1][1] == "system"
    assignment = await database_sync_to_async(Assignment.objects.get)(conversation_id=conversation_id)
    assert assignment.end_reason == "ended" and assignment.first_reply_at == conversation.first_agent_reply_at

    await visitor.disconnect()
    await agent_comm.disconnect()


async def test_queue_position_is_told_and_head_assigned_when_slot_frees(make_agent, department):
    await database_sync_to_async(make_agent)("solo", "Solo Agent", [department], max_chats=1)
    agent_comm, _ = await agent_socket("solo")
    await agent_comm.send_json_to({"type": "presence", "status": "online"})

    first, _ = await visitor_socket()
    await first.send_json_to({"type": "start", "department": "support", "message": "first"})
    offer = await receive_until(agent_comm, lambda f: f["type"] == "offer")
    await agent_comm.send_json_to({"type": "accept", "conversation_id": offer["conversation_id"]})

    second, _ = await visitor_socket()
    await second.send_json_to({"type": "start", "department": "support", "message": "second"})
    state = await receive_until(second, lambda f: f["type"] == "conversation")
    assert state["status"] == "queued" and state["queue_position"] == 1
    third, _ = await visitor_socket()
    await third.send_json_to({"type": "start", "department": "support", "message": "third"})
    state3 = await receive_until(third, lambda f: f["type"] == "conversation")
    assert state3["queue_position"] == 2

    await agent_comm.send_json_to({"type": "end", "conversation_id": offer["conversation_id"]})
    next_offer = await receive_until(agent_comm, lambda f: f["type"] == "offer")
    assert next_offer["conversation_id"] == state["conversation_id"]
    moved = await receive_until(third, lambda f: f["type"] == "queue")
    assert moved["position"] == 1
    for comm in (first, second, third, agent_comm):
        await comm.disconnect()


async def test_reload_resumes_same_conversation_and_missed_messages(agent):
    agent_comm, _ = await agent_socket("alice")
    await agent_comm.send_json_to({"type": "presence", "status": "online"})
    visitor, welcome = await visitor_socket()
    token = welcome["token"]
    await visitor.send_json_to({"type": "start", "department": "support", "message": "hi"})
    offer = await receive_until(agent_comm, lambda f: f["type"] == "offer")
    await agent_comm.send_json_to({"type": "accept", "conversation_id": offer["conversation_id"]})
    await receive_until(agent_comm, lambda f: f["type"] == "history")
    await visitor.disconnect()

    for i in range(3):
        await agent_comm.send_json_to({"type": "message", "conversation_id": offer["conversation_id"],
                                       "client_id": f"a{i}", "body": f"while you were away {i}"})
        await receive_until(agent_comm, lambda f: f["type"] == "ack")

    # The visitor had seen seq 1 (its own first message); a reload resumes from there.
    again, welcome2 = await visitor_socket(token=token, last_seq=1)
    assert welcome2["token"] is None
    assert welcome2["conversation"]["conversation_id"] == offer["conversation_id"]
    history = await receive_until(again, lambda f: f["type"] == "history")
    bodies = [m["body"] for m in history["messages"]]
    assert bodies[-3:] == ["while you were away 0", "while you were away 1", "while you were away 2"]
    assert all(m["seq"] > 1 for m in history["messages"])
    # A second tab of the same visitor sees the same conversation too.
    tab, welcome3 = await visitor_socket(token=token)
    assert welcome3["conversation"]["conversation_id"] == offer["conversation_id"]
    await again.send_json_to({"type": "message", "client_id": "tab1", "body": "from tab one"})
    echoed = await receive_until(tab, lambda f: f["type"] == "message" and f["body"] == "from tab one")
    assert echoed["role"] == "visitor"
    for comm in (again, tab, agent_comm):
        await comm.disconnect()
