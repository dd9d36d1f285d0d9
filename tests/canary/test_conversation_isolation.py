"""A conversation reaches only the sockets it was given to; a visitor's token opens only its own.

Four agents in two departments (one in both) hold concurrent chats from four visitors; one chat
is transferred to the other department mid-way. Every chat has its own canary words, and every
frame every agent socket received is checked: an agent sees a chat's words only if the chat was
offered to it (its Assignment rows) or it was tagged in (ConversationHelper), and nothing said
after it handed the chat on; queue snapshots name only chats of its own departments.
"""

from __future__ import annotations

import hashlib

import pytest
from channels.db import database_sync_to_async

from chat.models import Assignment, Conversation, ConversationHelper, ProactiveInvitation
from tests.canary.harness import Recorder, canary
from tests.canary.scenario import (
    agent_socket,
    make_cast,
    say,
    visitor_socket,
    welcome_token,
)

pytestmark = pytest.mark.django_db(transaction=True)


async def _accept_all_offers(agents: dict[str, Recorder], accepted: set[tuple[str, int]]) -> None:
    for name, rec in agents.items():
        await rec.settle(quiet=0.1)
        for frame in list(rec.frames):
            key = (name, frame.get("conversation_id"))
            if frame["type"] == "offer" and key not in accepted:
                accepted.add(key)
                await rec.send({"type": "accept", "conversation_id": frame["conversation_id"]})


async def _until_all_active(
    visitors: list[Recorder], agents: dict[str, Recorder], accepted: set
) -> None:
    for _ in range(40):
        await _accept_all_offers(agents, accepted)
        for v in visitors:
            await v.settle(quiet=0.05)
        states = [[f for f in v.frames if f["type"] == "conversation"][-1:] for v in visitors]
        if all(s and s[0]["status"] == "active" for s in states):
            return
    raise AssertionError(f"not every chat became active: {[v.frames[-3:] for v in visitors]}")


def _holders() -> dict[int, str]:
    return {c.pk: c.agent.user.username for c in Conversation.objects.select_related("agent__user")}


def _grants() -> dict[str, set[int]]:
    given: dict[str, set[int]] = {}
    for a in Assignment.objects.select_related("agent__user"):
        given.setdefault(a.agent.user.username, set()).add(a.conversation_id)
    for h in ConversationHelper.objects.select_related("agent__user"):
        given.setdefault(h.agent.user.username, set()).add(h.conversation_id)
    return given


def _departments() -> dict[int, int]:
    return dict(Conversation.objects.values_list("pk", "department_id"))


async def test_agents_receive_only_the_conversations_they_were_given():
    cast = await database_sync_to_async(make_cast)()
    agents = {name: await agent_socket(name) for name in ("alice", "bob", "carl", "dora")}
    accepted: set[tuple[str, int]] = set()

    visitors = []
    for i, department in enumerate(["support", "support", "billing", "billing"]):
        v = await visitor_socket()
        await v.send(
            {"type": "start", "department": department, "message": f"hello {i}", "client_id": "v-0"}
        )
        await v.until(lambda f: f["type"] == "conversation")
        visitors.append(v)
    await _until_all_active(visitors, agents, accepted)
    chat_ids = [
        [f for f in v.frames if f["type"] == "conversation"][-1]["conversation_id"]
        for v in visitors
    ]
    holders = await database_sync_to_async(_holders)()

    words: dict[int, list[str]] = {cid: [] for cid in chat_ids}
    for v, cid in zip(visitors, chat_ids, strict=True):
        words[cid].append(canary(f"visitor-{cid}"))
        await say(v, None, words[cid][-1])
        words[cid].append(canary(f"agent-{cid}"))
        await say(agents[holders[cid]], cid, words[cid][-1])
        words[cid].append(canary(f"note-{cid}"))
        await say(agents[holders[cid]], cid, words[cid][-1], visibility="internal")
        await v.send({"type": "typing"})

    # The first support chat moves to billing; what is said afterwards is for the new holder only.
    moved = chat_ids[0]
    before = holders[moved]
    await agents[before].send(
        {
            "type": "transfer",
            "conversation_id": moved,
            "to_department": cast["billing"].pk,
            "note": "billing question",
        }
    )
    await agents[before].until(
        lambda f: f["type"] == "unassigned" and f["conversation_id"] == moved
    )
    await _until_all_active(visitors, agents, accepted)
    holders = await database_sync_to_async(_holders)()
    after = holders[moved]
    assert after != before
    late = canary(f"after-transfer-{moved}")
    await say(visitors[0], None, late)
    await agents[after].until(lambda f: f.get("body") == late)
    for rec in agents.values():
        await rec.settle()

    grants = await database_sync_to_async(_grants)()
    departments = await database_sync_to_async(_departments)()
    agent_departments = {
        "alice": {cast["support"].pk},
        "bob": {cast["support"].pk},
        "carl": {cast["billing"].pk},
        "dora": {cast["support"].pk, cast["billing"].pk},
    }
    problems = []
    for name, rec in agents.items():
        text = rec.text()
        mine = grants.get(name, set())
        for cid, said in words.items():
            for word in said:
                if word in text and cid not in mine:
                    problems.append(f"{name} got {word} of chat {cid}, never given to it")
        if late in text and name != after:
            problems.append(f"{name} got a message sent after the chat left it")
        for frame in rec.frames:
            cid = frame.get("conversation_id")
            if (
                frame["type"] in ("message", "history", "typing", "offer", "visitor", "mention")
                and cid is not None
            ) and cid not in mine:
                problems.append(f"{name} got a {frame['type']} frame of chat {cid}")
            if frame["type"] in ("queue", "state"):
                for entry in frame.get("queue", []):
                    if departments[entry["conversation_id"]] not in agent_departments[name]:
                        problems.append(
                            f"{name} saw chat {entry['conversation_id']} of another department queued"
                        )
    assert problems == []
    # And each holder did get its own chat's words (the check above is not vacuous).
    for cid, said in words.items():
        holder_text = agents[holders[cid]].text() if cid != moved else agents[before].text()
        assert all(word in holder_text for word in said)
    # Asking for a chat one was never given is "not found", for every chat and every agent.
    for name, rec in agents.items():
        for cid in chat_ids:
            if cid in grants.get(name, set()):
                continue
            await rec.send({"type": "sync", "conversation_id": cid, "last_seq": 0})
            error = await rec.until(lambda f: f["type"] in ("error", "history"))
            assert error["type"] == "error" and error["code"] == "not_found", (name, cid, error)
            await rec.send({"type": "visitor", "conversation_id": cid})
            error = await rec.until(lambda f: f["type"] in ("error", "visitor"))
            assert error["type"] == "error", (name, cid, error)

    for rec in [*agents.values(), *visitors]:
        await rec.comm.disconnect()


async def test_a_visitor_token_opens_only_its_own_conversation():
    await database_sync_to_async(make_cast)()
    alice = await agent_socket("alice")
    bob = await agent_socket("bob")
    vera = await visitor_socket()
    vera_token = welcome_token(vera)
    secret = canary("vera-private")
    await vera.send(
        {"type": "start", "department": "support", "message": secret, "client_id": "v-0"}
    )
    await vera.until(lambda f: f["type"] == "conversation")
    for agent in (alice, bob):
        await agent.settle()
        offers = [f for f in agent.frames if f["type"] == "offer"]
        if offers:
            await agent.send({"type": "accept", "conversation_id": offers[0]["conversation_id"]})
            vera_chat = offers[0]["conversation_id"]
    await vera.until(lambda f: f["type"] == "conversation" and f["status"] == "active")
    await vera.send({"type": "invite_request", "rule_id": 999, "page_url": "https://shop.example/"})
    await vera.until(lambda f: f["type"] == "error")

    otto = await visitor_socket()
    otto_token = welcome_token(otto)
    assert otto_token != vera_token

    # Wrong, forged and replayed-but-altered tokens are refused, and open nothing.
    token_hash = hashlib.sha256(vera_token.encode()).hexdigest()
    for forged in [
        "not-a-token",
        token_hash,
        vera_token[:-1],
        vera_token + "A",
        vera_token.upper(),
        "",
        12345,
        None,
    ]:
        if forged is None:
            continue
        rec = await visitor_socket(token=forged)
        assert rec.frames[-1]["type"] == "error" and rec.frames[-1]["code"] in (
            "invalid_token",
            "invalid_field",
        ), (
            forged,
            rec.frames,
        )
        await rec.send({"type": "sync", "last_seq": 0})
        refused = await rec.until(lambda f: f["type"] == "error")
        assert refused["code"] == "hello_required"
        await rec.send(
            {"type": "transcript", "conversation_id": vera_chat, "email": "x@example.com"}
        )
        await rec.until(lambda f: f["type"] == "error")
        await rec.settle()
        assert secret not in rec.text()
        await rec.comm.disconnect()

    # Otto, with a valid token of his own, names Vera's conversation: not found, nothing sent.
    from django.core import mail

    mail.outbox = []
    for frame in (
        {"type": "transcript", "conversation_id": vera_chat, "email": "otto@example.com"},
        {"type": "survey", "conversation_id": vera_chat, "rating": 1},
        {"type": "sync", "last_seq": 0, "conversation_id": vera_chat},
        {"type": "invite_reply", "invitation_id": 1, "accepted": True},
    ):
        await otto.send(frame)
        error = await otto.until(lambda f: f["type"] == "error")
        assert error["code"] in ("not_found",), (frame, error)
    assert mail.outbox == []
    # Otto's own (empty) world: his welcome names no conversation; Vera's words never reach him.
    await say(vera, None, canary("vera-later"))
    await otto.settle()
    await vera.settle()
    assert secret not in otto.text() and "vera-later" not in otto.text()
    assert next(f for f in otto.frames if f["type"] == "welcome")["conversation"] is None

    # Vera's own token, replayed in a fresh socket, resumes exactly her chat.
    again = await visitor_socket(token=vera_token, last_seq=0)
    history = await again.until(lambda f: f["type"] == "history")
    assert history["conversation_id"] == vera_chat and history["messages"][0]["body"] == secret
    assert await database_sync_to_async(ProactiveInvitation.objects.count)() == 0

    for rec in (alice, bob, vera, otto, again):
        await rec.comm.disconnect()
