"""Bad input over the real ASGI app: a clear error frame, the socket stays usable, nothing stored changes.

Every case sends one bad frame into a live chat, then checks three things: the documented error
frame came back (docs/protocol.md, "Errors"), ping still answers pong, and the stored messages and
conversations are exactly what they were before.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings

from chat.models import Conversation, Message, Visitor, hash_token
from config.asgi import application
from tests.chat.helpers import (
    ORIGIN,
    agent_socket,
    open_chat,
    pending,
    receive_until,
    session_cookie_for,
    visitor_socket,
)

pytestmark = pytest.mark.django_db(transaction=True)

MAX_FRAME = 65536


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    # Every case logs agents in; the production hasher's work factor would dominate the run.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


# --- helpers -------------------------------------------------------------------------------


@database_sync_to_async
def stored() -> dict[str, Any]:
    """Everything a bad frame could lose or corrupt."""
    return {
        "messages": list(
            Message.objects.order_by("conversation_id", "seq").values_list(
                "conversation_id", "seq", "role", "visibility", "body", "client_id"
            )
        ),
        "conversations": list(
            Conversation.objects.order_by("pk").values_list(
                "pk", "status", "agent_id", "last_seq", "department_id"
            )
        ),
    }


async def send_raw(comm: WebsocketCommunicator, frame: Any) -> None:
    if isinstance(frame, bytes):
        await comm.send_input({"type": "websocket.receive", "bytes": frame})
    elif isinstance(frame, str):
        # send_to() refuses an empty string, so the ASGI event is built by hand.
        await comm.send_input({"type": "websocket.receive", "text": frame})
    else:
        await comm.send_input({"type": "websocket.receive", "text": json.dumps(frame)})


def assert_error_frame(frame: dict[str, Any], code: str) -> None:
    assert frame["type"] == "error", frame
    assert frame["code"] == code, frame
    assert isinstance(frame["message"], str) and frame["message"], frame
    assert set(frame) <= {"type", "code", "message", "ref"}, frame


async def assert_usable(comm: WebsocketCommunicator) -> None:
    await comm.send_json_to({"type": "ping"})
    assert await comm.receive_json_from() == {"type": "pong"}


async def expect_error_and_nothing_changed(
    comm: WebsocketCommunicator, frame: Any, code: str
) -> dict[str, Any]:
    before = await stored()
    await send_raw(comm, frame)
    error = await comm.receive_json_from()
    assert_error_frame(error, code)
    await assert_usable(comm)
    assert await stored() == before
    return error


async def close_all(*comms: WebsocketCommunicator) -> None:
    for comm in comms:
        await comm.disconnect()


# --- frames that are not protocol at all, on both endpoints ------------------------------

NOT_PROTOCOL = [
    pytest.param("{not json", "malformed_json", id="malformed-json"),
    pytest.param('{"type": "ping"', "malformed_json", id="truncated-json"),
    pytest.param('{"type": "sync", "last_seq": NaN}', "malformed_json", id="nan"),
    pytest.param(
        '{"type": "message", "body": "\\ud800", "client_id": "s-1"}',
        "malformed_json",
        id="lone-surrogate",
    ),
    pytest.param(b'{"type": "ping"}', "binary_not_supported", id="binary"),
    pytest.param(b"", "binary_not_supported", id="empty-binary"),
    pytest.param("", "empty_frame", id="empty"),
    pytest.param(" \n\t ", "empty_frame", id="whitespace"),
    pytest.param("[1, 2]", "missing_type", id="array"),
    pytest.param('"message"', "missing_type", id="string"),
    pytest.param("null", "missing_type", id="null"),
    pytest.param("42", "missing_type", id="number"),
    pytest.param({"body": "hi"}, "missing_type", id="no-type"),
    pytest.param({"type": ["message"]}, "missing_type", id="type-not-a-string"),
    pytest.param({"type": "delete_everything"}, "unknown_type", id="unknown-type"),
]


@pytest.mark.parametrize("frame,code", NOT_PROTOCOL)
async def test_visitor_frame_that_is_not_protocol(agent, frame, code):
    visitor, agent_comm, _, _ = await open_chat()
    await expect_error_and_nothing_changed(visitor, frame, code)
    await close_all(visitor, agent_comm)


@pytest.mark.parametrize("frame,code", NOT_PROTOCOL)
async def test_agent_frame_that_is_not_protocol(agent, frame, code):
    visitor, agent_comm, _, _ = await open_chat()
    await expect_error_and_nothing_changed(agent_comm, frame, code)
    await close_all(visitor, agent_comm)


async def test_unknown_type_echoes_the_client_id_as_ref(agent):
    visitor, agent_comm, _, _ = await open_chat()
    error = await expect_error_and_nothing_changed(
        visitor, {"type": "explode", "client_id": "c-9"}, "unknown_type"
    )
    assert error["ref"] == "c-9"
    # The other endpoint's frame types are unknown here, not silently accepted.
    await expect_error_and_nothing_changed(
        visitor, {"type": "accept", "conversation_id": 1}, "unknown_type"
    )
    await expect_error_and_nothing_changed(agent_comm, {"type": "hello"}, "unknown_type")
    await expect_error_and_nothing_changed(
        agent_comm, {"type": "start", "department": "support"}, "unknown_type"
    )
    await close_all(visitor, agent_comm)


# --- missing and wrong-typed fields ---------------------------------------------------------

VISITOR_BAD_FIELDS = [
    pytest.param({"type": "message", "client_id": "m-1"}, "invalid", id="message-without-body"),
    pytest.param({"type": "message", "body": 42, "client_id": "m-2"}, "invalid", id="body-number"),
    pytest.param({"type": "message", "body": {"text": "hi"}}, "invalid", id="body-object"),
    pytest.param({"type": "message", "body": None}, "invalid", id="body-null"),
    pytest.param({"type": "message", "body": "   \n "}, "empty", id="body-blank"),
    pytest.param(
        {"type": "message", "body": "\u0000\u0007\u001b"}, "empty", id="body-only-control-chars"
    ),
    pytest.param(
        {"type": "message", "body": "hi", "client_id": 7}, "invalid", id="client-id-number"
    ),
    pytest.param(
        {"type": "message", "body": "hi", "client_id": ""}, "invalid", id="client-id-empty"
    ),
    pytest.param(
        {"type": "message", "body": "hi", "client_id": "x" * 65}, "invalid", id="client-id-too-long"
    ),
    pytest.param(
        {"type": "message", "body": "hi", "client_id": "a\nb"},
        "invalid",
        id="client-id-unprintable",
    ),
    pytest.param({"type": "sync", "last_seq": "3"}, "invalid_field", id="last-seq-string"),
    pytest.param({"type": "sync", "last_seq": -1}, "invalid_field", id="last-seq-negative"),
    pytest.param({"type": "sync", "last_seq": True}, "invalid_field", id="last-seq-bool"),
    pytest.param({"type": "sync", "last_seq": 1.5}, "invalid_field", id="last-seq-float"),
    pytest.param({"type": "hello"}, "already_hello", id="hello-twice"),
    pytest.param(
        {"type": "hello", "token": "x" * 43}, "already_hello", id="hello-twice-other-token"
    ),
    pytest.param(
        {"type": "start", "department": "support", "message": "again"},
        "already_open",
        id="start-while-open",
    ),
]


@pytest.mark.parametrize("frame,code", VISITOR_BAD_FIELDS)
async def test_visitor_missing_or_wrong_field(agent, frame, code):
    visitor, agent_comm, _, _ = await open_chat()
    error = await expect_error_and_nothing_changed(visitor, frame, code)
    if isinstance(frame.get("client_id"), str) and frame["client_id"]:
        assert error["ref"] == frame["client_id"]
    # Nothing reached the agent either.
    assert [f for f in await pending(agent_comm) if f["type"] == "message"] == []
    await close_all(visitor, agent_comm)


def _agent_bad_fields() -> list[Any]:
    # Frames are built from the live chat (`c` = conversation id, `me` = the agent's user id).
    cases = [
        (
            "message-id-string",
            lambda c, me: {"type": "message", "conversation_id": str(c), "body": "hi"},
            "not_found",
        ),
        (
            "message-id-missing",
            lambda c, me: {"type": "message", "body": "hi", "client_id": "a-1"},
            "not_found",
        ),
        (
            "message-id-bool",
            lambda c, me: {"type": "message", "conversation_id": True, "body": "hi"},
            "not_found",
        ),
        (
            "message-id-huge",
            lambda c, me: {"type": "message", "conversation_id": 2**64 - 1, "body": "hi"},
            "not_found",
        ),
        (
            "message-without-body",
            lambda c, me: {"type": "message", "conversation_id": c},
            "invalid",
        ),
        (
            "message-body-list",
            lambda c, me: {"type": "message", "conversation_id": c, "body": ["hi"]},
            "invalid",
        ),
        (
            "message-whisper",
            lambda c, me: {
                "type": "message",
                "conversation_id": c,
                "body": "hi",
                "visibility": "whisper",
            },
            "invalid_field",
        ),
        (
            "message-visibility-list",
            lambda c, me: {
                "type": "message",
                "conversation_id": c,
                "body": "hi",
                "visibility": ["public"],
            },
            "invalid_field",
        ),
        (
            "accept-id-string",
            lambda c, me: {"type": "accept", "conversation_id": str(c)},
            "invalid_field",
        ),
        ("accept-id-missing", lambda c, me: {"type": "accept"}, "invalid_field"),
        (
            "accept-id-bool",
            lambda c, me: {"type": "accept", "conversation_id": True},
            "invalid_field",
        ),
        (
            "accept-already-active",
            lambda c, me: {"type": "accept", "conversation_id": c},
            "not_found",
        ),
        ("decline-id-missing", lambda c, me: {"type": "decline"}, "invalid_field"),
        (
            "decline-active-chat",
            lambda c, me: {"type": "decline", "conversation_id": c},
            "not_found",
        ),
        (
            "take-id-negative",
            lambda c, me: {"type": "take", "conversation_id": -4},
            "invalid_field",
        ),
        ("take-active-chat", lambda c, me: {"type": "take", "conversation_id": c}, "taken"),
        ("typing-id-list", lambda c, me: {"type": "typing", "conversation_id": [c]}, "not_found"),
        (
            "typing-id-object",
            lambda c, me: {"type": "typing", "conversation_id": {"id": c}},
            "not_found",
        ),
        ("typing-id-bool", lambda c, me: {"type": "typing", "conversation_id": True}, "not_found"),
        ("sync-id-string", lambda c, me: {"type": "sync", "conversation_id": "x"}, "not_found"),
        (
            "sync-last-seq-string",
            lambda c, me: {"type": "sync", "conversation_id": c, "last_seq": "0"},
            "invalid_field",
        ),
        ("end-id-missing", lambda c, me: {"type": "end"}, "not_found"),
        (
            "transfer-both-targets",
            lambda c, me: {
                "type": "transfer",
                "conversation_id": c,
                "to_agent": me,
                "to_department": 1,
            },
            "invalid",
        ),
        ("transfer-no-target", lambda c, me: {"type": "transfer", "conversation_id": c}, "invalid"),
        (
            "transfer-to-agent-string",
            lambda c, me: {"type": "transfer", "conversation_id": c, "to_agent": "bob"},
            "invalid_field",
        ),
        (
            "transfer-note-list",
            lambda c, me: {
                "type": "transfer",
                "conversation_id": c,
                "to_department": 1,
                "note": ["x"],
            },
            "invalid",
        ),
        (
            "transfer-note-too-long",
            lambda c, me: {
                "type": "transfer",
                "conversation_id": c,
                "to_department": 1,
                "note": "x" * 1001,
            },
            "invalid",
        ),
        (
            "transfer-to-self",
            lambda c, me: {"type": "transfer", "conversation_id": c, "to_agent": me},
            "unknown_agent",
        ),
        (
            "transfer-to-nobody",
            lambda c, me: {"type": "transfer", "conversation_id": c, "to_agent": 10**9},
            "unknown_agent",
        ),
        (
            "transfer-unknown-department",
            lambda c, me: {"type": "transfer", "conversation_id": c, "to_department": 10**9},
            "unknown_department",
        ),
        ("presence-unknown", lambda c, me: {"type": "presence", "status": "busy"}, "invalid"),
        ("presence-list", lambda c, me: {"type": "presence", "status": ["online"]}, "invalid"),
        ("presence-missing", lambda c, me: {"type": "presence"}, "invalid"),
    ]
    return [pytest.param(build, code, id=name) for name, build, code in cases]


@pytest.mark.parametrize("build,code", _agent_bad_fields())
async def test_agent_missing_or_wrong_field(agent, build, code):
    visitor, agent_comm, conversation_id, _ = await open_chat()
    await expect_error_and_nothing_changed(agent_comm, build(conversation_id, agent.user_id), code)
    assert [f for f in await pending(visitor) if f["type"] in ("message", "conversation")] == []
    await close_all(visitor, agent_comm)


async def test_bad_frames_in_a_row_leave_the_chat_working(agent):
    """One socket survives a burst of garbage and then chats normally."""
    visitor, agent_comm, conversation_id, _ = await open_chat()
    for param in NOT_PROTOCOL + VISITOR_BAD_FIELDS:
        frame, code = param.values
        await expect_error_and_nothing_changed(visitor, frame, code)
    await visitor.send_json_to({"type": "message", "body": "still here", "client_id": "v-ok"})
    ack = await receive_until(visitor, lambda f: f["type"] == "ack")
    got = await receive_until(
        agent_comm, lambda f: f["type"] == "message" and f["body"] == "still here"
    )
    assert got["seq"] == ack["seq"]
    assert ack["conversation_id"] == conversation_id
    await close_all(visitor, agent_comm)


# --- size limits ------------------------------------------------------------------------------


async def test_message_over_the_limit_is_refused_and_nothing_stored(agent, settings):
    settings.CHAT_MAX_MESSAGE_CHARS = 50
    visitor, agent_comm, conversation_id, _ = await open_chat()
    error = await expect_error_and_nothing_changed(
        visitor, {"type": "message", "body": "v" * 51, "client_id": "long-v"}, "too_long"
    )
    assert error["ref"] == "long-v"
    error = await expect_error_and_nothing_changed(
        agent_comm,
        {
            "type": "message",
            "conversation_id": conversation_id,
            "body": "a" * 51,
            "client_id": "long-a",
        },
        "too_long",
    )
    assert error["ref"] == "long-a"
    # Exactly at the limit is fine.
    await visitor.send_json_to({"type": "message", "body": "v" * 50, "client_id": "limit-v"})
    assert (await receive_until(visitor, lambda f: f["type"] == "ack"))["client_id"] == "limit-v"
    await close_all(visitor, agent_comm)


async def test_default_limit_is_4000_characters(agent):
    assert settings.CHAT_MAX_MESSAGE_CHARS == 4000
    visitor, agent_comm, _, _ = await open_chat()
    await expect_error_and_nothing_changed(
        visitor, {"type": "message", "body": "x" * 4001}, "too_long"
    )
    await close_all(visitor, agent_comm)


async def test_overlong_first_message_creates_no_chat(agent):
    visitor, _ = await visitor_socket()
    await expect_error_and_nothing_changed(
        visitor,
        {"type": "start", "department": "support", "message": "x" * 4001, "client_id": "s-1"},
        "too_long",
    )
    assert await database_sync_to_async(Conversation.objects.count)() == 0
    await visitor.disconnect()


@pytest.mark.parametrize("kind", ["text", "binary"])
@pytest.mark.parametrize("endpoint", ["visitor", "agent"])
async def test_frame_over_64_kb_is_closed_with_1009(agent, endpoint, kind):
    assert settings.CHAT_MAX_FRAME_BYTES == MAX_FRAME
    visitor, agent_comm, conversation_id, token = await open_chat()
    before = await stored()
    comm = visitor if endpoint == "visitor" else agent_comm
    frame = {
        "type": "message",
        "conversation_id": conversation_id,
        "client_id": "big",
        "body": "x" * MAX_FRAME,
    }
    payload = json.dumps(frame)
    await comm.send_input(
        {"type": "websocket.receive", "text": payload}
        if kind == "text"
        else {"type": "websocket.receive", "bytes": payload.encode()}
    )
    closed = await comm.receive_output()
    assert closed == {"type": "websocket.close", "code": 1009}
    assert await stored() == before
    # The client reconnects and carries on.
    other = agent_comm if endpoint == "visitor" else visitor
    if endpoint == "visitor":
        again, welcome = await visitor_socket(token=token, last_seq=1)
        assert welcome["conversation"]["conversation_id"] == conversation_id
        await receive_until(again, lambda f: f["type"] == "history")
    else:
        again, _ = await agent_socket("alice")
    await assert_usable(again)
    await close_all(again, other)


async def test_frame_just_under_64_kb_is_answered_not_closed(agent):
    visitor, agent_comm, _, _ = await open_chat()
    padding = "x" * (MAX_FRAME - 100)
    frame = json.dumps({"type": "message", "body": padding})
    assert len(frame.encode()) <= MAX_FRAME
    await expect_error_and_nothing_changed(visitor, frame, "too_long")
    await close_all(visitor, agent_comm)


# --- order and state --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "message", "body": "hi", "client_id": "early"},
        {"type": "start", "department": "support", "message": "hi"},
        {"type": "sync", "last_seq": 0},
        {"type": "end"},
        {"type": "typing", "active": True},
    ],
    ids=lambda f: f["type"],
)
async def test_visitor_frames_before_hello_are_refused(department, frame):
    visitor, _ = await visitor_socket(hello=False)
    await expect_error_and_nothing_changed(visitor, frame, "hello_required")
    # ping needs no hello; after it, hello still works.
    await visitor.send_json_to({"type": "hello"})
    welcome = await visitor.receive_json_from()
    assert welcome["type"] == "welcome" and welcome["token"]
    assert await database_sync_to_async(Conversation.objects.count)() == 0
    await visitor.disconnect()


async def test_sending_into_a_closed_conversation(agent):
    visitor, agent_comm, conversation_id, _ = await open_chat()
    await visitor.send_json_to({"type": "end"})
    await receive_until(agent_comm, lambda f: f["type"] == "ended")
    await receive_until(visitor, lambda f: f["type"] == "conversation" and f["status"] == "ended")
    await pending(visitor)
    await pending(agent_comm)

    error = await expect_error_and_nothing_changed(
        visitor, {"type": "message", "body": "hello?", "client_id": "late-v"}, "not_found"
    )
    assert error["ref"] == "late-v"
    await expect_error_and_nothing_changed(visitor, {"type": "end"}, "not_found")
    for frame in (
        {
            "type": "message",
            "conversation_id": conversation_id,
            "body": "hello?",
            "client_id": "late-a",
        },
        {"type": "end", "conversation_id": conversation_id},
        {"type": "transfer", "conversation_id": conversation_id, "to_department": 1},
        {"type": "typing", "conversation_id": conversation_id},
    ):
        await expect_error_and_nothing_changed(agent_comm, frame, "not_found")
    await close_all(visitor, agent_comm)


async def test_another_agents_conversation_looks_exactly_like_a_missing_one(agent, second_agent):
    visitor, alice, conversation_id, _ = await open_chat()
    bob, _ = await agent_socket("bob")
    missing_id = conversation_id + 1000
    frames = [
        lambda c: {
            "type": "message",
            "conversation_id": c,
            "body": "let me in",
            "client_id": "b-1",
        },
        lambda c: {
            "type": "message",
            "conversation_id": c,
            "body": "note",
            "client_id": "b-2",
            "visibility": "internal",
        },
        lambda c: {"type": "accept", "conversation_id": c},
        lambda c: {"type": "decline", "conversation_id": c},
        lambda c: {"type": "sync", "conversation_id": c, "last_seq": 0},
        lambda c: {"type": "end", "conversation_id": c},
        lambda c: {"type": "typing", "conversation_id": c},
        lambda c: {
            "type": "transfer",
            "conversation_id": c,
            "to_department": 1,
            "note": "mine now",
        },
    ]
    for build in frames:
        not_yours = await expect_error_and_nothing_changed(bob, build(conversation_id), "not_found")
        not_there = await expect_error_and_nothing_changed(bob, build(missing_id), "not_found")
        assert not_yours == not_there, build(conversation_id)["type"]
    # And nothing leaked to the visitor or the agent holding the chat.
    assert [f for f in await pending(visitor) if f["type"] != "pong"] == []
    assert [f for f in await pending(alice) if f["type"] not in ("pong", "queue")] == []
    await close_all(visitor, alice, bob)


# --- visitor tokens ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    ["A" * 43, "0123456789abcdef0123456789abcdef", "short", 12345, ["x" * 43], {"token": "x"}, ""],
    ids=["looks-issued", "hex", "short", "number", "list", "object", "empty"],
)
async def test_forged_visitor_token_is_refused_and_hello_without_token_still_works(
    department, token
):
    visitor, _ = await visitor_socket(hello=False)
    before = await database_sync_to_async(Visitor.objects.count)()
    await expect_error_and_nothing_changed(
        visitor, {"type": "hello", "token": token, "last_seq": 0}, "invalid_token"
    )
    assert await database_sync_to_async(Visitor.objects.count)() == before
    # Still not identified: a frame that needs hello is refused...
    await expect_error_and_nothing_changed(
        visitor, {"type": "message", "body": "hi"}, "hello_required"
    )
    # ...and hello without a token gets a fresh, server-issued one.
    await visitor.send_json_to({"type": "hello", "token": None, "last_seq": 0})
    welcome = await visitor.receive_json_from()
    assert welcome["type"] == "welcome"
    assert (
        isinstance(welcome["token"], str)
        and welcome["token"] != token
        and len(welcome["token"]) >= 40
    )
    assert await database_sync_to_async(
        Visitor.objects.filter(token_hash=hash_token(welcome["token"])).exists
    )()
    if isinstance(token, str) and token:
        assert not await database_sync_to_async(
            Visitor.objects.filter(token_hash=hash_token(token)).exists
        )()
    await visitor.disconnect()


async def test_a_visitor_cannot_resume_someone_elses_chat_with_a_guess(agent):
    visitor, agent_comm, _, token = await open_chat()
    intruder, _ = await visitor_socket(hello=False)
    guess = token[:-1] + ("A" if token[-1] != "A" else "B")
    await expect_error_and_nothing_changed(
        intruder, {"type": "hello", "token": guess, "last_seq": 0}, "invalid_token"
    )
    assert await pending(intruder) == []
    await close_all(visitor, agent_comm, intruder)


# --- handshakes -------------------------------------------------------------------------------


async def _connect(
    path: str, headers: list[tuple[bytes, bytes]]
) -> tuple[bool, WebsocketCommunicator]:
    comm = WebsocketCommunicator(application, path, headers=headers)
    connected, _ = await comm.connect()
    if connected:
        await comm.disconnect()
    return connected, comm


async def test_staff_socket_without_a_session_is_refused(agent):
    assert (await _connect("/ws/agent/", [ORIGIN]))[0] is False
    assert (await _connect("/ws/agent/", [ORIGIN, (b"cookie", b"sessionid=not-a-session")]))[
        0
    ] is False


async def test_logged_in_user_who_is_not_an_agent_is_refused(agent, supervisor):
    cookie = await session_cookie_for("sam")
    assert (await _connect("/ws/agent/", [ORIGIN, (b"cookie", cookie)]))[0] is False


async def test_deactivated_agent_is_refused(agent):
    cookie = await session_cookie_for("alice")
    user = agent.user
    user.is_active = False
    await database_sync_to_async(user.save)(update_fields=["is_active"])
    assert (await _connect("/ws/agent/", [ORIGIN, (b"cookie", cookie)]))[0] is False


@pytest.mark.parametrize(
    "origin",
    [b"http://evil.example", b"https://127.0.0.1.evil.example", b"null", b"not a url", None],
    ids=["other-site", "lookalike", "null", "garbage", "no-origin"],
)
async def test_sockets_from_a_disallowed_or_missing_origin_are_refused(agent, origin):
    cookie = await session_cookie_for("alice")
    extra = [] if origin is None else [(b"origin", origin)]
    assert (await _connect("/ws/agent/", [*extra, (b"cookie", cookie)]))[0] is False
    assert (await _connect("/ws/visitor/", extra))[0] is False
    # The same cookie from the site's own origin is accepted: the refusal was the origin.
    assert (await _connect("/ws/agent/", [ORIGIN, (b"cookie", cookie)]))[0] is True


async def test_embedding_sites_may_open_visitor_sockets_but_never_staff_ones(agent, settings):
    settings.CHAT_ALLOWED_ORIGINS = ["https://shop.example"]
    embed = (b"origin", b"https://shop.example")
    cookie = await session_cookie_for("alice")
    assert (await _connect("/ws/visitor/", [embed]))[0] is True
    assert (await _connect("/ws/agent/", [embed, (b"cookie", cookie)]))[0] is False


# --- text the database may not take ---------------------------------------------------------


async def test_nul_and_control_characters_are_cleaned_not_an_internal_error(department):
    """PostgreSQL refuses NUL in text; these must never turn a hello or a start into "internal"."""
    comm = WebsocketCommunicator(
        application, "/ws/visitor/", headers=[ORIGIN, (b"user-agent", b"Mozilla/5.0\x00\x07 evil")]
    )
    assert (await comm.connect())[0]
    await comm.send_json_to(
        {
            "type": "hello",
            "page_url": "https://shop.example/a\u0000b",
            "referrer": "https://ref.example/\u0000",
        }
    )
    welcome = await comm.receive_json_from()
    assert welcome["type"] == "welcome", welcome
    await comm.send_json_to(
        {
            "type": "start",
            "department": "support",
            "name": "Ve\u0000ra",
            "message": "hi\u0000 there",
            "client_id": "n-1",
        }
    )
    state = await receive_until(comm, lambda f: f["type"] == "conversation")
    assert state["status"] == "queued"
    await comm.send_json_to({"type": "message", "body": "second\u0000 line", "client_id": "n-2"})
    await receive_until(comm, lambda f: f["type"] == "ack")
    visitor = await database_sync_to_async(Visitor.objects.get)()
    assert "\x00" not in visitor.page_url + visitor.referrer + visitor.user_agent + visitor.name
    bodies = await database_sync_to_async(
        lambda: list(Message.objects.values_list("body", flat=True))
    )()
    assert bodies == ["hi there", "second line"]
    await comm.disconnect()
