"""Delivery guarantees: persisted before broadcast, client_id dedupe, resync from the database.

The channel layer may drop events by design; these tests drop them on purpose and check that a
client that resyncs by sequence number still ends up with every message, once, in order.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import connection, transaction
from django.utils import timezone

from chat import events
from chat.dbpool import message_sync_to_async
from chat.models import Conversation, Message
from tests.chat.helpers import agent_socket, open_chat, pending, receive_until, visitor_socket

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# --- helpers (the same shapes as in test_bad_input; candidates for tests/chat/helpers.py) ----


def history_messages(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for f in frames if f["type"] == "history" for m in f["messages"]]


@database_sync_to_async
def rows(conversation_id: int, *, public_only: bool = False) -> list[tuple[int, str, str]]:
    qs = Message.objects.filter(conversation_id=conversation_id)
    if public_only:
        # The visitor's view: public messages numbered by their own gapless sequence.
        qs = qs.filter(visibility=Message.Visibility.PUBLIC)
        return list(qs.order_by("public_seq").values_list("public_seq", "role", "body"))
    return list(qs.order_by("seq").values_list("seq", "role", "body"))


@database_sync_to_async
def last_seq(conversation_id: int, *, public: bool = False) -> int:
    conversation = Conversation.objects.get(pk=conversation_id)
    return conversation.last_public_seq if public else conversation.last_seq


@contextlib.contextmanager
def layer_group_send(
    replacement: Callable[[Callable[..., Awaitable[None]]], Callable[..., Awaitable[None]]],
) -> Iterator[None]:
    """Swap the channel layer's group_send on the live instance the consumers and services use,
    and its group_send_many (chat/redis_layer.py: a message's copies handed over together), which
    then passes each of its sends, in order, through the replacement.

    Not monkeypatch.setattr: with the Redis pub/sub layer the attribute is resolved per event
    loop, and restoring it would pin one loop's bound method onto the shared instance.
    """
    layer = get_channel_layer()
    names = ["group_send"] + (["group_send_many"] if hasattr(layer, "group_send_many") else [])
    own = {name: vars(layer)[name] for name in names if name in vars(layer)}
    replaced = replacement(layer.group_send)

    async def group_send_many(sends: list[tuple[str, dict[str, Any]]]) -> None:
        for group, event in sends:
            await replaced(group, event)

    layer.group_send = replaced
    if "group_send_many" in names:
        layer.group_send_many = group_send_many
    try:
        yield
    finally:
        for name in names:
            if name in own:
                setattr(layer, name, own[name])
            else:
                delattr(layer, name)


def dropping(original):
    async def drop(group: str, event: dict[str, Any]) -> None:
        return None  # the layer "lost" it: full channel, expiry, a Redis restart

    return drop


# --- client_id dedupe -------------------------------------------------------------------------


async def test_visitor_resend_after_reconnect_is_stored_once_and_acked_with_the_same_seq(agent):
    visitor, agent_comm, conversation_id, token = await open_chat()
    frame = {"type": "message", "body": "only once", "client_id": "v-dup"}
    await visitor.send_json_to(frame)
    first_ack = await receive_until(visitor, lambda f: f["type"] == "ack")
    await receive_until(agent_comm, lambda f: f["type"] == "message" and f["body"] == "only once")
    before = await rows(conversation_id)
    await visitor.disconnect()

    # The page did not see the ack (say), reconnects and resends from its outbox.
    again, welcome = await visitor_socket(token=token, last_seq=first_ack["seq"] - 1)
    assert welcome["conversation"]["conversation_id"] == conversation_id
    await receive_until(again, lambda f: f["type"] == "history")
    await again.send_json_to(frame)
    second_ack = await receive_until(again, lambda f: f["type"] == "ack")
    assert second_ack == first_ack
    # A resend with edited text is still the same message: the first copy wins.
    await again.send_json_to({**frame, "body": "only once (edited)"})
    assert await receive_until(again, lambda f: f["type"] == "ack") == first_ack

    assert await rows(conversation_id) == before
    assert await database_sync_to_async(Message.objects.filter(client_id="v-dup").count)() == 1
    # Never a second message: what the agent gets again is the first copy, under its seq (the
    # first attempt may have been stored without anyone hearing of it; clients drop repeats).
    repeats = [f for f in await pending(agent_comm) if f["type"] == "message"]
    assert repeats and {(f["seq"], f["body"]) for f in repeats} == {(before[-1][0], "only once")}
    await again.disconnect()
    await agent_comm.disconnect()


async def test_agent_resend_after_reconnect_is_stored_once_and_acked_with_the_same_seq(agent):
    visitor, agent_comm, conversation_id, _ = await open_chat()
    frame = {
        "type": "message",
        "conversation_id": conversation_id,
        "body": "on my way",
        "client_id": "a-dup",
    }
    await agent_comm.send_json_to(frame)
    first_ack = await receive_until(agent_comm, lambda f: f["type"] == "ack")
    await receive_until(visitor, lambda f: f["type"] == "message" and f["body"] == "on my way")
    await agent_comm.disconnect()

    again, state = await agent_socket("alice")
    assert [c["conversation_id"] for c in state["conversations"]] == [conversation_id]
    await again.send_json_to(frame)
    assert await receive_until(again, lambda f: f["type"] == "ack") == first_ack
    assert await database_sync_to_async(Message.objects.filter(client_id="a-dup").count)() == 1
    repeats = [f for f in await pending(visitor) if f["type"] == "message"]
    stored = await database_sync_to_async(Message.objects.get)(client_id="a-dup")
    assert [(f["seq"], f["body"]) for f in repeats] == [(stored.public_seq, "on my way")]  # the first copy again
    await visitor.disconnect()
    await again.disconnect()


async def test_first_message_of_start_is_deduplicated_too(agent):
    visitor, agent_comm, _conversation_id, _ = await open_chat()
    # The start frame's client_id was "v-0"; a resend of it as a plain message is not stored again.
    await visitor.send_json_to({"type": "message", "body": "first", "client_id": "v-0"})
    ack = await receive_until(visitor, lambda f: f["type"] == "ack")
    assert ack["seq"] == 1
    assert await database_sync_to_async(Message.objects.filter(client_id="v-0").count)() == 1
    await visitor.disconnect()
    await agent_comm.disconnect()


# --- persisted before broadcast ---------------------------------------------------------------


def _committed(conversation_id: int, seq: int, body: str, *, visitor_frame: bool) -> bool:
    # Runs in a thread of its own, so on its own connection: it sees only committed rows.
    # Visitor frames number public messages only (public_seq); staff frames use seq.
    by_seq = {"public_seq": seq} if visitor_frame else {"seq": seq}
    try:
        return Message.objects.filter(conversation_id=conversation_id, body=body, **by_seq).exists()
    finally:
        connection.close()


async def test_every_message_is_committed_before_any_client_can_receive_it(agent):
    checked: list[tuple[str, int, bool]] = []

    def checking(original):
        async def group_send(group: str, event: dict[str, Any]) -> None:
            frame = event.get("frame") or {}
            if frame.get("type") == "message":
                exists = await sync_to_async(_committed, thread_sensitive=False)(
                    frame["conversation_id"], frame["seq"], frame["body"], visitor_frame=group.endswith(".v")
                )
                checked.append((group, frame["seq"], exists))
            await original(group, event)

        return group_send

    with layer_group_send(checking):
        visitor, agent_comm, conversation_id, _ = await open_chat()
        await visitor.send_json_to(
            {"type": "message", "body": "from the visitor", "client_id": "v-1"}
        )
        await receive_until(
            agent_comm, lambda f: f["type"] == "message" and f["body"] == "from the visitor"
        )
        await agent_comm.send_json_to(
            {
                "type": "message",
                "conversation_id": conversation_id,
                "body": "from the agent",
                "client_id": "a-1",
            }
        )
        got = await receive_until(
            visitor, lambda f: f["type"] == "message" and f["body"] == "from the agent"
        )
        await agent_comm.send_json_to(
            {
                "type": "message",
                "conversation_id": conversation_id,
                "body": "a note",
                "client_id": "a-2",
                "visibility": "internal",
            }
        )
        await receive_until(agent_comm, lambda f: f["type"] == "message" and f["body"] == "a note")
        await visitor.send_json_to({"type": "end"})
        await receive_until(
            visitor,
            lambda f: f["type"] == "message" and f["role"] == "system" and "ended" in f["body"],
        )
    # The row a client received is in the database: both sides read it back by seq.
    assert got["seq"] in [seq for seq, _, _ in await rows(conversation_id)]
    assert checked, "no message event went through the layer"
    assert all(exists for _, _, exists in checked), checked
    groups = {group for group, _, _ in checked}
    assert f"conv.{conversation_id}.v" in groups and f"conv.{conversation_id}.s" in groups
    # Every stored message went out (start, join line, both messages, note, end line).
    assert {seq for _, seq, _ in checked} == {seq for seq, _, _ in await rows(conversation_id)}
    await visitor.disconnect()
    await agent_comm.disconnect()


def _events_of_a_message_call(seen_in_thread: list[list[str]], sent: list[str]) -> None:
    """A message-path call with a committed transaction, a rolled-back one, then an error."""
    with transaction.atomic():
        events.send_event_on_commit("hotpath.committed", {"type": "test"})
    seen_in_thread.append(list(sent))
    try:
        with transaction.atomic():
            events.send_event_on_commit("hotpath.rolled_back", {"type": "test"})
            raise RuntimeError("undone")
    except RuntimeError:
        pass
    seen_in_thread.append(list(sent))
    raise ValueError("after the commit")


async def test_a_message_calls_events_go_out_once_it_returns_and_only_what_committed():
    sent: list[str] = []
    seen_in_thread: list[list[str]] = []

    def recording(original):
        async def group_send(group: str, event: dict[str, Any]) -> None:
            sent.append(group)
            await original(group, event)

        return group_send

    with layer_group_send(recording), pytest.raises(ValueError, match="after the commit"):
        await message_sync_to_async(_events_of_a_message_call)(seen_in_thread, sent)
    # Sent from the event loop after the call (not from its thread at commit), also when the call
    # failed after a commit; the rolled-back transaction's event never.
    assert seen_in_thread == [[], []]
    assert sent == ["hotpath.committed"]


@pytest.mark.realmode
async def test_a_message_after_postgresql_dropped_the_pools_connections_is_stored(agent, test_backend_pid):
    # The message pool skips CONN_HEALTH_CHECKS' SELECT 1 per call (chat/dbpool.py); a connection
    # PostgreSQL closed meanwhile must still be replaced before it is used, not fail a message.
    visitor, agent_comm, conversation_id, _ = await open_chat()
    await visitor.send_json_to({"type": "message", "body": "before", "client_id": "v-1"})
    assert (await receive_until(visitor, lambda f: f["type"] in ("ack", "error")))["type"] == "ack"
    await database_sync_to_async(_terminate_sessions_but)(test_backend_pid)
    for i in range(3):  # more than one pool thread may hold a dead connection
        await visitor.send_json_to({"type": "message", "body": f"after {i}", "client_id": f"v-a{i}"})
        reply = await receive_until(visitor, lambda f: f["type"] in ("ack", "error"))
        assert reply["type"] == "ack", reply
        await agent_comm.send_json_to(
            {"type": "message", "conversation_id": conversation_id, "body": f"reply {i}", "client_id": f"a-{i}"}
        )
        reply = await receive_until(agent_comm, lambda f: f["type"] in ("ack", "error"))
        assert reply["type"] == "ack", reply
    bodies = [b for _, _, b in await rows(conversation_id)]
    assert bodies[-6:] == ["after 0", "reply 0", "after 1", "reply 1", "after 2", "reply 2"]
    await visitor.disconnect()
    await agent_comm.disconnect()


@pytest.fixture
def test_backend_pid(transactional_db) -> int:
    """The test's own connection (the main thread's), which pytest-django needs to clean up."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _terminate_sessions_but(keep: int) -> None:
    # Every other connection of the test database: the message pool's among them.
    others = "datname = current_database() AND pid <> pg_backend_pid() AND pid <> %s"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {others}", [keep])
        assert cursor.fetchall(), "no pool connection to drop"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            cursor.execute(f"SELECT count(*) FROM pg_stat_activity WHERE {others}", [keep])
            if not cursor.fetchone()[0]:
                return
            time.sleep(0.05)


# --- the layer drops everything: the database still delivers --------------------------------


async def test_events_dropped_by_the_layer_are_recovered_by_resync(agent):
    visitor, agent_comm, conversation_id, token = await open_chat()
    visitor_has = await last_seq(conversation_id, public=True)  # the start message and the join line
    agent_has = visitor_has
    with layer_group_send(dropping):
        for i in range(3):
            await agent_comm.send_json_to(
                {
                    "type": "message",
                    "conversation_id": conversation_id,
                    "body": f"agent {i}",
                    "client_id": f"a-{i}",
                }
            )
            await receive_until(agent_comm, lambda f: f["type"] == "ack")
        await agent_comm.send_json_to(
            {
                "type": "message",
                "conversation_id": conversation_id,
                "body": "staff only",
                "client_id": "a-note",
                "visibility": "internal",
            }
        )
        await receive_until(agent_comm, lambda f: f["type"] == "ack")
        for i in range(2):
            await visitor.send_json_to(
                {"type": "message", "body": f"visitor {i}", "client_id": f"v-{i + 1}"}
            )
            await receive_until(visitor, lambda f: f["type"] == "ack")
        # Nothing arrived live on either side.
        assert [f for f in await pending(visitor) if f["type"] == "message"] == []
        assert [f for f in await pending(agent_comm) if f["type"] == "message"] == []

        # The visitor's socket asks for what it missed...
        await visitor.send_json_to({"type": "sync", "last_seq": visitor_has})
        synced = history_messages(await pending(visitor))
        # ...and so does a fresh socket after a reload (another tab, same token).
        again, _ = await visitor_socket(token=token, last_seq=visitor_has)
        resumed = history_messages(await pending(again))
        await agent_comm.send_json_to(
            {"type": "sync", "conversation_id": conversation_id, "last_seq": agent_has}
        )
        agent_synced = history_messages(await pending(agent_comm))

    expected_public = [
        (s, r, b) for s, r, b in await rows(conversation_id, public_only=True) if s > visitor_has
    ]
    assert [b for _, _, b in expected_public] == [
        "agent 0",
        "agent 1",
        "agent 2",
        "visitor 0",
        "visitor 1",
    ]
    for got in (synced, resumed):
        assert [(m["seq"], m["role"], m["body"]) for m in got] == expected_public
    expected_all = [(s, r, b) for s, r, b in await rows(conversation_id) if s > agent_has]
    assert [(m["seq"], m["role"], m["body"]) for m in agent_synced] == expected_all
    assert "staff only" in [m["body"] for m in agent_synced]
    for comm in (visitor, again, agent_comm):
        await comm.disconnect()


async def test_a_whole_chat_works_over_a_layer_that_delivers_nothing(agent):
    with layer_group_send(dropping):
        agent_comm, _ = await agent_socket("alice")
        await agent_comm.send_json_to({"type": "presence", "status": "online"})
        await agent_comm.send_json_to({"type": "ping"})
        await receive_until(agent_comm, lambda f: f["type"] == "pong")
        visitor, _ = await visitor_socket()
        await visitor.send_json_to(
            {"type": "start", "department": "support", "message": "hello?", "client_id": "v-0"}
        )
        state = await receive_until(visitor, lambda f: f["type"] == "conversation")
        conversation_id = state["conversation_id"]
        assert state["status"] == "offered"
        # The offer event was lost; the agent's reconnect state carries it.
        await agent_comm.disconnect()
        agent_comm, agent_state = await agent_socket("alice")
        held = {c["conversation_id"]: c["status"] for c in agent_state["conversations"]}
        assert held == {conversation_id: "offered"}
        await agent_comm.send_json_to({"type": "accept", "conversation_id": conversation_id})
        history = await receive_until(agent_comm, lambda f: f["type"] == "history")
        assert next(m["body"] for m in history["messages"]) == "hello?"
        await agent_comm.send_json_to(
            {
                "type": "message",
                "conversation_id": conversation_id,
                "body": "Hi, Alice here",
                "client_id": "a-1",
            }
        )
        ack = await receive_until(agent_comm, lambda f: f["type"] == "ack")
        await visitor.send_json_to({"type": "sync", "last_seq": 1})
        visitor_view = history_messages(await pending(visitor))
        assert [m["role"] for m in visitor_view] == ["system", "agent"]
        assert (
            visitor_view[-1]["seq"] == ack["seq"] and visitor_view[-1]["body"] == "Hi, Alice here"
        )
        await visitor.send_json_to({"type": "message", "body": "thanks", "client_id": "v-1"})
        visitor_ack = await receive_until(visitor, lambda f: f["type"] == "ack")
        await agent_comm.send_json_to(
            {"type": "sync", "conversation_id": conversation_id, "last_seq": ack["seq"]}
        )
        agent_view = history_messages(await pending(agent_comm))
        assert [(m["seq"], m["body"]) for m in agent_view] == [(visitor_ack["seq"], "thanks")]
    await visitor.disconnect()
    await agent_comm.disconnect()


async def test_reconnect_after_the_chat_ended_while_away_delivers_the_ending(agent):
    visitor, agent_comm, conversation_id, token = await open_chat()
    visitor_has = await last_seq(conversation_id, public=True)
    await visitor.disconnect()
    await agent_comm.send_json_to(
        {
            "type": "message",
            "conversation_id": conversation_id,
            "body": "Your reference is 4711.",
            "client_id": "a-ref",
        }
    )
    await receive_until(agent_comm, lambda f: f["type"] == "ack")
    await agent_comm.send_json_to({"type": "end", "conversation_id": conversation_id})
    await receive_until(agent_comm, lambda f: f["type"] == "ended")

    again, welcome = await visitor_socket(token=token, last_seq=visitor_has)
    assert welcome["conversation"] is not None, (
        "the client that was in the chat is not told it ended"
    )
    assert welcome["conversation"]["conversation_id"] == conversation_id
    assert (
        welcome["conversation"]["status"] == "ended"
        and welcome["conversation"]["ended_by"] == "agent"
    )
    got = history_messages(await pending(again))
    assert [m["body"] for m in got] == ["Your reference is 4711.", "The agent ended the chat."]
    # The visitor can start a new chat from there.
    await again.send_json_to(
        {"type": "start", "department": "support", "message": "one more thing"}
    )
    state = await receive_until(
        again, lambda f: f["type"] == "conversation" and f["conversation_id"] != conversation_id
    )
    assert state["status"] in ("queued", "offered")
    # A visitor with nothing to resume (last_seq 0) gets a clean slate, not last week's chat.
    fresh, fresh_welcome = await visitor_socket(token=token, last_seq=0)
    assert fresh_welcome["conversation"]["conversation_id"] == state["conversation_id"]
    for comm in (again, fresh, agent_comm):
        await comm.disconnect()


async def test_a_visitor_with_nothing_to_resume_does_not_get_an_ended_chat(agent):
    visitor, agent_comm, _conversation_id, token = await open_chat()
    await visitor.send_json_to({"type": "end"})
    await receive_until(agent_comm, lambda f: f["type"] == "ended")
    await visitor.disconnect()
    again, welcome = await visitor_socket(token=token, last_seq=0)
    assert welcome["conversation"] is None
    assert await pending(again) == []
    await again.disconnect()
    await agent_comm.disconnect()


# --- sync -------------------------------------------------------------------------------------


@database_sync_to_async
def _fill(conversation_id: int, agent_user_id: int) -> None:
    from chat.pipeline import Inbound, run

    for i in range(4):
        run(
            Inbound(
                conversation_id=conversation_id,
                role=Message.Role.VISITOR,
                body=f"v{i}",
                client_id=f"fv{i}",
            )
        )
        run(
            Inbound(
                conversation_id=conversation_id,
                role=Message.Role.AGENT,
                sender_id=agent_user_id,
                body=f"a{i}",
                client_id=f"fa{i}",
            )
        )
        run(
            Inbound(
                conversation_id=conversation_id,
                role=Message.Role.AGENT,
                sender_id=agent_user_id,
                body=f"note{i}",
                visibility=Message.Visibility.INTERNAL,
            )
        )


async def test_sync_returns_only_later_messages_in_order(agent):
    visitor, agent_comm, conversation_id, _ = await open_chat()
    await _fill(conversation_id, agent.user_id)
    await pending(visitor)
    await pending(agent_comm)
    top = await last_seq(conversation_id)
    visitor_top = await last_seq(conversation_id, public=True)
    public = await rows(conversation_id, public_only=True)
    everything = await rows(conversation_id)
    for after in [0, 1, 2, 5, 9, top - 1, top, top + 10]:
        await visitor.send_json_to({"type": "sync", "last_seq": after})
        frames = await pending(visitor)
        assert [f["type"] for f in frames] == ["history"]
        assert frames[0]["last_seq"] == visitor_top and frames[0]["conversation_id"] == conversation_id
        assert [(m["seq"], m["role"], m["body"]) for m in frames[0]["messages"]] == [
            r for r in public if r[0] > after
        ]

        await agent_comm.send_json_to(
            {"type": "sync", "conversation_id": conversation_id, "last_seq": after}
        )
        frames = await pending(agent_comm)
        assert [f["type"] for f in frames] == ["history"]
        assert [(m["seq"], m["role"], m["body"]) for m in frames[0]["messages"]] == [
            r for r in everything if r[0] > after
        ]
    await visitor.disconnect()
    await agent_comm.disconnect()


@database_sync_to_async
def _bulk_fill(conversation_id: int, agent_user_id: int, count: int) -> None:
    conversation = Conversation.objects.get(pk=conversation_id)
    now = timezone.now()
    public_seq = conversation.last_public_seq
    messages = []
    for i in range(1, count + 1):
        internal = i % 7 == 0
        if not internal:
            public_seq += 1
        messages.append(
            Message(
                conversation=conversation,
                seq=conversation.last_seq + i,
                public_seq=None if internal else public_seq,
                role=Message.Role.AGENT,
                sender_id=agent_user_id,
                body=f"m{conversation.last_seq + i}",
                created_at=now,
                visibility=Message.Visibility.INTERNAL if internal else Message.Visibility.PUBLIC,
            )
        )
    Message.objects.bulk_create(messages)
    Conversation.objects.filter(pk=conversation_id).update(
        last_seq=conversation.last_seq + count, last_public_seq=public_seq
    )


async def test_a_long_absence_is_recovered_completely(agent):
    """More messages than fit in one history frame: the client still gets all of them, once, in order."""
    visitor, agent_comm, conversation_id, token = await open_chat()
    visitor_has = await last_seq(conversation_id, public=True)
    await visitor.disconnect()
    await _bulk_fill(conversation_id, agent.user_id, 1234)

    again, _ = await visitor_socket(token=token, last_seq=visitor_has)
    got = history_messages(await pending(again, quiet=0.5))
    expected = [r for r in await rows(conversation_id, public_only=True) if r[0] > visitor_has]
    assert len(expected) > 1000
    assert [(m["seq"], m["role"], m["body"]) for m in got] == expected

    await agent_comm.send_json_to(
        {"type": "sync", "conversation_id": conversation_id, "last_seq": 0}
    )
    got = history_messages(await pending(agent_comm, quiet=0.5))
    assert [(m["seq"], m["role"], m["body"]) for m in got] == await rows(conversation_id)
    await again.disconnect()
    await agent_comm.disconnect()


async def test_history_and_live_frames_carry_the_same_message(agent):
    """A client that dedupes by seq can merge history and live frames: the same seq is the same message."""
    visitor, agent_comm, conversation_id, _token = await open_chat()
    await agent_comm.send_json_to(
        {
            "type": "message",
            "conversation_id": conversation_id,
            "body": "same everywhere",
            "client_id": "a-same",
        }
    )
    live = await receive_until(
        visitor, lambda f: f["type"] == "message" and f["body"] == "same everywhere"
    )
    await visitor.send_json_to({"type": "sync", "last_seq": live["seq"] - 1})
    [frame] = await pending(visitor)
    assert frame["messages"] == [live]
    assert json.dumps(frame["messages"][0], sort_keys=True) == json.dumps(live, sort_keys=True)
    await visitor.disconnect()
    await agent_comm.disconnect()
