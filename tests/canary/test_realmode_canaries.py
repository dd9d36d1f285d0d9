"""The leak canaries across processes: two daphne servers sharing Redis (channels-redis) and
PostgreSQL, the visitor on one, staff spread over both.

A wrong group name or a frame built for staff and published to the visitor's group would only
show here when it crosses the layer as a real Redis message; so the staff-only canaries of the
embedded test are planted again from both processes, and the visitor (on process A, then back on
process B after the chat ended) and its transcript e-mail are searched for them.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.utils import timezone
from websockets.asyncio.client import ClientConnection, connect

from chat.models import AgentProfile
from tests.auth import staff_session_cookie
from tests.canary.harness import canary
from tests.canary.scenario import make_cast
from tests.conftest import real_mode
from tests.realmode.conftest import wait_for_other_sessions_to_end
from tests.serverprocs import DaphneServer, running_servers

pytestmark = [pytest.mark.realmode, pytest.mark.django_db(transaction=True)]

TIMEOUT = 10.0


def db(fn):
    def call(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        finally:
            connections.close_all()

    return sync_to_async(call)


class Peer:
    def __init__(self, name: str, ws: ClientConnection, server: DaphneServer) -> None:
        self.name, self.ws, self.server = name, ws, server
        self.frames: list[dict[str, Any]] = []

    async def send(self, frame: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(frame))

    async def until(self, predicate, *, what: str) -> dict[str, Any]:
        start = len(self.frames)
        try:
            async with asyncio.timeout(TIMEOUT):
                while True:
                    frame = json.loads(await self.ws.recv())
                    self.frames.append(frame)
                    if predicate(frame):
                        return frame
        except TimeoutError:
            raise AssertionError(
                f"{self.name} on {self.server.describe()} waited for {what}; saw "
                f"{json.dumps(self.frames[start:])[:1500]}\n--- server log ---\n{self.server.log_tail()}"
            ) from None

    async def settle(self, quiet: float = 0.5) -> None:
        while True:
            try:
                async with asyncio.timeout(quiet):
                    self.frames.append(json.loads(await self.ws.recv()))
            except TimeoutError:
                return

    def text(self) -> str:
        return json.dumps(self.frames, ensure_ascii=False)


async def open_peer(
    name: str, server: DaphneServer, path: str, *, cookie: str | None = None
) -> Peer:
    headers = {"Cookie": cookie} if cookie else None
    ws = await connect(
        server.ws_url(path),
        origin=server.base_url,
        additional_headers=headers,
        open_timeout=TIMEOUT,
    )
    return Peer(name, ws, server)


@pytest.fixture
def mail_dir(tmp_path) -> Path:
    return tmp_path / "mail"


@pytest.fixture
def servers(realmode_env, mail_dir):
    if not real_mode():
        pytest.skip("needs PostgreSQL and Redis")
    env = {
        **realmode_env,
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(mail_dir),
    }
    with running_servers(2, env=env, name="canary") as pair:
        yield pair
    wait_for_other_sessions_to_end()


def _setup() -> dict[str, str]:
    cast = make_cast()
    # Bob was busy a moment ago: Alice gets the chat first.
    AgentProfile.objects.filter(pk=cast["bob"].pk).update(last_assigned_at=timezone.now())
    cookies = {name: staff_session_cookie(name) for name in ("alice", "bob", "carl", "sam")}
    cookies["carl_id"] = str(cast["carl"].user_id)
    cookies["bob_id"] = str(cast["bob"].user_id)
    return cookies


async def _say(
    peer: Peer, conversation_id: int | None, body: str, *, visibility: str | None = None
) -> None:
    client_id = f"{peer.name}-{len(peer.frames)}"
    frame: dict[str, Any] = {"type": "message", "body": body, "client_id": client_id}
    if conversation_id is not None:
        frame["conversation_id"] = conversation_id
    if visibility:
        frame["visibility"] = visibility
    await peer.send(frame)
    ack = await peer.until(
        lambda f: client_id in (f.get("client_id"), f.get("ref")) and f["type"] in ("ack", "error"),
        what="ack",
    )
    assert ack["type"] == "ack", ack


async def test_staff_only_text_never_crosses_to_the_visitor_between_processes(servers, mail_dir):
    a, b = servers
    cookies = await db(_setup)()
    planted: dict[str, str] = {}

    def plant(where: str, seen_by: str) -> str:
        value = canary(where)
        planted[value] = seen_by
        return value

    alice = await open_peer("alice", b, "/ws/agent/", cookie=cookies["alice"])
    bob = await open_peer("bob", a, "/ws/agent/", cookie=cookies["bob"])
    carl = await open_peer("carl", b, "/ws/agent/", cookie=cookies["carl"])
    sam = await open_peer("sam", a, "/ws/supervisor/", cookie=cookies["sam"])
    for peer in (alice, bob, carl):
        await peer.until(lambda f: f["type"] == "state", what="state")
        await peer.send({"type": "presence", "status": "online"})
        await peer.until(
            lambda f: f["type"] == "presence" and f["status"] == "online", what="online"
        )
    await sam.until(lambda f: f["type"] == "live", what="live")

    visitor = await open_peer("visitor", a, "/ws/visitor/")
    await visitor.send({"type": "hello", "token": None, "last_seq": 0})
    token = (await visitor.until(lambda f: f["type"] == "welcome", what="welcome"))["token"]
    await visitor.send(
        {
            "type": "start",
            "department": "support",
            "name": "Vera",
            "email": "vera@example.com",
            "message": "hello",
            "client_id": "v-0",
        }
    )
    offer = await alice.until(lambda f: f["type"] == "offer", what="offer")
    chat = offer["conversation_id"]
    await alice.send({"type": "accept", "conversation_id": chat})
    await alice.until(lambda f: f["type"] == "history", what="history")
    await visitor.until(
        lambda f: f["type"] == "conversation" and f["status"] == "active", what="active"
    )

    # Staff-only text from process B (Alice, Carl) and from process A (Sam).
    await _say(alice, chat, plant("internal-note", "alice"), visibility="internal")
    await _say(alice, chat, f"@carl please look {plant('tag-note', 'carl')}", visibility="internal")
    await carl.until(lambda f: f["type"] == "mention", what="mention")
    await carl.send({"type": "open", "conversation_id": chat})
    await carl.until(lambda f: f["type"] == "history", what="helper history")
    await _say(carl, chat, plant("helper-note", "alice"), visibility="internal")
    await alice.send(
        {
            "type": "dm",
            "to": int(cookies["bob_id"]),
            "body": plant("dm", "bob"),
            "client_id": "dm-1",
        }
    )
    await sam.send({"type": "sit_in", "conversation_id": chat})
    await sam.until(lambda f: f["type"] == "history", what="sit-in history")
    await sam.send(
        {
            "type": "whisper",
            "conversation_id": chat,
            "body": plant("whisper-alice", "alice"),
            "client_id": "w1",
        }
    )
    await sam.until(lambda f: f["type"] == "ack", what="whisper ack")
    await _say(alice, chat, "public one")
    await visitor.until(lambda f: f.get("body") == "public one", what="public one")

    # Transfer from B to A with a note; more staff-only text from the new holder and Sam.
    await alice.send(
        {
            "type": "transfer",
            "conversation_id": chat,
            "to_agent": int(cookies["bob_id"]),
            "note": plant("transfer-note", "bob"),
        }
    )
    await bob.until(
        lambda f: f["type"] == "offer" and f["conversation_id"] == chat, what="transfer offer"
    )
    await bob.send({"type": "accept", "conversation_id": chat})
    await bob.until(
        lambda f: f["type"] == "history" and f["conversation_id"] == chat, what="history"
    )
    await _say(bob, chat, plant("note-after-transfer", "bob"), visibility="internal")
    await sam.send(
        {
            "type": "whisper",
            "conversation_id": chat,
            "body": plant("whisper-bob", "bob"),
            "client_id": "w2",
        }
    )
    await sam.until(lambda f: f["type"] == "ack" and f["client_id"] == "w2", what="whisper ack")
    await _say(bob, chat, "public two")
    await visitor.until(lambda f: f.get("body") == "public two", what="public two")

    await visitor.send({"type": "transcript", "conversation_id": chat, "email": "vera@example.com"})
    await visitor.until(lambda f: f["type"] == "transcript_sent", what="transcript sent")
    await bob.send({"type": "end", "conversation_id": chat})
    await visitor.until(
        lambda f: f["type"] == "conversation" and f["status"] == "ended", what="ended"
    )

    # Back later on the other process, from the start.
    back = await open_peer("visitor-back", b, "/ws/visitor/")
    await back.send({"type": "hello", "token": token, "last_seq": 1})
    await back.until(lambda f: f["type"] == "history", what="history after return")

    for peer in (visitor, back, alice, bob, carl, sam):
        await peer.settle()
    staff = {"alice": alice.text(), "bob": bob.text(), "carl": carl.text()}
    for value, seen_by in planted.items():
        assert value in staff[seen_by], f"{value} never reached {seen_by}: the planting failed"

    mails = [p.read_text(errors="replace") for p in mail_dir.glob("*")] if mail_dir.exists() else []
    assert any("public two" in m for m in mails), "the transcript e-mail was not written"
    visitor_side = {"visitor on A": visitor.text(), "visitor back on B": back.text()}
    visitor_side.update({f"mail {i}": m for i, m in enumerate(mails)})
    leaks = [
        f"{v} in {where}" for where, text in visitor_side.items() for v in planted if v in text
    ]
    assert leaks == []
    assert "public one" in back.text() and "public two" in back.text()

    for peer in (visitor, back, alice, bob, carl, sam):
        await peer.ws.close()
