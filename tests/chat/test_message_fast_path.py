"""Where a chat message takes the one-round-trip path (chat/message_fast_path.py) and where the full
one, and that a user cannot tell which it was: the same rows, frames, masking and errors.

Real mode only: the fast path runs on PostgreSQL alone (the embedded default always takes the full
path, which the rest of the chat tests cover on both).
"""

from __future__ import annotations

import psycopg
import pytest
from channels.db import database_sync_to_async

from chat import frames, message_fast_path
from chat.models import Assignment, Conversation, Message
from compliance import selectors as compliance_selectors
from compliance import services as compliance_services
from compliance.models import MaskingRule
from tests.chat.helpers import agent_socket, open_chat, pending, receive_until

pytestmark = [pytest.mark.realmode, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _masking_snapshot_lasts_the_test(monkeypatch):
    """The path counts below assume the process' masking snapshot stays fresh for the whole test.
    It expires after CACHE_SECONDS (5 s), and may have been loaded by an earlier test, so on a slow
    machine a message would otherwise take the full path only because the snapshot aged out (a
    reason of its own, pinned by test_an_expired_masking_snapshot_is_read_again_on_the_full_path)."""
    monkeypatch.setattr(compliance_selectors, "CACHE_SECONDS", 600.0)
    compliance_selectors.clear_masking_cache()


@pytest.fixture
def full_path(monkeypatch):
    """Counts the messages that took the full path, by sender role."""
    taken = {"visitor": 0, "staff": 0}
    visitor_full, staff_full = message_fast_path._full_visitor_message, message_fast_path._full_staff_message

    def visitor(**kwargs):
        taken["visitor"] += 1
        return visitor_full(**kwargs)

    def staff(**kwargs):
        taken["staff"] += 1
        return staff_full(**kwargs)

    monkeypatch.setattr(message_fast_path, "_full_visitor_message", visitor)
    monkeypatch.setattr(message_fast_path, "_full_staff_message", staff)
    return taken


@database_sync_to_async
def stored(conversation_id: int) -> list[tuple]:
    return list(
        Message.objects.filter(conversation_id=conversation_id)
        .order_by("seq")
        .values_list("seq", "public_seq", "role", "visibility", "body", "client_id")
    )


async def said(conversation_id: int) -> list[str]:
    """What the visitor and the agents wrote, in order (not the system lines)."""
    return [r[4] for r in await stored(conversation_id) if r[2] in ("visitor", "agent")]


@database_sync_to_async
def row(conversation_id: int, client_id: str) -> Message:
    return Message.objects.get(conversation_id=conversation_id, client_id=client_id)


async def visitor_says(visitor, body, client_id):
    await visitor.send_json_to({"type": "message", "body": body, "client_id": client_id})
    return await receive_until(visitor, lambda f: f["type"] in ("ack", "error"))


async def agent_says(agent, conversation_id, body, client_id, visibility="public"):
    await agent.send_json_to({
        "type": "message", "conversation_id": conversation_id, "body": body, "client_id": client_id,
        "visibility": visibility,
    })
    return await receive_until(agent, lambda f: f["type"] in ("ack", "error") and f.get("ref", f.get("client_id"))
                               == client_id)


async def test_the_common_messages_are_stored_once_masked_and_delivered_as_the_full_path_would(agent, full_path):
    visitor, alice, conversation_id, _ = await open_chat()

    before = await stored(conversation_id)  # "first", and the line saying Alice joined
    seq, public_seq = before[-1][0], max(r[1] for r in before if r[1] is not None)
    ack = await visitor_says(visitor, "My card is 4111 1111 1111 1111", "v-1")
    assert ack == {"type": "ack", "client_id": "v-1", "seq": public_seq + 1, "conversation_id": conversation_id}
    seen_by_agent = await receive_until(alice, lambda f: f["type"] == "message" and f["client_id"] == "v-1")
    assert seen_by_agent["body"] == "My card is XXXX XXXX XXXX XXXX"

    ack = await agent_says(alice, conversation_id, "Thanks, one moment", "a-1")
    assert ack["type"] == "ack"
    seen_by_visitor = await receive_until(visitor, lambda f: f["type"] == "message" and f["role"] == "agent")
    assert seen_by_visitor["author"] == "Alice Agent"

    assert full_path == {"visitor": 0, "staff": 0}
    assert (await stored(conversation_id))[len(before):] == [
        (seq + 1, public_seq + 1, "visitor", "public", "My card is XXXX XXXX XXXX XXXX", "v-1"),
        (seq + 2, public_seq + 2, "agent", "public", "Thanks, one moment", "a-1"),
    ]
    # Exactly the frames the full path builds from the stored rows.
    assert seen_by_agent == frames.staff_message_frame(await row(conversation_id, "v-1"), author=None)
    assert seen_by_visitor == frames.visitor_message_frame(await row(conversation_id, "a-1"), author="Alice Agent")

    @database_sync_to_async
    def first_replies():
        conversation = Conversation.objects.get(pk=conversation_id)
        assignment = Assignment.objects.get(conversation_id=conversation_id, ended_at__isnull=True)
        return conversation.first_agent_reply_at, assignment.first_reply_at

    chat_first, holder_first = await first_replies()
    assert chat_first is not None and chat_first == holder_first == (await row(conversation_id, "a-1")).created_at
    await visitor.disconnect()
    await alice.disconnect()


async def test_an_internal_note_takes_the_full_path_and_never_reaches_the_visitor(agent, full_path):
    visitor, alice, conversation_id, _ = await open_chat()

    ack = await agent_says(alice, conversation_id, "note: CANARY-FAST-1", "n-1", visibility="internal")
    assert ack["type"] == "ack"
    assert full_path["staff"] == 1  # an after-persist hook (the agents' mentions) applies to notes
    assert not [f for f in await pending(visitor) if "CANARY-FAST-1" in str(f)]
    assert (await row(conversation_id, "n-1")).public_seq is None
    await visitor.disconnect()
    await alice.disconnect()


async def test_a_resend_is_answered_by_the_full_path_with_its_first_copy(agent, full_path):
    visitor, alice, conversation_id, _ = await open_chat()

    first = await visitor_says(visitor, "hello", "v-1")
    again = await visitor_says(visitor, "hello", "v-1")
    assert again["seq"] == first["seq"]
    assert full_path["visitor"] == 1
    assert [r[4] for r in await stored(conversation_id) if r[5] == "v-1"] == ["hello"]

    first = await agent_says(alice, conversation_id, "hi", "a-1")
    again = await agent_says(alice, conversation_id, "hi", "a-1")
    assert again["seq"] == first["seq"] and full_path["staff"] == 1
    await visitor.disconnect()
    await alice.disconnect()


async def test_the_rate_limit_is_refused_with_its_error_by_the_full_path(agent, full_path, settings):
    settings.CHAT_VISITOR_MESSAGES_PER_MINUTE = 3  # "first" from the start counts as one
    visitor, alice, conversation_id, _ = await open_chat()

    assert (await visitor_says(visitor, "two", "v-2"))["type"] == "ack"
    assert (await visitor_says(visitor, "three", "v-3"))["type"] == "ack"
    refused = await visitor_says(visitor, "four", "v-4")
    assert refused["type"] == "error" and refused["code"] == "rate_limited", refused
    assert "at most 3 a minute" in refused["message"]
    assert full_path["visitor"] == 1
    assert (await said(conversation_id)) == ["first", "two", "three"]
    await visitor.disconnect()
    await alice.disconnect()


async def test_bad_text_gets_the_documented_error_and_nothing_is_stored(agent, full_path, settings):
    visitor, alice, conversation_id, _ = await open_chat()

    for body, code in (("", "empty"), ("x" * (settings.CHAT_MAX_MESSAGE_CHARS + 1), "too_long"), (42, "invalid")):
        refused = await visitor_says(visitor, body, f"v-{code}")
        assert refused["type"] == "error" and refused["code"] == code, refused
        refused = await agent_says(alice, conversation_id, body, f"a-{code}")
        assert refused["type"] == "error" and refused["code"] == code, refused
    assert (await said(conversation_id)) == ["first"]
    await visitor.disconnect()
    await alice.disconnect()


async def test_a_chat_not_held_by_the_sender_is_not_found_on_either_path(agent, second_agent, full_path):
    visitor, alice, conversation_id, _ = await open_chat()
    bob, _ = await agent_socket("bob")

    refused = await agent_says(bob, conversation_id, "let me in", "b-1")
    assert refused["type"] == "error" and refused["code"] == "not_found", refused
    assert not [f for f in await pending(visitor) if "let me in" in str(f)]
    assert (await said(conversation_id)) == ["first"]
    for comm in (visitor, alice, bob):
        await comm.disconnect()


async def test_a_chat_moved_to_another_department_is_masked_for_the_new_one(agent, other_department, full_path):
    @database_sync_to_async
    def billing_rule():
        rule = MaskingRule.objects.create(name="policy", pattern=r"\bPOL\d{6}\b")
        rule.departments.set([other_department])
        compliance_services.reload_masking_rules()

    await billing_rule()
    visitor, alice, conversation_id, _ = await open_chat()
    await visitor_says(visitor, "POL123456", "v-1")  # not a billing chat: as typed

    await database_sync_to_async(Conversation.objects.filter(pk=conversation_id).update)(
        department=other_department
    )
    await visitor_says(visitor, "POL123456", "v-2")  # the chat moved: the full path masks it
    await visitor_says(visitor, "POL123456", "v-3")  # and the fast path now knows
    assert (await said(conversation_id))[1:] == ["POL123456", "XXXXXXXXX", "XXXXXXXXX"]
    assert full_path["visitor"] == 1
    await visitor.disconnect()
    await alice.disconnect()


async def test_changed_masking_rules_apply_to_the_next_message(agent, full_path):
    visitor, alice, conversation_id, _ = await open_chat()
    await visitor_says(visitor, "POL123456", "v-1")

    @database_sync_to_async
    def new_rule():
        MaskingRule.objects.create(name="policy", pattern=r"\bPOL\d{6}\b")
        compliance_services.reload_masking_rules()

    await new_rule()
    await visitor_says(visitor, "POL123456", "v-2")  # the cache is stale: read again, full path
    await visitor_says(visitor, "POL123456", "v-3")
    assert (await said(conversation_id))[1:] == ["POL123456", "XXXXXXXXX", "XXXXXXXXX"]
    assert full_path["visitor"] == 1
    await visitor.disconnect()
    await alice.disconnect()


async def test_an_expired_masking_snapshot_is_read_again_on_the_full_path(agent, full_path, monkeypatch):
    visitor, alice, conversation_id, _ = await open_chat()
    monkeypatch.setattr(compliance_selectors, "CACHE_SECONDS", 0.0)  # every snapshot has expired
    ack = await visitor_says(visitor, "My card is 4111 1111 1111 1111", "v-1")
    assert ack["type"] == "ack"
    assert (await said(conversation_id))[-1] == "My card is XXXX XXXX XXXX XXXX"
    assert full_path["visitor"] == 1
    await visitor.disconnect()
    await alice.disconnect()


async def test_a_database_that_does_not_answer_is_a_retryable_error_and_the_resend_lands(agent, monkeypatch):
    visitor, alice, conversation_id, _ = await open_chat()

    async def down(sql, params):
        raise psycopg.OperationalError("connection refused")

    with monkeypatch.context() as patched:
        patched.setattr(message_fast_path, "_call", down)
        refused = await visitor_says(visitor, "are you there?", "v-1")
    assert refused["type"] == "error" and refused["code"] == "internal" and refused["ref"] == "v-1", refused

    assert (await visitor_says(visitor, "are you there?", "v-1"))["type"] == "ack"
    assert (await said(conversation_id)) == ["first", "are you there?"]
    await visitor.disconnect()
    await alice.disconnect()


def test_the_message_it_builds_has_every_field_loaded():
    # Built without Model.__init__: a field left unset would be a query on the event loop.
    message = message_fast_path._message(
        (7, 3, 5, 4, "Alice Agent"), role="agent", sender_id=2, visibility="public", body="hi", client_id="a-1",
        created_at=None,
    )
    assert message.get_deferred_fields() == set()
    assert (message.pk, message.conversation_id, message.seq, message.public_seq, message.whisper_to_id) == (7, 3, 5, 4, None)
    assert not message._state.adding
