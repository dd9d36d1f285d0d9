"""State changes of visitors and conversations: sessions, starting, messages, ending, the sweeper."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, URLValidator
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from chat import assignment, events, frames, hooks, message_store, ratelimit
from chat.errors import Conflict, InvalidInput, NotFound
from chat.models import (
    AgentProfile,
    Assignment,
    Conversation,
    Department,
    Message,
    Visitor,
    hash_token,
)
from chat.pipeline import FilterContext, Inbound, clean_body, filter_text, run
from chat.selectors import get_conversation_for_staff, open_conversation_for_visitor


def _short_text(value: Any, *, field: str, limit: int, ctx: FilterContext | None = None) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be text.", code="invalid_field")
    if len(value) > limit:
        raise InvalidInput(f"{field} is longer than {limit} characters.", code="invalid_field")
    text = clean_body(value)
    return filter_text(text, ctx) if ctx is not None and text else text


def _url(value: Any, *, field: str) -> str:
    if not value:
        return ""
    # isprintable: URLValidator lets NUL and other control characters through in the path, and
    # PostgreSQL refuses NUL in text, which would turn a hello into an internal error.
    if not isinstance(value, str) or len(value) > 2000 or not value.isprintable():
        return ""
    try:
        URLValidator(schemes=["http", "https"])(value)
    except ValidationError:
        return ""  # page URL and referrer are informational; a bad one is dropped, not an error
    # Masked like anything else a visitor sends: a shop whose payment form submits by GET puts
    # the card number in the address the widget reports, and agents see that address.
    return filter_text(value, FilterContext(conversation_id=None, department_id=None, role="visitor", field=field))


def create_visitor(
    *, page_url: Any = "", referrer: Any = "", user_agent: str = "", ip_address: str | None = None
) -> tuple[Visitor, str]:
    """A new visitor with a server-issued token; only the token's hash is stored."""
    token = secrets.token_urlsafe(32)
    visitor = Visitor.objects.create(
        token_hash=hash_token(token),
        page_url=_url(page_url, field="page_url"),
        referrer=_url(referrer, field="referrer"),
        user_agent=filter_text(
            "".join(ch for ch in (user_agent or "") if ch.isprintable())[:500],
            FilterContext(conversation_id=None, department_id=None, role="visitor", field="user_agent"),
        ),
        ip_address=ip_address,
        last_seen_at=timezone.now(),
    )
    return visitor, token


def touch_visitor(*, visitor_id: int, page_url: Any = None, ip_address: str | None = None) -> None:
    fields: dict[str, Any] = {"last_seen_at": timezone.now()}
    url = _url(page_url, field="page_url") if page_url else ""
    if url:
        fields["page_url"] = url
    if ip_address:
        fields["ip_address"] = ip_address  # the latest address: what a block "by IP" blocks
    Visitor.objects.filter(pk=visitor_id).update(**fields)


def touch_agent(*, agent_id: int) -> None:
    AgentProfile.objects.filter(pk=agent_id).update(last_seen_at=timezone.now())


def start_conversation(
    *,
    visitor: Visitor,
    department_slug: Any,
    name: Any = None,
    email: Any = None,
    message: Any = None,
    client_id: Any = None,
) -> Conversation:
    if not isinstance(department_slug, str) or not department_slug:
        raise InvalidInput("Choose a department.", code="invalid_field")
    department = Department.objects.filter(slug=department_slug).first()
    if department is None:
        raise InvalidInput("No such department.", code="unknown_department")
    ctx = FilterContext(conversation_id=None, department_id=department.pk, role="visitor", field="prechat")
    name_text = _short_text(name, field="name", limit=100, ctx=ctx)
    email_text = _short_text(email, field="email", limit=254)
    if email_text:
        try:
            EmailValidator()(email_text)
        except ValidationError as exc:
            raise InvalidInput("That e-mail address does not look valid.", code="invalid_field") from exc
    if message is not None:
        # Validate before anything is created so a refused first message leaves no empty chat.
        from chat.pipeline import validate_body

        validate_body(message)
    with transaction.atomic():
        locked = Visitor.objects.select_for_update().get(pk=visitor.pk)
        if open_conversation_for_visitor(visitor=locked) is not None:
            raise Conflict("You already have an open chat.", code="already_open")
        ratelimit.check_visitor_start(visitor_id=locked.pk)
        update = []
        if name_text:
            locked.name = name_text
            update.append("name")
        if email_text:
            locked.email = email_text
            update.append("email")
        if update:
            locked.save(update_fields=update)
        now = timezone.now()
        subject = ""
        if isinstance(message, str):
            subject = filter_text(clean_body(message)[:200], ctx)
        conversation = Conversation.objects.create(
            visitor=locked,
            department=department,
            status=Conversation.Status.QUEUED,
            created_at=now,
            queued_at=now,
            queue_order_at=now,
            subject=subject,
        )
        if message is not None:
            run(Inbound(conversation_id=conversation.pk, role=Message.Role.VISITOR, body=message, client_id=client_id))
        events.send_event_on_commit(
            events.visitor_private_group(locked.pk), {"type": "started", "conversation_id": conversation.pk}
        )
        events.send_live_change_on_commit(conversation.pk, department.pk)
    assignment.dispatch(department_id=department.pk)
    conversation.refresh_from_db()
    return conversation


def post_visitor_message(*, visitor: Visitor, body: Any, client_id: Any) -> Message:
    message, _ = run(
        Inbound(
            lock=lambda: _lock_open_chat(visitor),
            role=Message.Role.VISITOR,
            body=body,
            client_id=client_id,
            limit_per_minute=settings.CHAT_VISITOR_MESSAGES_PER_MINUTE,
        )
    )
    return message


def _lock_open_chat(visitor: Visitor) -> Conversation:
    # Found and locked in one statement (the hot path; docs/benchmarks.md).
    conversation = message_store.lock_open_for_visitor(visitor_id=visitor.pk)
    if conversation is None:
        raise NotFound("You have no open chat; start one first.")
    return conversation


def post_staff_message(
    *,
    user: Any,
    conversation_id: Any,
    body: Any,
    client_id: Any,
    visibility: Any = Message.Visibility.PUBLIC,
    canned_id: Any = None,
) -> Message:
    if visibility not in (Message.Visibility.PUBLIC, Message.Visibility.INTERNAL):
        raise InvalidInput("visibility must be public or internal.", code="invalid_field")
    role = Message.Role.AGENT if hasattr(user, "agent") else Message.Role.SUPERVISOR
    meta: dict[str, Any] = {}
    if canned_id is not None:
        from chat.canned import use_meta

        conversation = _require_active(get_conversation_for_staff(user=user, conversation_id=conversation_id))
        meta = use_meta(agent=getattr(user, "agent", None), conversation=conversation, canned_id=canned_id, body=body)
    message, created = run(
        Inbound(
            lock=lambda: _lock_for_staff_message(user, conversation_id),
            role=role,
            sender_id=user.pk,
            body=body,
            client_id=client_id,
            visibility=visibility,
            meta=meta,
        )
    )
    if created and visibility == Message.Visibility.PUBLIC:
        held = message.conversation
        record_first_reply(conversation=held, at=message.created_at, holder_replied=getattr(held, "holder_replied", False))
    return message


def _lock_for_staff_message(user: Any, conversation_id: Any) -> Conversation:
    """The chat `user` may write in, locked: one they hold (any, for a superuser), accepted.

    The same access check as selectors.get_conversation_for_staff, in the locking statement."""
    if not isinstance(conversation_id, int) or isinstance(conversation_id, bool):
        raise NotFound()
    if getattr(user, "is_superuser", False):
        conversation = message_store.lock(get_conversation_for_staff(user=user, conversation_id=conversation_id).pk)
    else:
        found = message_store.lock_held(user_id=user.pk, conversation_id=conversation_id)
        if found is None:
            raise NotFound()
        conversation = found
    return _require_active(conversation)


def _require_active(conversation: Conversation) -> Conversation:
    if conversation.status != Conversation.Status.ACTIVE:
        raise Conflict("Accept the chat before writing in it.", code="not_active")
    return conversation


def record_first_reply(*, conversation: Conversation, at: datetime, holder_replied: bool = False) -> None:
    # Conditional updates: only the first public agent message sets these, whatever races. Once
    # set (as read with the lock), they never change again: no round trip for them. The
    # conversation's is set once; the assignment's per holder (a transfer starts a new one).
    if conversation.first_agent_reply_at is None:
        Conversation.objects.filter(pk=conversation.pk, first_agent_reply_at__isnull=True).update(
            first_agent_reply_at=at
        )
    if not holder_replied:
        Assignment.objects.filter(
            conversation_id=conversation.pk, ended_at__isnull=True, accepted_at__isnull=False,
            first_reply_at__isnull=True,
        ).update(first_reply_at=at)


def end_conversation(
    *, conversation_id: int, ended_by: str, now: datetime | None = None, visitor_left_at: datetime | None = None
) -> Conversation:
    """End a chat. A visitor leaving a waiting chat makes it abandoned, a ringing one missed.

    `visitor_left_at` (the sweeper's case): missed or abandoned follows what the chat was doing
    when the visitor left, not when the sweeper noticed; by then the offer may have timed out
    (30 s) and the chat be back in the queue, or a chat left in the queue be ringing for nobody.
    """
    now = now or timezone.now()
    with transaction.atomic():
        conversation = (
            # of=("self",): the agent join is an outer join, which PostgreSQL refuses to lock.
            Conversation.objects.select_for_update(of=("self",)).select_related("department", "agent", "visitor")
            .filter(pk=conversation_id).first()
        )
        if conversation is None:
            raise NotFound()
        if not conversation.is_open:
            return conversation  # ending twice is harmless: both sides may press "end" at once
        previous = conversation.status
        if previous == Conversation.Status.ACTIVE:
            conversation.status = Conversation.Status.ENDED
        elif visitor_left_at is not None:
            conversation.status = (
                Conversation.Status.MISSED
                if _was_ringing(conversation, at=visitor_left_at)
                else Conversation.Status.ABANDONED
            )
        elif previous == Conversation.Status.OFFERED:
            conversation.status = Conversation.Status.MISSED
        else:
            conversation.status = Conversation.Status.ABANDONED
        holder = conversation.agent
        open_assignment = conversation.assignments.filter(ended_at__isnull=True).first()
        if open_assignment is not None:
            open_assignment.ended_at = now
            open_assignment.end_reason = (
                Assignment.EndReason.CONVERSATION_ENDED
                if open_assignment.accepted_at
                else Assignment.EndReason.WITHDRAWN
            )
            open_assignment.save(update_fields=["ended_at", "end_reason"])
        conversation.ended_at = now
        conversation.ended_by = ended_by
        conversation.save(update_fields=["status", "ended_at", "ended_by"])
        who = {"visitor": "The visitor", "agent": "The agent", "supervisor": "A supervisor"}.get(ended_by, "The system")
        run(Inbound(conversation_id=conversation.pk, role=Message.Role.SYSTEM, body=f"{who} ended the chat."))
        conversation.refresh_from_db(fields=["last_seq", "last_public_seq"])
        events.send_event_on_commit(
            events.visitor_group(conversation.pk), frames.visitor_conversation_frame(conversation, queue_position=None)
        )
        events.send_event_on_commit(events.staff_group(conversation.pk), frames.staff_conversation_frame(conversation))
        events.send_live_change_on_commit(conversation.pk, conversation.department_id)
        hooks.conversation_ended_on_commit(conversation.pk)
        if holder is not None:
            events.send_event_on_commit(
                events.agent_group(holder.user_id),
                {"type": "ended", "conversation_id": conversation.pk, "status": conversation.status},
                handler="chat.unsubscribe",
                conversation_id=conversation.pk,
            )
    if previous == Conversation.Status.QUEUED:
        assignment.broadcast_queue(department_id=conversation.department_id)
    if holder is not None:
        assignment.dispatch_for_agent(holder)
    return conversation


def _was_ringing(conversation: Conversation, *, at: datetime) -> bool:
    """Whether an agent had this chat offered, and had not accepted it, at the moment `at`."""
    return (
        conversation.assignments.filter(offered_at__lte=at)
        .filter(Q(ended_at__isnull=True) | Q(ended_at__gt=at))
        .filter(Q(accepted_at__isnull=True) | Q(accepted_at__gt=at))
        .exists()
    )


def end_by_visitor(*, visitor: Visitor) -> Conversation:
    conversation = open_conversation_for_visitor(visitor=visitor)
    if conversation is None:
        raise NotFound("You have no open chat.")
    return end_conversation(conversation_id=conversation.pk, ended_by=Conversation.EndedBy.VISITOR)


def end_by_staff(*, user: Any, conversation_id: Any) -> Conversation:
    conversation = get_conversation_for_staff(user=user, conversation_id=conversation_id)
    if conversation.status != Conversation.Status.ACTIVE:
        raise Conflict("Only an accepted chat can be ended; decline an offer instead.", code="not_active")
    ended_by = Conversation.EndedBy.AGENT if hasattr(user, "agent") else Conversation.EndedBy.SUPERVISOR
    return end_conversation(conversation_id=conversation.pk, ended_by=ended_by)


def sweep(*, now: datetime | None = None) -> dict[str, int]:
    """Periodic housekeeping: offer timeouts, agents and visitors who went away. Idempotent."""
    now = now or timezone.now()
    counts = {"offers_expired": assignment.expire_offers(now=now), "agents_lost": 0, "visitors_left": 0}
    agent_cutoff = now - timedelta(seconds=settings.CHAT_AGENT_GRACE_SECONDS)
    lost = AgentProfile.objects.exclude(presence=AgentProfile.Presence.OFFLINE).filter(last_seen_at__lt=agent_cutoff)
    for agent in lost:
        assignment.release_lost_agent(agent=agent, now=now)
        counts["agents_lost"] += 1
    waiting_cutoff = now - timedelta(seconds=settings.CHAT_VISITOR_GRACE_SECONDS)
    idle_cutoff = now - timedelta(seconds=settings.CHAT_VISITOR_IDLE_END_SECONDS)
    gone = Conversation.objects.filter(
        status__in=[Conversation.Status.QUEUED, Conversation.Status.OFFERED], visitor__last_seen_at__lt=waiting_cutoff
    ) | Conversation.objects.filter(status=Conversation.Status.ACTIVE, visitor__last_seen_at__lt=idle_cutoff)
    for conversation_id, left_at in gone.values_list("pk", "visitor__last_seen_at"):
        end_conversation(
            conversation_id=conversation_id, ended_by=Conversation.EndedBy.SYSTEM, now=now, visitor_left_at=left_at
        )
        counts["visitors_left"] += 1
    return counts
