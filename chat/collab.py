"""Agents helping each other: @tags in internal notes, helper access, agent-to-agent messages.

A tag in an internal note lets the tagged agent read that open conversation and add internal
notes to it, never write to the visitor. Everything here is staff-only: no frame of this module
is ever sent to a visitor group.
"""

from __future__ import annotations

import re
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from chat import events, frames
from chat.errors import InvalidInput, NotFound
from chat.models import AgentProfile, Conversation, ConversationHelper, DirectMessage, Message
from chat.pipeline import (
    FilterContext,
    Inbound,
    clean_body,
    display_names,
    filter_text,
    run,
    validate_body,
    validate_client_id,
)

# "@bob" or "@bob.smith": a username as Django allows it, minus the characters that end a word.
_MENTION = re.compile(r"(?<![\w@])@([\w.+-]+)")

DM_HISTORY = 100


def mentioned_agents(*, body: str, exclude_user_id: int | None) -> list[AgentProfile]:
    names = sorted({m.rstrip(".").lower() for m in _MENTION.findall(body)})[:20]
    if not names:
        return []
    match = Q()
    for name in names:
        match |= Q(user__username__iexact=name)
    return list(
        AgentProfile.objects.select_related("user")
        .filter(match, user__is_active=True)
        .exclude(user_id=exclude_user_id)
        .order_by("pk")
    )


def on_message_persisted(message: Message) -> None:
    """Pipeline hook (inside the message's transaction): an internal note's @tags grant access."""
    if message.visibility != Message.Visibility.INTERNAL or message.sender_id is None:
        return
    tagged = mentioned_agents(body=message.body, exclude_user_id=message.sender_id)
    if not tagged:
        return
    from compliance import audit

    conversation = Conversation.objects.select_related("visitor", "department").get(
        pk=message.conversation_id
    )
    author = display_names([message.sender_id]).get(message.sender_id)
    now = timezone.now()
    for agent in tagged:
        _, created = ConversationHelper.objects.get_or_create(
            conversation=conversation,
            agent=agent,
            defaults={"invited_by_id": message.sender_id, "created_at": now},
        )
        if created:
            audit.record(
                action="chat.helper_invited",
                actor=message.sender,
                target=f"conversation:{conversation.pk}",
                details={"helper_user_id": agent.user_id, "note_seq": message.seq},
            )
        events.send_event_on_commit(
            events.agent_group(agent.user_id),
            {
                "type": "mention",
                "conversation_id": conversation.pk,
                "seq": message.seq,
                "by": author,
                "body": message.body,
                "visitor_name": conversation.visitor.name,
                "department": {
                    "id": conversation.department_id,
                    "name": conversation.department.name,
                },
            },
        )


# --- helper access ------------------------------------------------------------------------


def get_conversation_for_helper(*, user: AbstractBaseUser, conversation_id: object) -> Conversation:
    """An open conversation the user was tagged in; anything else looks like "not found"."""
    if not isinstance(conversation_id, int) or isinstance(conversation_id, bool):
        raise NotFound()
    conversation = (
        Conversation.objects.filter(
            pk=conversation_id, status__in=Conversation.OPEN_STATUSES, helpers__agent__user=user
        )
        .select_related("department", "agent", "visitor")
        .first()
    )
    if conversation is None:
        raise NotFound()
    return conversation


def helper_history(
    *, user: AbstractBaseUser, conversation_id: object, after_seq: int
) -> dict[str, Any]:
    from chat.selectors import staff_messages_after

    conversation = get_conversation_for_helper(user=user, conversation_id=conversation_id)
    messages = staff_messages_after(conversation=conversation, user=user, after_seq=after_seq)
    names = display_names([m.sender_id for m in messages if m.sender_id])
    return {
        "type": "history",
        "conversation_id": conversation.pk,
        "helping": True,
        "conversation": frames.staff_conversation_frame(conversation),
        "messages": [
            frames.staff_message_frame(m, author=names.get(m.sender_id)) for m in messages
        ],
        "last_seq": conversation.last_seq,
    }


def post_helper_note(
    *, user: AbstractBaseUser, conversation_id: object, body: Any, client_id: Any, visibility: Any
) -> Message:
    if visibility != Message.Visibility.INTERNAL:
        raise InvalidInput(
            "You are helping in this chat: only internal notes.", code="internal_only"
        )
    conversation = get_conversation_for_helper(user=user, conversation_id=conversation_id)
    message, _ = run(
        Inbound(
            conversation_id=conversation.pk,
            role=Message.Role.AGENT,
            sender_id=user.pk,
            body=body,
            client_id=client_id,
            visibility=Message.Visibility.INTERNAL,
        )
    )
    return message


# --- direct messages ----------------------------------------------------------------------


def dm_frame(dm: DirectMessage) -> dict[str, Any]:
    return {
        "type": "dm",
        "id": dm.pk,
        "from": dm.sender.user_id,
        "to": dm.recipient.user_id,
        "author": dm.sender.display_name,
        "body": dm.body,
        "client_id": dm.client_id,
        "created_at": dm.created_at.isoformat(),
    }


def _recipient(*, sender: AgentProfile, to: Any) -> AgentProfile:
    if not isinstance(to, int) or isinstance(to, bool):
        raise InvalidInput("to must be a user id.", code="invalid_field")
    recipient = (
        AgentProfile.objects.select_related("user").filter(user_id=to, user__is_active=True).first()
    )
    if recipient is None or recipient.pk == sender.pk:
        raise InvalidInput("No such agent.", code="unknown_agent")
    return recipient


def send_direct_message(
    *, sender: AgentProfile, to: Any, body: Any, client_id: Any
) -> DirectMessage:
    recipient = _recipient(sender=sender, to=to)
    text = clean_body(validate_body(body))
    if not text:
        raise InvalidInput("The message is empty.", code="empty")
    client_id = validate_client_id(client_id)
    text = filter_text(
        text, FilterContext(conversation_id=None, department_id=None, role="agent", field="dm")
    )
    if client_id is not None:
        existing = (
            DirectMessage.objects.filter(sender=sender, client_id=client_id)
            .select_related("sender", "recipient")
            .first()
        )
        if existing is not None:
            return existing
    try:
        with transaction.atomic():
            dm = DirectMessage.objects.create(
                sender=sender,
                recipient=recipient,
                body=text,
                client_id=client_id,
                created_at=timezone.now(),
            )
            frame = dm_frame(dm)
            for user_id in {sender.user_id, recipient.user_id}:
                events.send_event_on_commit(events.agent_group(user_id), frame)
    except IntegrityError:
        # The same client_id raced in from another tab: the first copy stands.
        return DirectMessage.objects.select_related("sender", "recipient").get(
            sender=sender, client_id=client_id
        )
    return dm


def direct_messages_with(*, agent: AgentProfile, other: Any) -> dict[str, Any]:
    peer = _recipient(sender=agent, to=other)
    pair = DirectMessage.objects.filter(
        sender=agent, recipient=peer
    ) | DirectMessage.objects.filter(sender=peer, recipient=agent)
    latest = list(
        pair.select_related("sender", "recipient").order_by("-created_at", "-pk")[:DM_HISTORY]
    )
    return {
        "type": "dm_history",
        "with": peer.user_id,
        "messages": [dm_frame(dm) for dm in reversed(latest)],
    }
