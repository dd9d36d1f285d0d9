"""A message in a long chat costs the database what one in a short chat does.

Every message is counted against the visitor's per-minute limit under the chat's lock, on both
paths (chat.message_store.find_resend, and chat_post_message for the one-round-trip path). That
count once read every message the chat had ever had: the load benchmark's PostgreSQL CPU doubled
within 100 s at a steady rate as its chats grew (docs/benchmarks.md). Measured here as what
PostgreSQL itself reports: the chat_message rows the transaction read to store one message.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from chat import message_fast_path, services
from chat.models import Conversation, Message
from chat.ratelimit import RateLimited
from tests.factories import ConversationFactory

pytestmark = [pytest.mark.realmode, pytest.mark.django_db]

EARLIER_MESSAGES = 3000


@pytest.fixture
def long_chat(agent, department):
    """An active chat with 3,000 messages from two hours ago and two of the visitor's just now."""
    now = timezone.now()
    conversation = ConversationFactory(
        department=department, status=Conversation.Status.ACTIVE, agent=agent, assigned_at=now
    )
    earlier = now - timedelta(hours=2)
    Message.objects.bulk_create(
        Message(
            conversation=conversation,
            seq=seq,
            public_seq=seq,
            role=Message.Role.VISITOR if seq % 2 else Message.Role.AGENT,
            body=f"earlier {seq}",
            created_at=earlier + timedelta(seconds=seq),
        )
        for seq in range(1, EARLIER_MESSAGES + 1)
    )
    Conversation.objects.filter(pk=conversation.pk).update(
        last_seq=EARLIER_MESSAGES, last_public_seq=EARLIER_MESSAGES
    )
    conversation.refresh_from_db()
    services.post_visitor_message(visitor=conversation.visitor, body="just now", client_id="recent-1")
    services.post_visitor_message(visitor=conversation.visitor, body="and again", client_id="recent-2")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE chat_message")  # the planner sees a table of this size, as in production
    return conversation


def rows_read() -> int:
    """chat_message rows this transaction has read so far, by sequential or index scans."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) "
            "FROM pg_stat_xact_user_tables WHERE relname = 'chat_message'"
        )
        return cursor.fetchone()[0]


def test_a_message_in_a_long_chat_reads_only_the_last_minute(long_chat, settings):
    assert settings.CHAT_VISITOR_MESSAGES_PER_MINUTE > 0  # the count this is about runs
    before = rows_read()
    message = services.post_visitor_message(visitor=long_chat.visitor, body="third", client_id="recent-3")
    read = rows_read() - before

    assert message.seq == EARLIER_MESSAGES + 3
    assert read <= 10, f"storing one message read {read} earlier messages of the chat"


def test_the_one_round_trip_path_reads_only_the_last_minute_too(long_chat, settings):
    before = rows_read()
    with connection.cursor() as cursor:
        cursor.execute(
            message_fast_path._VISITOR_CALL,
            [
                long_chat.visitor_id,
                long_chat.department_id,
                "third",
                "recent-3",
                timezone.now(),
                settings.CHAT_VISITOR_MESSAGES_PER_MINUTE,
            ],
        )
        stored = cursor.fetchone()
    read = rows_read() - before

    assert stored is not None and stored[2] == EARLIER_MESSAGES + 3  # the function stored it (seq)
    assert read <= 10, f"chat_post_message read {read} earlier messages of the chat"


def test_the_limit_still_counts_the_last_minute_of_a_long_chat(long_chat, settings):
    settings.CHAT_VISITOR_MESSAGES_PER_MINUTE = 3
    services.post_visitor_message(visitor=long_chat.visitor, body="third", client_id="recent-3")
    with pytest.raises(RateLimited) as refused:
        services.post_visitor_message(visitor=long_chat.visitor, body="fourth", client_id="recent-4")
    assert refused.value.code == "rate_limited"
    assert not Message.objects.filter(conversation=long_chat, client_id="recent-4").exists()


def test_chat_rows_leave_room_for_their_new_versions():
    """Each message rewrites its chat's row; half of every new page stays free for the versions
    (chat/migrations/0010), so PostgreSQL can keep them beside the row and prune them."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'chat_conversation'")
        (options,) = cursor.fetchone()
    assert "fillfactor=50" in (options or [])
