"""The agent workspace frames: canned responses, @tags and helpers, direct messages, the visitor panel.

Each drives the real ASGI application over WebSocket with good and bad input.
"""

from __future__ import annotations

import json

import pytest
from channels.db import database_sync_to_async

from chat.models import CannedResponse, ConversationHelper, DirectMessage, Message
from compliance.models import AuditEntry
from tests.chat.helpers import agent_socket, receive_until, visitor_socket

pytestmark = pytest.mark.django_db(transaction=True)


async def online(username: str):
    comm, state = await agent_socket(username)
    await comm.send_json_to({"type": "presence", "status": "online"})
    await receive_until(comm, lambda f: f["type"] == "presence" and f["status"] == "online")
    return comm, state


async def active_chat(agent_comm, *, name: str = "Vera Visitor", email: str = "vera@example.com"):
    visitor, _ = await visitor_socket()
    await visitor.send_json_to(
        {
            "type": "start",
            "department": "support",
            "name": name,
            "email": email,
            "message": "hello",
            "client_id": "v1",
        }
    )
    offer = await receive_until(agent_comm, lambda f: f["type"] == "offer")
    conversation_id = offer["conversation_id"]
    await agent_comm.send_json_to({"type": "accept", "conversation_id": conversation_id})
    await receive_until(
        agent_comm, lambda f: f["type"] == "history" and f["conversation_id"] == conversation_id
    )
    return visitor, conversation_id


async def pending(comm, *, quiet: float = 0.3) -> list[dict]:
    """Frames waiting for the client, without a timed-out receive (which cancels the app)."""
    frames = []
    while not await comm.receive_nothing(timeout=quiet):
        frames.append(await comm.receive_json_from())
    return frames


@database_sync_to_async
def stored(conversation_id: int, **filters):
    return list(Message.objects.filter(conversation_id=conversation_id, **filters).order_by("seq"))


# --- canned responses -------------------------------------------------------------------------


@pytest.fixture
def library(agent, second_agent, department, other_department):
    return {
        "shared": CannedResponse.objects.create(
            shortcut="greeting",
            title="Greeting",
            body="Hello {visitor_name}, I'm {agent_name}. {unknown} stays.",
        ),
        "dept": CannedResponse.objects.create(
            shortcut="hours", title="Hours", body="We are open 9-17.", department=department
        ),
        "other_dept": CannedResponse.objects.create(
            shortcut="refund",
            title="Refund",
            body="Refunds take 5 days.",
            department=other_department,
        ),
        "mine": CannedResponse.objects.create(
            shortcut="sig", title="Sign-off", body="Cheers, {agent_first_name}", owner=agent
        ),
        "bobs": CannedResponse.objects.create(
            shortcut="bob", title="Bob's", body="Bob here.", owner=second_agent
        ),
    }


async def test_canned_listing_is_what_the_agent_may_use_with_placeholders_filled(agent, library):
    comm, _ = await online("alice")
    visitor, conversation_id = await active_chat(comm)
    await comm.send_json_to({"type": "canned", "conversation_id": conversation_id})
    frame = await receive_until(comm, lambda f: f["type"] == "canned")
    by_shortcut = {r["shortcut"]: r for r in frame["responses"]}
    assert sorted(by_shortcut) == ["greeting", "hours", "sig"]  # not Bob's, not Billing's
    assert (
        by_shortcut["greeting"]["body"] == "Hello Vera Visitor, I'm Alice Agent. {unknown} stays."
    )
    assert by_shortcut["sig"]["body"] == "Cheers, Alice"
    assert by_shortcut["sig"]["scope"] == "personal"

    # Someone else's chat id: the same not_found as everywhere.
    await comm.send_json_to({"type": "canned", "conversation_id": conversation_id + 100})
    error = await receive_until(comm, lambda f: f["type"] == "error")
    assert error["code"] == "not_found"
    await comm.disconnect()
    await visitor.disconnect()


async def test_canned_use_is_recorded_by_the_server_not_the_client(agent, library):
    comm, _ = await online("alice")
    visitor, conversation_id = await active_chat(comm)
    greeting = library["shared"]

    async def send(body, canned_id, client_id, **extra):
        await comm.send_json_to(
            {
                "type": "message",
                "conversation_id": conversation_id,
                "body": body,
                "client_id": client_id,
                "canned_id": canned_id,
                **extra,
            }
        )
        return await receive_until(
            comm,
            lambda f: (
                f["type"] in ("ack", "error") and f.get("client_id", f.get("ref")) == client_id
            ),
        )

    # As rendered (whitespace around it does not count as an edit); a client-sent meta is ignored.
    ack = await send(
        "  Hello Vera Visitor, I'm Alice Agent. {unknown} stays.\n",
        greeting.pk,
        "c1",
        meta={"canned": {"id": 999, "edited": False}},
    )
    assert ack["type"] == "ack"
    ack = await send("Hello Vera, I'm Alice. {unknown} stays.", greeting.pk, "c2")
    assert ack["type"] == "ack"
    sent = await stored(conversation_id, client_id__in=["c1", "c2"])
    assert [m.meta for m in sent] == [
        {"canned": {"id": greeting.pk, "shortcut": "greeting", "edited": False}},
        {"canned": {"id": greeting.pk, "shortcut": "greeting", "edited": True}},
    ]

    # Not usable by Alice (Bob's own, Billing's), no such id, not an id: refused, nothing stored.
    for canned_id, code in (
        (library["bobs"].pk, "unknown_canned"),
        (library["other_dept"].pk, "unknown_canned"),
        (999999, "unknown_canned"),
        ("greeting", "invalid_field"),
        (True, "invalid_field"),
    ):
        error = await send("Bob here.", canned_id, f"bad-{canned_id}")
        assert (error["type"], error["code"]) == ("error", code), error
    assert await stored(conversation_id, client_id__startswith="bad-") == []

    # The visitor sees the text, never the meta.
    frames = await pending(visitor)
    assert "canned" not in json.dumps(frames)
    assert any(f.get("body") == "Hello Vera, I'm Alice. {unknown} stays." for f in frames)
    await comm.disconnect()
    await visitor.disconnect()


# --- @tags and helpers --------------------------------------------------------------------------


async def test_tagged_agent_is_notified_and_helps_with_internal_notes_only(
    agent, second_agent, make_agent, other_department
):
    await database_sync_to_async(make_agent)("carol", "Carol Other", [other_department])
    alice, _ = await online("alice")
    bob, _ = await agent_socket("bob")  # away/offline agents can be tagged too
    carol, _ = await agent_socket("carol")
    visitor, conversation_id = await active_chat(alice)
    note = "@Bob can you check the refund? (not @nobody, not alice@example.com)"
    await alice.send_json_to(
        {
            "type": "message",
            "conversation_id": conversation_id,
            "body": note,
            "client_id": "n1",
            "visibility": "internal",
        }
    )
    mention = await receive_until(bob, lambda f: f["type"] == "mention")
    assert mention["conversation_id"] == conversation_id
    assert (
        mention["by"] == "Alice Agent"
        and mention["body"] == note
        and mention["visitor_name"] == "Vera Visitor"
    )
    assert await database_sync_to_async(
        lambda: list(ConversationHelper.objects.values_list("agent__user__username", flat=True))
    )() == ["bob"]
    assert (
        await database_sync_to_async(
            AuditEntry.objects.filter(
                action="chat.helper_invited", target=f"conversation:{conversation_id}"
            ).count
        )()
        == 1
    )

    # Bob opens the chat: the whole staff history, marked as helping.
    await bob.send_json_to({"type": "open", "conversation_id": conversation_id})
    history = await receive_until(bob, lambda f: f["type"] == "history")
    assert history["helping"] is True
    assert note in [m["body"] for m in history["messages"]]

    # He writes an internal note that Alice sees; a public one is refused.
    await bob.send_json_to(
        {
            "type": "message",
            "conversation_id": conversation_id,
            "body": "Refund is approved.",
            "client_id": "b1",
            "visibility": "internal",
        }
    )
    await receive_until(bob, lambda f: f["type"] == "ack" and f["client_id"] == "b1")
    seen = await receive_until(
        alice, lambda f: f["type"] == "message" and f.get("client_id") == "b1"
    )
    assert seen["author"] == "Bob Agent" and seen["visibility"] == "internal"
    await bob.send_json_to(
        {
            "type": "message",
            "conversation_id": conversation_id,
            "body": "Hi Vera!",
            "client_id": "b2",
        }
    )
    error = await receive_until(bob, lambda f: f["type"] == "error")
    assert (error["code"], error["ref"]) == ("internal_only", "b2")
    # Nor can he end, transfer or type in it: not his chat, and the visitor must not see him.
    for frame in (
        {"type": "end"},
        {"type": "typing", "active": True},
        {"type": "transfer", "to_department": 1},
    ):
        await bob.send_json_to({**frame, "conversation_id": conversation_id})
        assert (await receive_until(bob, lambda f: f["type"] == "error"))["code"] == "not_found", (
            frame
        )

    # Carol was not tagged: open is not_found, as for a chat that does not exist; bad ids refused.
    for payload, code in (
        ({"conversation_id": conversation_id}, "not_found"),
        ({"conversation_id": 10**9}, "not_found"),
        ({"conversation_id": "1"}, "invalid_field"),
        ({}, "invalid_field"),
    ):
        await carol.send_json_to({"type": "open", **payload})
        assert (await receive_until(carol, lambda f: f["type"] == "error"))["code"] == code
    assert not [f for f in await pending(carol) if f["type"] == "mention"]

    # The visitor never saw either note nor the tag.
    await alice.send_json_to(
        {
            "type": "message",
            "conversation_id": conversation_id,
            "body": "PUBLIC END",
            "client_id": "a2",
        }
    )
    # Every frame the visitor got since it started the chat, up to that public line.
    seen = []
    while not any(f.get("body") == "PUBLIC END" for f in seen):
        seen.append(await visitor.receive_json_from(timeout=3))
    text = json.dumps(seen + await pending(visitor))
    assert "refund" not in text.lower() and "@Bob" not in text
    assert not [f for f in json.loads(text) if f["type"] == "typing"]
    assert await stored(conversation_id, client_id="b2") == []

    # Once the chat ends, the helper's access ends with it.
    await alice.send_json_to({"type": "end", "conversation_id": conversation_id})
    await receive_until(bob, lambda f: f["type"] == "conversation" and f["status"] == "ended")
    await bob.send_json_to({"type": "open", "conversation_id": conversation_id})
    assert (await receive_until(bob, lambda f: f["type"] == "error"))["code"] == "not_found"
    for comm in (alice, bob, carol, visitor):
        await comm.disconnect()


# --- direct messages ----------------------------------------------------------------------------


async def test_direct_messages_between_agents(agent, second_agent, supervisor):
    alice, state = await agent_socket("alice")
    bob_id = next(a["user_id"] for a in state["agents"] if a["username"] == "bob")
    bob, bob_state = await agent_socket("bob")
    await alice.send_json_to(
        {"type": "dm", "to": bob_id, "body": "  Lunch at 1?  ", "client_id": "d1"}
    )
    got = await receive_until(bob, lambda f: f["type"] == "dm")
    echo = await receive_until(alice, lambda f: f["type"] == "dm")
    assert got == echo
    assert (got["body"], got["to"], got["from"], got["client_id"]) == (
        "Lunch at 1?",
        bob_id,
        bob_state["agents"][0]["user_id"],
        "d1",
    )
    # A resend with the same client_id is stored once.
    await alice.send_json_to({"type": "dm", "to": bob_id, "body": "Lunch at 1?", "client_id": "d1"})
    await bob.send_json_to({"type": "dm_history", "with": got["from"]})
    history = await receive_until(bob, lambda f: f["type"] == "dm_history")
    assert [m["body"] for m in history["messages"]] == ["Lunch at 1?"]

    me = bob_state["agents"][0]["user_id"]
    for frame, code in (
        ({"to": me}, "unknown_agent"),  # to oneself (alice's id from alice)
        ({"to": supervisor.pk}, "unknown_agent"),  # not an agent
        ({"to": "bob"}, "invalid_field"),
        ({"to": bob_id, "body": "   "}, "empty"),
        ({"to": bob_id, "body": "x" * 4001}, "too_long"),
        ({"to": bob_id, "body": 5}, "invalid"),
    ):
        await alice.send_json_to({"type": "dm", "body": "hi", **frame})
        error = await receive_until(alice, lambda f: f["type"] == "error")
        assert error["code"] == code, (frame, error)
    await alice.send_json_to({"type": "dm_history", "with": supervisor.pk})
    assert (await receive_until(alice, lambda f: f["type"] == "error"))["code"] == "unknown_agent"
    assert await database_sync_to_async(DirectMessage.objects.count)() == 1
    await alice.disconnect()
    await bob.disconnect()


# --- visitor panel ------------------------------------------------------------------------------


async def test_visitor_panel_lists_earlier_chats_by_token_or_email(agent, department):
    comm, _ = await online("alice")
    # An earlier chat with the same e-mail but another token (another browser).
    earlier, earlier_id = await active_chat(comm, name="Vera", email="VERA@example.com")
    await comm.send_json_to({"type": "end", "conversation_id": earlier_id})
    await receive_until(comm, lambda f: f["type"] == "ended")
    # And one of a stranger, which must not show.
    stranger, _stranger_id = await active_chat(comm, name="Tom", email="tom@example.com")
    visitor, conversation_id = await active_chat(comm)
    await comm.send_json_to({"type": "visitor", "conversation_id": conversation_id})
    panel = await receive_until(comm, lambda f: f["type"] == "visitor")
    assert panel["visitor"]["email"] == "vera@example.com"
    assert [p["conversation_id"] for p in panel["previous"]] == [earlier_id]
    assert panel["previous"][0]["transcript_url"] == f"/agent/transcripts/{earlier_id}/"
    assert panel["crm"] == {"status": "off"}
    await comm.send_json_to(
        {"type": "visitor", "conversation_id": earlier_id}
    )  # ended: no longer held
    assert (await receive_until(comm, lambda f: f["type"] == "error"))["code"] == "not_found"
    await comm.send_json_to({"type": "visitor", "conversation_id": [1]})
    assert (await receive_until(comm, lambda f: f["type"] == "error"))["code"] == "not_found"
    for c in (comm, earlier, stranger, visitor):
        await c.disconnect()


async def test_helper_who_is_handed_the_chat_holds_it_fully(agent, second_agent):
    alice, _ = await online("alice")
    visitor, conversation_id = await active_chat(alice)
    bob, _ = await online("bob")
    await alice.send_json_to(
        {
            "type": "message",
            "conversation_id": conversation_id,
            "body": "@bob over to you?",
            "client_id": "n1",
            "visibility": "internal",
        }
    )
    await receive_until(bob, lambda f: f["type"] == "mention")
    await bob.send_json_to({"type": "open", "conversation_id": conversation_id})
    await receive_until(bob, lambda f: f["type"] == "history" and f.get("helping"))

    await alice.send_json_to(
        {"type": "transfer", "conversation_id": conversation_id, "to_agent": second_agent.user_id}
    )
    await receive_until(bob, lambda f: f["type"] == "offer")
    await bob.send_json_to({"type": "accept", "conversation_id": conversation_id})
    history = await receive_until(bob, lambda f: f["type"] == "history")
    assert "helping" not in history
    # Now a holder: a public reply is accepted (not internal_only), and reaches the visitor.
    await bob.send_json_to(
        {
            "type": "message",
            "conversation_id": conversation_id,
            "body": "Hi, Bob here.",
            "client_id": "b1",
        }
    )
    assert (await receive_until(bob, lambda f: f["type"] in ("ack", "error")))["type"] == "ack"
    await receive_until(visitor, lambda f: f.get("body") == "Hi, Bob here.")
    # Opening it again (as the page does after a reconnect) keeps it a held chat.
    await bob.send_json_to({"type": "open", "conversation_id": conversation_id})
    assert "helping" not in await receive_until(bob, lambda f: f["type"] == "history")
    await bob.send_json_to(
        {
            "type": "message",
            "conversation_id": conversation_id,
            "body": "Still me.",
            "client_id": "b2",
        }
    )
    assert (await receive_until(bob, lambda f: f["type"] in ("ack", "error")))["type"] == "ack"
    for comm in (alice, bob, visitor):
        await comm.disconnect()
