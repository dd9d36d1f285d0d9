"""Internal notes and whispers never reach a visitor, by any socket path; other agents see nothing.

Every frame the visitor's sockets receive is collected (live frames, history after a reconnect,
sync) and searched for the staff-only text; the holding agent must get the same messages.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from chat import services
from chat.models import Message
from chat.pipeline import Inbound, run
from tests.chat.helpers import agent_socket, visitor_socket

pytestmark = pytest.mark.django_db(transaction=True)

INTERNAL = "INTERNAL: card ends 4242, do not read out"
WHISPER = "WHISPER: offer the 20% goodwill voucher"
WHISPER_TO_OTHER = "WHISPER-TO-BOB: keep an eye on Alice's chat"
AGENT_INTERNAL_FRAME = "INTERNAL-VIA-SOCKET: escalate if angry"
PUBLIC_MARKER = "public marker"
SECRETS = [INTERNAL, WHISPER, WHISPER_TO_OTHER, AGENT_INTERNAL_FRAME]


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


async def pending(comm: WebsocketCommunicator, *, quiet: float = 0.2) -> list[dict[str, Any]]:
    """Frames waiting for the client, without the timed-out receive that cancels the app."""
    frames = []
    while not await comm.receive_nothing(timeout=quiet):
        frames.append(await comm.receive_json_from())
    return frames


class Recording:
    """Wraps a communicator and keeps every frame it ever receives."""

    def __init__(
        self, comm: WebsocketCommunicator, first: list[dict[str, Any]] | None = None
    ) -> None:
        self.comm = comm
        self.frames: list[dict[str, Any]] = list(first or [])

    async def send(self, frame: dict[str, Any]) -> None:
        await self.comm.send_json_to(frame)

    async def until(self, predicate) -> dict[str, Any]:
        start = len(self.frames)

        async def recorded():
            frame = await self.comm.receive_json_from(timeout=3)
            self.frames.append(frame)
            return frame

        while True:
            frame = await recorded()
            if predicate(frame):
                return frame
            assert len(self.frames) - start < 200, self.frames[start:]

    async def settle(self) -> list[dict[str, Any]]:
        got = await pending(self.comm)
        self.frames.extend(got)
        return got

    def text(self) -> str:
        return json.dumps(self.frames)

    def message_bodies(self) -> list[str]:
        bodies = [f["body"] for f in self.frames if f.get("type") == "message"]
        bodies += [
            m["body"] for f in self.frames if f.get("type") == "history" for m in f["messages"]
        ]
        return bodies


async def _post_internal(user, conversation_id: int, body: str) -> Message:
    return await database_sync_to_async(services.post_staff_message)(
        user=user, conversation_id=conversation_id, body=body, client_id=None, visibility="internal"
    )


async def _whisper(sender, to_user, conversation_id: int, body: str) -> Message:
    message, _ = await database_sync_to_async(run)(
        Inbound(
            conversation_id=conversation_id,
            role=Message.Role.SUPERVISOR,
            sender_id=sender.pk,
            body=body,
            visibility=Message.Visibility.WHISPER,
            whisper_to_id=to_user.pk,
        )
    )
    return message


async def test_internal_notes_and_whispers_never_reach_the_visitor(agent, second_agent, supervisor):
    from django.utils import timezone

    from chat.models import AgentProfile

    # Bob is online in the same department but was assigned recently, so Alice gets the chat.
    await database_sync_to_async(
        lambda: AgentProfile.objects.filter(pk=second_agent.pk).update(
            last_assigned_at=timezone.now()
        )
    )()
    alice_comm, alice_state = await agent_socket("alice")
    alice = Recording(alice_comm, [alice_state])
    bob_comm, bob_state = await agent_socket("bob")
    bob = Recording(bob_comm, [bob_state])
    for comm in (alice, bob):
        await comm.send({"type": "presence", "status": "online"})
        await comm.until(lambda f: f["type"] == "presence" and f["status"] == "online")

    visitor_comm, welcome = await visitor_socket()
    visitor = Recording(visitor_comm, [welcome])
    token = welcome["token"]
    await visitor.send(
        {"type": "start", "department": "support", "message": "hi there", "client_id": "v-0"}
    )
    offer = await alice.until(lambda f: f["type"] == "offer")
    conversation_id = offer["conversation_id"]
    await alice.send({"type": "accept", "conversation_id": conversation_id})
    await alice.until(lambda f: f["type"] == "history")
    await visitor.until(lambda f: f["type"] == "conversation" and f["status"] == "active")

    # Staff-only messages by every path that creates them.
    await _post_internal(agent.user, conversation_id, INTERNAL)
    await _whisper(supervisor, agent.user, conversation_id, WHISPER)
    await _whisper(supervisor, second_agent.user, conversation_id, WHISPER_TO_OTHER)
    await alice.send(
        {
            "type": "message",
            "conversation_id": conversation_id,
            "body": AGENT_INTERNAL_FRAME,
            "client_id": "a-note",
            "visibility": "internal",
        }
    )
    await alice.until(lambda f: f["type"] == "ack" and f["client_id"] == "a-note")
    await alice.send({"type": "typing", "conversation_id": conversation_id})
    await alice.send(
        {
            "type": "message",
            "conversation_id": conversation_id,
            "body": PUBLIC_MARKER,
            "client_id": "a-pub",
        }
    )
    # The public marker was sent last; once the visitor has it, everything before it was delivered.
    await visitor.until(lambda f: f.get("type") == "message" and f.get("body") == PUBLIC_MARKER)
    await visitor.settle()

    # The holding agent got every staff message meant for it, live, and not the whisper to Bob.
    await alice.until(lambda f: f.get("type") == "message" and f.get("body") == PUBLIC_MARKER)
    await alice.settle()
    alice_live = {f["body"]: f for f in alice.frames if f.get("type") == "message"}
    assert alice_live[INTERNAL]["visibility"] == "internal"
    assert (
        alice_live[WHISPER]["visibility"] == "whisper"
        and alice_live[WHISPER]["whisper_to"] == agent.user_id
    )
    assert alice_live[AGENT_INTERNAL_FRAME]["visibility"] == "internal"
    assert WHISPER_TO_OTHER not in alice.text()

    # The visitor reloads (history from 0), syncs, and opens a second tab: still nothing staff-only.
    await visitor.send({"type": "sync", "last_seq": 0})
    await visitor.until(lambda f: f["type"] == "history")
    reloaded_comm, reloaded_welcome = await visitor_socket(token=token, last_seq=0)
    reloaded = Recording(reloaded_comm, [reloaded_welcome])
    await reloaded.until(lambda f: f["type"] == "history")
    await reloaded.settle()

    stored = await database_sync_to_async(
        lambda: list(
            Message.objects.filter(conversation_id=conversation_id)
            .order_by("seq")
            .values_list("public_seq", "visibility", "body")
        )
    )()
    public = [(seq, body) for seq, visibility, body in stored if visibility == "public"]
    hidden = [body for _, visibility, body in stored if visibility != "public"]
    assert len(hidden) == 4
    for who in (visitor, reloaded):
        for secret in SECRETS:
            assert secret not in who.text()
        # Nothing with a staff-only field, and visitor numbers run 1..N without gaps, so not
        # even the existence of a hidden message shows.
        assert '"visibility"' not in who.text() and '"whisper_to"' not in who.text()
        seqs = [f["seq"] for f in who.frames if f.get("type") == "message"]
        seqs += [m["seq"] for f in who.frames if f.get("type") == "history" for m in f["messages"]]
        assert set(seqs) <= set(range(1, len(public) + 1))
    history = next(f for f in reloaded.frames if f["type"] == "history")
    assert [(m["seq"], m["body"]) for m in history["messages"]] == public
    # The agent's history has them all, except the whisper meant for someone else.
    await alice.send({"type": "sync", "conversation_id": conversation_id, "last_seq": 0})
    agent_history = await alice.until(lambda f: f["type"] == "history")
    assert [m["body"] for m in agent_history["messages"] if m["visibility"] != "public"] == [
        INTERNAL,
        WHISPER,
        AGENT_INTERNAL_FRAME,
    ]

    # Bob, online in the same department, never received anything of Alice's chat.
    await bob.settle()
    for secret in [*SECRETS, PUBLIC_MARKER, "hi there"]:
        if secret != WHISPER_TO_OTHER:
            assert secret not in bob.text()
    # Not even the whisper addressed to him: he does not hold the chat (and he is not subscribed).
    assert WHISPER_TO_OTHER not in bob.text()
    assert not [f for f in bob.frames if f.get("conversation_id") == conversation_id]
    # Asking for it directly is "not found".
    await bob.send({"type": "sync", "conversation_id": conversation_id, "last_seq": 0})
    error = await bob.until(lambda f: f["type"] == "error")
    assert error["code"] == "not_found"
    assert not [m for f in bob.frames if f.get("type") == "history" for m in f["messages"]]

    for comm in (visitor.comm, reloaded.comm, alice.comm, bob.comm):
        await comm.disconnect()


async def test_a_transfer_note_reaches_the_new_agent_but_not_the_visitor(agent, second_agent):
    alice_comm, _ = await agent_socket("alice")
    alice = Recording(alice_comm)
    await alice.send({"type": "presence", "status": "online"})
    await alice.until(lambda f: f["type"] == "presence")
    visitor_comm, welcome = await visitor_socket()
    visitor = Recording(visitor_comm, [welcome])
    await visitor.send({"type": "start", "department": "support", "message": "hello"})
    offer = await alice.until(lambda f: f["type"] == "offer")
    conversation_id = offer["conversation_id"]
    await alice.send({"type": "accept", "conversation_id": conversation_id})
    await alice.until(lambda f: f["type"] == "history")

    bob_comm, _ = await agent_socket("bob")
    bob = Recording(bob_comm)
    await bob.send({"type": "presence", "status": "online"})
    await bob.until(lambda f: f["type"] == "presence")
    note = "NOTE: she was rude to the last agent"
    await alice.send(
        {
            "type": "transfer",
            "conversation_id": conversation_id,
            "to_agent": second_agent.user_id,
            "note": note,
        }
    )
    await alice.until(lambda f: f["type"] == "unassigned")
    bob_offer = await bob.until(lambda f: f["type"] == "offer")
    assert bob_offer["transfer_note"] == note
    await bob.send({"type": "accept", "conversation_id": conversation_id})
    bob_history = await bob.until(lambda f: f["type"] == "history")
    assert f"Transfer note: {note}" in [
        m["body"] for m in bob_history["messages"] if m["visibility"] == "internal"
    ]

    await visitor.until(lambda f: f["type"] == "conversation" and f["status"] == "active")
    await visitor.send({"type": "sync", "last_seq": 0})
    await visitor.until(lambda f: f["type"] == "history")
    await visitor.settle()
    assert "rude" not in visitor.text()
    assert (
        "You are being transferred to another agent. Please stay in the chat."
        in visitor.message_bodies()
    )
    # After the transfer Alice no longer follows the chat.
    await bob.send(
        {
            "type": "message",
            "conversation_id": conversation_id,
            "body": "Bob here",
            "client_id": "b-1",
        }
    )
    await visitor.until(lambda f: f.get("type") == "message" and f.get("body") == "Bob here")
    await alice.settle()
    assert "Bob here" not in alice.text()
    for comm in (visitor.comm, alice.comm, bob.comm):
        await comm.disconnect()
