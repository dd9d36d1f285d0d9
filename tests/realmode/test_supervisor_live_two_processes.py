"""Real mode: the supervisor's live view is pushed across daphne processes through Redis.

The supervisor's socket is on process A; the visitor and the agent are on process B, so every
live_row and live_remove the supervisor gets travelled through the channel layer. A supervisor of
another department, also on A, hears nothing of the chat.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.auth import staff_session_cookie
from tests.factories import AgentFactory, DepartmentFactory, UserFactory, give_role
from tests.realmode.test_two_processes import db, open_peer, servers  # noqa: F401 - the fixture

pytestmark = [pytest.mark.realmode, pytest.mark.django_db(transaction=True)]


def _people() -> dict[str, str]:
    support = DepartmentFactory(name="Patient support", slug="support")
    billing = DepartmentFactory(name="Billing", slug="billing")
    alice = AgentFactory(
        user=UserFactory(username="alice"), display_name="Alice Agent", departments=[support]
    )
    sue = give_role(UserFactory(username="sue"), "Supervisor")
    AgentFactory(user=sue, display_name="Sue Supervisor", departments=[support])
    bill = give_role(UserFactory(username="bill"), "Supervisor")
    AgentFactory(user=bill, display_name="Bill Lead", departments=[billing])
    return {
        "alice": staff_session_cookie(alice.user),
        "sue": staff_session_cookie(sue),
        "bill": staff_session_cookie(bill),
    }


async def test_live_rows_cross_processes_and_stay_in_their_department(servers):  # noqa: F811
    server_a, server_b = servers
    cookies = await db(_people)()

    sue = await open_peer("sue", server_a, "/ws/supervisor/", cookie=cookies["sue"])
    first = await sue.until(lambda f: f["type"] == "live", what="sue's live list")
    assert first["conversations"] == []
    bill = await open_peer("bill", server_a, "/ws/supervisor/", cookie=cookies["bill"])
    await bill.until(lambda f: f["type"] == "live", what="bill's live list")

    agent = await open_peer("agent", server_b, "/ws/agent/", cookie=cookies["alice"])
    await agent.until(lambda f: f["type"] == "state", what="state")
    await agent.send({"type": "presence", "status": "online"})
    await agent.until(lambda f: f["type"] == "presence" and f["status"] == "online", what="online")
    visitor = await open_peer("visitor", server_b, "/ws/visitor/")
    await visitor.send({"type": "hello", "token": None, "last_seq": 0})
    await visitor.until(lambda f: f["type"] == "welcome", what="welcome")
    await visitor.send({"type": "start", "department": "support", "name": "Vera", "message": "Hi"})

    offer = await agent.until(lambda f: f["type"] == "offer", what="offer")
    conversation_id = offer["conversation_id"]
    ringing = await sue.until(
        lambda f: f["type"] == "live_row" and f["conversation"]["status"] == "offered",
        what="the offered chat on process A",
    )
    assert ringing["conversation"]["conversation_id"] == conversation_id
    assert ringing["conversation"]["agent"]["name"] == "Alice Agent"

    await agent.send({"type": "accept", "conversation_id": conversation_id})
    await sue.until(
        lambda f: f["type"] == "live_row" and f["conversation"]["status"] == "active",
        what="the accepted chat on process A",
    )
    await agent.send({"type": "end", "conversation_id": conversation_id})
    gone = await sue.until(lambda f: f["type"] == "live_remove", what="the ended chat removed")
    assert gone["conversation_id"] == conversation_id

    # Billing's lead, on the same process as Sue, heard nothing of Patient support's chat.
    heard: list[dict] = []
    try:
        async with asyncio.timeout(1.0):
            while True:
                heard.append(json.loads(await bill.ws.recv()))
    except TimeoutError:
        pass
    assert not [f for f in heard if f["type"] in ("live_row", "live_remove")], heard
    for peer in (sue, bill, agent, visitor):
        await peer.ws.close()
