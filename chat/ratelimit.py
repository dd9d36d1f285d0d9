"""Per-visitor rate limits on messages and new conversations (content safety, issue 6).

Counted in the database, not in a process-local cache: every daphne process sees the same
counts, and the message count is taken under the conversation's row lock (in the pipeline, with
the resend check), so bursts from several sockets of one visitor are counted together.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from chat.errors import ChatError
from chat.models import Conversation, Message


class RateLimited(ChatError):
    code = "rate_limited"


def check_visitor_message(*, conversation_id: int, now: datetime | None = None) -> None:
    limit = settings.CHAT_VISITOR_MESSAGES_PER_MINUTE
    if not limit:
        return
    since = (now or timezone.now()) - timedelta(minutes=1)
    sent = Message.objects.filter(
        conversation_id=conversation_id, role=Message.Role.VISITOR, created_at__gte=since
    ).count()
    if sent >= limit:
        raise too_many_messages(limit)


def too_many_messages(limit: int) -> RateLimited:
    """The refusal of a message over the per-minute limit (the pipeline counts chat messages with
    its resend check, chat.pipeline.Inbound.limit_per_minute; attachments with the function above)."""
    return RateLimited(
        f"You are sending messages too fast (at most {limit} a minute). Wait a moment and send it again."
    )


def check_visitor_start(*, visitor_id: int, now: datetime | None = None) -> None:
    limit = settings.CHAT_VISITOR_CONVERSATIONS_PER_HOUR
    if not limit:
        return
    since = (now or timezone.now()) - timedelta(hours=1)
    started = Conversation.objects.filter(visitor_id=visitor_id, created_at__gte=since).count()
    if started >= limit:
        raise RateLimited(
            f"You have started too many chats (at most {limit} an hour). Try again later."
        )
