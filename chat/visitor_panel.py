"""What the agent sees about the visitor of a chat: details, earlier chats and tickets, the CRM."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q
from django.urls import reverse

from chat import crm, readback
from chat.errors import NotFound
from chat.models import Conversation, Message, Ticket
from chat.selectors import get_conversation_for_staff

PREVIOUS_LIMIT = 20


def _current(*, user: AbstractBaseUser, conversation_id: Any) -> Conversation:
    try:
        return get_conversation_for_staff(user=user, conversation_id=conversation_id)
    except NotFound:
        from chat.collab import get_conversation_for_helper

        return get_conversation_for_helper(user=user, conversation_id=conversation_id)


def same_visitor(conversation: Conversation) -> Q:
    """The same visitor token, or the same e-mail address given on another visit."""
    match = Q(visitor_id=conversation.visitor_id)
    if conversation.visitor.email:
        match |= Q(visitor__email__iexact=conversation.visitor.email)
    return match


def panel_frame(*, user: AbstractBaseUser, conversation_id: Any) -> dict[str, Any]:
    conversation = _current(user=user, conversation_id=conversation_id)
    visitor = conversation.visitor
    previous = (
        Conversation.objects.filter(same_visitor(conversation))
        .exclude(pk=conversation.pk)
        .select_related("department")
        .order_by("-created_at")[:PREVIOUS_LIMIT]
    )
    ticket_match = Q(visitor_id=visitor.pk)
    if visitor.email:
        ticket_match |= Q(email__iexact=visitor.email)
    tickets = Ticket.objects.filter(ticket_match).order_by("-created_at")[:PREVIOUS_LIMIT]
    return {
        "type": "visitor",
        "conversation_id": conversation.pk,
        "visitor": {
            "name": visitor.name,
            "email": visitor.email,
            "page_url": visitor.page_url,
            "referrer": visitor.referrer,
        },
        "previous": [
            {
                "conversation_id": c.pk,
                "created_at": c.created_at.isoformat(),
                "status": c.status,
                "department": c.department.name,
                "subject": readback.text(c.subject, department_id=c.department_id),
                "transcript_url": reverse("agent_transcript", args=[c.pk]),
            }
            for c in previous
        ],
        "tickets": [
            {
                "ticket_id": t.pk,
                "subject": readback.text(t.subject, department_id=t.department_id),
                "status": t.status,
                "created_at": t.created_at.isoformat(),
                "transcript_url": reverse("agent_transcript", args=[t.conversation_id])
                if t.conversation_id
                else None,
            }
            for t in tickets
        ],
        "crm": crm.lookup(email=visitor.email, name=visitor.name),
    }


def get_transcript_for(
    *, user: AbstractBaseUser, conversation_id: int
) -> tuple[Conversation, list[Message]]:
    """A past or current transcript for staff: superusers, agents of its department, anyone who
    held it or was tagged in it. Whispers only to their sender and recipient. Read back from
    storage, so masked with the archive rules."""
    qs = Conversation.objects.filter(pk=conversation_id).select_related(
        "department", "visitor", "agent"
    )
    if not getattr(user, "is_superuser", False):
        qs = qs.filter(
            Q(department__agents__user=user)
            | Q(assignments__agent__user=user)
            | Q(helpers__agent__user=user)
        ).distinct()
    conversation = qs.first()
    if conversation is None:
        raise NotFound()
    visible = (
        Q(visibility__in=[Message.Visibility.PUBLIC, Message.Visibility.INTERNAL])
        | Q(whisper_to=user)
        | Q(sender=user)
    )
    messages = conversation.messages.filter(visible).order_by("seq")
    return readback.conversation(conversation), readback.messages(
        messages, department_id=conversation.department_id
    )
