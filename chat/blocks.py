"""Blocking a visitor (spam, abuse) from the workspace: by its browser token or by its IP address.

A blocked visitor gets the offline form, never a chat: `start` is refused with `blocked`, and the
`welcome` frame says `blocked: true` so the widget shows the offline form straight away. Offline
messages still become tickets, so a wrongly blocked person can still reach someone.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from chat.errors import ChatError, InvalidInput
from chat.models import Conversation, Visitor, VisitorBlock

MAX_REASON_CHARS = 300
BLOCKED_MESSAGE = "Chat is not available to you right now. You can leave us a message instead."


def is_blocked(*, visitor: Visitor, ip_address: str | None = None) -> bool:
    match = Q(kind=VisitorBlock.Kind.TOKEN, visitor_id=visitor.pk)
    for address in {ip_address, visitor.ip_address} - {None, ""}:
        match |= Q(kind=VisitorBlock.Kind.IP, ip_address=address)
    return VisitorBlock.objects.filter(match, enabled=True).exists()


def check_not_blocked(*, visitor: Visitor, ip_address: str | None = None) -> None:
    if is_blocked(visitor=visitor, ip_address=ip_address):
        raise ChatError(BLOCKED_MESSAGE, code="blocked")


def block_from_chat(*, user: Any, conversation_id: Any, by: Any, reason: Any = "") -> VisitorBlock:
    """The agent holding the chat (or who held it last, once it ended) blocks its visitor.

    An open chat is ended and its disposition set to spam (unless one was already chosen).
    """
    from chat import dispositions, services
    from compliance import audit

    if by not in VisitorBlock.Kind.values:
        raise InvalidInput('by must be "token" or "ip".', code="invalid_field")
    if reason is None:
        reason = ""
    if not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS:
        raise InvalidInput(f"reason must be text of at most {MAX_REASON_CHARS} characters.", code="invalid_field")
    conversation = dispositions.conversation_for_closing(user=user, conversation_id=conversation_id, open_too=True)
    visitor = conversation.visitor
    if by == VisitorBlock.Kind.IP and not visitor.ip_address:
        raise ChatError("This visitor's IP address is not known; block the visitor instead.", code="no_ip")
    with transaction.atomic():
        block = VisitorBlock.objects.create(
            kind=by,
            visitor=visitor if by == VisitorBlock.Kind.TOKEN else None,
            ip_address=visitor.ip_address if by == VisitorBlock.Kind.IP else None,
            reason=reason.strip(),
            conversation=conversation,
            department=conversation.department,
            created_by=user,
            created_at=timezone.now(),
        )
        audit.record(
            action="chat.visitor_blocked",
            actor=user,
            role=audit.role_of(user),
            target=f"conversation:{conversation.pk}",
            details={"by": by, "block_id": block.pk, "visitor_id": visitor.pk,
                     **({"ip_address": block.ip_address} if block.ip_address else {})},
        )
    if conversation.status == Conversation.Status.ACTIVE:
        services.end_by_staff(user=user, conversation_id=conversation.pk)
    elif conversation.is_open:
        # Still ringing (offered): ended as missed; nobody chatted.
        services.end_conversation(conversation_id=conversation.pk, ended_by=Conversation.EndedBy.AGENT)
    conversation.refresh_from_db()
    if not conversation.disposition and conversation.status == Conversation.Status.ENDED:
        dispositions.close(user=user, conversation_id=conversation.pk, disposition=Conversation.Disposition.SPAM)
    return block
