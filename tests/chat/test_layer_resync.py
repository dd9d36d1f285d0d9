"""After a channel-layer outage, sockets catch up in place (chat/layer_watch.py, chat/delivered.py).

The watch sends every socket of the process a `layer.resync` event once the layer is back; these
tests send it themselves (through a group the socket is in) after "losing" live frames with the
same dropping layer as test_delivery.py. Each runs both ways a socket can catch up: reading its
own (`each`), and from what the watch read for all sockets at once before telling them
(`at_once`, chat/resync.py); the client must not be able to tell the difference beyond the
agent's `synced`. Measured at size by tests/realmode/test_chaos.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from chat import events, layer_watch, oversight
from chat.delivered import Delivered
from chat.models import Conversation
from tests.chat.helpers import agent_socket, open_chat, pending, receive_until, visitor_socket
from tests.chat.test_delivery import dropping, history_messages, last_seq, layer_group_send, rows

pytestmark = pytest.mark.django_db(transaction=True)

RESYNC = {"type": "layer.resync"}


@pytest.fixture(params=["each", "at_once"])
def resync(request):
    """Tells the sockets of the given groups that the layer is back, as the watch does; `at_once`
    first reads every socket's catch-up together. Returns how many sockets got theirs read."""
    async def tell(*groups: str) -> int:
        prepared = 0
        if request.param == "at_once":
            prepared = await layer_watch.prepare_catch_ups(list(layer_watch._sockets))
        for group in groups:
            await get_channel_layer().group_send(group, RESYNC)
        return prepared

    tell.at_once = request.param == "at_once"
    return tell


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@database_sync_to_async
def visitor_id_of(conversation_id: int) -> int:
    return Conversation.objects.get(pk=conversation_id).visitor_id


async def agent_says(agent_comm: Any, conversation_id: int, body: str) -> None:
    await agent_comm.send_json_to(
        {"type": "message", "conversation_id": conversation_id, "body": body, "client_id": body}
    )
    await receive_until(agent_comm, lambda f: f["type"] == "ack" and f["client_id"] == body)


async def test_a_visitor_gets_what_the_outage_lost_on_the_same_socket(agent, resync):
    visitor, agent_comm, conversation_id, _ = await open_chat()
    await agent_says(agent_comm, conversation_id, "before")
    got_live = await receive_until(visitor, lambda f: f["type"] == "message" and f["body"] == "before")
    with layer_group_send(dropping):
        for body in ("lost 1", "lost 2"):
            await agent_says(agent_comm, conversation_id, body)
        await agent_comm.send_json_to({"type": "end", "conversation_id": conversation_id})
        await agent_comm.send_json_to({"type": "ping"})
        await receive_until(agent_comm, lambda f: f["type"] == "pong")  # frames are handled in order
        assert [f for f in await pending(visitor) if f["type"] == "message"] == []

    prepared = await resync(events.visitor_private_group(await visitor_id_of(conversation_id)))
    frames = await pending(visitor)
    assert prepared == (2 if resync.at_once else 0)  # the visitor's and the agent's

    # Exactly what it missed, from the last seq it got in full; then the chat as it is now.
    missed = [(s, b) for s, _, b in await rows(conversation_id, public_only=True) if s > got_live["seq"]]
    assert [(m["seq"], m["body"]) for m in history_messages(frames)] == missed
    assert [b for _, b in missed][:2] == ["lost 1", "lost 2"]
    assert frames[-1]["type"] == "conversation" and frames[-1]["last_seq"] == missed[-1][0]
    assert frames[-1]["status"] == "ended"  # the end was lost live too
    # The socket stays open and live.
    await visitor.send_json_to({"type": "ping"})
    assert (await receive_until(visitor, lambda f: f["type"] == "pong"))["type"] == "pong"
    await visitor.disconnect()
    await agent_comm.disconnect()


async def test_an_agent_gets_a_fresh_state_and_what_it_missed_on_the_same_socket(agent, resync):
    visitor, agent_comm, conversation_id, _ = await open_chat()
    agent_has = await last_seq(conversation_id)
    with layer_group_send(dropping):
        await visitor.send_json_to({"type": "message", "body": "lost", "client_id": "v-lost"})
        await receive_until(visitor, lambda f: f["type"] == "ack")
        assert [f for f in await pending(agent_comm) if f["type"] == "message"] == []

    agent_user_id = (await database_sync_to_async(lambda: Conversation.objects.get(pk=conversation_id).agent.user_id)())
    await resync(events.agent_group(agent_user_id))
    state = await receive_until(agent_comm, lambda f: f["type"] == "state")
    assert [c["conversation_id"] for c in state["conversations"]] == [conversation_id]
    if resync.at_once:
        # Its history comes unasked, from the last seq this socket got in full.
        assert state["synced"] == [conversation_id]
    else:
        # As after a reconnection (docs/protocol.md): sync each held chat from the last seq held.
        assert "synced" not in state
        await agent_comm.send_json_to({"type": "sync", "conversation_id": conversation_id, "last_seq": agent_has})
    history = await receive_until(agent_comm, lambda f: f["type"] == "history")
    assert [m["body"] for m in history["messages"]] == ["lost"]
    assert history["last_seq"] == await last_seq(conversation_id)
    # Still subscribed: the next message arrives live.
    await visitor.send_json_to({"type": "message", "body": "live again", "client_id": "v-live"})
    await receive_until(agent_comm, lambda f: f["type"] == "message" and f["body"] == "live again")
    await visitor.disconnect()
    await agent_comm.disconnect()


async def test_a_chat_transferred_away_during_the_outage_stops_reaching_the_agent(agent, second_agent, resync):
    visitor, alice, conversation_id, _ = await open_chat("alice")
    bob, _ = await agent_socket("bob")
    await bob.send_json_to({"type": "presence", "status": "online"})
    await receive_until(bob, lambda f: f["type"] == "presence" and f["status"] == "online")
    with layer_group_send(dropping):
        await alice.send_json_to({"type": "transfer", "conversation_id": conversation_id, "to_agent": second_agent.user_id})
        await pending(alice)
        assert [f for f in await pending(bob) if f["type"] == "offer"] == []  # lost with the layer

    # Neither agent holds what its socket held: read on their own, after joining their groups.
    prepared = await resync(*(events.agent_group(user_id) for user_id in (agent.user_id, second_agent.user_id)))
    assert prepared == (1 if resync.at_once else 0)  # the visitor's only
    alice_state = await receive_until(alice, lambda f: f["type"] == "state")
    bob_state = await receive_until(bob, lambda f: f["type"] == "state")
    assert alice_state["conversations"] == []
    assert [c["conversation_id"] for c in bob_state["conversations"]] == [conversation_id]
    await bob.send_json_to({"type": "accept", "conversation_id": conversation_id})
    await receive_until(bob, lambda f: f["type"] == "history")
    await visitor.send_json_to({"type": "message", "body": "for bob", "client_id": "v-bob"})
    await receive_until(bob, lambda f: f["type"] == "message" and f["body"] == "for bob")
    assert [f for f in await pending(alice) if f["type"] == "message"] == []
    for comm in (visitor, alice, bob):
        await comm.disconnect()


async def test_what_is_read_at_once_holds_no_line_the_socket_must_not_see(agent, supervisor, resync):
    visitor, agent_comm, conversation_id, _ = await open_chat()
    with layer_group_send(dropping):
        await agent_says(agent_comm, conversation_id, "public while down")
        await agent_comm.send_json_to({"type": "message", "conversation_id": conversation_id, "visibility": "internal",
                                       "body": "CANARY-note", "client_id": "note"})
        await receive_until(agent_comm, lambda f: f["type"] == "ack" and f["client_id"] == "note")
        await database_sync_to_async(oversight.whisper)(user=supervisor, conversation_id=conversation_id,
                                                        body="CANARY-whisper")
        await pending(agent_comm)
    prepared = await resync(events.visitor_private_group(await visitor_id_of(conversation_id)),
                            events.agent_group(agent.user_id))
    assert prepared == (2 if resync.at_once else 0)
    seen_by_visitor = await pending(visitor)
    assert [m["body"] for m in history_messages(seen_by_visitor)] == ["public while down"]
    assert "CANARY" not in str(seen_by_visitor)
    if not resync.at_once:
        await receive_until(agent_comm, lambda f: f["type"] == "state")
        await agent_comm.send_json_to({"type": "sync", "conversation_id": conversation_id, "last_seq": 0})
    history = await receive_until(agent_comm, lambda f: f["type"] == "history")
    # The agent gets the note and the whisper to it; what it had before the outage only on `sync`.
    bodies = [m["body"] for m in history["messages"]]
    assert bodies[-3:] == ["public while down", "CANARY-note", "CANARY-whisper"]
    await visitor.disconnect()
    await agent_comm.disconnect()


async def test_the_state_read_at_once_is_the_state_the_socket_reads_itself(agent, second_agent):
    visitor, agent_comm, conversation_id, _ = await open_chat()
    bob, _ = await agent_socket("bob")
    await bob.send_json_to({"type": "presence", "status": "online"})
    await pending(agent_comm)
    agent_group = events.agent_group(agent.user_id)

    assert await layer_watch.prepare_catch_ups(list(layer_watch._sockets)) >= 2
    await get_channel_layer().group_send(agent_group, RESYNC)
    at_once = await receive_until(agent_comm, lambda f: f["type"] == "state")
    await pending(agent_comm)
    await get_channel_layer().group_send(agent_group, RESYNC)  # nothing prepared now: it reads its own
    own = await receive_until(agent_comm, lambda f: f["type"] == "state")

    assert at_once.pop("synced") == [conversation_id]
    assert at_once == own
    assert [a["name"] for a in own["agents"]] == ["Bob Agent"] and own["me"]["departments"]
    for comm in (visitor, agent_comm, bob):
        await comm.disconnect()


async def test_a_chat_another_tab_started_during_the_outage_comes_whole(agent, resync):
    visitor, agent_comm, first_id, token = await open_chat()
    await agent_comm.send_json_to({"type": "end", "conversation_id": first_id})
    await receive_until(visitor, lambda f: f["type"] == "conversation" and f["status"] == "ended")
    other_tab, _ = await visitor_socket(token=token)
    with layer_group_send(dropping):
        await other_tab.send_json_to({"type": "start", "department": "support", "message": "second chat",
                                      "client_id": "v-2"})
        second_id = (await receive_until(other_tab, lambda f: f["type"] == "conversation"))["conversation_id"]
        await pending(other_tab)
        assert await pending(visitor) == []  # the first tab never heard of it

    prepared = await resync(events.visitor_private_group(await visitor_id_of(first_id)))
    # Only the tab that already followed the new chat is answered from the shared read; the
    # first reads its own, joining the new chat's group first.
    assert prepared == (1 if resync.at_once else 0)
    frames = await pending(visitor)
    assert "second chat" in [m["body"] for m in history_messages(frames) if m["conversation_id"] == second_id]
    assert frames[-1]["type"] == "conversation" and frames[-1]["conversation_id"] == second_id
    await agent_comm.send_json_to({"type": "accept", "conversation_id": second_id})
    await receive_until(visitor, lambda f: f["type"] == "conversation" and f["status"] == "active"
                        and f["conversation_id"] == second_id)  # live in the new chat
    for comm in (visitor, other_tab, agent_comm):
        await comm.disconnect()


async def test_a_socket_the_resync_event_cannot_reach_is_closed_with_4503():
    closed: list[int] = []

    class Socket:
        channel_name = "specific.nowhere"

        async def close(self, code: int) -> None:
            closed.append(code)

    class BrokenLayer:
        async def send(self, channel: str, message: dict[str, Any]) -> None:
            raise ConnectionError("Connection closed by server.")

    await layer_watch._resync(BrokenLayer(), [Socket(), Socket()])
    assert closed == [layer_watch.CLOSE_RESYNC] * 2


def test_delivered_never_passes_a_message_the_socket_did_not_get():
    delivered = Delivered()
    delivered.history(7, after_seq=3, last_seq=5)  # the client held 1..3, then got 4..5
    assert delivered.upto(7) == 5
    delivered.live(7, 7)  # 6 was lost (or is still on its way from another process)
    delivered.live(7, 8)
    assert delivered.upto(7) == 5
    delivered.live(7, 6)
    assert delivered.upto(7) == 8
    delivered.live(7, 8)  # a repeat changes nothing
    delivered.history(7, after_seq=2, last_seq=None)  # an older sync sent nothing new
    assert delivered.upto(7) == 8
    assert delivered.upto(9) == 0
