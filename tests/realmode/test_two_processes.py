"""Two real daphne processes sharing Redis (channels-redis) and PostgreSQL.

A visitor on process A and an agent on process B chat both ways; then A dies mid-conversation
and the visitor reconnects to B with its token and last sequence number, and gets exactly what
it missed. Messages are keyed by sequence number, so a duplicate or a gap shows.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from chat.models import Message
from tests.auth import staff_session_cookie
from tests.conftest import real_mode
from tests.factories import AgentFactory, DepartmentFactory, UserFactory
from tests.realmode.conftest import wait_for_other_sessions_to_end
from tests.serverprocs import DaphneServer, running_servers

pytestmark = [pytest.mark.realmode, pytest.mark.django_db(transaction=True)]

TIMEOUT = 10.0


@pytest.fixture
def servers(realmode_env):
    if not real_mode():
        pytest.skip("needs PostgreSQL and Redis")
    with running_servers(2, env=realmode_env, name="twoproc") as pair:
        yield pair
    wait_for_other_sessions_to_end()


def db(fn):
    """Run `fn` in the worker thread and close that thread's connection after it, so nothing
    keeps the test database open when the test ends."""

    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        finally:
            connections.close_all()

    return sync_to_async(call)


class Peer:
    """One WebSocket client that keeps every message frame it got, by sequence number."""

    def __init__(self, name: str, ws: ClientConnection, server: DaphneServer) -> None:
        self.name = name
        self.ws = ws
        self.server = server
        self.messages: dict[int, dict[str, Any]] = {}
        # Sequence numbers received more than once. The protocol allows a repeat (a frame sent
        # between joining the group and reading history), never a different message.
        self.duplicates: list[int] = []
        self.conflicts: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.arrival: list[int] = []

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    def _keep(self, message: dict[str, Any]) -> None:
        if message["seq"] in self.messages:
            self.duplicates.append(message["seq"])
            if self.messages[message["seq"]] != message:
                self.conflicts.append((self.messages[message["seq"]], message))
        self.messages[message["seq"]] = message
        self.arrival.append(message["seq"])

    async def until(self, predicate, *, what: str) -> dict[str, Any]:
        """Frames until one matches; message frames are recorded on the way."""
        seen: list[dict[str, Any]] = []
        try:
            async with asyncio.timeout(TIMEOUT):
                while True:
                    frame = json.loads(await self.ws.recv())
                    seen.append(frame)
                    if frame.get("type") == "message":
                        self._keep(frame)
                    if frame.get("type") == "history":
                        for message in frame["messages"]:
                            self._keep(message)
                    if predicate(frame):
                        return frame
        except TimeoutError:
            raise AssertionError(
                f"{self.name} on {self.server.describe()} waited {TIMEOUT}s for {what}; saw {json.dumps(seen)[:1500]}"
                f"\n--- server log ---\n{self.server.log_tail()}"
            ) from None

    @property
    def last_seq(self) -> int:
        return max(self.messages, default=0)


async def open_peer(
    name: str, server: DaphneServer, path: str, *, cookie: str | None = None
) -> Peer:
    headers = {"Cookie": cookie} if cookie else None
    # As from a page that server served: staff sockets must come from exactly their own host:port.
    ws = await connect(
        server.ws_url(path),
        origin=server.base_url,
        additional_headers=headers,
        open_timeout=TIMEOUT,
    )
    return Peer(name, ws, server)


def _agent_cookie() -> str:
    department = DepartmentFactory(name="Patient support", slug="support")
    agent = AgentFactory(
        user=UserFactory(username="alice"), display_name="Alice Agent", departments=[department]
    )
    return staff_session_cookie(agent.user)


def _public_messages_after(conversation_id: int, seq: int) -> list[tuple[int, str]]:
    return list(
        Message.objects.filter(
            conversation_id=conversation_id, seq__gt=seq, visibility=Message.Visibility.PUBLIC
        )
        .order_by("seq")
        .values_list("seq", "body")
    )


async def test_visitor_and_agent_on_two_processes_and_resume_after_a_crash(servers):
    server_a, server_b = servers
    cookie = await db(_agent_cookie)()

    agent = await open_peer("agent", server_b, "/ws/agent/", cookie=cookie)
    await agent.until(lambda f: f["type"] == "state", what="state")
    await agent.send({"type": "presence", "status": "online"})
    await agent.until(
        lambda f: f["type"] == "presence" and f["status"] == "online", what="presence online"
    )

    visitor = await open_peer("visitor", server_a, "/ws/visitor/")
    await visitor.send({"type": "hello", "token": None, "last_seq": 0})
    welcome = await visitor.until(lambda f: f["type"] == "welcome", what="welcome")
    token = welcome["token"]
    await visitor.send(
        {
            "type": "start",
            "department": "support",
            "name": "Vera",
            "message": "Hello from A",
            "client_id": "v-0",
        }
    )

    # Routing and the offer cross processes: the visitor's process publishes, the agent's delivers.
    offer = await agent.until(lambda f: f["type"] == "offer", what="offer")
    conversation_id = offer["conversation_id"]
    await agent.send({"type": "accept", "conversation_id": conversation_id})
    history = await agent.until(lambda f: f["type"] == "history", what="history after accept")
    assert history["messages"][0]["body"] == "Hello from A"
    await visitor.until(
        lambda f: f["type"] == "conversation" and f["status"] == "active", what="chat active"
    )

    # Ping-pong: each message is delivered on the other process before the answer is sent.
    for i in range(3):
        await visitor.send(
            {"type": "message", "client_id": f"v-{i + 1}", "body": f"visitor says {i}"}
        )
        got = await agent.until(
            lambda f, i=i: f["type"] == "message" and f["body"] == f"visitor says {i}",
            what=f"visitor message {i}",
        )
        await agent.send(
            {
                "type": "message",
                "conversation_id": conversation_id,
                "client_id": f"a-{i}",
                "body": f"agent says {i}",
            }
        )
        back = await visitor.until(
            lambda f, i=i: f["type"] == "message" and f["body"] == f"agent says {i}",
            what=f"agent message {i}",
        )
        assert back["seq"] == got["seq"] + 1 and back["author"] == "Alice Agent"

    # A burst from one side arrives in order on the other process.
    for i in range(5):
        await visitor.send({"type": "message", "client_id": f"burst-{i}", "body": f"burst {i}"})
    await agent.until(
        lambda f: f["type"] == "message" and f["body"] == "burst 4", what="end of burst"
    )
    await visitor.until(
        lambda f: f["type"] == "message" and f["body"] == "burst 4", what="own burst echoed"
    )
    burst = [s for s in agent.arrival if agent.messages[s]["body"].startswith("burst ")]
    assert [agent.messages[s]["body"] for s in burst] == [f"burst {i}" for i in range(5)]
    assert burst == sorted(burst)

    # Both sides saw every public message so far, once, in sequence order, gapless.
    expected = await db(_public_messages_after)(conversation_id, 0)
    for peer in (visitor, agent):
        assert [(s, peer.messages[s]["body"]) for s in sorted(peer.messages)] == expected, peer.name
        assert peer.conflicts == [], peer.name
    assert [s for s, _ in expected] == list(range(1, len(expected) + 1))

    # Process A dies. The visitor's socket goes with it.
    seen_before_crash = visitor.last_seq
    server_a.kill()
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(TIMEOUT):
            while True:
                await visitor.ws.recv()

    # Meanwhile the agent (on B) keeps writing.
    missed_bodies = [f"while you were away {i}" for i in range(3)]
    for i, body in enumerate(missed_bodies):
        await agent.send(
            {
                "type": "message",
                "conversation_id": conversation_id,
                "client_id": f"away-{i}",
                "body": body,
            }
        )
        await agent.until(
            lambda f, i=i: f["type"] == "ack" and f["client_id"] == f"away-{i}",
            what=f"ack away-{i}",
        )

    # The visitor comes back on B with its token and the last sequence number it has.
    resumed = await open_peer("visitor (resumed)", server_b, "/ws/visitor/")
    resumed.messages = dict(visitor.messages)
    await resumed.send({"type": "hello", "token": token, "last_seq": seen_before_crash})
    welcome2 = await resumed.until(lambda f: f["type"] == "welcome", what="welcome on B")
    assert (
        welcome2["token"] is None and welcome2["conversation"]["conversation_id"] == conversation_id
    )
    history2 = await resumed.until(lambda f: f["type"] == "history", what="history on B")

    missed = await db(_public_messages_after)(conversation_id, seen_before_crash)
    assert [(m["seq"], m["body"]) for m in history2["messages"]] == missed
    assert [b for _, b in missed] == missed_bodies
    assert resumed.duplicates == []
    assert history2["last_seq"] == missed[-1][0]

    # And the conversation goes on, both ways, on B alone.
    await resumed.send({"type": "message", "client_id": "v-after", "body": "I'm back"})
    await agent.until(
        lambda f: f["type"] == "message" and f["body"] == "I'm back", what="visitor after resume"
    )
    await agent.send(
        {
            "type": "message",
            "conversation_id": conversation_id,
            "client_id": "a-after",
            "body": "Welcome back",
        }
    )
    await resumed.until(
        lambda f: f["type"] == "message" and f["body"] == "Welcome back", what="agent after resume"
    )
    everything = await db(_public_messages_after)(conversation_id, 0)
    assert [(s, resumed.messages[s]["body"]) for s in sorted(resumed.messages)] == everything
    assert [s for s, _ in everything] == list(range(1, len(everything) + 1))
    assert resumed.duplicates == [] and agent.conflicts == []

    await resumed.ws.close()
    await agent.ws.close()
