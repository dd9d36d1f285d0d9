"""`conversation` frames carry the chat's current last_seq, never one from before their own change.

A client compares last_seq with what it holds to decide whether to sync; a frame whose last_seq is
behind the system line it announces ("Alice joined", "The agent ended the chat") says the chat
has fewer messages than the client was just sent.
"""

import asyncio

import pytest

from tests.chat.helpers import agent_socket, receive_until, visitor_socket

pytestmark = pytest.mark.django_db(transaction=True)


async def _record_until(comm, seen: list, predicate, *, timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        frame = await comm.receive_json_from(timeout=max(0.01, deadline - loop.time()))
        seen.append(frame)
        if predicate(frame):
            return


async def test_conversation_frames_never_lag_behind_the_messages_already_sent(agent):
    agent_comm, _ = await agent_socket("alice")
    await agent_comm.send_json_to({"type": "presence", "status": "online"})
    await receive_until(agent_comm, lambda f: f["type"] == "presence" and f["status"] == "online")
    visitor, _ = await visitor_socket()
    seen: list[dict] = []
    await visitor.send_json_to({"type": "start", "department": "support", "message": "Hello", "client_id": "v-1"})
    offer = await receive_until(agent_comm, lambda f: f["type"] == "offer")
    conversation_id = offer["conversation_id"]

    await agent_comm.send_json_to({"type": "accept", "conversation_id": conversation_id})
    await _record_until(visitor, seen, lambda f: f["type"] == "message" and "joined" in f["body"])
    await agent_comm.send_json_to({"type": "end", "conversation_id": conversation_id})
    await _record_until(visitor, seen, lambda f: f["type"] == "conversation" and f["status"] == "ended")
    if not any(f["type"] == "message" and "ended" in f["body"] for f in seen):
        await _record_until(visitor, seen, lambda f: f["type"] == "message" and "ended" in f["body"])

    highest = 0
    for frame in seen:
        if frame["type"] in ("message",):
            highest = max(highest, frame["seq"])
        elif frame["type"] == "history":
            highest = max([highest] + [m["seq"] for m in frame["messages"]])
        elif frame["type"] == "conversation" and frame["status"] in ("active", "ended"):
            # Its change wrote a system line first, so the frame must count at least that far.
            assert frame["last_seq"] >= highest, (frame, seen)
    final = [f for f in seen if f["type"] == "conversation"][-1]
    assert final["status"] == "ended" and final["last_seq"] == highest
    await visitor.disconnect()
    await agent_comm.disconnect()
