"""The hot path's database round trips, pinned: every query here is paid once per chat message.

The load benchmark (bench/load.py, docs/benchmarks.md) found the message path bound first by round
trips to the database, then by the server CPU of building its ORM queries, so a change that adds a
query to every message should be a decision, not an accident. On PostgreSQL the path is three fixed
statements (chat/message_store.py): lock (with the access check), resend check (with the visitor's
rate-limit count), and the counters with the insert; elsewhere (SQLite) the ORM's equivalents.
Counted inside the test's transaction, so the pipeline's own transaction shows as a SAVEPOINT and a
RELEASE (in production: BEGIN and COMMIT); broadcasting runs on commit and is not counted.
"""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.utils import timezone

from chat import events, services
from chat.models import AgentProfile, Assignment, Conversation, Message
from tests.factories import ConversationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def active(agent, department):
    now = timezone.now()
    conversation = ConversationFactory(
        department=department, status=Conversation.Status.ACTIVE, agent=agent, assigned_at=now
    )
    Assignment.objects.create(conversation=conversation, agent=agent, offered_at=now, accepted_at=now)
    # The first message also loads the masking policy into the process cache; later ones don't.
    services.post_visitor_message(visitor=conversation.visitor, body="first", client_id="v-0")
    return conversation


def sql_of(ctx) -> list[str]:
    """Each statement as its verbs and tables: "SELECT chat_message", "UPDATE chat_conversation",
    and a data-modifying WITH as its parts: "UPDATE chat_conversation + INSERT chat_message"."""
    out = []
    for query in ctx.captured_queries:
        sql = query["sql"]
        if sql.startswith("WITH"):
            parts = re.findall(r'(UPDATE|INTO) "(\w+)"', sql)
            out.append(" + ".join(f"{'INSERT' if verb == 'INTO' else verb} {table}" for verb, table in parts))
            continue
        # The main table: the first after subqueries in parentheses are taken out.
        while (inner := re.sub(r"\([^()]*\)", "", sql)) != sql:
            sql = inner
        table = re.search(r'(?:FROM|JOIN|INTO|UPDATE) "(\w+)"', sql)
        out.append(sql.split(" ", 1)[0] + (" " + table.group(1) if table else ""))
    return out


def statements(ctx) -> list[str]:
    return [q for q in sql_of(ctx) if not q.startswith(("SAVEPOINT", "RELEASE"))]


POSTGRES = connection.vendor == "postgresql"


def test_a_visitor_message_is_three_statements_on_postgresql(active, django_assert_num_queries):
    # The open chat found and locked in one; under the lock the resend check with the rate limit's
    # count in another; the counters and the insert in a third.
    expected = (
        ["SELECT chat_conversation", "SELECT chat_message", "UPDATE chat_conversation + INSERT chat_message"]
        if POSTGRES
        else [
            "SELECT chat_conversation",
            "SELECT chat_message",  # the resend check
            "SELECT chat_message",  # the rate limit's count
            "UPDATE chat_conversation",
            "INSERT chat_message",
        ]
    )
    with django_assert_num_queries(len(expected) + 2) as ctx:
        services.post_visitor_message(visitor=active.visitor, body="hello", client_id="v-1")
    assert statements(ctx) == expected, sql_of(ctx)


def test_a_resend_over_the_limit_is_acknowledged_without_counting(active, settings, django_assert_num_queries):
    settings.CHAT_VISITOR_MESSAGES_PER_MINUTE = 1  # reached by the fixture's first message
    # One more than a fresh message's check: the stored copy is read whole to be sent again (its
    # first broadcast may never have happened; chat/pipeline.py). Only resends pay it.
    with django_assert_num_queries(5 if POSTGRES else 6):
        again = services.post_visitor_message(visitor=active.visitor, body="first", client_id="v-0")
    assert again.public_seq == 1
    assert Message.objects.count() == 1


def test_an_agent_message_after_the_first_reply_reads_nothing_more(active, agent, django_assert_num_queries):
    services.post_staff_message(user=agent.user, conversation_id=active.pk, body="first", client_id="a-1")
    active.refresh_from_db()
    assert active.first_agent_reply_at is not None
    assert Assignment.objects.get(conversation=active).first_reply_at is not None
    # The lock checks that this agent holds the chat and reads their name and whether their first
    # reply is recorded: no access-check query before it, no name lookup, no first-reply updates.
    expected = (
        ["SELECT chat_conversation", "SELECT chat_message", "UPDATE chat_conversation + INSERT chat_message"]
        if POSTGRES
        else ["SELECT chat_conversation", "SELECT chat_message", "UPDATE chat_conversation", "INSERT chat_message"]
    )
    with django_assert_num_queries(len(expected) + 2) as ctx:
        services.post_staff_message(user=agent.user, conversation_id=active.pk, body="second", client_id="a-2")
    assert statements(ctx) == expected, sql_of(ctx)


def test_the_first_agent_reply_is_recorded_once_per_conversation_and_per_holder(active, agent):
    services.post_staff_message(user=agent.user, conversation_id=active.pk, body="first", client_id="a-1")
    active.refresh_from_db()
    first = active.first_agent_reply_at
    assignment = Assignment.objects.get(conversation=active)
    assert first is not None and assignment.first_reply_at == first
    services.post_staff_message(user=agent.user, conversation_id=active.pk, body="second", client_id="a-2")
    active.refresh_from_db()
    assignment.refresh_from_db()
    assert active.first_agent_reply_at == first and assignment.first_reply_at == first


def test_a_message_goes_out_under_the_agents_current_name(active, agent, django_capture_on_commit_callbacks,
                                                          monkeypatch):
    sent = []
    monkeypatch.setattr(events, "_send", lambda group, event: sent.append(event["frame"]))
    AgentProfile.objects.filter(pk=agent.pk).update(display_name="Alice (renamed)")
    with django_capture_on_commit_callbacks(execute=True):
        services.post_staff_message(user=agent.user, conversation_id=active.pk, body="hi", client_id="a-1")
    assert [f["author"] for f in sent] == ["Alice (renamed)", "Alice (renamed)"]
