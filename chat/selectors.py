"""Reads with the access check built in: "not yours" and "does not exist" look the same."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q
from django.utils import timezone

from chat.errors import NotFound
from chat.models import AgentProfile, Conversation, Message, Visitor, hash_token


def get_visitor_by_token(*, token: object) -> Visitor | None:
    if not isinstance(token, str) or not (20 <= len(token) <= 100):
        return None
    return Visitor.objects.filter(token_hash=hash_token(token)).first()


def get_agent_profile(*, user: AbstractBaseUser | AnonymousUser) -> AgentProfile | None:
    if not user.is_authenticated or not user.is_active:
        return None
    return AgentProfile.objects.filter(user=user).first()


def open_conversation_for_visitor(*, visitor: Visitor) -> Conversation | None:
    return (
        Conversation.objects.filter(visitor=visitor, status__in=Conversation.OPEN_STATUSES)
        .select_related("department", "agent")
        .order_by("-created_at")
        .first()
    )


def latest_conversation_for_visitor(*, visitor: Visitor) -> Conversation | None:
    return (
        Conversation.objects.filter(visitor=visitor)
        .select_related("department", "agent")
        .order_by("-created_at", "-pk")
        .first()
    )


def find_conversation_for_visitor(*, visitor: Visitor, conversation_id: int) -> Conversation | None:
    """One of this visitor's chats, open or not; None for another visitor's or a missing one."""
    return (
        Conversation.objects.filter(pk=conversation_id, visitor=visitor)
        .select_related("department", "agent")
        .first()
    )


def get_conversation_for_visitor(*, visitor: Visitor, conversation_id: object) -> Conversation:
    if not isinstance(conversation_id, int) or isinstance(conversation_id, bool):
        raise NotFound()
    conversation = (
        Conversation.objects.filter(pk=conversation_id, visitor=visitor).select_related("department", "agent").first()
    )
    if conversation is None:
        raise NotFound()
    return conversation


def get_conversation_for_staff(
    *, user: AbstractBaseUser, conversation_id: object, awaiting_close_too: bool = False
) -> Conversation:
    """The agent currently holding it (offered or active) or a superuser; everyone else: not found.

    `awaiting_close_too` (reading history only) also lets the agent who held a chat last read it
    while it waits for the disposition (see awaiting_close)."""
    if not isinstance(conversation_id, int) or isinstance(conversation_id, bool):
        raise NotFound()
    qs = Conversation.objects.filter(pk=conversation_id).select_related("department", "agent", "visitor")
    if not getattr(user, "is_superuser", False):
        held = Q(status__in=Conversation.HELD_STATUSES)
        if awaiting_close_too:
            held |= _awaiting_close_q()
        qs = qs.filter(held, agent__user=user)
    conversation = qs.first()
    if conversation is None:
        raise NotFound()
    return conversation


def held_conversations(*, agent: AgentProfile) -> list[Conversation]:
    return list(
        Conversation.objects.filter(agent=agent, status__in=Conversation.HELD_STATUSES)
        .select_related("department", "agent", "visitor")
        .order_by("created_at")
    )


# How long an ended chat without a disposition stays in its agent's workspace (across reloads and
# reconnects) to be closed; after that it is only in the transcripts list.
AWAITING_CLOSE_HOURS = 12


def _awaiting_close_q() -> Q:
    since = timezone.now() - timedelta(hours=AWAITING_CLOSE_HOURS)
    return Q(status=Conversation.Status.ENDED, disposition="", ended_at__gte=since)


def awaiting_close(*, agent: AgentProfile) -> list[Conversation]:
    """Chats this agent ended (or held when they ended) that still wait for a disposition."""
    return list(
        Conversation.objects.filter(_awaiting_close_q(), agent=agent)
        .select_related("department", "agent", "visitor")
        .order_by("ended_at")
    )


def awaiting_close_of(*, agent_ids: list[int]) -> list[Conversation]:
    """awaiting_close for several agents at once (chat/resync.py), each agent's in the same order."""
    return list(
        Conversation.objects.filter(_awaiting_close_q(), agent_id__in=agent_ids)
        .select_related("department", "agent", "visitor")
        .order_by("ended_at")
    )


# Messages per history frame; a longer history goes out as several frames (see consumers).
HISTORY_PAGE = 500


def visitor_messages_after(
    *, conversation: Conversation, after_seq: int, limit: int = HISTORY_PAGE
) -> list[Message]:
    """Public messages only: the visitor's view of a transcript never contains anything else."""
    return list(
        Message.objects.filter(
            conversation=conversation, public_seq__gt=after_seq, visibility=Message.Visibility.PUBLIC
        ).order_by("public_seq")[:limit]
    )


def staff_visible(*, user_id: int) -> Q:
    """What one staff member sees of a chat: everything but the whispers between others."""
    return Q(visibility__in=[Message.Visibility.PUBLIC, Message.Visibility.INTERNAL]) | Q(
        visibility=Message.Visibility.WHISPER, whisper_to_id=user_id
    ) | Q(visibility=Message.Visibility.WHISPER, sender_id=user_id)


def staff_messages_after(
    *, conversation: Conversation, user: AbstractBaseUser, after_seq: int, limit: int = HISTORY_PAGE
) -> list[Message]:
    return list(
        Message.objects.filter(conversation=conversation, seq__gt=after_seq)
        .filter(staff_visible(user_id=user.pk)).order_by("seq")[:limit]
    )
