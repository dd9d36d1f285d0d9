"""Closing an ended chat with a disposition: resolved, follow-up ticket, or spam.

The agent who held the chat last chooses it in the workspace once the chat has ended (or sends
it with `end`). "Follow-up ticket" opens the chat's follow-up ticket (chat/tickets.py) in the same
step. Choosing again replaces the earlier choice. Every tab of the agent is told (`closed`).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from chat import events
from chat.errors import Conflict, InvalidInput, NotFound
from chat.models import Conversation, Ticket


def validate(disposition: Any) -> str:
    if disposition not in Conversation.Disposition.values:
        raise InvalidInput(
            "disposition must be one of " + ", ".join(Conversation.Disposition.values) + ".",
            code="invalid_field",
        )
    return disposition


def conversation_for_closing(*, user: Any, conversation_id: Any, open_too: bool = False) -> Conversation:
    """The chat if `user` holds it or held it last (superusers: any); else not_found."""
    if not isinstance(conversation_id, int) or isinstance(conversation_id, bool):
        raise NotFound()
    qs = Conversation.objects.filter(pk=conversation_id).select_related("visitor", "department", "agent")
    if not getattr(user, "is_superuser", False):
        qs = qs.filter(agent__user=user)
    conversation = qs.first()
    if conversation is None:
        raise NotFound()
    if conversation.is_open and not open_too:
        raise Conflict("End the chat first; then choose how it closed.", code="not_ended")
    return conversation


def close(*, user: Any, conversation_id: Any, disposition: Any, source_ip: str | None = None) -> tuple[Conversation, Ticket | None]:
    disposition = validate(disposition)
    conversation = conversation_for_closing(user=user, conversation_id=conversation_id)
    if conversation.status != Conversation.Status.ENDED:
        # Missed or abandoned: nobody chatted, there is nothing to dispose of.
        raise Conflict("Only a chat that an agent accepted takes a disposition.", code="not_ended")
    ticket = None
    with transaction.atomic():
        if disposition == Conversation.Disposition.FOLLOW_UP:
            from chat import tickets

            ticket = tickets.create_ticket_from_chat(
                user=user, conversation_id=conversation.pk, source_ip=source_ip
            )
        Conversation.objects.filter(pk=conversation.pk).update(
            disposition=disposition, disposition_at=timezone.now(), disposition_by=user
        )
        events.send_event_on_commit(
            events.agent_group(user.pk),
            {
                "type": "closed",
                "conversation_id": conversation.pk,
                "disposition": disposition,
                "ticket_id": ticket.pk if ticket else None,
                "ticket_url": f"/tickets/{ticket.pk}/" if ticket else None,
            },
        )
    conversation.refresh_from_db()
    return conversation, ticket
