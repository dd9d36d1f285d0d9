"""After a channel-layer outage, sockets catch up in place (chat/layer_watch.py, chat/delivered.py).

The watch sends every socket of the process a `layer.resync` event once the layer is back; these
tests send it themselves (through a group the socket is in) after "losing" live frames with the
same dropping layer as test_delivery.py. Measured at size by tests/realmode/test_chaos.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from chat import events, layer_watch
from chat.delivered import Delivered
from chat.models import Conversation
from tests.chat.helpers import agent_socket, open_chat, pending, receive_until
from tests.chat.test_delivery import dropping, history_messages, last_seq, layer_group_send, rows

pytestmark = pytest.mark.django_db(transaction=True)

RESYNC = {"type": "layer.resync"}


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


async def test_a_visitor_gets_what_the_outage_lost_on_the_same_socket(agent):
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

    await get_channel_layer().group_send(events.visitor_private_group(await visitor_id_of(conversation_id)), RESYNC)
    frames = await pending(visitor)

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


async def test_an_agent_gets_a_fresh_state_and_syncs_on_the_same_socket(agent):
    visitor, agent_comm, conversation_id, _ = await open_chat()
    agent_has = await last_seq(conversation_id)
    with layer_group_send(dropping):
        await visitor.send_json_to({"type": "message", "body": "lost", "client_id": "v-lost"})
        await receive_until(visitor, lambda f: f["type"] == "ack")
        assert [f for f in await pending(agent_comm) if f["type"] == "message"] == []

    agent_user_id = (await database_sync_to_async(lambda: Conversation.objects.get(pk=conversation_id).agent.user_id)())
    await get_channel_layer().group_send(events.agent_group(agent_user_id), RESYNC)
    state = await receive_until(agent_comm, lambda f: f["type"] == "state")
    assert [c["conversation_id"] for c in state["conversations"]] == [conversation_id]
    # As after a reconnection (docs/protocol.md): sync each held chat from the last seq held.
    await agent_comm.send_json_to({"type": "sync", "conversation_id": conversation_id, "last_seq": agent_has})
    history = await receive_until(agent_comm, lambda f: f["type"] == "history")
    assert [m["body"] for m in history["messages"]] == ["lost"]
    # Still subscribed: the next message arrives live.
    await visitor.send_json_to({"type": "message", "body": "live again", "client_id": "v-live"})
    await receive_until(agent_comm, lambda f: f["type"] == "message" and f["body"] == "live again")
    await visitor.disconnect()
    await agent_comm.disconnect()


async def test_a_chat_transferred_away_during_the_outage_stops_reaching_the_agent(agent, second_agent):
    visitor, alice, conversation_id, _ = await open_chat("alice")
    bob, _ = await agent_socket("bob")
    await bob.send_json_to({"type": "presence", "status": "online"})
    await receive_until(bob, lambda f: f["type"] == "presence" and f["status"] == "online")
    with layer_group_send(dropping):
        await alice.send_json_to({"type": "transfer", "conversation_id": conversation_id, "to_agent": second_agent.user_id})
        await pending(alice)
        assert [f for f in await pending(bob) if f["type"] == "offer"] == []  # lost with the layer

    layer = get_channel_layer()
    for user_id in (agent.user_id, second_agent.user_id):
        await layer.group_send(events.agent_group(user_id), RESYNC)
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
