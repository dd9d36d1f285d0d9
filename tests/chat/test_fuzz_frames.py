"""Property-based fuzzing of every inbound frame type, on both endpoints, against the live consumers.

Hypothesis generates the frames (wrong types, huge and empty fields, unicode edge cases, deep
nesting, raw non-JSON text, binary, out-of-order `last_seq`, replayed `client_id`s, ids of chats that
belong to someone else). Each frame is followed by a `ping`; the `pong` marks the point where the
consumer has handled the frame, so every reply can be attributed to the frame that caused it.

What must hold, for every frame:
- the consumer never crashes and never answers `internal` (a server fault);
- every error it sends has a code documented in docs/protocol.md;
- another visitor's and another agent's conversation is untouched: its transcript, status and
  holder are exactly as before, and nothing of it reaches the fuzzing sockets.

COACHLINE_FUZZ_FRAMES sets how many frames (default 2,000 for `make test`; `make fuzz` sends 10,000),
split over the two endpoints;
COACHLINE_FUZZ_SEED varies the run (default fixed, so a failure reproduces).
"""

from __future__ import annotations

import inspect
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from channels.db import database_sync_to_async
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from chat.models import Conversation, Message
from chat.routing import websocket_urlpatterns
from tests.chat.helpers import agent_socket, receive_until, visitor_socket

pytestmark = pytest.mark.django_db(transaction=True)

# The quick form (make test) sends 2,000; `make fuzz` the long form of 10,000 or more.
FRAMES = int(os.environ.get("COACHLINE_FUZZ_FRAMES", "2000"))
SEED = int(os.environ.get("COACHLINE_FUZZ_SEED", "20261123"))
PROTOCOL = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"


def _routed_consumer(path: str) -> type:
    for pattern in websocket_urlpatterns:
        if str(pattern.pattern) == path:
            return pattern.callback.consumer_class
    raise LookupError(path)


def routed_frame_types(path: str) -> list[str]:
    """The frame types of the consumer actually served at `path`, so new frames are fuzzed too."""
    return list(_routed_consumer(path).handlers)


def frame_fields(path: str) -> list[str]:
    """Every field name the consumer (and the modules of its base classes) reads from a frame."""
    names: set[str] = {"client_id", "ref"}
    for cls in _routed_consumer(path).__mro__:
        module = sys.modules.get(cls.__module__)
        if module is not None and module.__name__.split(".")[0] in ("chat", "coaching", "compliance"):
            source = inspect.getsource(module)
            names |= set(re.findall(r'data(?:\.get\(|\[)"(\w+)"', source))
            names |= set(re.findall(r'_int_field\(data, "(\w+)"', source))
    return sorted(names - {"type"})


def documented_error_codes() -> set[str]:
    text = PROTOCOL.read_text()
    errors = text[text.index("## Errors"):text.index("## Close codes")]
    codes = set(re.findall(r"^\| `([a-z_]+)` \|", errors, flags=re.MULTILINE))
    codes |= set(re.findall(r"`([a-z_]+)`", errors.split("Two further codes")[-1].split("\n\n")[0]))
    return codes


# --- what to throw at the consumers -----------------------------------------------------------

EDGE_TEXT = st.sampled_from(
    ["", " ", "\n\t", "\x00", "\u202e", "\ufeff", "\U0001f600" * 3, "e\u0301", "<script>alert(1)</script>",
     "4111 1111 1111 1111", "a" * 4001, "\u0000" * 10, "🏳️‍🌈", "\r\n\r\n", "%s%n", "' OR 1=1 --"]
)
TEXT = st.one_of(EDGE_TEXT, st.text(max_size=60), st.text(min_size=3000, max_size=5000))
SCALAR = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), TEXT,
)
JSON = st.recursive(SCALAR, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=20)


def deeply_nested(depth: int) -> str:
    return '{"type": "message", "body": ' + "[" * depth + "]" * depth + "}"


def frame_strategy(types: list[str], fields: list[str], ids: st.SearchStrategy[int]) -> st.SearchStrategy[Any]:
    field_value = st.one_of(JSON, ids, st.just(0), st.just(-1))
    structured = st.fixed_dictionaries(
        # Mostly real frame types, so the fuzzing gets past the dispatcher into the handlers.
        {"type": st.one_of(st.sampled_from(types), st.sampled_from(types), st.sampled_from(types), TEXT)},
        optional={name: field_value for name in fields},
    )
    # Replays: a fixed client_id that is reused again and again.
    replay = st.fixed_dictionaries(
        {"type": st.just("message"), "body": TEXT, "client_id": st.sampled_from(["replay-1", "replay-2"])},
        optional={"conversation_id": ids},
    )
    raw = st.one_of(
        st.text(max_size=200).map(lambda t: ("text", t)),
        st.binary(max_size=100).map(lambda b: ("bytes", b)),
        st.integers(min_value=1, max_value=3000).map(lambda d: ("text", deeply_nested(d))),
        st.sampled_from(['{"type": NaN}', '{"type": "\\ud800"}', "[]", "null", '"type"', '{"type": 1}',
                         "{" * 5000]).map(lambda t: ("text", t)),
    )
    return st.one_of(structured.map(lambda f: ("json", f)), replay.map(lambda f: ("json", f)), raw)


def generate(strategy: st.SearchStrategy[Any], count: int) -> list[Any]:
    """Hypothesis as a generator: its edge-case bias, a fixed seed, every example kept."""
    out: list[Any] = []

    @seed(SEED)
    @settings(max_examples=count, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(example: Any) -> None:
        out.append(example)

    collect()
    return out


# --- driving the consumers ------------------------------------------------------------------------


async def send_and_collect(comm, kind: str, payload: Any) -> list[dict[str, Any]]:
    # send_input, not send_to: send_to refuses an empty frame, which is one of the cases.
    if kind == "json":
        await comm.send_input({"type": "websocket.receive", "text": json.dumps(payload, ensure_ascii=False)})
    elif kind == "text":
        await comm.send_input({"type": "websocket.receive", "text": payload})
    else:
        await comm.send_input({"type": "websocket.receive", "bytes": payload})
    await comm.send_input({"type": "websocket.receive", "text": '{"type": "ping"}'})
    replies = []
    while True:
        output = await comm.receive_output(timeout=10)
        if output["type"] == "websocket.close":
            return replies + [{"type": "closed", "code": output.get("code")}]
        frame = json.loads(output["text"])
        if frame["type"] == "pong":
            return replies
        replies.append(frame)


def snapshot(conversation_id: int) -> tuple:
    conversation = Conversation.objects.get(pk=conversation_id)
    messages = list(Message.objects.filter(conversation_id=conversation_id).values_list("seq", "role", "body", "visibility"))
    return conversation.status, conversation.agent_id, conversation.last_seq, messages


async def open_victim(second_agent) -> tuple[int, Any, Any]:
    """Bob and a visitor of his own, mid-chat: the conversation the fuzzing must never touch."""
    bob, _ = await agent_socket("bob")
    await bob.send_json_to({"type": "presence", "status": "online"})
    await receive_until(bob, lambda f: f["type"] == "presence" and f["status"] == "online")
    victim, _ = await visitor_socket()
    await victim.send_json_to({"type": "start", "department": "support", "message": "my private question", "client_id": "vic-1"})
    offer = await receive_until(bob, lambda f: f["type"] == "offer")
    await bob.send_json_to({"type": "accept", "conversation_id": offer["conversation_id"]})
    await receive_until(victim, lambda f: f["type"] == "conversation" and f["status"] == "active")
    await bob.send_json_to({"type": "message", "conversation_id": offer["conversation_id"], "body": "bob's answer", "client_id": "vic-2"})
    await receive_until(victim, lambda f: f["type"] == "message" and f["role"] == "agent")
    await bob.send_json_to({"type": "presence", "status": "away"})  # the fuzzing chats go to alice
    await receive_until(bob, lambda f: f["type"] == "presence" and f["status"] == "away")
    return offer["conversation_id"], bob, victim


# What the frames got back, printed with -s: shows what the fuzzing reached.
OUTCOMES: dict[str, int] = {}


def check(replies: list[dict[str, Any]], sent: Any, *, documented: set[str], victim_id: int) -> None:
    for frame in replies:
        if frame["type"] == "closed":
            assert frame["code"] == 1009, (sent, frame)  # only an oversized frame may close it
        if frame["type"] == "error":
            assert frame["code"] != "internal", ("server fault", sent, frame)
            assert frame["code"] in documented, ("undocumented error code", sent, frame)
        assert frame.get("conversation_id") != victim_id, ("another chat leaked", sent, frame)
        assert "bob's answer" not in json.dumps(frame) and "my private question" not in json.dumps(frame)


async def fuzz(comm_factory, frames: list[Any], *, documented: set[str], victim_id: int) -> int:
    comm = await comm_factory()
    errors = 0
    for kind, payload in frames:
        replies = await send_and_collect(comm, kind, payload)
        check(replies, payload if kind != "bytes" else repr(payload)[:80], documented=documented, victim_id=victim_id)
        errors += sum(1 for f in replies if f["type"] == "error")
        for f in replies:
            outcome = f["code"] if f["type"] == "error" else f["type"]
            OUTCOMES[outcome] = OUTCOMES.get(outcome, 0) + 1
        if replies and replies[-1]["type"] == "closed":
            await comm.disconnect()
            comm = await comm_factory()
    await comm.disconnect()
    return errors


async def test_fuzzed_frames_get_documented_errors_and_leave_other_chats_untouched(agent, second_agent):
    documented = documented_error_codes()
    assert {"malformed_json", "invalid", "not_found", "internal"} <= documented
    victim_id, bob, victim = await open_victim(second_agent)
    before = await database_sync_to_async(snapshot)(victim_id)
    # The visitor's own chat gives the agent side a real conversation to accept, write in and end.
    starter, _ = await visitor_socket()
    await starter.send_json_to({"type": "start", "department": "support", "message": "fuzz me", "client_id": "s-1"})
    own = await receive_until(starter, lambda f: f["type"] == "conversation")
    bob_user_id = second_agent.user_id
    ids = st.sampled_from([victim_id, own["conversation_id"], bob_user_id, 1, 2**31, 2**63]) | st.integers(
        min_value=-5, max_value=50
    )

    token: dict[str, str | None] = {"value": None}

    async def visitor_factory():
        comm, welcome = await visitor_socket(token=token["value"])
        token["value"] = token["value"] or welcome["token"]
        return comm

    async def agent_factory():
        comm, _ = await agent_socket("alice")
        await comm.send_json_to({"type": "presence", "status": "online"})
        await receive_until(comm, lambda f: f["type"] == "presence")
        return comm

    visitor_frames = generate(
        frame_strategy(routed_frame_types("ws/visitor/"), frame_fields("ws/visitor/"), ids),
        FRAMES // 2,
    )
    agent_frames = generate(
        frame_strategy(routed_frame_types("ws/agent/"), frame_fields("ws/agent/"), ids),
        FRAMES - FRAMES // 2,
    )
    visitor_errors = await fuzz(visitor_factory, visitor_frames, documented=documented, victim_id=victim_id)
    agent_errors = await fuzz(agent_factory, agent_frames, documented=documented, victim_id=victim_id)

    print("outcomes:", sorted(OUTCOMES.items(), key=lambda kv: -kv[1]))
    assert len(visitor_frames) + len(agent_frames) == FRAMES
    assert visitor_errors > len(visitor_frames) // 4 and agent_errors > len(agent_frames) // 4  # it was fuzzing
    assert await database_sync_to_async(snapshot)(victim_id) == before
    # The victim's own sockets are still fine: bob can still write, the visitor still gets it.
    await bob.send_json_to({"type": "message", "conversation_id": victim_id, "body": "still here", "client_id": "vic-3"})
    got = await receive_until(victim, lambda f: f["type"] == "message" and f["role"] == "agent")
    assert got["body"] == "still here"
    for comm in (bob, victim, starter):
        await comm.disconnect()
