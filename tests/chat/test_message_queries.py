"""The hot path's database round trips, pinned: every query here is paid once per chat message.

The load benchmark (bench/load.py, docs/benchmarks.md) found the message path bound by round trips
to the database, so a change that adds one to every message should be a decision, not an accident.
Counted inside the test's transaction, so the pipeline's own transaction shows as a SAVEPOINT and a
RELEASE (in production: BEGIN and COMMIT); broadcasting runs on commit and is not counted.
"""

from __future__ import annotations

import re

import pytest
from django.utils import timezone

from chat import services
from chat.models import Assignment, Conversation, Message
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
    """Each query as its verb and first table: "SELECT chat_message", "UPDATE chat_conversation"."""
    out = []
    for query in ctx.captured_queries:
        table = re.search(r'(?:FROM|INTO|UPDATE) "(\w+)"', query["sql"])
        out.append(query["sql"].split(" ", 1)[0] + (" " + table.group(1) if table else ""))
    return out


def test_a_visitor_message_is_six_queries(active, django_assert_num_queries):
    # Find the open chat; then under its row lock: the resend check, the rate-limit count, the
    # counters, the insert. No second resend check before the lock, no join in the lock.
    with django_assert_num_queries(8) as ctx:
        services.post_visitor_message(visitor=active.visitor, body="hello", client_id="v-1")
    assert [q for q in sql_of(ctx) if not q.startswith(("SAVEPOINT", "RELEASE"))] == [
        "SELECT chat_conversation",
        "SELECT chat_conversation",
        "SELECT chat_message",  # the resend check
        "SELECT chat_message",  # the rate limit's count
        "UPDATE chat_conversation",
        "INSERT chat_message",
    ], sql_of(ctx)


def test_a_resend_over_the_limit_is_acknowledged_without_counting(active, settings, django_assert_num_queries):
    settings.CHAT_VISITOR_MESSAGES_PER_MINUTE = 1  # reached by the fixture's first message
    with django_assert_num_queries(5):
        again = services.post_visitor_message(visitor=active.visitor, body="first", client_id="v-0")
    assert again.public_seq == 1
    assert Message.objects.count() == 1


def test_an_agent_message_after_the_first_reply_does_not_update_the_conversation_again(
    active, agent, django_assert_num_queries
):
    services.post_staff_message(user=agent.user, conversation_id=active.pk, body="first", client_id="a-1")
    active.refresh_from_db()
    assert active.first_agent_reply_at is not None
    with django_assert_num_queries(9) as ctx:
        services.post_staff_message(user=agent.user, conversation_id=active.pk, body="second", client_id="a-2")
    assert sql_of(ctx).count("UPDATE chat_conversation") == 1  # the counters only
    assert sql_of(ctx)[-1] == "UPDATE chat_assignment"  # per holder: a transfer starts a new one
